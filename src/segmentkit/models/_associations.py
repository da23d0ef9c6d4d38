"""Co-purchase associations between items: support, confidence and lift of A → B.

Computed over the binary basket × item matrix ``X`` (scipy.sparse): the items bought by
too few baskets are pruned first, then ``X.T @ X`` counts, for every pair of kept items,
the baskets that hold both. Counts are integers, and every ratio is one division of two
exact integers, so results are identical on every machine and ties are real ties.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segmentkit._common._params import (
    NONEMPTY_TEXT,
    InstanceOf,
    Interval,
    OneOf,
    Satisfies,
    validated,
)
from segmentkit.contracts._transactions import Transactions
from segmentkit.models._baskets import BasketKind, Baskets, purchase_pairs

if TYPE_CHECKING:
    from scipy import sparse

__all__ = ["ASSOCIATION_COLUMNS", "Rules", "associations", "rules_of"]

#: The columns of :func:`associations`, in order.
ASSOCIATION_COLUMNS = (
    "antecedent",
    "consequent",
    "support",
    "confidence",
    "lift",
    "n_both",
    "n_antecedent",
    "n_consequent",
)


class Rules:
    """Kept items and the counts of every pair of them, as the models read them.

    Attributes
    ----------
    counts : scipy.sparse.csr_matrix
        Baskets holding both items, over the kept items (diagonal: baskets per item);
        only pairs meeting the thresholds are stored off the diagonal.
    kept : numpy.ndarray
        Item codes (into ``baskets.items``) of the kept items, in name order.
    n_baskets : int
        Baskets with at least one item.
    """

    def __init__(self, counts: sparse.csr_matrix, kept: np.ndarray, n_baskets: int) -> None:
        self.counts = counts
        self.kept = kept
        self.n_baskets = n_baskets


def _threshold(min_support: float, min_count: int, n: int) -> int:
    # The smallest count whose support reaches min_support, in exact integers:
    # count / n >= s  ⇔  count >= ceil(s × n) (up to the float of s itself).
    return max(int(min_count), math.ceil(min_support * n - 1e-9 * n))


def rules_of(baskets: Baskets, *, min_support: float, min_count: int) -> Rules:
    """Prune rare items, then count the pairs of the rest with one sparse product."""
    n = baskets.n_baskets
    needed = _threshold(min_support, min_count, n)
    per_item = np.bincount(baskets.item, minlength=len(baskets.items))
    kept = np.flatnonzero(per_item >= needed)
    x = baskets.matrix()[:, kept]
    counts = (x.T @ x).tocsr()
    counts.sum_duplicates()
    coo = counts.tocoo()
    keep = (coo.row == coo.col) | (coo.data >= needed)
    from scipy import sparse

    pruned = sparse.csr_matrix(
        (coo.data[keep], (coo.row[keep], coo.col[keep])), shape=counts.shape
    )
    return Rules(pruned, kept, n)


def rule_table(baskets: Baskets, rules: Rules) -> pd.DataFrame:
    """Every directed rule A → B between distinct kept items, sorted by lift."""
    coo = rules.counts.tocoo()
    off = coo.row != coo.col
    a, b, both = coo.row[off], coo.col[off], coo.data[off].astype(np.int64)
    single = rules.counts.diagonal().astype(np.int64)
    n = rules.n_baskets
    n_a, n_b = single[a], single[b]
    names = np.asarray(baskets.items, dtype=object)[rules.kept]
    table = pd.DataFrame(
        {
            "antecedent": names[a],
            "consequent": names[b],
            "support": both / n,
            "confidence": both / n_a,
            # One division of exact integer products: equal lifts are equal floats.
            "lift": (both * n) / (n_a * n_b),
            "n_both": both,
            "n_antecedent": n_a,
            "n_consequent": n_b,
        }
    )
    # Names are sorted codes: ordering by code is ordering by name.
    order = np.lexsort((b, a, -table["lift"].to_numpy()))
    return table.iloc[order].reset_index(drop=True)


#: Declarations shared by the functions and models that read baskets.
TRANSACTIONS = InstanceOf((Transactions,), "Transactions (sk.Transactions.from_frame(...))")
ATTRIBUTE = [NONEMPTY_TEXT]
BASKET = [OneOf("customer", "order")]
MIN_SUPPORT = [Interval(float, 0, 1, closed="right")]
MIN_COUNT = [Interval(int, 1, None)]
#: as_of is read (and its errors worded) by as_utc_timestamp, as in extract_features.
AS_OF = [Satisfies(lambda value: True, "a date or time")]


@validated(
    transactions=[TRANSACTIONS],
    attribute=ATTRIBUTE,
    min_support=MIN_SUPPORT,
    min_count=MIN_COUNT,
    as_of=AS_OF,
    basket=BASKET,
)
def associations(
    transactions: Transactions,
    attribute: str = "category",
    *,
    min_support: float = 0.01,
    min_count: int = 2,
    as_of: Any = None,
    basket: BasketKind = "customer",
) -> pd.DataFrame:
    """Which items are bought together: support, confidence and lift of every rule A → B.

    A *basket* is a customer (everything they bought up to ``as_of``: "who buys A also
    buys B") or, with ``basket='order'``, one order ("bought in the same basket").
    Items are the values of ``attribute``. Items in fewer than ``min_support`` of the
    baskets (or ``min_count`` baskets) are pruned first; then one sparse product of the
    basket × item matrix with itself counts the baskets of every pair, and the rules
    whose pair also reaches both thresholds are kept. Only distinct (basket, item) pairs
    are collected from polars, DuckDB, Spark or Dask transactions, never their lines.

    Parameters
    ----------
    transactions : Transactions
        Validated order lines (pandas or kept in another engine). Purchases only are
        read: return lines are not items bought.
    attribute : str, default='category'
        The product attribute naming an item: ``'category'``, ``'brand'``,
        ``'product_id'`` or any other mapped categorical column. Lines without a value
        name no item; they are counted in ``attrs['lines_without_item']``.
    min_support : float, default=0.01
        Smallest share of baskets an item, and a pair, must be bought in (0 < s ≤ 1).
    min_count : int, default=2
        Smallest number of baskets an item, and a pair, must be bought in: a rule seen
        in one basket says nothing.
    as_of : str or datetime-like, optional
        Last moment counted (inclusive); defaults to the last transaction.
    basket : {'customer', 'order'}, default='customer'
        What one basket is.

    Returns
    -------
    pandas.DataFrame
        One row per rule, sorted by lift (descending), then antecedent and consequent
        names: ``antecedent``, ``consequent``, ``support`` (share of baskets holding
        both), ``confidence`` (share of the antecedent's baskets that hold the
        consequent), ``lift`` (confidence over the consequent's support: above 1, bought
        together more often than by chance), ``n_both``, ``n_antecedent``,
        ``n_consequent`` (basket counts). ``attrs`` holds ``baskets`` (the number of
        baskets with an item), ``attribute``, ``basket``, ``as_of`` and
        ``lines_without_item``.

    Raises
    ------
    ValueError
        If ``attribute`` is not a product attribute of the transactions, or no
        transaction is on or before ``as_of``.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> rules = sk.associations(tx, "category", min_support=0.05)
    >>> rules.attrs["baskets"]
    798
    >>> rules.head(3)[["antecedent", "consequent", "support", "confidence", "lift"]].round(3)
      antecedent     consequent  support  confidence   lift
    0       DELI      SALAD BAR    0.050       0.123  1.554
    1  SALAD BAR           DELI    0.050       0.635  1.554
    2     PASTRY  SEAFOOD-PCKGD    0.063       0.186  1.514
    """
    baskets = purchase_pairs(
        transactions, attribute, as_of=as_of, basket=basket, owner="associations"
    )
    rules = rules_of(baskets, min_support=min_support, min_count=min_count)
    table = rule_table(baskets, rules)
    table.attrs.update(
        baskets=baskets.n_baskets,
        attribute=attribute,
        basket=basket,
        as_of=baskets.as_of,
        lines_without_item=baskets.lines_without_item,
    )
    return table
