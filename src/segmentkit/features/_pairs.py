"""(customer, value) pairs of transaction lines: one table per product attribute.

Every product, category, brand or attribute feature asks something of the pairs of
(customer, value) a customer's lines hold: how many there are in a window, which had
the most spend, in how many orders each value was bought. Hashing ten million
(customer, value) keys costs about a second, and did so once per question. Lines put
in customer order once (``_Lines.by_customer``) are sorted by value within each
customer for a tenth of that (timsort on keys that are already nearly in order), and
then every question of the attribute is a sequential reduction over the same pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from segmentkit._common._runs import run_starts

__all__ = ["PairTable"]


@dataclass(frozen=True)
class PairTable:
    """The (customer, value) pairs of the lines with a value of one attribute.

    ``lines`` lists those lines ordered by (customer, value code), each pair's lines in
    their original order; the pair ``i`` owns ``lines[starts[i]:starts[i + 1]]``.
    """

    lines: np.ndarray
    starts: np.ndarray
    customer: np.ndarray
    value: np.ndarray

    @classmethod
    def build(
        cls,
        by_customer: np.ndarray,
        customer_in_order: np.ndarray,
        value_codes: np.ndarray,
        width: int,
    ) -> PairTable:
        """Pairs of the lines' customers and ``value_codes`` (``-1``: no value).

        ``by_customer`` orders the lines by customer code, stably, and
        ``customer_in_order`` is the customer code of each line in that order.
        """
        value = value_codes[by_customer]
        known = value >= 0
        if known.all():
            lines, customer = by_customer, customer_in_order
        else:
            lines, customer, value = by_customer[known], customer_in_order[known], value[known]
        width = max(width, 1)
        # 32-bit keys whenever they fit: half the memory to write and sort. (Fresh memory
        # is what these tables cost most: a few large arrays fewer is the speed-up.)
        n_customers = int(customer[-1]) + 1 if len(customer) else 0
        key_type = np.int32 if n_customers * width < 2**31 else np.int64
        keys = np.multiply(customer, width, dtype=key_type)
        keys += value
        # Sorted by customer already: the stable sort only reorders each customer's lines,
        # so the customers stay where they are and only the values move.
        within = np.argsort(keys, kind="stable")
        del keys
        value = value[within]
        change = np.empty(len(value), dtype=bool)
        if len(value):
            change[0] = True
            np.not_equal(value[1:], value[:-1], out=change[1:])
            change[1:] |= customer[1:] != customer[:-1]
        starts = np.flatnonzero(change)
        return cls(
            lines=lines[within],
            starts=starts,
            customer=customer[starts].astype(np.intp, copy=False),
            value=value[starts],
        )

    def __len__(self) -> int:
        return len(self.starts)

    def _in_pair_order(self, values: np.ndarray) -> np.ndarray:
        return values[self.lines]

    def _mask_in_pair_order(self, mask: np.ndarray) -> np.ndarray:
        # Several questions read one row filter (purchases): gathered once. The cache
        # keeps the mask itself, so its id cannot be reused by another array meanwhile.
        cache: dict[int, tuple[np.ndarray, np.ndarray]] = self.__dict__.setdefault("_masks", {})
        held = cache.get(id(mask))
        if held is None or held[0] is not mask:
            held = cache[id(mask)] = (mask, mask[self.lines])
        return held[1]

    def any(self, mask: np.ndarray | None) -> np.ndarray:
        """Per pair, whether any of its lines is in ``mask`` (``None``: every line)."""
        if mask is None or len(self) == 0:
            return np.ones(len(self), dtype=bool)
        return np.logical_or.reduceat(self._mask_in_pair_order(mask), self.starts)

    def sum(self, weights: np.ndarray, mask: np.ndarray | None) -> np.ndarray:
        """Per pair, the sum of ``weights`` over its lines in ``mask``."""
        if len(self) == 0:
            return np.zeros(0)
        picked = self._in_pair_order(np.asarray(weights, dtype=float))
        if mask is not None:
            # In place: one array of the lines' size fewer (see build).
            np.putmask(picked, ~self._mask_in_pair_order(mask), 0.0)
        return np.add.reduceat(picked, self.starts)

    def distinct(
        self, keys: np.ndarray, mask: np.ndarray | None, *, adjacent: bool = False
    ) -> np.ndarray:
        """Per pair, the distinct ``keys`` (non-negative integers, e.g. order keys) among
        its lines in ``mask``.

        ``adjacent``: lines of one key are adjacent in the original order (each order one
        run of lines). A pair's lines keep that order, so a key's lines are then adjacent
        within the pair too, and the distinct keys are the changes of key: no sort.
        """
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64)
        key = self._in_pair_order(keys)
        starts = self.starts
        if mask is not None:
            chosen = self._mask_in_pair_order(mask)
            if not chosen.all():
                # The chosen lines alone, each pair's first chosen line found by counting.
                held = np.add.reduceat(chosen, starts, dtype=np.intp)
                key = key[chosen]
                counts = np.zeros(len(self), dtype=np.int64)
                some = held > 0
                if not some.any():
                    return counts
                firsts = (np.cumsum(held) - held)[some]
                counts[some] = self._distinct_in_runs(key, firsts, adjacent=adjacent)
                return counts
        return self._distinct_in_runs(key, starts, adjacent=adjacent)

    @staticmethod
    def _distinct_in_runs(key: np.ndarray, firsts: np.ndarray, *, adjacent: bool) -> np.ndarray:
        """Distinct ``key`` in each run ``key[firsts[i]:firsts[i + 1]]`` (none empty)."""
        if adjacent:
            new = np.empty(len(key), dtype=bool)
            new[0] = True
            np.not_equal(key[1:], key[:-1], out=new[1:])
            new[firsts] = True
            return np.add.reduceat(new, firsts, dtype=np.int64)
        # A pair's lines keep their original order, where an order's lines are usually
        # adjacent: the composite keys are nearly sorted, and timsort nearly linear.
        lengths = np.diff(firsts, append=len(key))
        run = np.repeat(np.arange(len(firsts), dtype=np.int64), lengths)
        span = int(key.max()) + 1
        composite = np.sort(run * span + key, kind="stable")
        distinct_runs = composite[run_starts(composite)] // span
        return np.bincount(distinct_runs, minlength=len(firsts)).astype(np.int64)

    def span(self, times: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per pair, the first and last of ``times`` over its lines in ``mask`` (the int64
        maximum and minimum for a pair with no such line), made once per (times, mask)."""
        # Several windows read one span. The cache keeps the arrays themselves, so their
        # ids cannot be reused by others meanwhile.
        cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray, tuple[np.ndarray, ...]]]
        cache = self.__dict__.setdefault("_spans", {})
        held = cache.get((id(times), id(mask)))
        if held is None or held[0] is not times or held[1] is not mask:
            held = cache[(id(times), id(mask))] = (times, mask, self._span(times, mask))
        first, last = held[2]
        return first, last

    def _span(self, times: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        in_order = self._in_pair_order(np.asarray(times, dtype=np.int64))
        left_out = ~self._mask_in_pair_order(mask)
        # One gathered copy, overwritten in place for each extreme (see build).
        np.putmask(in_order, left_out, np.iinfo(np.int64).max)
        first = np.minimum.reduceat(in_order, self.starts)
        np.putmask(in_order, left_out, np.iinfo(np.int64).min)
        last = np.maximum.reduceat(in_order, self.starts)
        return first, last

    def count_per_customer(self, pairs: np.ndarray, n: int) -> np.ndarray:
        """Per customer code ``0..n-1``, how many of the pairs ``pairs`` (a mask) are theirs."""
        out = np.zeros(n, dtype=np.int64)
        if len(self):
            # Pairs are listed customer by customer: one sequential sum per customer.
            firsts = self.customer_starts
            out[self.customer[firsts]] = np.add.reduceat(pairs, firsts, dtype=np.int64)
        return out

    @property
    def customer_starts(self) -> np.ndarray:
        """Where each customer's pairs start (pairs are listed customer by customer)."""
        cached = self.__dict__.get("_firsts")
        if cached is None:
            cached = self.__dict__["_firsts"] = run_starts(self.customer)
        return cached
