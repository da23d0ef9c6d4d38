"""The narwhals path: feature definitions compiled to narwhals expressions.

Features are computed in the caller's engine (polars, pyarrow, DuckDB, Spark, Dask) from
the same definitions as the pandas path (:mod:`segmentkit.features._definitions`). Each
kind of row (transaction lines, orders, events, visits) gets one group-by per customer
holding every plain aggregation the definitions ask of it (sum, count, min, max of
columns prepared row-wise first: Dask and pyarrow group-bys take only plain columns);
distinct counts, order counts and argmax/share each join a small per-customer table.
The arithmetic around the aggregations becomes one final ``select``.
"""

from __future__ import annotations

from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from segmentkit._frame._detect import collect, distinct_rows, materialise_duckdb, to_native
from segmentkit._frame._time import DAY_US, EPOCH_US
from segmentkit.contracts._native_tables import NativeCustomers, NativeEvents, NativeTransactions
from segmentkit.errors import InvalidParameterError
from segmentkit.features._base import (
    NO_LINES_KEPT,
    CustomerFeatures,
    as_utc_timestamp,
    nothing_by_as_of,
)
from segmentkit.features._definitions import (
    BOUGHT_JOIN,
    DERIVED,
    PURCHASE_WINDOWS,
    ROW_COLUMNS,
    Agg,
    AsOf,
    Expr,
    FeatureDef,
    Kernel,
    Lit,
    Op,
    aggregations,
    definition_of,
    definitions,
)
from segmentkit.features._native_browsing import visits
from segmentkit.features._native_prices import with_price_ratio
from segmentkit.features._native_profile import profile_features
from segmentkit.features._selection import FeatureSelection, is_catalog_feature

__all__ = ["extract_native_features"]

_ID = "customer_id"
# Engines whose frames keep a row order; elsewhere a sort costs a shuffle and the order
# is not kept by later steps anyway.
_SORTED = ("polars", "pyarrow")


def extract_native_features(
    transactions: NativeTransactions,
    events: Any = None,
    customers: Any = None,
    *,
    as_of: Any,
    windows: tuple[int, ...],
    abandon_hours: float,
    purchase_windows: tuple[int, ...] = PURCHASE_WINDOWS,
    session_gap_minutes: float,
    output: str,
    selection: FeatureSelection | None = None,
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
    selection : FeatureSelection, optional
        Only the features it selects (default: all).

    Returns
    -------
    object
        The native frame, or ``CustomerFeatures``.
    """
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
    stamp, n_in, first_us = _lines_inside(transactions, as_of)
    if n_in == 0:
        earliest = pd.Timestamp(first_us, unit="us", tz="UTC")
        raise ValueError(nothing_by_as_of(stamp, earliest))
    as_of_us = stamp.value // 1000
    inside = nw.col(EPOCH_US) <= as_of_us
    excluded = {"transactions_after_as_of": len(transactions) - n_in}
    lines = transactions._frame.filter(inside)
    sources = ["transactions"]
    rows: dict[str, tuple[nw.LazyFrame[Any], list[str]]] = {}
    rows["line"] = rows["order"] = (lines, lines.collect_schema().names())
    if events is not None:
        sources.append("events")
        n_events = collect(events._frame.select(inside.cast(nw.Int64).sum())).item(0, 0)
        excluded["events_after_as_of"] = len(events) - int(n_events or 0)
        browsing = events._frame.filter(inside)
        sales = lines.filter(~nw.col("is_return")).select(_ID, EPOCH_US)
        # The pandas path works in integer nanoseconds; the same thresholds in microseconds.
        sessions = visits(
            browsing,
            sales,
            transactions._backend,
            as_of_us,
            abandon_us=int(abandon_hours * 3600 * 10**9) / 1000,
            gap_us=int(session_gap_minutes * 60 * 10**9) / 1000,
        )
        rows["event"] = (browsing, browsing.collect_schema().names())
        rows["session"] = (sessions, ["start", "seconds", "last_cart", "abandoned"])
    profile_names: list[str] = []
    profiles = None
    if customers is not None:
        sources.append("customers")
        profiles, profile_names = profile_features(customers, stamp, excluded)

    chosen = [
        d
        for d in definitions(windows, tuple(sources), purchase_windows)  # type: ignore[arg-type]
        if _available(d, rows, profile_names) and (selection is None or selection(d.name))
    ]
    if any(_reads(d, "price_ratio") for d in chosen):
        priced = with_price_ratio(lines, rows["line"][1], transactions._backend)
        rows["line"] = rows["order"] = (priced, [*rows["line"][1], "price_ratio"])
    compiler = _Compiler(
        rows,
        as_of_us,
        transactions.orders_from,
        # narwhals' Dask group-by adds up each partition's distinct count.
        grouped_distinct=transactions.backend != "dask",
    )
    outputs = [compiler.feature(d) for d in chosen]
    # Everyone with a line on or before as_of is a customer, and (with events or
    # profiles) everyone with an event or an eligible profile.
    table = compiler.table("transactions")
    if events is not None:
        browsing_table = compiler.table("events")
        ids = distinct_rows(
            nw.concat([table.select(_ID), browsing_table.select(_ID)], how="vertical"), [_ID]
        )
        table = ids.join(table, on=_ID, how="left").join(browsing_table, on=_ID, how="left")
    if profiles is not None:
        ids = distinct_rows(
            nw.concat([table.select(_ID), profiles.select(_ID)], how="vertical"), [_ID]
        )
        table = ids.join(table, on=_ID, how="left").join(profiles, on=_ID, how="left")
    defined = {d.name for d in chosen}
    extras = [
        name
        for name in profile_names
        if name not in defined
        and not is_catalog_feature(name)
        and (selection is None or selection(name))
    ]
    features = table.select(nw.col(_ID), *outputs, *extras)
    if output == "native":
        if transactions.backend in _SORTED:
            features = features.sort(_ID)
        native = to_native(features, transactions._backend)
        if transactions.backend == "duckdb":
            native = materialise_duckdb(native)
        return native
    # Sorted in pandas: the result is one row per customer, and a distributed sort would
    # cost an extra pass.
    pandas_frame = _to_pandas(collect(features)).sort_index()
    return CustomerFeatures(pandas_frame, stamp, {d.name: d for d in chosen}, excluded)


def _available(
    definition: FeatureDef, rows: dict[str, tuple[Any, list[str]]], profile_names: list[str]
) -> bool:
    if isinstance(definition.compute, Kernel):
        return definition.name in profile_names
    for agg in aggregations(definition.compute):
        names = rows[agg.over][1]
        if agg.rows in BOUGHT_JOIN and agg.column not in rows["line"][1]:
            return False
        if any(
            c is not None and c not in names and not any(d in names for d in DERIVED.get(c, ()))
            for c in (agg.column, agg.weight, ROW_COLUMNS.get(agg.rows))
        ):
            return False
    return True


def _reads(definition: FeatureDef, column: str) -> bool:
    """Whether ``definition`` reads ``column`` (as a value, a weight or a row filter)."""
    if isinstance(definition.compute, Kernel):
        return False
    return any(
        column in (agg.column, agg.weight, ROW_COLUMNS.get(agg.rows))
        for agg in aggregations(definition.compute)
    )


def _lines_inside(transactions: NativeTransactions, as_of: Any) -> tuple[pd.Timestamp, int, int]:
    """``as_of`` as a timestamp, the lines on or before it, and the first line's time.

    On lazy engines every query reruns the validation, so the time range counted
    during validation answers whenever it can: the default ``as_of`` (the last line),
    and any ``as_of`` outside the range. Only a cut inside it needs a query.
    """
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
    stamp = as_utc_timestamp(as_of)
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


class _Compiler:
    """Definitions to narwhals: per-customer tables of aggregations, and expressions."""

    def __init__(
        self,
        rows: dict[str, tuple[nw.LazyFrame[Any], list[str]]],
        as_of_us: int,
        orders_from: str,
        *,
        grouped_distinct: bool,
    ) -> None:
        self.rows = rows
        self.as_of_us = as_of_us
        self.orders_from = orders_from
        self.grouped_distinct = grouped_distinct
        self.aliases: dict[Agg, str] = {}

    def is_plain(self, agg: Agg) -> bool:
        """Whether one group-by over its rows computes ``agg`` from a prepared column.

        Distinct counts of a derived column (purchase days) are plain where the engine's
        distinct count in a group-by is right: on Spark each extra per-customer table is
        another pass over the validated lines and another join, which made the full
        feature set several times slower.
        """
        if agg.over == "order" or agg.rows in BOUGHT_JOIN:
            return False
        if agg.how == "nunique":
            return self.grouped_distinct and agg.column in _DERIVED and agg.per is None
        return agg.how in ("count", "sum", "min", "max")

    def order_key(self, names: list[str]) -> nw.Expr | None:
        """The columns naming a line's order (``None``: every line is its own order)."""
        if "order_id" in names:
            return nw.col("order_id")
        if self.orders_from == "row":
            return None
        if self.orders_from == "day":
            return nw.col(EPOCH_US) // DAY_US
        return nw.col(EPOCH_US)

    def alias(self, agg: Agg) -> str:
        if agg not in self.aliases:
            self.aliases[agg] = f"_agg{len(self.aliases)}"
        return self.aliases[agg]

    def feature(self, definition: FeatureDef) -> nw.Expr:
        compute = definition.compute
        if isinstance(compute, Kernel):  # profile kernels: computed by profile_features
            return nw.col(definition.name)
        expr = self.expr(compute, as_time=definition.dtype == "datetime")
        if definition.dtype == "int64":
            expr = expr.cast(nw.Int64)
        elif definition.dtype == "float64":
            expr = expr.cast(nw.Float64)
        elif definition.dtype == "string":
            expr = expr.cast(nw.String)
        return expr.alias(definition.name)

    def expr(self, node: Expr | None, *, as_time: bool = False) -> nw.Expr:
        # Divisions sit inside when(): Spark's ANSI mode raises on a zero divisor.
        if node is None:
            return nw.lit(None, nw.Float64)
        if isinstance(node, Agg):
            return self.ref(node, as_time=as_time)
        if isinstance(node, Lit):
            return nw.lit(node.value)
        if isinstance(node, AsOf):
            return nw.lit(self.as_of_us)
        if not isinstance(node, Op):
            msg = f"not a node of the feature algebra: {node!r}"
            raise TypeError(msg)
        if node.op == "where":
            condition, then, otherwise = node.args
            chosen = nw.when(self.expr(condition)).then(self.expr(then, as_time=as_time))
            return chosen if otherwise is None else chosen.otherwise(self.expr(otherwise))
        args = [self.expr(arg) for arg in node.args]
        if node.op == "+":
            return args[0] + args[1]
        if node.op == "-":
            return args[0] - args[1]
        if node.op == "/":
            return args[0] / args[1]
        if node.op == ">":
            return args[0] > args[1]
        if node.op == ">=":
            return args[0] >= args[1]
        if node.op == "<=":
            return args[0] <= args[1]
        if node.op == "days":
            return args[0] / DAY_US
        if node.op == "present":
            return ~args[0].is_null()
        msg = f"unknown operation {node.op!r} in a feature definition"
        raise ValueError(msg)

    def ref(self, agg: Agg, *, as_time: bool) -> nw.Expr:
        """The aggregate's column, filled for customers without rows."""
        name = self.alias(agg)
        if as_time and agg.column == "timestamp":
            return nw.col(f"{name}_time")
        if agg.how == "nunique" and self.is_plain(agg):
            # The placeholder of the rows not counted was counted once where there were any.
            counted = nw.col(name).fill_null(0) - nw.col(f"{name}{_UNCOUNTED}").fill_null(0)
            return counted.cast(nw.Int64)
        if agg.how in ("count", "nunique"):
            return nw.col(name).fill_null(0).cast(nw.Int64)
        if agg.how == "sum":
            return nw.col(name).cast(nw.Float64).fill_null(0.0)
        return nw.col(name)

    def table(self, source: str) -> nw.LazyFrame[Any]:
        """One row per customer with rows of ``source``: the aggregations read of it."""
        kinds = ("line", "order") if source == "transactions" else ("event", "session")
        table: nw.LazyFrame[Any] | None = None
        for kind in kinds:
            frame, names = self.rows[kind]
            plain = [
                (n, a) for a, n in self.aliases.items() if a.over == kind and self.is_plain(a)
            ]
            if plain or table is None:
                grouped = _plain_aggregates(frame, plain, self.as_of_us)
                table = grouped if table is None else table.join(grouped, on=_ID, how="left")
            paired: dict[str, list[tuple[str, Agg]]] = {}
            for agg, name in self.aliases.items():
                if agg.over == kind and self.counts_pairs(agg):
                    paired.setdefault(agg.column or "", []).append((name, agg))
            for column, counted in paired.items():
                table = table.join(self.pair_counts(frame, column, counted), on=_ID, how="left")
            for agg, name in self.aliases.items():
                if agg.over != kind or self.is_plain(agg) or self.counts_pairs(agg):
                    continue
                if agg.over == "order":
                    # Every order (no filter, no window): a literal is no filter predicate.
                    selected = (
                        frame
                        if agg.rows == "all" and agg.within_days is None
                        else frame.filter(_condition(agg, self.as_of_us))
                    )
                    extra = _frequency(selected, names, self.orders_from).rename(
                        {"frequency": name}
                    )
                elif agg.how == "nunique":
                    extra = _distinct(frame, agg, name, self.as_of_us, self.order_key(names))
                else:
                    extra = self.extra(frame, agg, name)
                table = table.join(extra, on=_ID, how="left")
        assert table is not None  # the first kind always makes one
        return table

    def counts_pairs(self, agg: Agg) -> bool:
        """Whether ``agg`` is a distinct count of an event column, made by pair_counts."""
        return (
            agg.over == "event"
            and agg.how == "nunique"
            and agg.column not in _DERIVED
            and agg.at == "timestamp"
        )

    def pair_counts(
        self, frame: nw.LazyFrame[Any], column: str, aggs: list[tuple[str, Agg]]
    ) -> nw.LazyFrame[Any]:
        """Distinct values of an event ``column`` per customer, for every filter and window
        asked, from one table of (customer, value) pairs.

        A pair holds the latest time of the rows of each filter; a value is counted in a
        window when that time falls in it, and (``views_not_bought``) when the pair's last
        purchase does not. One pass and one join per column, whatever the windows: on
        Spark, a table per window made the plan too big to run.
        """

        def rows_of(agg: Agg) -> str:
            return "views" if agg.rows in BOUGHT_JOIN else agg.rows

        ts = nw.col(EPOCH_US)
        latest = {
            f"_seen_{rows}": ts if rows == "all" else nw.when(_ROWS[rows]).then(ts)
            for rows in sorted({rows_of(agg) for _, agg in aggs})
        }
        # A null time of the rows' own type (pyarrow refuses a typed null literal here).
        nothing = nw.when(ts.is_null()).then(ts)
        value = nw.col(column).cast(nw.String)
        parts = [
            frame.filter(~nw.col(column).is_null()).select(
                _ID, value, *(e.alias(n) for n, e in latest.items()), nothing.alias(_BOUGHT)
            )
        ]
        if any(agg.rows in BOUGHT_JOIN for _, agg in aggs):
            # The purchase lines join as rows of their own, stacked under the events and
            # reduced by the same group-by: no join, which ran Spark out of memory.
            lines = self.rows["line"][0]
            parts.append(
                lines.filter(~nw.col("is_return") & ~nw.col(column).is_null()).select(
                    _ID, value, *(nothing.alias(n) for n in latest), ts.alias(_BOUGHT)
                )
            )
        pairs = (
            nw.concat(parts, how="vertical")
            .group_by(_ID, column)
            .agg(*(nw.col(n).max().alias(n) for n in [*latest, _BOUGHT]))
        )
        counted: dict[str, nw.Expr] = {}
        for name, agg in aggs:
            seen = nw.col(f"_seen_{rows_of(agg)}")
            last = nw.col(_BOUGHT)
            if agg.within_days is None:
                inside, bought = ~seen.is_null(), ~last.is_null()
            else:
                start = self.as_of_us - agg.within_days * DAY_US
                inside = (seen > start).fill_null(False)
                bought = (last > start).fill_null(False)
            if agg.rows in BOUGHT_JOIN:
                inside = inside & ~bought
            counted[name] = inside.cast(nw.Int64)
        return (
            pairs.with_columns(**counted)
            .group_by(_ID)
            .agg(*(nw.col(name).sum().alias(name) for name in counted))
        )

    def last_bought(self, column: str) -> nw.LazyFrame[Any]:
        """Per (customer, value of ``column``): the time of the last purchase line."""
        lines = self.rows["line"][0]
        return (
            lines.filter(~nw.col("is_return") & ~nw.col(column).is_null())
            .with_columns(nw.col(column).cast(nw.String))
            .group_by(_ID, column)
            .agg(nw.col(EPOCH_US).max().alias(_last_bought(column)))
        )

    def extra(self, frame: nw.LazyFrame[Any], agg: Agg, name: str) -> nw.LazyFrame[Any]:
        """A per-customer table of one aggregation that the shared group-by cannot hold."""
        if agg.rows in BOUGHT_JOIN:
            frame = self.with_last_bought(frame, agg.column or "")
        if agg.how in ("count", "sum", "min", "max"):
            return _plain_aggregates(frame, [(name, agg)], self.as_of_us)
        if agg.how == "nunique":
            return _distinct(frame, agg, name, self.as_of_us, None)
        if agg.how == "last":
            return _latest(frame, agg, name, self.as_of_us)
        return _weighted_pairs(frame, agg, name, self.as_of_us)

    def with_last_bought(self, events: nw.LazyFrame[Any], column: str) -> nw.LazyFrame[Any]:
        """``events`` with the time of the customer's last purchase line of the event's
        ``column`` value (null: never bought by ``as_of``), the derived column that the
        ``views_not_bought`` filter reads: a value is bought in a window that ends at
        ``as_of`` exactly when its last purchase falls in it. One join per column,
        whatever the windows: on Spark each join is another pass over the lines."""
        return events.with_columns(nw.col(column).cast(nw.String)).join(
            self.last_bought(column), on=[_ID, column], how="left"
        )


#: The time of a (customer, value) pair's last purchase line, in pair_counts.
_BOUGHT = "_last_bought"
#: Columns of the row tables under their definition names.
_COLUMNS = {"timestamp": EPOCH_US}
#: Columns computed from another one (:data:`~._definitions.DERIVED`). Floor division:
#: a time before 1970 falls on the day before, as in the pandas path.
_DERIVED = {"day": nw.col(EPOCH_US) // DAY_US}
#: A distinct count in the shared group-by counts this placeholder for the rows it must
#: not count (engines disagree on whether ``n_unique`` counts nulls; a value is counted
#: by all), and a flag column under the suffix says whether there were any.
_PLACEHOLDER = -(2**52)
_UNCOUNTED = "_uncounted"
_DISCOUNTED = (nw.col("discount") > 0).fill_null(False)
_ROWS = {
    "purchases": ~nw.col("is_return"),
    "returns": nw.col("is_return"),
    "discounted": ~nw.col("is_return") & _DISCOUNTED,
    "full_price": ~nw.col("is_return") & ~_DISCOUNTED,
    "promo": ~nw.col("is_return") & ~nw.col("promo_code").is_null(),
    # Only purchase lines are priced.
    "priced": ~nw.col("price_ratio").is_null(),
    "views": (nw.col("event_type") == "view").fill_null(False),
    "add_to_carts": (nw.col("event_type") == "add_to_cart").fill_null(False),
    "abandoned": nw.col("abandoned"),
}


def _last_bought(column: str) -> str:
    return f"_last_bought_{column}"


def _condition(agg: Agg, as_of_us: int) -> nw.Expr:
    """The rows ``agg`` reads, as a boolean expression."""
    condition = _ROWS.get(agg.rows, nw.lit(True))
    if agg.rows in BOUGHT_JOIN:  # views; not bought: after Compiler.with_last_bought
        last = nw.col(_last_bought(agg.column or ""))
        bought = ~last.is_null()
        if agg.within_days is not None:
            bought = (last > as_of_us - agg.within_days * DAY_US).fill_null(False)
        condition = _ROWS["views"] & ~bought
    if agg.within_days is None and agg.skip_days is None:
        return condition
    at = nw.col(_COLUMNS.get(agg.at, agg.at))
    end = as_of_us - (agg.skip_days or 0) * DAY_US
    inside = (at <= end).fill_null(False) if agg.skip_days else None
    if agg.within_days is not None:
        recent = (at > end - agg.within_days * DAY_US).fill_null(False)
        inside = recent if inside is None else inside & recent
    assert inside is not None  # a window or a skip
    return inside if agg.rows == "all" else condition & inside


def _plain_aggregates(
    frame: nw.LazyFrame[Any], aggs: list[tuple[str, Agg]], as_of_us: int
) -> nw.LazyFrame[Any]:
    """Sums, counts, minima and maxima per customer, in one group-by."""
    prepared: dict[str, nw.Expr] = {}
    reductions: dict[str, str] = {}
    for name, agg in aggs:
        condition = _condition(agg, as_of_us)
        reductions[name] = agg.how
        if agg.how == "nunique":
            value = _DERIVED[agg.column or ""]
            counted = condition & ~value.is_null()
            prepared[name] = nw.when(counted).then(value).otherwise(nw.lit(_PLACEHOLDER))
            prepared[f"{name}{_UNCOUNTED}"] = (~counted).cast(nw.Int64)
            reductions[f"{name}{_UNCOUNTED}"] = "max"
        elif agg.how == "count":
            prepared[name] = condition.cast(nw.Int64)
        elif agg.how == "sum":
            value = nw.col(_COLUMNS.get(agg.column or "", agg.column or ""))
            value = value.cast(nw.Float64).fill_null(0.0)
            if agg.weight is not None:
                value = value * nw.col(agg.weight).cast(nw.Float64).fill_null(0.0)
            prepared[name] = nw.when(condition).then(value).otherwise(nw.lit(0.0))
        else:
            column = agg.column or ""
            prepared[name] = nw.when(condition).then(nw.col(_COLUMNS.get(column, column)))
            if column == "timestamp":  # the time itself, for features that are times
                prepared[f"{name}_time"] = nw.when(condition).then(nw.col("timestamp"))
                reductions[f"{name}_time"] = agg.how
    reduced: list[nw.Expr] = []
    for name in prepared:
        how = reductions[name]
        prepared_column = nw.col(name)
        if how in ("count", "sum"):
            reduced.append(prepared_column.sum().alias(name))
        elif how == "nunique":
            reduced.append(prepared_column.n_unique().alias(name))
        elif how == "min":
            reduced.append(prepared_column.min().alias(name))
        else:
            reduced.append(prepared_column.max().alias(name))
    if not reduced:
        return distinct_rows(frame, [_ID])
    return frame.with_columns(**prepared).group_by(_ID).agg(*reduced)


def _distinct(
    frame: nw.LazyFrame[Any], agg: Agg, name: str, as_of_us: int, order: nw.Expr | None
) -> nw.LazyFrame[Any]:
    """Distinct values of ``agg.column`` per customer (``per='order'``: distinct
    (order, value) pairs; ``order`` is ``None`` when every line is its own order)."""
    column = agg.column or ""
    value = _DERIVED.get(column, nw.col(column))
    selected = frame.filter(_condition(agg, as_of_us) & ~value.is_null())
    if agg.per == "order" and order is None:  # each line its own order: each line a pair
        return selected.group_by(_ID).agg(nw.len().alias(name))
    keys = {"_value": value}
    if agg.per == "order":
        assert order is not None
        keys["_order"] = order
    pairs = distinct_rows(selected.select(_ID, **keys), [_ID, *keys])
    return pairs.group_by(_ID).agg(nw.len().alias(name))


def _weighted_pairs(
    frame: nw.LazyFrame[Any], agg: Agg, name: str, as_of_us: int
) -> nw.LazyFrame[Any]:
    """The value of ``agg.column`` with most ``agg.weight`` (ties: alphabetical), or its
    share of the weight over all values."""
    column, weight = agg.column or "", agg.weight or ""
    pairs = (
        frame.filter(_condition(agg, as_of_us) & ~nw.col(column).is_null())
        .group_by(_ID, column)
        .agg(nw.col(weight).sum().alias("_spend"))
    )
    if agg.how == "share":
        totals = pairs.group_by(_ID).agg(
            nw.col("_spend").sum().alias("_total"), nw.col("_spend").max().alias("_top")
        )
        total = nw.col("_total").cast(nw.Float64)
        share = nw.when(total > 0).then(nw.col("_top").cast(nw.Float64) / total)
        return totals.select(_ID, share.alias(name))
    # Parallel engines may sum one pair's floats in another order in each place `pairs`
    # is used, so "equal to the maximum" allows the last bits to differ; real ties
    # (equal prices) are exact and go to the alphabetically first value.
    best = nw.col("_best")
    return (
        pairs.with_columns(_best=nw.col("_spend").max().over(_ID))
        .filter(nw.col("_spend") >= best - (best.abs() * 1e-9 + 1e-9))
        .group_by(_ID)
        .agg(nw.col(column).min().alias(name))
    )


def _latest(frame: nw.LazyFrame[Any], agg: Agg, name: str, as_of_us: int) -> nw.LazyFrame[Any]:
    """The value of ``agg.column`` on each customer's latest row by ``agg.at`` where it
    is known (ties: the alphabetically first)."""
    column = agg.column or ""
    at = _COLUMNS.get(agg.at, agg.at)
    rows = frame.filter(_condition(agg, as_of_us) & ~nw.col(column).is_null()).select(
        _ID, nw.col(column).cast(nw.String), nw.col(at).alias("_at")
    )
    # A join, not a window: pyarrow's window over a filtered table misaligned rows.
    latest = rows.group_by(_ID).agg(nw.col("_at").max().alias("_latest"))
    return (
        rows.join(latest, on=_ID, how="inner")
        .filter(nw.col("_at") == nw.col("_latest"))
        .group_by(_ID)
        .agg(nw.col(column).min().alias(name))
    )


def _frequency(sales: nw.LazyFrame[Any], names: list[str], orders_from: str) -> Any:
    """Distinct orders per customer among the lines ``sales`` (already filtered)."""
    if "order_id" in names:
        keyed = sales.select(_ID, "order_id")
    elif orders_from == "row":
        return sales.group_by(_ID).agg(nw.len().alias("frequency"))
    elif orders_from == "day":
        keyed = sales.select(_ID, (nw.col(EPOCH_US) // DAY_US).alias("_day"))
    else:
        keyed = sales.select(_ID, EPOCH_US)
    orders = distinct_rows(keyed, keyed.collect_schema().names())
    return orders.group_by(_ID).agg(nw.len().alias("frequency"))


def _to_pandas(features: nw.DataFrame[Any]) -> pd.DataFrame:
    """The pandas path's frame: same dtypes, NaN for missing numbers, ids as the index."""
    data = features.to_pandas()
    columns: dict[str, Any] = {}
    for name in data.columns:
        if name == _ID:
            continue
        values = data[name]
        definition = definition_of(name)
        dtype = definition.dtype if definition is not None else "object"
        if dtype == "datetime":
            columns[name] = pd.to_datetime(values, utc=True).astype("datetime64[ns, UTC]").array
        elif dtype == "int64":
            columns[name] = values.to_numpy(dtype=np.int64)
        elif dtype == "float64":
            columns[name] = pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan)
        elif dtype == "boolean":
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
