"""Reference prices: the exact median of each product's unit prices, for both compilers.

``price_ratio`` (:data:`~._definitions.PRICE_RATIO`) divides a purchase line's unit
price by the median unit price of its product. Medians must be exact and the same on
every backend, so none of the engines' own medians is used (Dask's and pyarrow's are
approximate, and the exact ones interpolate with formulas that can differ in the last
bit): each path picks the two middle values itself and averages them as ``(a + b) / 2``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from segmentkit._common._sorting import stable_order

__all__ = ["REFERENCE_KEYS", "exact_medians"]

#: The column a line's reference price is grouped by, in order of preference.
REFERENCE_KEYS = ("product_id", "category")
#: Below this many values a plain sort is as fast as anything.
_FEW_VALUES = 100_000


def exact_medians(
    keys: np.ndarray, values: np.ndarray, width: int, counts: np.ndarray | None = None
) -> np.ndarray:
    """Per key ``0..width-1``, the exact median of its values.

    Parameters
    ----------
    keys : numpy.ndarray
        Integer key of each value, in ``0..width-1``.
    values : numpy.ndarray
        Finite floats.
    width : int
        Number of keys.
    counts : numpy.ndarray, optional
        How many times each value occurs (default: once).

    Returns
    -------
    numpy.ndarray
        The middle value of each key's sorted values, or ``(a + b) / 2`` of the two
        middle ones for an even count; NaN for a key without values.

    Examples
    --------
    >>> exact_medians(np.array([0, 0, 0, 1, 1]), np.array([3.0, 1.0, 2.0, 4.0, 5.0]), 3)
    array([2. , 4.5, nan])
    >>> exact_medians(np.array([0, 0]), np.array([1.0, 9.0]), 1, counts=np.array([2, 1]))
    array([1.])
    """
    keys = np.asarray(keys).astype(np.int64, copy=False)
    values = np.asarray(values, dtype=float)
    if counts is None and len(values) > _FEW_VALUES:
        repeated = _repeated_prices(keys, values, width)
        if repeated is not None:
            return repeated
    # By value, then stably by key in linear time: faster than a lexsort of both (equal
    # values are interchangeable, so the first sort need not be stable).
    order = np.argsort(values)
    order = order[stable_order(keys[order], width)]
    sorted_values = values[order]
    out = np.full(width, np.nan)
    if counts is None:
        # Each value once: the p-th value of a key sits at its first position + p.
        n = np.bincount(keys, minlength=width)
        before = np.cumsum(n) - n
        held = n > 0
        low = before[held] + (n[held] - 1) // 2
        high = before[held] + n[held] // 2
        out[held] = (sorted_values[low] + sorted_values[high]) / 2
        return out
    weights = np.asarray(counts).astype(np.int64)
    ends = np.cumsum(weights[order])  # values up to and including each row
    n = np.bincount(keys, weights=weights, minlength=width).astype(np.int64)
    before = np.cumsum(n) - n  # values of the smaller keys
    held = n > 0
    # The row holding 0-based position p is the first whose end is past p.
    low = np.searchsorted(ends, before[held] + (n[held] - 1) // 2, side="right")
    high = np.searchsorted(ends, before[held] + n[held] // 2, side="right")
    out[held] = (sorted_values[low] + sorted_values[high]) / 2
    return out


def _repeated_prices(keys: np.ndarray, values: np.ndarray, width: int) -> np.ndarray | None:
    """The medians from the distinct (key, value) pairs and their counts, when prices
    repeat (a product sells at a few prices); ``None`` when they mostly do not.

    Hashing ten million prices into a few thousand distinct ones, and the (key, price)
    pairs into a few hundred thousand, is several times faster than sorting ten million
    values; the weighted medians of the pairs are the same numbers.
    """
    price_code, prices = pd.factorize(values)
    if len(prices) * 4 > len(values):
        return None
    rank = np.empty(len(prices), dtype=np.int64)
    by_price = np.argsort(prices)
    rank[by_price] = np.arange(len(prices))
    pair_code, pairs = pd.factorize(keys * len(prices) + rank[price_code])
    if len(pairs) * 4 > len(values):
        return None
    counts = np.bincount(pair_code, minlength=len(pairs))
    return exact_medians(
        pairs // len(prices), prices[by_price][pairs % len(prices)], width, counts=counts
    )
