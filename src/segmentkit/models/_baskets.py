"""Who bought which item: the distinct (basket, item) pairs of the purchases, as a matrix.

The one thing associations, next-best items and segment items read from transactions.
Only distinct pairs ever leave the engine (on polars, DuckDB, Spark... they are made
unique there), never the lines: a customer who bought a category forty times is one pair.
An *item* is the value of a product attribute of the line (``category``, ``brand``,
``product_id`` or any other categorical column); a *basket* is a customer (everything
they bought up to ``as_of``) or an order. Purchases only: return lines are not items
bought, and lines with no value of the attribute name no item (counted, never hidden).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

import numpy as np
import pandas as pd

from segmentkit.contracts._transactions import Transactions
from segmentkit.features._base import as_utc_timestamp, nothing_by_as_of

if TYPE_CHECKING:
    from scipy import sparse

    from segmentkit.contracts._native_tables import NativeTransactions

__all__ = ["BasketKind", "Baskets", "contains", "distinct", "item_column", "purchase_pairs"]

BasketKind = Literal["customer", "order"]

#: Canonical columns that are no product attribute: ids, times, numbers and flags.
_NOT_ITEMS = frozenset(
    {
        "customer_id",
        "timestamp",
        "amount",
        "quantity",
        "unit_price",
        "discount",
        "order_id",
        "order_key",
        "is_return",
        "currency",
    }
)


@dataclass(frozen=True)
class Baskets:
    """Distinct (basket, item) pairs of the purchases in a time range.

    Attributes
    ----------
    basket : numpy.ndarray
        Basket code of each pair (int64), an index into ``basket_ids``.
    item : numpy.ndarray
        Item code of each pair (int64), an index into ``items``.
    customer : numpy.ndarray
        Customer code of each pair, an index into ``customers`` (equal to ``basket``
        when baskets are customers).
    basket_ids : pandas.Index
        The baskets (customer ids, or order keys as text).
    items : pandas.Index
        The items as text, sorted: item codes follow the names.
    customers : pandas.Index
        The customers with a purchase, sorted, as text.
    as_of : pandas.Timestamp
        End of the range (inclusive), UTC.
    lines_without_item : int
        Purchase lines in the range with no value of the attribute.
    """

    basket: np.ndarray
    item: np.ndarray
    customer: np.ndarray
    basket_ids: pd.Index
    items: pd.Index
    customers: pd.Index
    as_of: pd.Timestamp
    lines_without_item: int

    @property
    def n_baskets(self) -> int:
        """Baskets with at least one item."""
        return len(self.basket_ids)

    def matrix(self) -> sparse.csr_matrix:
        """The binary basket × item matrix (int64 ones)."""
        from scipy import sparse

        ones = np.ones(len(self.basket), dtype=np.int64)
        shape = (len(self.basket_ids), len(self.items))
        return sparse.csr_matrix((ones, (self.basket, self.item)), shape=shape)


def distinct(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The sorted distinct values of an integer array and the position of each one's
    first occurrence (a sort: faster than ``np.unique``'s hashing on millions of keys)."""
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first], order[first]


def contains(sorted_keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Whether each value is in ``sorted_keys`` (ascending), by binary search."""
    if len(sorted_keys) == 0:
        return np.zeros(len(values), dtype=bool)
    at = np.minimum(np.searchsorted(sorted_keys, values), len(sorted_keys) - 1)
    return sorted_keys[at] == values


def item_column(transactions: Transactions, attribute: str, owner: str) -> str:
    """``attribute`` checked against the transactions' columns."""
    columns = list(transactions.columns)
    usable = [c for c in columns if c not in _NOT_ITEMS]
    if attribute in _NOT_ITEMS or attribute not in columns:
        why = (
            "is not a product attribute"
            if attribute in _NOT_ITEMS
            else "is not a column of the transactions"
        )
        hint = (
            f"map it when validating, e.g. Transactions.from_frame(df, {attribute}='...')"
            if attribute not in _NOT_ITEMS
            else "choose a product attribute"
        )
        msg = (
            f"{owner}: attribute={attribute!r} {why}; the transactions have the product "
            f"attributes {usable or 'none'} ({hint})."
        )
        raise ValueError(msg)
    return attribute


def purchase_pairs(
    transactions: Transactions,
    attribute: str,
    *,
    as_of: Any = None,
    after: pd.Timestamp | None = None,
    basket: BasketKind = "customer",
    owner: str = "associations",
) -> Baskets:
    """The distinct (basket, item) pairs bought in ``(after, as_of]``.

    Parameters
    ----------
    transactions : Transactions
        Pandas or native (polars, DuckDB, Spark...) transactions.
    attribute : str
        The column naming the item.
    as_of : str or datetime-like, optional
        Last moment counted (inclusive); defaults to the last line.
    after : pandas.Timestamp, optional
        Only purchases strictly after this moment (for an evaluation window).
    basket : {'customer', 'order'}
        What one basket is.
    owner : str
        The public function, for messages.

    Returns
    -------
    Baskets
        The pairs with sorted item and customer labels.
    """
    column = item_column(transactions, attribute, owner)
    if basket == "order" and "order_id" not in transactions.columns:
        orders_from = getattr(transactions, "orders_from", None)
        if orders_from == "row":
            msg = (
                f"{owner}: basket='order' needs orders, and with orders_from='row' every "
                "line is an order of its own, so no two items ever share one. Map an "
                "order_id, or use basket='customer'."
            )
            raise ValueError(msg)
    if hasattr(type(transactions), "native"):  # rows kept in polars, DuckDB, Spark...
        native = cast("NativeTransactions", transactions)
        frame, stamp, missing = _native_pairs(native, column, as_of, after, basket)
    else:
        frame, stamp, missing = _pandas_pairs(transactions, column, as_of, after, basket)
    return _coded(frame, stamp, missing, basket)


def _pandas_pairs(
    transactions: Transactions,
    column: str,
    as_of: Any,
    after: pd.Timestamp | None,
    basket: BasketKind,
) -> tuple[pd.DataFrame, pd.Timestamp, int]:
    data = transactions.data
    times = data["timestamp"]
    if len(data) == 0:
        msg = "The transactions hold no line: there is nothing to learn items from."
        raise ValueError(msg)
    stamp = times.max() if as_of is None else as_utc_timestamp(as_of)
    if (times <= stamp).sum() == 0:
        raise ValueError(nothing_by_as_of(stamp, times.min()))
    keep = (~data["is_return"].to_numpy(dtype=bool)) & (times <= stamp).to_numpy()
    if after is not None:
        keep &= (times > after).to_numpy()
    values = data[column]
    present = values.notna().to_numpy()
    missing = int((keep & ~present).sum())
    keep &= present
    # Distinct pairs on integer codes first: only they are turned into text.
    customer_codes, customer_labels = _codes(data["customer_id"], keep)
    item_codes, item_labels = _codes(values, keep)
    width = max(len(item_labels), 1)
    out: dict[str, np.ndarray] = {}
    if basket == "order":
        # The contract's order key numbers (customer, order) pairs: it fixes the customer.
        order = data["order_key"].to_numpy()[keep].astype(np.int64)
        pairs, first = distinct(order * width + item_codes)
        out["order"] = (pairs // width).astype(str)
        customer = customer_codes[first]
        item = pairs % width
    else:
        pairs, _ = distinct(customer_codes * width + item_codes)
        customer, item = pairs // width, pairs % width
    out["customer_id"] = np.asarray(customer_labels, dtype=object)[customer]
    out["item"] = np.asarray(item_labels, dtype=object)[item]
    return pd.DataFrame(out), stamp, missing


def _codes(values: pd.Series, keep: np.ndarray) -> tuple[np.ndarray, Any]:
    """Integer codes (int64) of the kept values and their labels."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        # The contract's categorical columns: their codes, without hashing the text.
        return values.cat.codes.to_numpy()[keep].astype(np.int64), values.cat.categories
    codes, labels = pd.factorize(values.to_numpy()[keep])
    return codes.astype(np.int64), labels


def _native_pairs(
    transactions: NativeTransactions,
    column: str,
    as_of: Any,
    after: pd.Timestamp | None,
    basket: BasketKind,
) -> tuple[pd.DataFrame, pd.Timestamp, int]:
    import narwhals as nw

    from segmentkit._frame._detect import collect
    from segmentkit._frame._time import DAY_US, EPOCH_US
    from segmentkit.features._native import _lines_inside

    stamp, n_in, first_us = _lines_inside(transactions, as_of)
    if n_in == 0:
        earliest = pd.Timestamp(first_us, unit="us", tz="UTC")
        raise ValueError(nothing_by_as_of(stamp, earliest))
    inside = (~nw.col("is_return")) & (nw.col(EPOCH_US) <= stamp.value // 1000)
    if after is not None:
        inside = inside & (nw.col(EPOCH_US) > after.value // 1000)
    frame = transactions._frame.filter(inside)
    missing = collect(frame.select(nw.col(column).is_null().cast(nw.Int64).sum().alias("n")))
    keys: list[Any] = [nw.col("customer_id").cast(nw.String)]
    if basket == "order":
        if "order_id" in transactions.columns:
            order = nw.col("order_id").cast(nw.String)
        elif transactions.orders_from == "day":
            order = (nw.col(EPOCH_US) // DAY_US).cast(nw.String)
        else:
            order = nw.col(EPOCH_US).cast(nw.String)
        keys.append(order.alias("order"))
    pairs = (
        frame.filter(~nw.col(column).is_null())
        .select(*keys, nw.col(column).cast(nw.String).alias("item"))
        .unique()
    )
    local = collect(pairs).to_pandas()
    n_missing = missing.item(0, 0)
    return local, stamp, int(n_missing or 0)


def _coded(frame: pd.DataFrame, stamp: pd.Timestamp, missing: int, basket: BasketKind) -> Baskets:
    customer_codes, customers = pd.factorize(frame["customer_id"].astype(str), sort=True)
    item_codes, items = pd.factorize(frame["item"].astype(str), sort=True)
    if basket == "order":
        # An order id may repeat across customers: a basket is the (customer, order) pair.
        order_codes, _ = pd.factorize(frame["order"].astype(str), sort=True)
        width = int(order_codes.max()) + 1 if len(order_codes) else 1
        key = customer_codes.astype(np.int64) * width + order_codes
        basket_codes, basket_keys = pd.factorize(key, sort=True)
        basket_ids = pd.Index(basket_keys.astype(str))
    else:
        basket_codes, basket_ids = customer_codes, pd.Index(customers)
    width = max(len(items), 1)
    pairs, first = distinct(basket_codes.astype(np.int64) * width + item_codes)
    return Baskets(
        basket=pairs // width,
        item=pairs % width,
        customer=customer_codes.astype(np.int64)[first],
        basket_ids=basket_ids,
        items=pd.Index(items, dtype=object),
        customers=pd.Index(customers, dtype=object),
        as_of=stamp,
        lines_without_item=missing,
    )
