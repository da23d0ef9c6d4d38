"""Next-best items: what each customer is likely to buy next among what they never bought.

The score of an item ``j`` for a customer who bought the items ``S`` is the best rule
that predicts it, the empty rule included::

    score(j) = max( P(j), max over i in S of confidence(i → j) )

``P(j)`` (the share of baskets holding ``j``: popularity) is the confidence of the
rule with nothing on its left, so a customer without any association still gets the
most popular items they have not bought, and an association only wins when it says
more than popularity (its lift is above 1). The winning rule is the reason given
(``antecedent``; missing when popularity won). Items already bought are never
recommended. Ties: the more popular item first, then its name; between rules of equal
confidence, popularity, then the antecedent's name. All of it is sorting of integer
codes and exact ratios, vectorised over (customer, bought item, rule) rows, a batch of
customers at a time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._common._params import (
    Interval,
    ListLike,
    validate_params,
    validated,
)
from segmentkit.contracts._transactions import Transactions
from segmentkit.errors import NotFittedError
from segmentkit.features._extract import CustomerFeatures
from segmentkit.models._associations import (
    AS_OF,
    ATTRIBUTE,
    BASKET,
    MIN_COUNT,
    MIN_SUPPORT,
    TRANSACTIONS,
    rules_of,
)
from segmentkit.models._baskets import BasketKind, contains, distinct, purchase_pairs
from segmentkit.models._params import ModelParameters

__all__ = ["NextBestItems", "evaluate_next_best", "next_best_items"]

#: Long-table columns of :meth:`NextBestItems.recommend`.
RECOMMEND_COLUMNS = ("customer_id", "rank", "item", "score", "antecedent")
#: Candidate rows handled at once (bounds memory on millions of customers).
_BATCH_ROWS = 4_000_000


class NextBestItems(ModelParameters):
    """Rank, for each customer, the items they have not bought yet.

    Fitted on the purchases up to ``as_of``: associations between items (as
    :func:`segmentkit.associations` computes them) and each item's popularity. See the
    module notes for the score; in short, the highest confidence of a rule from an
    item the customer bought, or the item's popularity when that is higher.

    Parameters
    ----------
    attribute : str, default='category'
        The product attribute naming an item (``'category'``, ``'brand'``,
        ``'product_id'`` or any other mapped categorical column).
    k : int, default=3
        Items recommended per customer.
    min_support : float, default=0.01
        Smallest share of baskets an item and a pair must be bought in for a rule.
    min_count : int, default=2
        Smallest number of baskets an item and a pair must be bought in for a rule.
    basket : {'customer', 'order'}, default='customer'
        What the associations count: customers who bought both items, or orders that
        hold both.

    Attributes
    ----------
    as_of_ : pandas.Timestamp
        End of the purchases learnt from.
    items_ : pandas.Index
        Every item bought by then (sorted names).
    customers_ : pandas.Index
        The customers with a purchase by then (sorted ids).
    popularity_ : pandas.Series
        Share of baskets holding each item, by item.
    n_rules_ : int
        Directed rules kept.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> model = sk.NextBestItems(attribute="category", k=2).fit(tx, as_of="2017-10-01")
    >>> model.recommend(["1566", "new-customer"])[["customer_id", "rank", "item", "antecedent"]]
        customer_id  rank     item     antecedent
    0          1566     1     DELI  SEAFOOD-PCKGD
    1          1566     2   PASTRY  SEAFOOD-PCKGD
    2  new-customer     1  GROCERY           <NA>
    3  new-customer     2  DRUG GM           <NA>
    >>> model.transform(["1566"])
      customer_id next_best_1 next_best_2
    0        1566        DELI      PASTRY
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "attribute": ATTRIBUTE,
        "k": [Interval(int, 1, None)],
        "min_support": MIN_SUPPORT,
        "min_count": MIN_COUNT,
        "basket": BASKET,
    }

    def __init__(
        self,
        attribute: str = "category",
        *,
        k: int = 3,
        min_support: float = 0.01,
        min_count: int = 2,
        basket: BasketKind = "customer",
    ) -> None:
        self.attribute = attribute
        self.k = k
        self.min_support = min_support
        self.min_count = min_count
        self.basket = basket

    def fit(self, transactions: Transactions, y: None = None, *, as_of: Any = None) -> Self:
        """Learn the associations and popularity from the purchases up to ``as_of``.

        Parameters
        ----------
        transactions : Transactions
            Validated order lines (pandas, or kept in polars, DuckDB, Spark...: only
            distinct (customer, item) pairs are collected).
        y : None
            Ignored (scikit-learn convention).
        as_of : str or datetime-like, optional
            Last moment learnt from (inclusive); defaults to the last transaction.

        Returns
        -------
        NextBestItems
            This model, fitted.
        """
        validate_params("NextBestItems", self.get_params(), self._parameter_constraints)
        validate_params("NextBestItems.fit", {"transactions": transactions}, _FIT)
        baskets = purchase_pairs(
            transactions,
            self.attribute,
            as_of=as_of,
            basket=self.basket,
            owner="NextBestItems",
        )
        n_items = len(baskets.items)
        rules = rules_of(baskets, min_support=self.min_support, min_count=self.min_count)
        coo = rules.counts.tocoo()
        off = coo.row != coo.col
        single = rules.counts.diagonal().astype(np.int64)
        from scipy import sparse

        per_item = np.bincount(baskets.item, minlength=n_items)
        share = per_item / baskets.n_baskets
        # What each rule adds to the consequent's popularity; only rules with a lift
        # above 1 add anything. Row = antecedent, column = consequent (item codes).
        a, b = rules.kept[coo.row[off]], rules.kept[coo.col[off]]
        gain = coo.data[off] / single[coo.row[off]] - share[b]
        useful = gain > 0
        self._rules = sparse.csr_matrix(
            (gain[useful], (a[useful], b[useful])), shape=(n_items, n_items)
        )
        self._rules.sort_indices()
        # Customer × item: what each customer bought (orders folded into customers).
        width = max(n_items, 1)
        owned, _ = distinct(baskets.customer * width + baskets.item)
        ones = np.ones(len(owned), dtype=np.int8)
        self._owned = sparse.csr_matrix(
            (ones, (owned // width, owned % width)), shape=(len(baskets.customers), n_items)
        )
        self._owned.sort_indices()
        # Most popular first; equal counts by name (item codes follow the names).
        self._by_popularity = np.lexsort((np.arange(n_items), -per_item))
        self._popularity_rank = np.empty(n_items, dtype=np.int64)
        self._popularity_rank[self._by_popularity] = np.arange(n_items)
        self.as_of_ = baskets.as_of
        self.items_ = baskets.items
        self.customers_ = baskets.customers
        self.popularity_ = pd.Series(share, index=baskets.items, name="share")
        self.n_rules_ = int(useful.sum())
        return self

    def _targets(self, customers: Any) -> pd.Index:
        self._check_fitted()
        if customers is None:
            return self.customers_
        if isinstance(customers, CustomerFeatures):
            return pd.Index(customers.frame.index.astype(str), dtype=object)
        if isinstance(customers, str) or not isinstance(customers, Iterable):
            msg = (
                "customers must be a list of customer ids (or CustomerFeatures); got "
                f"{type(customers).__name__}."
            )
            raise TypeError(msg)
        ids = pd.Index([str(c) for c in customers], dtype=object)
        if ids.has_duplicates:
            repeated = ids[ids.duplicated()].unique()[:3].tolist()
            msg = f"customers repeats ids, e.g. {repeated}; give each customer once."
            raise ValueError(msg)
        return ids

    def _check_fitted(self) -> None:
        if not hasattr(self, "as_of_"):
            msg = "This NextBestItems is not fitted yet; call fit(transactions) first."
            raise NotFittedError(msg)

    def recommend(self, customers: Any = None) -> pd.DataFrame:
        """The ``k`` best items per customer, as a long table.

        Parameters
        ----------
        customers : list of str or CustomerFeatures, optional
            Whom to recommend to; defaults to every customer with a purchase by
            ``as_of_``. A customer unknown to the model (no purchase by then) gets the
            most popular items.

        Returns
        -------
        pandas.DataFrame
            ``customer_id``, ``rank`` (1 = best), ``item``, ``score`` (the confidence
            of the winning rule, or the item's popularity) and ``antecedent`` (the item
            bought that the winning rule starts from; missing when popularity won), in
            the order of ``customers`` then rank. Fewer than ``k`` rows for a customer
            who bought almost every item.
        """
        targets = self._targets(customers)
        return self._recommend(targets, use_rules=True)

    def transform(self, customers: Any = None) -> pd.DataFrame:
        """The ``k`` best items per customer as columns ``next_best_1`` … ``next_best_k``.

        Ready for the exporters (``predictions=`` of the Klaviyo, Braze and HubSpot
        builders send them as profile properties) and for joining to the features.

        Parameters
        ----------
        customers : list of str or CustomerFeatures, optional
            As for :meth:`recommend`.

        Returns
        -------
        pandas.DataFrame
            ``customer_id`` and ``next_best_1`` … ``next_best_k`` (text; missing when
            there are fewer items left to recommend), one row per customer in the order
            of ``customers``.
        """
        targets = self._targets(customers)
        long = self._recommend(targets, use_rules=True)
        return _wide(long, targets, self.k)

    def _recommend(self, targets: pd.Index, *, use_rules: bool) -> pd.DataFrame:
        codes = self.customers_.get_indexer(targets)
        n_owned = np.where(codes >= 0, np.diff(self._owned.indptr)[np.maximum(codes, 0)], 0)
        # Rows per customer (bought items × their rules, plus popular ones): batches
        # of customers keep the candidate table within _BATCH_ROWS.
        per_rule = np.diff(self._rules.indptr)
        parts = []
        start = 0
        cost = n_owned + self.k + 1
        if use_rules:
            starts, lengths = _row_slices(self._owned, codes)
            owned_items = self._owned.indices[_ranges(starts, lengths)]
            cost = cost + np.bincount(
                np.repeat(np.arange(len(codes)), lengths),
                weights=per_rule[owned_items],
                minlength=len(codes),
            ).astype(np.int64)
        cumulative = np.cumsum(cost)
        while start < len(codes):
            limit = (cumulative[start - 1] if start else 0) + _BATCH_ROWS
            stop = max(start + 1, int(np.searchsorted(cumulative, limit, side="right")))
            parts.append(self._batch(targets[start:stop], codes[start:stop], use_rules))
            start = stop
        if not parts:
            return _empty_long()
        return pd.concat(parts, ignore_index=True)

    def _batch(self, ids: pd.Index, codes: np.ndarray, use_rules: bool) -> pd.DataFrame:
        from scipy import sparse

        n_items = len(self.items_)
        width = max(n_items, 1)
        n = len(codes)
        starts, lengths = _row_slices(self._owned, codes)
        owner = np.repeat(np.arange(n), lengths)
        bought = self._owned.indices[_ranges(starts, lengths)].astype(np.int64)
        owned_keys = owner * width + bought
        popularity = self.popularity_.to_numpy()
        # Popular candidates: enough of the most popular items to leave k after
        # removing what the customer bought.
        wanted = np.minimum(n_items, lengths + self.k)
        pop_item = self._by_popularity[_ranges(np.zeros(n, dtype=np.int64), wanted)]
        candidates = [np.repeat(np.arange(n), wanted) * width + pop_item]
        gains = [np.zeros(len(pop_item))]
        if use_rules and len(bought):
            # The gains of every bought item's rules, summed per (customer, item) by one
            # sparse product (scipy adds them in a fixed order: the same sum everywhere).
            owned = sparse.csr_matrix((np.ones(len(bought)), (owner, bought)), shape=(n, n_items))
            summed = (owned @ self._rules).tocoo()
            candidates.append(summed.row.astype(np.int64) * width + summed.col)
            gains.append(summed.data)
        every = np.concatenate(candidates)
        added = np.concatenate(gains)
        fresh = ~contains(owned_keys, every)
        keys, _ = distinct(every[fresh])
        # A key is both popular and ruled: the ruled one carries the gain.
        gain = np.zeros(len(keys))
        np.maximum.at(gain, np.searchsorted(keys, every[fresh]), added[fresh])
        who, item = keys // width, keys % width
        score = popularity[item] + gain
        # Rank per customer: score, then popularity rank (unique, so no tie is left).
        order = np.lexsort((self._popularity_rank[item], -score, who))
        who, item, score, gain = who[order], item[order], score[order], gain[order]
        rank = np.arange(len(who)) - np.searchsorted(who, who, side="left") + 1
        top = rank <= self.k
        who, item, score, gain, rank = who[top], item[top], score[top], gain[top], rank[top]
        reason = self._reasons(who, item, gain > 0, starts, lengths)
        names = np.asarray(self.items_, dtype=object)
        antecedent = np.where(reason >= 0, names[np.maximum(reason, 0)], None)
        return pd.DataFrame(
            {
                "customer_id": np.asarray(ids, dtype=object)[who],
                "rank": rank.astype(np.int64),
                "item": names[item],
                "score": score.astype(float),
                "antecedent": pd.array(antecedent, dtype="string"),
            }
        )

    def _reasons(
        self,
        who: np.ndarray,
        item: np.ndarray,
        ruled: np.ndarray,
        starts: np.ndarray,
        lengths: np.ndarray,
    ) -> np.ndarray:
        """The bought item whose rule adds most to each recommended item (-1: none)."""
        reason = np.full(len(who), -1, dtype=np.int64)
        rows = np.flatnonzero(ruled)
        if not len(rows):
            return reason
        per = lengths[who[rows]]
        row = np.repeat(rows, per)
        bought = self._owned.indices[_ranges(starts[who[rows]], per)].astype(np.int64)
        gain = _entries(self._rules, bought, item[row])
        # Largest gain first; equal gains: the antecedent's name (its code) decides.
        order = np.lexsort((bought, -gain, row))
        row, bought = row[order], bought[order]
        first = np.ones(len(row), dtype=bool)
        first[1:] = row[1:] != row[:-1]
        reason[row[first]] = bought[first]
        return reason


_FIT = {"transactions": [TRANSACTIONS]}


@validated(
    transactions=[TRANSACTIONS],
    attribute=ATTRIBUTE,
    k=[Interval(int, 1, None)],
    min_support=MIN_SUPPORT,
    min_count=MIN_COUNT,
    as_of=AS_OF,
    basket=BASKET,
)
def next_best_items(
    transactions: Transactions,
    attribute: str = "category",
    *,
    k: int = 3,
    min_support: float = 0.01,
    min_count: int = 2,
    as_of: Any = None,
    basket: BasketKind = "customer",
) -> pd.DataFrame:
    """Each customer's ``k`` next-best items as columns, in one call.

    ``NextBestItems(attribute, ...).fit(transactions, as_of=as_of).transform()``: see
    :class:`NextBestItems` for the score.

    Parameters
    ----------
    transactions : Transactions
        Validated order lines (pandas, or kept in polars, DuckDB, Spark...).
    attribute : str, default='category'
        The product attribute naming an item.
    k : int, default=3
        Items per customer.
    min_support : float, default=0.01
        Smallest share of baskets an item and a pair must be bought in for a rule.
    min_count : int, default=2
        Smallest number of baskets an item and a pair must be bought in for a rule.
    as_of : str or datetime-like, optional
        Last moment learnt from (inclusive); defaults to the last transaction.
    basket : {'customer', 'order'}, default='customer'
        What the associations count.

    Returns
    -------
    pandas.DataFrame
        ``customer_id`` and ``next_best_1`` … ``next_best_k`` for every customer with
        a purchase by ``as_of``, sorted by customer id.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> wide = sk.next_best_items(tx, "category", k=2)
    >>> list(wide.columns)
    ['customer_id', 'next_best_1', 'next_best_2']
    """
    model = NextBestItems(
        attribute, k=k, min_support=min_support, min_count=min_count, basket=basket
    )
    return model.fit(transactions, as_of=as_of).transform()


@validated(
    transactions=[TRANSACTIONS],
    cutoff=AS_OF,
    attribute=ATTRIBUTE,
    horizon_days=[Interval(int, 1, None)],
    k=[Interval(int, 1, None), ListLike("a list of int", item=Interval(int, 1, None))],
    min_support=MIN_SUPPORT,
    min_count=MIN_COUNT,
    basket=BASKET,
)
def evaluate_next_best(
    transactions: Transactions,
    cutoff: Any,
    attribute: str = "category",
    *,
    horizon_days: int = 28,
    k: int | Iterable[int] = (1, 3, 5),
    min_support: float = 0.01,
    min_count: int = 2,
    basket: BasketKind = "customer",
) -> pd.DataFrame:
    """How well next-best items predict what customers buy for the first time next.

    A time split: the model is fitted on the purchases up to ``cutoff``; the truth of
    each customer is the set of items they buy in the ``horizon_days`` after it and had
    never bought before. Customers with a purchase by ``cutoff`` and at least one such
    new item are scored. The baseline recommends the most popular items each customer
    has not bought yet (the same model without associations).

    Parameters
    ----------
    transactions : Transactions
        Validated order lines, reaching past ``cutoff`` by ``horizon_days``.
    cutoff : str or datetime-like
        End of the fit (inclusive); the evaluation window is ``(cutoff, cutoff +
        horizon_days]``.
    attribute : str, default='category'
        The product attribute naming an item.
    horizon_days : int, default=28
        Length of the evaluation window.
    k : int or list of int, default=(1, 3, 5)
        Numbers of recommendations to score.
    min_support, min_count, basket
        As for :class:`NextBestItems`.

    Returns
    -------
    pandas.DataFrame
        One row per method (``'next_best'``, ``'popular'``) and ``k``: ``customers``
        (scored), ``hit_rate`` (share of them who bought at least one of their ``k``
        items), ``precision`` (share of recommended items bought) and ``recall``
        (share of their new items that were recommended).

    Raises
    ------
    ValueError
        If no customer buys a new item in the window.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> table = sk.evaluate_next_best(tx, "2017-09-30", "category", horizon_days=91, k=3)
    >>> list(table.columns)
    ['method', 'k', 'customers', 'hit_rate', 'precision', 'recall']
    """
    ks = sorted({k} if isinstance(k, int) else {int(v) for v in k})
    model = NextBestItems(
        attribute, k=max(ks), min_support=min_support, min_count=min_count, basket=basket
    ).fit(transactions, as_of=cutoff)
    end = model.as_of_ + pd.Timedelta(days=horizon_days)
    later = purchase_pairs(
        transactions, attribute, as_of=end, after=model.as_of_, owner="evaluate_next_best"
    )
    # New items: bought in the window, never before the cut-off, by known customers.
    known = model.customers_.get_indexer(later.customers)[later.customer]
    item = model.items_.get_indexer(later.items)[later.item]
    already = _entries(model._owned, np.maximum(known, 0), np.maximum(item, 0)) > 0
    new = (known >= 0) & ~((item >= 0) & already)
    truth_customer = later.customers[later.customer[new]]
    truth_item = later.items[later.item[new]]
    truth = pd.DataFrame({"customer_id": truth_customer, "item": truth_item})
    scored = pd.Index(np.unique(truth["customer_id"].to_numpy(dtype=object)), dtype=object)
    if len(scored) == 0:
        msg = (
            f"evaluate_next_best: no customer known at the cut-off buys a new item in the "
            f"{horizon_days} days after {model.as_of_.isoformat()}; choose an earlier "
            "cutoff or a longer horizon."
        )
        raise ValueError(msg)
    n_new = truth.groupby("customer_id").size().reindex(scored).to_numpy()
    rows = []
    for method, use_rules in (("next_best", True), ("popular", False)):
        long = model._recommend(scored, use_rules=use_rules)
        hit = long.merge(truth, on=["customer_id", "item"], how="left", indicator=True)
        long = long.assign(hit=(hit["_merge"] == "both").to_numpy())
        for n in ks:
            top = long[long["rank"] <= n]
            hits = top.groupby("customer_id")["hit"].sum().reindex(scored, fill_value=0)
            hits_n = hits.to_numpy(dtype=float)
            rows.append(
                {
                    "method": method,
                    "k": n,
                    "customers": len(scored),
                    "hit_rate": float(np.mean(hits_n > 0)),
                    "precision": float(hits_n.sum() / (n * len(scored))),
                    "recall": float(np.mean(hits_n / n_new)),
                }
            )
    return pd.DataFrame(rows)


def _row_slices(matrix: Any, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each code's row in a CSR matrix (empty for code -1)."""
    safe = np.maximum(codes, 0)
    starts = matrix.indptr[safe].astype(np.int64)
    lengths = np.where(codes >= 0, matrix.indptr[safe + 1] - starts, 0).astype(np.int64)
    return starts, lengths


def _entries(matrix: Any, rows: np.ndarray, columns: np.ndarray) -> np.ndarray:
    """``matrix[rows[i], columns[i]]`` for each i, as a flat array."""
    if len(rows) == 0:
        return np.zeros(0, dtype=matrix.dtype)
    return np.asarray(matrix[rows, columns]).ravel()


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """The concatenation of ``range(s, s + n)`` for each start and length, vectorised."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.repeat(starts - np.cumsum(lengths) + lengths, lengths)
    return offsets + np.arange(total, dtype=np.int64)


def _empty_long() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.Series(dtype=object),
            "rank": pd.Series(dtype=np.int64),
            "item": pd.Series(dtype=object),
            "score": pd.Series(dtype=float),
            "antecedent": pd.Series(dtype="string"),
        }
    )


def _wide(long: pd.DataFrame, targets: pd.Index, k: int) -> pd.DataFrame:
    cells = np.full((len(targets), k), None, dtype=object)
    row = targets.get_indexer(long["customer_id"])
    cells[row, long["rank"].to_numpy() - 1] = long["item"].to_numpy(dtype=object)
    columns: dict[str, Any] = {"customer_id": np.asarray(targets, dtype=object)}
    for j in range(k):
        columns[f"next_best_{j + 1}"] = pd.array(cells[:, j], dtype="string")
    return pd.DataFrame(columns)
