"""Items to promote per segment: what a segment buys more often than the whole base.

For each segment and item: the share of the segment's customers who bought the item
(by the segmentation's ``as_of``), the same share over every segmented customer, and
their ratio, the *lift*. The items with the highest lift (bought by at least
``min_customers`` of the segment) are what the segment is distinctively into, and so
what to put in front of the customers of the segment who have not bought them yet.

Only the segmentation's assignments are read (who is in which segment); the models
stage never needs the engine that made them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from segmentkit._common._params import NONE, Interval, Satisfies, validated
from segmentkit.contracts._transactions import Transactions
from segmentkit.models._associations import AS_OF, ATTRIBUTE, TRANSACTIONS
from segmentkit.models._baskets import purchase_pairs

__all__ = ["SEGMENT_ITEM_COLUMNS", "segment_items"]

#: The columns of :func:`segment_items`, in order (the report checks them).
SEGMENT_ITEM_COLUMNS = (
    "segment_id",
    "segment",
    "rank",
    "item",
    "buyers",
    "share",
    "base_share",
    "lift",
)


def _is_segmentation(value: object) -> bool:
    assignments = getattr(value, "assignments", None)
    return isinstance(assignments, pd.DataFrame) and hasattr(value, "segments")


@validated(
    segmentation=[Satisfies(_is_segmentation, "a Segmentation")],
    transactions=[TRANSACTIONS],
    attribute=ATTRIBUTE,
    top=[Interval(int, 1, None)],
    min_customers=[Interval(int, 1, None)],
    as_of=[*AS_OF, NONE],
)
def segment_items(
    segmentation: Any,
    transactions: Transactions,
    attribute: str = "category",
    *,
    top: int = 5,
    min_customers: int = 5,
    as_of: Any = None,
) -> pd.DataFrame:
    """The items each segment buys most distinctively: what to promote to it.

    Parameters
    ----------
    segmentation : Segmentation
        Who is in which segment.
    transactions : Transactions
        Validated order lines (pandas or kept in another engine: only distinct
        (customer, item) pairs are collected). Purchases only.
    attribute : str, default='category'
        The product attribute naming an item.
    top : int, default=5
        Items per segment.
    min_customers : int, default=5
        Fewest customers of the segment who must have bought an item for it to be
        listed: a lift measured on two customers is noise.
    as_of : str or datetime-like, optional
        Last purchase counted; defaults to the segmentation's ``as_of`` (so nothing
        after the segments were made leaks in).

    Returns
    -------
    pandas.DataFrame
        Per segment (in the segmentation's order) its ``top`` items by lift:
        ``segment_id``, ``segment``, ``rank``, ``item``, ``buyers`` (customers of the
        segment who bought it), ``share`` (buyers over the segment's customers),
        ``base_share`` (the same over every segmented customer) and ``lift`` (share over
        base share). Ties: more buyers, then the item's name. A segment with no item
        bought by ``min_customers`` of it has no row. ``attrs`` holds ``attribute``,
        ``as_of`` and ``customers_not_segmented`` (buyers missing from the
        segmentation, left out).

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> seg = sk.RFMSegmenter().fit_predict(sk.extract_features(tx))
    >>> offers = sk.segment_items(seg, tx, "category", top=2)
    >>> champions = offers[offers["segment"] == "Champions"]
    >>> champions[["rank", "item", "buyers", "share", "lift"]].round(2)
       rank     item  buyers  share  lift
    0     1  SEAFOOD      21   0.11  2.70
    1     2   FLORAL      27   0.15  2.23
    """
    stamp = segmentation.as_of if as_of is None else as_of
    baskets = purchase_pairs(
        transactions, attribute, as_of=stamp, basket="customer", owner="segment_items"
    )
    assignments = segmentation.assignments
    order = [s.id for s in segmentation.segments]
    names = np.asarray([s.name for s in segmentation.segments], dtype=object)
    position = pd.Index(order).get_indexer(assignments["segment_id"].to_numpy())
    ids = pd.Index(assignments["customer_id"].astype(str).to_numpy(), dtype=object)
    n_segments, n_items = len(order), len(baskets.items)
    size = np.bincount(position[position >= 0], minlength=n_segments).astype(np.int64)
    base = int(size.sum())
    # The segment of each buyer of each pair (-1: not in the segmentation).
    seg_of_customer = np.full(len(baskets.customers), -1, dtype=np.int64)
    where = ids.get_indexer(baskets.customers)
    known = where >= 0
    seg_of_customer[known] = position[where[known]]
    pair_segment = seg_of_customer[baskets.customer]
    counted = pair_segment >= 0
    buyers = np.bincount(
        pair_segment[counted] * n_items + baskets.item[counted],
        minlength=n_segments * n_items,
    ).reshape(n_segments, n_items)
    base_buyers = buyers.sum(axis=0)
    seg_index, item_index = np.nonzero(buyers >= min_customers)
    b = buyers[seg_index, item_index].astype(np.int64)
    s = size[seg_index]
    bb = base_buyers[item_index].astype(np.int64)
    table = pd.DataFrame(
        {
            "segment_id": np.asarray(order, dtype=object)[seg_index],
            "segment": names[seg_index],
            "item": np.asarray(baskets.items, dtype=object)[item_index],
            "buyers": b,
            "share": b / s,
            "base_share": bb / base,
            # One division of exact integer products: equal lifts are equal floats.
            "lift": (b * base) / (s * bb),
        }
    )
    ranked = np.lexsort((item_index, -b, -table["lift"].to_numpy(), seg_index))
    table = table.iloc[ranked].reset_index(drop=True)
    seg_sorted = seg_index[ranked]
    rank = np.arange(len(table)) - np.searchsorted(seg_sorted, seg_sorted, side="left") + 1
    table.insert(2, "rank", rank.astype(np.int64))
    table = table[table["rank"] <= top].reset_index(drop=True)
    table["segment_id"] = table["segment_id"].astype(np.int64)
    table.attrs.update(
        attribute=attribute,
        as_of=baskets.as_of,
        customers_not_segmented=int((~known).sum()),
    )
    return table[list(SEGMENT_ITEM_COLUMNS)]
