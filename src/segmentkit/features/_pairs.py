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
        keys = np.multiply(customer, width, dtype=np.int64)
        keys += value
        # Sorted by customer already: the stable sort only reorders each customer's lines,
        # so the customers stay where they are and only the values move.
        within = np.argsort(keys, kind="stable")
        keys = keys[within]
        starts = run_starts(keys)
        pair_customer = customer[starts]
        return cls(
            lines=lines[within],
            starts=starts,
            customer=pair_customer.astype(np.intp, copy=False),
            value=keys[starts] - pair_customer.astype(np.int64) * width,
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
        picked = self._in_pair_order(weights).astype(float)
        if mask is not None:
            picked = np.where(self._mask_in_pair_order(mask), picked, 0.0)
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
        lengths = np.diff(self.starts, append=len(self.lines))
        pair = np.repeat(np.arange(len(self), dtype=np.int64), lengths)
        key = self._in_pair_order(keys).astype(np.int64)
        if mask is not None:
            chosen = self._mask_in_pair_order(mask)
            pair, key = pair[chosen], key[chosen]
        if len(key) == 0:
            return np.zeros(len(self), dtype=np.int64)
        if adjacent:
            new = np.empty(len(key), dtype=bool)
            new[0] = True
            new[1:] = (key[1:] != key[:-1]) | (pair[1:] != pair[:-1])
            return np.bincount(pair[new], minlength=len(self)).astype(np.int64)
        span = int(key.max()) + 1
        # A pair's lines keep their original order, where an order's lines are usually
        # adjacent: the composite keys are nearly sorted, and timsort nearly linear.
        composite = np.sort(pair * span + key, kind="stable")
        distinct_pairs = composite[run_starts(composite)] // span
        return np.bincount(distinct_pairs, minlength=len(self)).astype(np.int64)

    def span(self, times: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per pair, the first and last of ``times`` over its lines in ``mask`` (the int64
        maximum and minimum for a pair with no such line)."""
        if len(self) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        in_order = self._in_pair_order(times)
        chosen = self._mask_in_pair_order(mask)
        never, always = np.iinfo(np.int64).max, np.iinfo(np.int64).min
        first = np.minimum.reduceat(np.where(chosen, in_order, never), self.starts)
        last = np.maximum.reduceat(np.where(chosen, in_order, always), self.starts)
        return first, last

    def count_per_customer(self, pairs: np.ndarray, n: int) -> np.ndarray:
        """Per customer code ``0..n-1``, how many of the pairs ``pairs`` (a mask) are theirs."""
        out = np.zeros(n, dtype=np.int64)
        if len(self):
            # Pairs are listed customer by customer: one sequential sum per customer.
            firsts = self._customer_starts
            out[self.customer[firsts]] = np.add.reduceat(pairs.astype(np.int64), firsts)
        return out

    @property
    def _customer_starts(self) -> np.ndarray:
        cached = self.__dict__.get("_firsts")
        if cached is None:
            cached = self.__dict__["_firsts"] = run_starts(self.customer)
        return cached
