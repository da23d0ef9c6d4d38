"""A stable sort of small non-negative integer keys in linear time.

numpy sorts 16-bit integers stably with a radix sort (one pass over the data) and wider
ones with timsort (``n log n``, and slow on random keys). Customer and product codes
are wider than 16 bits at scale but small, so they are sorted 16 bits at a time from
the lowest digit: each pass is stable, which is what makes the passes add up to a sort
by the whole key (least-significant-digit radix sort).
"""

from __future__ import annotations

import numpy as np

__all__ = ["stable_order"]

_DIGIT_BITS = 16


def stable_order(keys: np.ndarray, n_keys: int) -> np.ndarray:
    """Positions of ``keys`` in key order; equal keys keep their order.

    Parameters
    ----------
    keys : numpy.ndarray
        Integers in ``0..n_keys - 1``.
    n_keys : int
        One more than the largest key (sets how many 16-bit passes are needed).

    Returns
    -------
    numpy.ndarray
        The permutation (``np.intp``) that sorts ``keys`` stably.

    Examples
    --------
    >>> stable_order(np.array([70_000, 3, 70_000, 0, 3]), 70_001)
    array([3, 1, 4, 0, 2])
    """
    keys = np.asarray(keys)
    if n_keys <= 1 << _DIGIT_BITS:  # one digit (and keys of any integer width)
        return np.argsort(keys.astype(np.uint16, copy=False), kind="stable")
    order: np.ndarray | None = None
    shift = 0
    while True:
        current = keys if order is None else keys[order]
        digit = ((current >> shift) & 0xFFFF).astype(np.uint16)
        step = np.argsort(digit, kind="stable")
        order = step if order is None else order[step]
        shift += _DIGIT_BITS
        if max(n_keys - 1, 0) >> shift == 0:
            return order
