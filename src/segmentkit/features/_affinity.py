"""The affinity table: what each customer buys and browses, per product attribute value.

One row per (customer, attribute, value), e.g. (``'c1'``, ``'category'``, ``'Tents'``),
with spend, shares, items, orders, first and last purchase and, with events, views,
carts and abandoned carts. Rules read it through the interest functions of the rule
language (``share("category", "Tents") >= 0.5``, ``bought("brand", "Acme",
within="90d")``), so any value can be tested without declaring a feature for it.

Pandas tables are grouped here with whole-array pandas/numpy operations; tables kept in
polars, DuckDB, Spark, Dask or pyarrow are grouped in their own engine through narwhals
and only the (customer, value) pairs are collected. Abandoned carts come from the visits
the abandoned-cart features use (``_numpy._visits`` and ``_native_browsing``): the same
sessions, the same rule for an abandoned visit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from segmentkit.contracts._events import Events
from segmentkit.contracts._schema import category_codes, to_ns
from segmentkit.contracts._transactions import Transactions
from segmentkit.errors import InvalidParameterError
from segmentkit.features._base import (
    checked_params,
    nothing_by_as_of,
)

if TYPE_CHECKING:
    from segmentkit.contracts._native_tables import NativeEvents, NativeTransactions

__all__ = ["AFFINITY_COLUMNS", "affinity", "default_attributes"]

#: Attributes read by default, in order, when the tables have them.
_BUILT_IN = ("category", "brand")
#: Columns that describe a line or an event, never a product: not attributes.
_NOT_ATTRIBUTES = frozenset(
    {
        "customer_id",
        "timestamp",
        "amount",
        "quantity",
        "unit_price",
        "order_id",
        "discount",
        "promo_code",
        "currency",
        "channel",
        "is_return",
        "order_key",
        "event_type",
        "session_id",
        "duration_s",
    }
)
_PURCHASES = [
    "spend",
    "spend_share",
    "items",
    "item_share",
    "orders",
    "first_bought",
    "last_bought",
]
_BROWSING = ["views", "carts", "last_viewed", "last_carted", "abandoned_carts", "last_abandoned"]
#: Columns of the table, in order (the browsing ones only with events).
AFFINITY_COLUMNS = ("customer_id", "attribute", "value", *_PURCHASES, *_BROWSING)
_COUNTS = ("orders", "views", "carts", "abandoned_carts")
_TIMES = ("first_bought", "last_bought", "last_viewed", "last_carted", "last_abandoned")
_NAT = np.iinfo(np.int64).min


def default_attributes(transactions: Any, events: Any = None) -> list[str]:
    """The product attributes of the tables, in order: category, brand, then mapped ones.

    Parameters
    ----------
    transactions : Transactions
        Validated order lines (pandas or another engine).
    events : Events, optional
        Validated browsing events.

    Returns
    -------
    list of str
        ``transactions.product_attributes`` (or the present built-in ones), then any
        of the events' not already listed.
    """
    names: list[str] = []
    for table in (transactions, events):
        if table is None:
            continue
        declared = getattr(table, "product_attributes", None)
        if declared is None:
            columns = _columns(table)
            declared = [name for name in _BUILT_IN if name in columns]
        names += [name for name in declared if name not in names]
    return names


def affinity(
    transactions: Transactions | NativeTransactions,
    events: Events | NativeEvents | None = None,
    *,
    attributes: Sequence[str] | None = None,
    as_of: Any = None,
    abandon_hours: float = 24.0,
    session_gap_minutes: float = 30.0,
) -> pd.DataFrame:
    """What each customer bought and browsed, per value of each product attribute.

    One row per customer, attribute and value they bought or (with events) viewed or
    put in a cart, from rows on or before ``as_of``. Purchases are the purchase lines,
    gross: returns and cancellations neither add nor subtract (a customer who returned
    a tent still bought one). Shares are within one attribute: a customer's
    ``spend_share`` of ``('category', 'Tents')`` is their spend on tents over their
    spend on lines whose category is known.

    Parameters
    ----------
    transactions : Transactions
        Validated order lines, in pandas or kept in polars, pyarrow, DuckDB, Spark or
        Dask (grouped there; only the customer-value pairs are collected).
    events : Events, optional
        Validated browsing events (of the same engine); adds the browsing columns.
    attributes : sequence of str, optional
        Product attribute columns to read. Default: those of the tables, in order
        (``category``, ``brand``, then attributes mapped at validation); any column
        naming a product (``product_id`` included) may be listed.
    as_of : str or datetime-like, optional
        End of observation (inclusive); defaults to the last transaction, as in
        :func:`extract_features`.
    abandon_hours : float, default=24.0
        A visit whose last add-to-cart saw no purchase within this many hours is an
        abandoned cart (as in :func:`extract_features`).
    session_gap_minutes : float, default=30.0
        Without a ``session_id``, a pause longer than this starts a new visit.

    Returns
    -------
    pandas.DataFrame
        Sorted by customer, attribute (in the order above) and value, with columns:

        - ``customer_id``, ``attribute``, ``value`` (text);
        - ``spend`` (sum of the lines' amounts), ``spend_share`` (0 to 1; 0 when the
          customer spent nothing on lines with the attribute known), ``items``
          (quantities, else lines) and ``item_share``, ``orders`` (distinct orders),
          ``first_bought`` and ``last_bought`` (UTC; missing if never bought);
        - with events: ``views``, ``carts`` (add-to-carts), ``last_viewed``,
          ``last_carted``, ``abandoned_carts`` (abandoned visits holding an add-to-cart
          of the value) and ``last_abandoned`` (the latest such add-to-cart).

        ``attrs['attributes']`` lists the attributes read, ``attrs['as_of']`` the date.

    Raises
    ------
    ValueError
        If an attribute is not a column of the tables (the message lists those that
        are), no line is on or before ``as_of``, or a parameter is out of range.

    See Also
    --------
    CustomerFeatures.affinity : The same table for a set of features.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> table = sk.affinity(tx, as_of="2017-12-01")
    >>> table.columns.tolist()  # doctest: +NORMALIZE_WHITESPACE
    ['customer_id', 'attribute', 'value', 'spend', 'spend_share', 'items',
     'item_share', 'orders', 'first_bought', 'last_bought']
    >>> shares = table.groupby(["customer_id", "attribute"])["spend_share"].sum()
    >>> bool(((shares - 1).abs() < 1e-9).mean() > 0.99)  # 0 for customers who spent 0
    True
    """
    checked_params((1,), abandon_hours, session_gap_minutes, "pandas")
    native = hasattr(type(transactions), "native")
    _check_events(transactions, events, native)
    names = _attributes(transactions, events, attributes)
    abandon = int(abandon_hours * 3600 * 10**9)
    gap = int(session_gap_minutes * 60 * 10**9)
    if native:
        # Only NativeTransactions has `native`; the type is not imported to test it.
        native_tx = cast("NativeTransactions", transactions)
        native_ev = cast("NativeEvents | None", events)
        parts, stamp = _native_parts(native_tx, native_ev, names, as_of, abandon, gap)
    else:
        parts, stamp = _pandas_parts(transactions, events, names, as_of, abandon, gap)
    table = _assemble(parts, names, with_events=events is not None)
    table.attrs["attributes"] = list(names)
    table.attrs["as_of"] = stamp
    return table


# --- inputs ------------------------------------------------------------------------------


def _columns(table: Any) -> list[str]:
    if hasattr(type(table), "native"):
        return list(table.columns)
    return list(table.data.columns)


def _check_events(transactions: Any, events: Any, native: bool) -> None:
    if events is None:
        return
    if native:
        from segmentkit.contracts._native_tables import NativeEvents

        if not isinstance(events, NativeEvents) or events.backend != transactions.backend:
            msg = (
                f"events= must be validated on the same engine as the transactions "
                f"({transactions.backend}): pass Events.from_frame(<{transactions.backend} "
                "frame>, ...)."
            )
            raise InvalidParameterError(msg)
    elif not isinstance(events, Events) or hasattr(type(events), "native"):
        msg = (
            "events= must be Events validated from a pandas frame, like the transactions: "
            f"got {type(events).__name__}."
        )
        raise InvalidParameterError(msg)


def _attributes(transactions: Any, events: Any, attributes: Sequence[str] | None) -> list[str]:
    if attributes is None:
        return default_attributes(transactions, events)
    if isinstance(attributes, str):
        attributes = [attributes]
    names = list(dict.fromkeys(str(a) for a in attributes))
    present = set(_columns(transactions)) | (
        set(_columns(events)) if events is not None else set()
    )
    usable = [c for c in present if c not in _NOT_ATTRIBUTES]
    unknown = [name for name in names if name not in usable]
    if unknown:
        available = default_attributes(transactions, events)
        available += sorted(c for c in usable if c not in available)
        msg = (
            f"The attributes {unknown} are not product columns of the transactions or "
            f"events; available: {available}. Map other product columns when validating "
            "(Transactions.from_frame(..., category=..., brand=...))."
        )
        raise ValueError(msg)
    return names


# --- pandas ------------------------------------------------------------------------------


def _text_ids(categories: pd.Index) -> pd.Index:
    return pd.Index(np.asarray(categories, dtype=object).astype(str), dtype=object)


def _value_codes(column: pd.Series, values: pd.Index) -> np.ndarray:
    """Codes of ``column``'s values in ``values`` (text), -1 where missing."""
    if not isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype("category")
    lookup = values.get_indexer(_text_ids(column.cat.categories))
    codes = category_codes(column)
    return np.where(codes >= 0, lookup[codes], -1)


@dataclass
class _Coded:
    """Per-pair frames of every attribute, keyed by integer codes until the table is
    assembled: ``c`` into ``ids`` (customer ids), ``v`` into ``values[attribute]``.

    Times are naive ``datetime64[ns]`` (UTC), NaT where missing.
    """

    ids: pd.Index
    values: dict[str, pd.Index] = field(default_factory=dict)
    frames: dict[str, list[pd.DataFrame]] = field(default_factory=dict)
    #: Whether ``ids`` and each ``values`` index are in text order already.
    in_text_order: bool = False


def _pandas_parts(
    transactions: Transactions,
    events: Events | None,
    names: list[str],
    as_of: Any,
    abandon_ns: int,
    gap_ns: int,
) -> tuple[_Coded, pd.Timestamp]:
    from segmentkit.features._numpy import (
        _THREADED_LINES,
        _Events,
        _Lines,
        _text_order,
        lines_by_as_of,
    )

    tx = transactions.data
    stamp, tx_ns, inside = lines_by_as_of(tx, as_of)
    as_of_ns = stamp.value
    ev = events.data if events is not None else None
    id_tables = [_text_ids(tx["customer_id"].cat.categories)]
    if ev is not None:
        id_tables.append(_text_ids(ev["customer_id"].cat.categories))
    ids = pd.Index(pd.unique(np.concatenate([np.asarray(t) for t in id_tables])), dtype=object)
    # Ids and values in text order: the pairs then come out in the table's order.
    ids = ids.take(_text_order(ids))
    tx_codes = ids.get_indexer(id_tables[0])[category_codes(tx["customer_id"])]

    lines = tx[inside]
    lines_in = _Lines(lines, tx_codes[inside], tx_ns[inside], len(ids), as_of_ns)
    sale = lines_in.sale
    if "quantity" in lines:
        items = np.nan_to_num(lines["quantity"].to_numpy(dtype=float, na_value=np.nan))
    else:
        items = np.ones(len(lines))

    browsing: dict[str, Any] = {}
    if ev is not None:
        ev_ns = to_ns(ev["timestamp"])
        ev_in = ev_ns <= as_of_ns
        ev_codes = ids.get_indexer(id_tables[1])[category_codes(ev["customer_id"])]
        events_in = _Events(ev[ev_in], ev_codes[ev_in], ev_ns[ev_in], len(ids), as_of_ns, lines_in)
        browsing = _pandas_browsing(events_in, lines_in, ev_in, abandon_ns, gap_ns)

    coded = _Coded(ids, in_text_order=True)
    for name in names:
        values = _values_of(name, lines, ev)
        coded.values[name] = values.take(_text_order(values))

    # The pandas columns are read here; each attribute's pairs are then sorts and
    # gathers of numpy arrays, during which numpy releases the GIL: two at a time.
    bought = [name for name in names if name in lines]
    codes = {
        name: np.where(sale, _value_codes(lines[name], coded.values[name]), -1) for name in bought
    }
    for shared in ("customer_in_order", "amount", "order_key", "orders_are_runs"):
        getattr(lines_in, shared)  # built once, before the threads

    def pairs_of(name: str) -> pd.DataFrame:
        return _purchase_pairs(lines_in, codes[name], len(coded.values[name]), items)

    workers = min(2, os.cpu_count() or 1) if len(lines) >= _THREADED_LINES else 1
    with ThreadPoolExecutor(max_workers=workers) as pool:
        purchases = dict(zip(bought, pool.map(pairs_of, bought), strict=True))
    for name in names:
        frames = [purchases[name]] if name in purchases else []
        if ev is not None and name in ev:
            frames += _browse_pairs(
                _value_codes(ev[name][browsing["inside"]], coded.values[name]), browsing
            )
        coded.frames[name] = frames
    return coded, stamp


def _values_of(name: str, lines: pd.DataFrame, ev: pd.DataFrame | None) -> pd.Index:
    """Every value of the attribute, as text, in one index shared by lines and events."""
    found = []
    for table in (lines, ev):
        if table is not None and name in table:
            column = table[name]
            if not isinstance(column.dtype, pd.CategoricalDtype):
                column = column.astype("category")
            found.append(np.asarray(_text_ids(column.cat.categories)))
    return pd.Index(pd.unique(np.concatenate(found)) if found else [], dtype=object)


def _purchase_pairs(lines: Any, codes: np.ndarray, width: int, items: np.ndarray) -> pd.DataFrame:
    """Per (customer code ``c``, value code ``v``) of the lines with a code: the purchase
    columns (``codes`` is -1 on returns and lines without a value)."""
    from segmentkit.features._pairs import PairTable

    table = PairTable.build(lines.by_customer, lines.customer_in_order, codes, width)
    if len(table) == 0:
        return pd.DataFrame({"c": np.zeros(0, np.intp), "v": np.zeros(0, np.int64)})
    ns = lines.ns[table.lines]
    return pd.DataFrame(
        {
            "c": table.customer,
            "v": table.value,
            "spend": table.sum(lines.amount, None),
            "items": table.sum(items, None),
            "first_bought": _naive(np.minimum.reduceat(ns, table.starts)),
            "last_bought": _naive(np.maximum.reduceat(ns, table.starts)),
            # An order counts once per value, however many of its lines hold it.
            "orders": table.distinct(lines.order_key, None, adjacent=lines.orders_are_runs),
        },
        copy=False,
    )


def _naive(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds as naive datetime64 (the int64 minimum is NaT)."""
    return np.asarray(ns, dtype=np.int64).view("datetime64[ns]")


def _pandas_browsing(
    events: Any, lines: Any, ev_in: np.ndarray, abandon_ns: int, gap_ns: int
) -> dict[str, Any]:
    """Views, carts and the carts of abandoned visits, per event on or before as_of."""
    from segmentkit.features._numpy import _visits

    visits = _visits(events, lines, abandon_ns=abandon_ns, gap_ns=gap_ns)
    is_cart = events.kind == "add_to_cart"
    assert visits.event_session is not None
    abandoned_visit = visits.columns["abandoned"][visits.event_session]
    return {
        "inside": ev_in,
        "codes": events.codes,
        "ns": events.ns,
        "view": events.kind == "view",
        "cart": is_cart,
        "abandoned": is_cart & abandoned_visit,
        "session": visits.event_session,
    }


def _browse_pairs(value: np.ndarray, browsing: dict[str, Any]) -> list[pd.DataFrame]:
    known = value >= 0
    view, cart = browsing["view"] & known, browsing["cart"] & known
    rows = pd.DataFrame(
        {
            "c": browsing["codes"],
            "v": value,
            "views": view.astype(np.int64),
            "carts": cart.astype(np.int64),
            "viewed_ns": _naive(np.where(view, browsing["ns"], _NAT)),
            "carted_ns": _naive(np.where(cart, browsing["ns"], _NAT)),
        }
    )[view | cart]
    pairs = rows.groupby(["c", "v"], sort=False).agg(
        views=("views", "sum"),
        carts=("carts", "sum"),
        last_viewed=("viewed_ns", "max"),
        last_carted=("carted_ns", "max"),
    )
    left = browsing["abandoned"] & known
    carts = pd.DataFrame(
        {"c": browsing["codes"][left], "v": value[left], "s": browsing["session"][left]}
    )
    carts["ns"] = _naive(browsing["ns"][left])
    abandoned = carts.groupby(["c", "v"], sort=False).agg(
        abandoned_carts=("s", "nunique"), last_abandoned=("ns", "max")
    )
    return [pairs.reset_index(), abandoned.reset_index()]


def _utc(ns: np.ndarray) -> Any:
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC").array


# --- other engines -----------------------------------------------------------------------


def _native_parts(
    transactions: NativeTransactions,
    events: NativeEvents | None,
    names: list[str],
    as_of: Any,
    abandon_ns: int,
    gap_ns: int,
) -> tuple[_Coded, pd.Timestamp]:
    import narwhals as nw

    from segmentkit._frame._time import DAY_US, EPOCH_US
    from segmentkit.features._native import _lines_inside
    from segmentkit.features._native_browsing import SESSION, visits_and_events

    stamp, n_in, first_us = _lines_inside(transactions, as_of)
    if n_in == 0:
        raise ValueError(nothing_by_as_of(stamp, pd.Timestamp(first_us, unit="us", tz="UTC")))
    as_of_us = stamp.value // 1000
    inside = nw.col(EPOCH_US) <= as_of_us
    lines = transactions._frame.filter(inside)
    sales = lines.filter(~nw.col("is_return"))
    line_names = lines.collect_schema().names()
    # Orders as extract_features counts them: the order id, else the policy's key.
    order: nw.Expr | None = None
    if "order_id" in line_names:
        order = nw.col("order_id")
    elif transactions.orders_from == "day":
        order = nw.col(EPOCH_US) // DAY_US
    elif transactions.orders_from != "row":
        order = nw.col(EPOCH_US)
    items = (
        nw.col("quantity").cast(nw.Float64).fill_null(0.0) if "quantity" in line_names else None
    )

    tagged = abandoned = None
    event_names: list[str] = []
    if events is not None:
        browse = events._frame.filter(inside)
        event_names = browse.collect_schema().names()
        visits, tagged = visits_and_events(
            browse,
            sales.select("customer_id", EPOCH_US),
            transactions._backend,
            as_of_us,
            abandon_us=abandon_ns / 1000,
            gap_us=gap_ns / 1000,
        )
        abandoned = visits.filter(nw.col("abandoned")).select("customer_id", SESSION)

    parts: dict[str, list[pd.DataFrame]] = {}
    for name in names:
        value = nw.col(name).cast(nw.String).alias("_v")
        frames = []
        if name in line_names:
            frames.append(_collected(_native_purchases(sales, name, value, order, items)))
        if tagged is not None and abandoned is not None and name in event_names:
            frames += [_collected(f) for f in _native_browsing(tagged, abandoned, name, value)]
        parts[name] = frames
    return _coded(parts), stamp


def _coded(parts: dict[str, list[pd.DataFrame]]) -> _Coded:
    """Collected per-pair frames (text ``customer_id`` and ``value``) keyed by codes."""
    texts = [f["customer_id"].to_numpy() for frames in parts.values() for f in frames]
    ids = pd.Index(pd.unique(np.concatenate(texts)) if texts else [], dtype=object)
    coded = _Coded(ids)
    for name, frames in parts.items():
        found = [f["value"].to_numpy() for f in frames]
        values = pd.Index(pd.unique(np.concatenate(found)) if found else [], dtype=object)
        coded.values[name] = values
        coded.frames[name] = [
            frame.drop(columns=["customer_id", "value"]).assign(
                c=ids.get_indexer(frame["customer_id"]), v=values.get_indexer(frame["value"])
            )
            for frame in frames
        ]
    return coded


def _native_purchases(
    sales: Any, name: str, value: Any, order: Any | None, items: Any | None
) -> Any:
    """Per (customer, value ``_v``): the purchase columns, times in epoch microseconds."""
    import narwhals as nw

    from segmentkit._frame._time import EPOCH_US

    bought = sales.filter(~nw.col(name).is_null()).with_columns(
        value,
        _spend=nw.col("amount").cast(nw.Float64).fill_null(0.0),
        _items=items if items is not None else nw.lit(1.0, dtype=nw.Float64),
    )
    pairs = bought.group_by("customer_id", "_v").agg(
        nw.col("_spend").sum().alias("spend"),
        nw.col("_items").sum().alias("items"),
        nw.col(EPOCH_US).min().alias("first_bought"),
        nw.col(EPOCH_US).max().alias("last_bought"),
        *([] if order is not None else [nw.len().alias("orders")]),
    )
    if order is None:  # one order per line
        return pairs
    orders = (
        bought.select("customer_id", "_v", order.alias("_order"))
        .unique()
        .group_by("customer_id", "_v")
        .agg(nw.len().alias("orders"))
    )
    return pairs.join(orders, on=["customer_id", "_v"], how="left")


def _native_browsing(tagged: Any, abandoned: Any, name: str, value: Any) -> list[Any]:
    """Per (customer, value): views and carts, then the abandoned visits' carts."""
    import narwhals as nw

    from segmentkit._frame._time import EPOCH_US
    from segmentkit.features._native_browsing import SESSION

    is_view = (nw.col("event_type") == "view").fill_null(False)
    is_cart = (nw.col("event_type") == "add_to_cart").fill_null(False)
    # Row-wise columns first: Dask and pyarrow group-bys take only plain columns.
    seen = tagged.filter(~nw.col(name).is_null() & (is_view | is_cart)).with_columns(
        value,
        _view=is_view.cast(nw.Int64),
        _cart=is_cart.cast(nw.Int64),
        _view_us=nw.when(is_view).then(nw.col(EPOCH_US)),
        _cart_us=nw.when(is_cart).then(nw.col(EPOCH_US)),
    )
    viewed = seen.group_by("customer_id", "_v").agg(
        nw.col("_view").sum().alias("views"),
        nw.col("_cart").sum().alias("carts"),
        nw.col("_view_us").max().alias("last_viewed"),
        nw.col("_cart_us").max().alias("last_carted"),
    )
    left = (
        seen.filter(nw.col("_cart") == 1)
        .select("customer_id", SESSION, "_v", EPOCH_US)
        .join(abandoned, on=["customer_id", SESSION], how="inner")
    )
    last = left.group_by("customer_id", "_v").agg(nw.col(EPOCH_US).max().alias("last_abandoned"))
    counted = (
        left.select("customer_id", "_v", SESSION)
        .unique()
        .group_by("customer_id", "_v")
        .agg(nw.len().alias("abandoned_carts"))
    )
    return [viewed, last.join(counted, on=["customer_id", "_v"], how="left")]


def _collected(frame: Any) -> pd.DataFrame:
    """A per-pair frame of another engine in pandas: text keys, UTC times, int counts."""
    from segmentkit._frame._detect import collect

    data = collect(frame).to_pandas()
    out = pd.DataFrame(
        {
            "customer_id": data["customer_id"].astype(str).to_numpy(dtype=object),
            "value": data["_v"].astype(str).to_numpy(dtype=object),
        }
    )
    for column in data.columns:
        if column in ("customer_id", "_v"):
            continue
        values = pd.to_numeric(data[column])
        if column in _TIMES:
            micro = values.to_numpy(dtype=float, na_value=np.nan)
            missing = np.isnan(micro)
            ns = np.where(missing, 0, micro).astype(np.int64) * 1000
            out[column] = _naive(np.where(missing, _NAT, ns))
        elif column in _COUNTS:
            out[column] = values.fillna(0).to_numpy(dtype=np.int64)
        else:
            out[column] = values.to_numpy(dtype=float, na_value=np.nan)
    return out


# --- the table ---------------------------------------------------------------------------


def _assemble(coded: _Coded, names: list[str], *, with_events: bool) -> pd.DataFrame:
    """Pairs of every attribute joined, filled, shared out and sorted.

    Everything stays integer codes until the last step: joins on (customer, value)
    codes, order from the texts' ranks (one radix pass over the rows), and the text
    columns taken from the distinct texts, never formatted row by row.
    """
    columns = list(AFFINITY_COLUMNS if with_events else AFFINITY_COLUMNS[:10])
    measures = columns[3:]
    id_rank = np.arange(len(coded.ids)) if coded.in_text_order else _rank(coded.ids)
    kept: dict[str, list[np.ndarray]] = {name: [] for name in ["c", "a", "v", *measures]}
    value_texts: list[np.ndarray] = []
    offset = 0
    for position, name in enumerate(names):
        merged: pd.DataFrame | None = None
        for frame in coded.frames.get(name, []):
            merged = frame if merged is None else merged.merge(frame, on=["c", "v"], how="outer")
        values = coded.values.get(name, pd.Index([], dtype=object))
        if merged is None or len(merged) == 0:
            continue
        customer = merged["c"].to_numpy(dtype=np.intp)
        value = merged["v"].to_numpy(dtype=np.int64)
        # Customers, then values, in text order; attributes follow by concatenation.
        width = max(len(values), 1)
        value_rank = np.arange(len(values)) if coded.in_text_order else _rank(values)
        key = id_rank[customer] * width + value_rank[value]
        if len(key) > 1 and bool((key[1:] < key[:-1]).any()):  # joins reorder
            order = np.argsort(key, kind="stable")
            customer, value = customer[order], value[order]
        else:
            order = None
        filled = {measure: _filled(merged, measure, order) for measure in measures}
        for amount, share in (("spend", "spend_share"), ("items", "item_share")):
            total = np.bincount(customer, weights=filled[amount], minlength=len(coded.ids))
            total = total[customer]
            with np.errstate(invalid="ignore", divide="ignore"):
                filled[share] = np.where(total > 0, filled[amount] / total, 0.0)
        kept["c"].append(customer)
        kept["a"].append(np.full(len(customer), position, dtype=np.intp))
        kept["v"].append(value + offset)
        for measure in measures:
            kept[measure].append(filled[measure])
        value_texts.append(np.asarray(values, dtype=object))
        offset += len(values)
    if not kept["c"]:
        return _empty(columns)
    customer = np.concatenate(kept["c"])
    # Each attribute's rows are in customer order: timsort merges the sorted runs.
    rows = np.argsort(id_rank[customer], kind="stable")
    table: dict[str, Any] = {
        "customer_id": _texts(np.asarray(coded.ids, dtype=object), customer[rows]),
        "attribute": _texts(np.asarray(names, dtype=object), np.concatenate(kept["a"])[rows]),
        "value": _texts(np.concatenate(value_texts), np.concatenate(kept["v"])[rows]),
    }
    for measure in measures:
        values = np.concatenate(kept[measure])[rows]
        table[measure] = _utc(values.view(np.int64)) if measure in _TIMES else values
    # copy=False: the columns are ours; pandas would otherwise stack the floats into
    # one block, a second copy of the table.
    return pd.DataFrame(table, columns=columns, copy=False)


def _filled(merged: pd.DataFrame, name: str, order: np.ndarray | None) -> np.ndarray:
    """A measure of the joined pairs, in ``order``, with its neutral value where the pair
    has none (no purchase: 0 spend, 0 orders, NaT)."""
    n = len(merged)
    if name in ("spend_share", "item_share"):
        return np.zeros(0)  # computed from the amounts afterwards
    if name in _TIMES:
        if name not in merged:
            return np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        values = merged[name].to_numpy(dtype="datetime64[ns]")
    elif name in _COUNTS:
        if name not in merged:
            return np.zeros(n, dtype=np.int64)
        values = merged[name].fillna(0).to_numpy(dtype=np.int64)
    else:
        if name not in merged:
            return np.zeros(n)
        values = merged[name].fillna(0.0).to_numpy(dtype=float)
    return values if order is None else values[order]


def _rank(texts: pd.Index) -> np.ndarray:
    """Each text's position in code point order."""
    from segmentkit.features._numpy import _text_order

    order = _text_order(texts)
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    return rank


def _texts(distinct: np.ndarray, codes: np.ndarray) -> Any:
    """The texts of ``codes``, as pandas' text dtype, taken from the distinct texts."""
    # astype(str) gives the text dtype of the pandas in use (Arrow-backed from pandas 3).
    return pd.Series(distinct, dtype=object).astype(str).array.take(codes)


def _empty(columns: list[str]) -> pd.DataFrame:
    empty: dict[str, Any] = {}
    for name in columns:
        if name in _TIMES:
            empty[name] = pd.Series([], dtype="datetime64[ns, UTC]")
        elif name in _COUNTS:
            empty[name] = pd.Series([], dtype=np.int64)
        elif name in ("customer_id", "attribute", "value"):
            empty[name] = pd.Series([], dtype=object).astype(str)
        else:
            empty[name] = pd.Series([], dtype=float)
    return pd.DataFrame(empty)
