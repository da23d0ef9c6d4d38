"""Reference prices: the exact median of each product's unit prices, for both compilers.

``price_ratio`` (:data:`~._definitions.PRICE_RATIO`) divides a purchase line's unit
price by the median unit price of its product. Medians must be exact and the same on
every backend, so none of the engines' own medians is used (Dask's and pyarrow's are
approximate, and the exact ones interpolate with formulas that can differ in the last
bit): each path picks the two middle values itself and averages them as ``(a + b) / 2``.
"""

from __future__ import annotations

import numpy as np

__all__ = ["REFERENCE_KEYS", "exact_medians"]

#: The column a line's reference price is grouped by, in order of preference.
REFERENCE_KEYS = ("product_id", "category")


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
    keys = np.asarray(keys, dtype=np.int64)
    values = np.asarray(values, dtype=float)
    weights = np.ones(len(keys), dtype=np.int64) if counts is None else np.asarray(counts)
    weights = weights.astype(np.int64)
    # By value, then stably by key: faster than a lexsort of both (equal values are
    # interchangeable, so the first sort need not be stable).
    order = np.argsort(values)
    order = order[np.argsort(keys[order], kind="stable")]
    sorted_values = values[order]
    ends = np.cumsum(weights[order])  # values up to and including each row
    n = np.bincount(keys, weights=weights, minlength=width).astype(np.int64)
    before = np.cumsum(n) - n  # values of the smaller keys
    out = np.full(width, np.nan)
    held = n > 0
    # The row holding 0-based position p is the first whose end is past p.
    low = np.searchsorted(ends, before[held] + (n[held] - 1) // 2, side="right")
    high = np.searchsorted(ends, before[held] + n[held] // 2, side="right")
    out[held] = (sorted_values[low] + sorted_values[high]) / 2
    return out
