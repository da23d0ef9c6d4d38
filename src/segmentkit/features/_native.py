"""Purchase features with narwhals group-bys, computed in the caller's engine.

The definitions are those of :mod:`segmentkit.features._extract` (see the feature catalog);
only the way of computing differs: joins of a few per-customer aggregations instead
of ``np.bincount`` over codes. Every aggregation is a plain column reduction, which
every engine (Dask included) runs inside a group-by.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from segmentkit._frame._detect import collect, to_native
from segmentkit._frame._time import DAY_US, EPOCH_US
from segmentkit.contracts._native_tables import NativeCustomers, NativeEvents, NativeTransactions
from segmentkit.errors import InvalidParameterError
from segmentkit.features._catalog import definitions_by_name
from segmentkit.features._native_browsing import browsing_columns, browsing_features
from segmentkit.features._native_profile import profile_features

__all__ = ["extract_native_features"]

_ID = "customer_id"
_INTEGER = ("frequency", "n_products", "n_categories")
# Browsing features, named by window: counts are int64, times float64 (as in pandas).
_COUNTS = ("views_", "add_to_carts_", "sessions_", "abandoned_carts_")
_TIMES = ("time_on_site_", "days_since_last_visit")
# Engines whose frames keep a row order; elsewhere a sort costs a shuffle and the order
# is not kept by later steps anyway.
_SORTED = ("polars", "pyarrow")
_NUMERIC = frozenset(
    {
        "recency_days",
        "monetary",
        "gross_spend",
        "avg_order_value",
        "tenure_days",
        "mean_days_between_orders",
        "return_rate",
        "discount_share",
        "top_category_share",
        "avg_basket_size",
        "age",
        "days_since_signup",
    }
)


def extract_native_features(
    transactions: NativeTransactions,
    events: Any = None,
    customers: Any = None,
    *,
    as_of: Any = None,
    windows: Sequence[int] = (7, 30, 90),
    abandon_hours: float = 24.0,
    session_gap_minutes: float = 30.0,
    output: str = "native",
) -> Any:
    """Features of native transactions, as a frame of the caller's engine or pandas.

    Parameters
    ----------
    transactions : NativeTransactions
        Transactions validated on polars, pyarrow, DuckDB, PySpark or Dask.
    events : NativeEvents, optional
        Browsing events validated on the same engine; adds the browsing features,
        and customers known only by their events (on or before ``as_of``).
    customers : NativeCustomers, optional
        Profiles validated on the same engine; adds the profile features, and
        customers known only by a profile (signed up by ``as_of``).
    as_of : str or datetime-like, optional
        End of observation (inclusive); defaults to the last transaction.
    windows : sequence of int, default=(7, 30, 90)
        Look-back windows in days for the browsing features.
    abandon_hours : float, default=24.0
        A visit with an add-to-cart and no purchase within this many hours counts as
        an abandoned cart, once that window has passed at ``as_of``.
    session_gap_minutes : float, default=30.0
        Without a ``session_id``, a pause longer than this starts a new visit.
    output : {'native', 'pandas'}, default='native'
        ``'native'``: a frame of the caller's engine (eager for eager inputs, lazy
        for lazy ones) with a ``customer_id`` column and the feature columns (sorted
        by id on polars and pyarrow; DuckDB, Spark and Dask rows have no set order).
        On DuckDB the relation reads a temporary table of the same connection, computed
        here once, so that fitting and predicting do not rerun the group-bys.
        ``'pandas'``: :class:`~segmentkit.CustomerFeatures`, collected and sorted.

    Returns
    -------
    object
        The native frame, or ``CustomerFeatures``.
    """
    from segmentkit.features._extract import (
        CustomerFeatures,
        checked_browsing_params,
        nothing_by_as_of,
    )

    if output not in {"native", "pandas"}:
        msg = f"The 'output' parameter must be one of ['native', 'pandas']. Got {output!r}."
        raise InvalidParameterError(msg)
    windows = checked_browsing_params(windows, abandon_hours, session_gap_minutes)
    if events is not None and (
        not isinstance(events, NativeEvents) or events.backend != transactions.backend
    ):
        msg = (
            f"events= must be validated on the same engine as the transactions "
            f"({transactions.backend}): pass Events.from_frame(<{transactions.backend} "
            "frame>, ...)."
        )
        raise InvalidParameterError(msg)
    if customers is not None and (
        not isinstance(customers, NativeCustomers) or customers.backend != transactions.backend
    ):
        msg = (
            f"customers= must be validated on the same engine as the transactions "
            f"({transactions.backend}): pass Customers.from_frame(<{transactions.backend} "
            "frame>, ...)."
        )
        raise InvalidParameterError(msg)
    frame = transactions._frame
    stamp, n_in, first_us = _lines_inside(transactions, as_of)
    if n_in == 0:
        earliest = pd.Timestamp(first_us, unit="us", tz="UTC")
        raise ValueError(nothing_by_as_of(stamp, earliest))
    as_of_us = stamp.value // 1000
    inside = nw.col(EPOCH_US) <= as_of_us
    excluded = {"transactions_after_as_of": len(transactions) - n_in}
    table = _purchase_table(frame.filter(inside), transactions.orders_from)
    names = table.collect_schema().names()
    browsing_names: list[str] = []
    if events is not None:
        browsing = _browsing(
            transactions, events, as_of_us, windows, abandon_hours, session_gap_minutes, excluded
        )
        browsing_names = browsing_columns(windows)
        ids = nw.concat([table.select(_ID), browsing.select(_ID)], how="vertical").unique()
        table = ids.join(table, on=_ID, how="left").join(browsing, on=_ID, how="left")
    profile_names: list[str] = []
    if customers is not None:
        profiles, profile_names = profile_features(customers, stamp, excluded)
        # Everyone with a line or an eligible profile is a customer.
        ids = nw.concat([table.select(_ID), profiles.select(_ID)], how="vertical").unique()
        table = ids.join(table, on=_ID, how="left").join(profiles, on=_ID, how="left")
    features = table.select(
        *_finish(names, as_of_us), *_finish_browsing(browsing_names), *profile_names
    )
    if output == "native":
        if transactions.backend in _SORTED:
            features = features.sort(_ID)
        native = to_native(features, transactions._backend)
        if transactions.backend == "duckdb":
            native = _materialise_duckdb(native)
        return native
    # Sorted in pandas: the result is one row per customer, and a distributed sort would
    # cost an extra pass.
    pandas_frame = _to_pandas(collect(features)).sort_index()
    definitions = definitions_by_name(windows)
    return CustomerFeatures(pandas_frame, stamp, definitions, excluded)


def _lines_inside(transactions: NativeTransactions, as_of: Any) -> tuple[pd.Timestamp, int, int]:
    """``as_of`` as a timestamp, the lines on or before it, and the first line's time.

    On lazy engines every query reruns the validation, so the time range counted
    during validation answers whenever it can: the default ``as_of`` (the last line),
    and any ``as_of`` outside the range. Only a cut inside it needs a query.
    """
    from segmentkit.features._extract import NO_LINES_KEPT, _as_utc_timestamp

    if len(transactions) == 0:
        raise ValueError(NO_LINES_KEPT)
    known = transactions.time_range
    if as_of is None and known is not None:
        return pd.Timestamp(known[1], unit="us", tz="UTC"), len(transactions), known[0]
    if as_of is None:
        checked = collect(
            transactions._frame.select(
                nw.col(EPOCH_US).max().alias("last"),
                nw.col(EPOCH_US).count().alias("n_in"),
                nw.col(EPOCH_US).min().alias("first"),
            )
        ).rows(named=True)[0]
        # Every timed line is on or before the last one: the count is the lines inside.
        stamp = pd.Timestamp(int(checked["last"]), unit="us", tz="UTC")
        return stamp, int(checked["n_in"] or 0), int(checked["first"])
    stamp = _as_utc_timestamp(as_of)
    as_of_us = stamp.value // 1000
    if known is not None and as_of_us >= known[1]:
        return stamp, len(transactions), known[0]
    if known is not None and as_of_us < known[0]:
        return stamp, 0, known[0]
    checked = collect(
        transactions._frame.select(
            (nw.col(EPOCH_US) <= as_of_us).cast(nw.Int64).sum().alias("n_in"),
            nw.col(EPOCH_US).min().alias("first"),
        )
    ).rows(named=True)[0]
    return stamp, int(checked["n_in"] or 0), int(checked["first"])


def _materialise_duckdb(relation: Any) -> Any:
    """``relation`` computed once into a temporary table of its own connection.

    A DuckDB relation is a query, rerun from the transaction lines by every query that
    reads it: fitting a segmenter, then its predictions, would each redo the group-bys.
    The table holds one row per customer and never leaves DuckDB (nothing reaches
    Python); it lives as long as the connection, like any temporary table. Where a
    table cannot be created (e.g. a read-only database), the lazy relation is returned.
    """
    import uuid

    import duckdb

    table = f"__segmentkit_features_{uuid.uuid4().hex}"
    # The relation is reachable by name only inside these statements (a view alias).
    alias = f"__segmentkit_source_{uuid.uuid4().hex}"
    try:
        relation.query(alias, f'CREATE TEMPORARY TABLE "{table}" AS SELECT * FROM {alias}')
        return relation.query(alias, f'SELECT * FROM "{table}"')
    except duckdb.Error:
        return relation


def _browsing(
    transactions: NativeTransactions,
    events: NativeEvents,
    as_of_us: int,
    windows: tuple[int, ...],
    abandon_hours: float,
    session_gap_minutes: float,
    excluded: dict[str, int],
) -> nw.LazyFrame[Any]:
    """Per-customer browsing features; counts the events after ``as_of`` in ``excluded``."""
    inside = nw.col(EPOCH_US) <= as_of_us
    n_in = collect(events._frame.select(inside.cast(nw.Int64).sum())).item(0, 0)
    excluded["events_after_as_of"] = len(events) - int(n_in or 0)
    sales = transactions._frame.filter(inside & ~nw.col("is_return")).select(_ID, EPOCH_US)
    # The pandas path works in integer nanoseconds; the same thresholds in microseconds.
    abandon_us = int(abandon_hours * 3600 * 10**9) / 1000
    gap_us = int(session_gap_minutes * 60 * 10**9) / 1000
    return browsing_features(
        events._frame.filter(inside),
        sales,
        transactions._backend,
        as_of_us,
        windows=windows,
        abandon_us=abandon_us,
        gap_us=gap_us,
    )


def _finish_browsing(names: list[str]) -> list[nw.Expr]:
    # Customers without events: no visit (missing days), zero counts and times.
    exprs = []
    for name in names:
        if name == "days_since_last_visit":
            exprs.append(nw.col(name).cast(nw.Float64))
        elif name.startswith("time_on_site_"):
            exprs.append(nw.col(name).cast(nw.Float64).fill_null(0.0))
        else:
            exprs.append(nw.col(name).fill_null(0).cast(nw.Int64))
    return exprs


def _purchase_table(lines: nw.LazyFrame[Any], orders_from: str) -> Any:
    """Per-customer aggregates of the purchase lines (finished by :func:`_finish`)."""
    names = lines.collect_schema().names()
    sale = ~nw.col("is_return")
    zero = nw.lit(0.0)
    # Row-wise inputs first: group-bys then only sum, count, min and max columns.
    lines = lines.with_columns(
        _sale=sale,
        _gross=nw.when(sale).then(nw.col("amount")).otherwise(zero),
        _returned=nw.when(~sale).then(-nw.col("amount")).otherwise(zero),
        _sale_us=nw.when(sale).then(nw.col(EPOCH_US)),
        _sale_ts=nw.when(sale).then(nw.col("timestamp")),
    )
    aggregations = [
        nw.col("_gross").sum().alias("gross_spend"),
        nw.col("_returned").sum().alias("_returned"),
        nw.col("_sale_us").min().alias("_first_us"),
        nw.col("_sale_us").max().alias("_last_us"),
        nw.col("_sale_ts").min().alias("first_purchase"),
        nw.col("_sale_ts").max().alias("last_purchase"),
    ]
    if "discount" in names:
        lines = lines.with_columns(
            _discount=nw.when(sale).then(nw.col("discount").fill_null(0.0)).otherwise(zero)
        )
        aggregations.append(nw.col("_discount").sum().alias("_discount"))
    if "quantity" in names:
        lines = lines.with_columns(
            _units=nw.when(sale).then(nw.col("quantity").fill_null(0.0)).otherwise(zero)
        )
        aggregations.append(nw.col("_units").sum().alias("_units"))
    # Everyone with a line (purchase or return) on or before as_of is a customer.
    table = lines.group_by(_ID).agg(*aggregations)
    sales = lines.filter(nw.col("_sale"))
    table = table.join(_frequency(sales, names, orders_from), on=_ID, how="left")
    if "product_id" in names:
        products = (
            sales.filter(~nw.col("product_id").is_null())
            .select(_ID, "product_id")
            .unique()
            .group_by(_ID)
            .agg(nw.len().alias("n_products"))
        )
        table = table.join(products, on=_ID, how="left")
    if "category" in names:
        table = table.join(_categories(sales), on=_ID, how="left")
    return table


def _frequency(sales: nw.LazyFrame[Any], names: list[str], orders_from: str) -> Any:
    """Distinct orders with a purchase line, per customer."""
    if "order_id" in names:
        keyed = sales.select(_ID, "order_id")
    elif orders_from == "row":
        return sales.group_by(_ID).agg(nw.len().alias("frequency"))
    elif orders_from == "day":
        keyed = sales.select(_ID, (nw.col(EPOCH_US) // DAY_US).alias("_day"))
    else:
        keyed = sales.select(_ID, EPOCH_US)
    return keyed.unique().group_by(_ID).agg(nw.len().alias("frequency"))


def _categories(sales: nw.LazyFrame[Any]) -> Any:
    """Distinct categories, the top one by spend (ties: alphabetical) and its share."""
    pairs = (
        sales.filter(~nw.col("category").is_null())
        .group_by(_ID, "category")
        .agg(nw.col("amount").sum().alias("_spend"))
    )
    totals = pairs.group_by(_ID).agg(
        nw.len().alias("n_categories"),
        nw.col("_spend").sum().alias("_category_total"),
        nw.col("_spend").max().alias("_top_spend"),
    )
    # Parallel engines may sum one pair's floats in another order in each place `pairs`
    # is used, so "equal to the maximum" allows the last bits to differ; real ties
    # (equal prices) are exact and go to the alphabetically first category.
    best = nw.col("_best")
    tops = (
        pairs.with_columns(_best=nw.col("_spend").max().over(_ID))
        .filter(nw.col("_spend") >= best - (best.abs() * 1e-9 + 1e-9))
        .group_by(_ID)
        .agg(nw.col("category").min().alias("top_category"))
    )
    return totals.join(tops, on=_ID, how="left")


def _finish(names: list[str], as_of_us: int) -> list[nw.Expr]:
    frequency = nw.col("frequency").fill_null(0).cast(nw.Int64)
    bought = frequency > 0
    # Customers known only by a profile have no aggregates: their sums are 0.
    gross = nw.col("gross_spend").cast(nw.Float64).fill_null(0.0)
    returned = nw.col("_returned").cast(nw.Float64).fill_null(0.0)
    first = nw.col("_first_us")
    last = nw.col("_last_us")
    # Divisions sit inside when(): Spark's ANSI mode raises on a zero divisor.
    exprs = [
        nw.col(_ID),
        nw.when(bought).then(nw.col("first_purchase")).alias("first_purchase"),
        nw.when(bought).then(nw.col("last_purchase")).alias("last_purchase"),
        nw.when(bought).then((nw.lit(as_of_us) - last) / DAY_US).alias("recency_days"),
        frequency.alias("frequency"),
        (gross - returned).alias("monetary"),
        gross.alias("gross_spend"),
        nw.when(bought).then(gross / frequency).alias("avg_order_value"),
        nw.when(bought).then((nw.lit(as_of_us) - first) / DAY_US).alias("tenure_days"),
        nw.when(frequency > 1)
        .then((last - first) / DAY_US / (frequency - 1))
        .alias("mean_days_between_orders"),
        # Returns without purchases have no meaningful rate; nothing at all is 0.
        nw.when(gross > 0)
        .then(returned / gross)
        .when(returned > 0)
        .then(nw.lit(None, nw.Float64))
        .otherwise(nw.lit(0.0))
        .alias("return_rate"),
    ]
    if "_discount" in names:
        discount = nw.col("_discount").cast(nw.Float64).fill_null(0.0)
        list_price = gross + discount
        exprs.append(
            nw.when(list_price > 0)
            .then(discount / list_price)
            .otherwise(nw.lit(0.0))
            .alias("discount_share")
        )
    if "n_products" in names:
        exprs.append(nw.col("n_products").fill_null(0).cast(nw.Int64))
    if "n_categories" in names:
        total = nw.col("_category_total").cast(nw.Float64)
        exprs += [
            nw.col("n_categories").fill_null(0).cast(nw.Int64),
            nw.col("top_category").cast(nw.String),
            nw.when(total > 0)
            .then(nw.col("_top_spend").cast(nw.Float64) / total)
            .alias("top_category_share"),
        ]
    if "_units" in names:
        exprs.append(
            nw.when(bought)
            .then(nw.col("_units").cast(nw.Float64).fill_null(0.0) / frequency)
            .alias("avg_basket_size")
        )
    return exprs


def _to_pandas(features: nw.DataFrame[Any]) -> pd.DataFrame:
    """The pandas path's frame: same dtypes, NaN for missing numbers, ids as the index."""
    data = features.to_pandas()
    columns: dict[str, Any] = {}
    for name in data.columns:
        if name == _ID:
            continue
        values = data[name]
        if name in {"first_purchase", "last_purchase"}:
            columns[name] = pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]").array
        elif name in _INTEGER or name.startswith(_COUNTS):
            columns[name] = values.to_numpy(dtype=np.int64)
        elif name in _NUMERIC or name.startswith(_TIMES):
            columns[name] = pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan)
        elif name.startswith("consent_"):
            flags = values.astype(object)
            columns[name] = pd.array(flags.where(flags.notna(), None), dtype="boolean")
        else:
            # Text (top_category, locations) and extra profile columns: objects with None
            # for missing, as the pandas path builds them.
            objects = values.astype(object)
            columns[name] = np.asarray(objects.where(objects.notna(), None), dtype=object)
    frame = pd.DataFrame(columns)
    frame.index = pd.Index(data[_ID].astype(str).to_numpy(dtype=object), dtype=str, name=_ID)
    return frame
