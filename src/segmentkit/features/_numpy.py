"""The pandas path: feature definitions compiled to grouped numpy kernels.

Everything here is whole-array work (``np.bincount``, factorised keys, one sort for
visits): no Python loop runs per customer, order or event. Customers from the three
tables are placed in one id space first, so each feature is an array over that space
and joining them is free.

Each :class:`~segmentkit.features._definitions.Agg` of a definition becomes one kernel
over the rows it names (transaction lines, orders, events or visits), computed once
however many features read it; the shared intermediates (customer codes, the runs of
each order's adjacent lines, the purchase mask, the visits) are built once per call by
the row tables below. The arithmetic around the aggregations is evaluated on the
per-customer arrays.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from segmentkit._common._runs import (
    constant_within_runs,
    keys_used,
    one_run_each,
    run_lengths,
    run_starts,
    run_sums,
    runs_holding,
)
from segmentkit._common._sorting import stable_order
from segmentkit.contracts._customers import PII_COLUMNS, Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._schema import category_codes, to_ns
from segmentkit.contracts._transactions import Transactions
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
    definitions,
)
from segmentkit.features._pairs import PairTable
from segmentkit.features._prices import REFERENCE_KEYS, exact_medians
from segmentkit.features._selection import FeatureSelection, is_catalog_feature

__all__ = ["extract_pandas_features", "lines_by_as_of"]

_DAY_NS = 86_400 * 10**9
#: What a product attribute's pair table answers: distinct values, the top one, its share.
_PAIR_QUESTIONS = frozenset({"nunique", "argmax", "share"})
#: From this many lines the pair tables are built on two threads (below, threads cost
#: more than they save).
_THREADED_LINES = 1_000_000
_NAT = np.iinfo(np.int64).min
#: Neutral for a minimum of nanosecond times (NaT, the int64 minimum, is for maxima).
_NO_EARLIEST = np.iinfo(np.int64).max


def extract_pandas_features(
    transactions: Transactions,
    events: Events | None,
    customers: Customers | None,
    *,
    as_of: Any,
    windows: tuple[int, ...],
    abandon_hours: float,
    purchase_windows: tuple[int, ...] = PURCHASE_WINDOWS,
    session_gap_minutes: float,
    selection: FeatureSelection | None = None,
) -> CustomerFeatures:
    """The features of pandas tables (parameters checked by the caller)."""
    tx = transactions.data
    stamp, tx_ns, tx_in = lines_by_as_of(tx, as_of)
    as_of_ns = stamp.value
    n_after = len(tx_in) - int(np.count_nonzero(tx_in))
    excluded = {"transactions_after_as_of": n_after}

    id_tables = [tx["customer_id"].cat.categories]
    ev = events.data if events is not None else None
    if ev is not None:
        id_tables.append(ev["customer_id"].cat.categories)
    profiles = customers.data if customers is not None else None
    if profiles is not None:
        id_tables.append(profiles["customer_id"].cat.categories)
    if len(id_tables) > 1:
        ids = _union(id_tables)
        tx_codes = ids.get_indexer(id_tables[0])[category_codes(tx["customer_id"])]
    else:
        # Transactions alone: their categories are the id space, no hashing of ids.
        ids = id_tables[0]
        tx_codes = category_codes(tx["customer_id"])
    n = len(ids)
    if n_after == 0:
        # Nothing after as_of (the default): no filtered copy of every column.
        lines = _Lines(tx, tx_codes, tx_ns, n, as_of_ns)
    else:
        lines = _Lines(tx[tx_in], tx_codes[tx_in], tx_ns[tx_in], n, as_of_ns)
    # Every line is in a run of its order, and a run has its order's one customer.
    present = np.zeros(n, dtype=bool)
    present[lines.run_customer] = True
    tables: dict[str, _Rows] = {"line": lines, "order": lines}
    sources = ["transactions"]

    if ev is not None:
        sources.append("events")
        ev_ns = to_ns(ev["timestamp"])
        ev_in = ev_ns <= as_of_ns
        excluded["events_after_as_of"] = int((~ev_in).sum())
        ev_codes = ids.get_indexer(ev["customer_id"].cat.categories)[
            category_codes(ev["customer_id"])
        ]
        present[ev_codes[ev_in]] = True
        browsing = _Events(ev[ev_in], ev_codes[ev_in], ev_ns[ev_in], n, as_of_ns, lines)
        tables["event"] = browsing
        tables["session"] = _visits(
            browsing,
            lines,
            abandon_ns=int(abandon_hours * 3600 * 10**9),
            gap_ns=int(session_gap_minutes * 60 * 10**9),
        )
    profile_columns: dict[str, Any] = {}
    if profiles is not None:
        sources.append("customers")
        eligible = np.ones(len(profiles), dtype=bool)
        if "signup_date" in profiles:
            signup = to_ns(profiles["signup_date"])
            eligible = (signup == _NAT) | (signup <= as_of_ns)
            excluded["profiles_signed_up_after_as_of"] = int((~eligible).sum())
        pr_codes = ids.get_indexer(profiles["customer_id"].cat.categories)[
            category_codes(profiles["customer_id"])
        ]
        present[pr_codes[eligible]] = True
        profile_columns = _profile_features(profiles[eligible], pr_codes[eligible], n, stamp)

    chosen = definitions(windows, tuple(sources), purchase_windows)  # type: ignore[arg-type]
    if selection is not None:
        chosen = [d for d in chosen if selection(d.name)]
        kept = {d.name for d in chosen}
        profile_columns = {
            name: values
            for name, values in profile_columns.items()
            if name in kept or (selection(name) and not is_catalog_feature(name))
        }
    columns = _compile(chosen, tables, as_of_ns, profile_columns)
    del tables, lines

    index = pd.Index(ids, dtype=str, name="customer_id")
    # Sorted ids make the output independent of the input's row order. The rows are
    # picked in their final order before the frame is built: one take per column.
    order = _text_order(index)
    if present.all() and _is_identity(order):  # the usual case: nothing to reorder
        frame = pd.DataFrame(columns, index=index, copy=False)
    else:
        rows = order[present[order]]
        frame = pd.DataFrame(
            {name: values[rows] for name, values in columns.items()},
            index=index[rows],
            copy=False,
        )
    # copy=False: the columns are ours, and pandas would otherwise copy all the float
    # ones into one block (a second copy of the table).
    del columns, present, order
    return CustomerFeatures(frame, stamp, {d.name: d for d in chosen}, excluded)


def lines_by_as_of(tx: pd.DataFrame, as_of: Any) -> tuple[pd.Timestamp, np.ndarray, np.ndarray]:
    """``as_of`` (default: the last line), the lines' times in ns and which are inside.

    Raises when no line is kept or none falls on or before ``as_of``.
    """
    if len(tx) == 0:
        raise ValueError(NO_LINES_KEPT)
    stamp = (
        as_utc_timestamp(as_of)
        if as_of is not None
        else pd.Timestamp(tx["timestamp"].max()).tz_convert("UTC")
    )
    tx_ns = to_ns(tx["timestamp"])
    inside = tx_ns <= stamp.value
    if not inside.any():
        raise ValueError(nothing_by_as_of(stamp, tx["timestamp"].min()))
    return stamp, tx_ns, inside


# --- the compiler ------------------------------------------------------------------------


def _compile(
    chosen: list[FeatureDef],
    tables: dict[str, _Rows],
    as_of_ns: int,
    profile_columns: dict[str, Any],
) -> dict[str, Any]:
    """The columns of the definitions whose inputs are there, in their order."""
    columns: dict[str, Any] = {}
    usable = [
        d
        for d in chosen
        if isinstance(d.compute, Kernel)
        or all(tables[a.over].has(a) for a in aggregations(d.compute))
    ]
    needed = {a: None for d in usable for a in aggregations(d.compute)}
    lines = tables.get("line")
    paired = lines.paired(needed) if isinstance(lines, _Lines) else []
    # The pair tables and their aggregations run in the background meanwhile.
    pair_results = lines.start_pair_aggregates(paired) if isinstance(lines, _Lines) else dict
    computed = {agg: tables[agg.over].aggregate(agg) for agg in needed if agg not in paired}
    computed |= pair_results()
    for definition in usable:
        compute = definition.compute
        if isinstance(compute, Kernel):
            # Profile kernels: computed together by _profile_features.
            if definition.name in profile_columns:
                columns[definition.name] = profile_columns[definition.name]
            continue
        missing = _NAT if definition.dtype == "datetime" else np.nan
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            values = _evaluate(compute, computed, as_of_ns, missing)
        columns[definition.name] = _as_dtype(values, definition)
    # Extra profile columns (no definition) follow, as given.
    for name, values in profile_columns.items():
        if name not in columns:
            columns[name] = values
    return columns


def _evaluate(
    node: Expr | None, computed: dict[Agg, np.ndarray], as_of_ns: int, missing: Any
) -> Any:
    if node is None:
        return missing
    if isinstance(node, Agg):
        return computed[node]
    if isinstance(node, Lit):
        return node.value
    if isinstance(node, AsOf):
        return as_of_ns
    if not isinstance(node, Op):
        msg = f"not a node of the feature algebra: {node!r}"
        raise TypeError(msg)
    args = [_evaluate(arg, computed, as_of_ns, missing) for arg in node.args]
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
        return args[0] / _DAY_NS
    if node.op == "present":
        values = np.asarray(args[0])
        return values != _NAT if values.dtype == np.int64 else ~pd.isna(values)
    if node.op == "where":
        if any(_is_text(a) for a in args[1:]):
            # Texts stay Python objects, missing as None: numpy would make a missing
            # NaN the text 'nan'.
            return np.where(args[0], *(_objects(a) for a in args[1:]))
        return np.where(*args)
    msg = f"unknown operation {node.op!r} in a feature definition"
    raise ValueError(msg)


def _inside_window(times: np.ndarray, as_of_ns: int, agg: Agg) -> np.ndarray:
    """Which ``times`` fall in ``agg``'s window: ``(end - within_days, end]`` with
    ``end = as_of - skip_days``."""
    end = as_of_ns - (agg.skip_days or 0) * _DAY_NS
    inside = times <= end if agg.skip_days else np.ones(len(times), dtype=bool)
    if agg.within_days is not None:
        inside &= times > end - agg.within_days * _DAY_NS
    return inside


def _missing_as_zero(values: np.ndarray) -> np.ndarray:
    """Floats with NaN read as 0 (validated numbers are never infinite).

    Most columns have no NaN at all: one check instead of ``nan_to_num``'s copies.
    """
    values = np.asarray(values, dtype=float)
    missing = np.isnan(values)
    return np.where(missing, 0.0, values) if missing.any() else values


def _is_text(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, np.ndarray) and value.dtype.kind in "UO")


def _objects(value: Any) -> Any:
    """A branch of a text ``where``: texts as objects, the missing NaN as ``None``."""
    if isinstance(value, np.ndarray):
        return value.astype(object)
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _as_dtype(values: Any, definition: FeatureDef) -> Any:
    if definition.dtype == "datetime":
        return _as_utc_times(values)
    if definition.dtype == "int64":
        return values.astype(np.int64, copy=False)
    if definition.dtype == "float64":
        # np.bincount of no rows gives integers even with weights.
        return np.asarray(values, dtype=float)
    if definition.dtype == "string":
        return np.asarray(values, dtype=object)
    return values


class _Rows:
    """Rows of one kind (lines, events, visits) with their customer codes.

    ``aggregate`` is the generic kernel: a masked ``np.bincount`` or grouped extreme.
    Subclasses add faster kernels for the aggregations that dominate run time.
    """

    codes: np.ndarray
    n: int
    as_of_ns: int

    def has(self, agg: Agg) -> bool:
        return all(
            c is None or self.holds(c) for c in (agg.column, agg.weight, ROW_COLUMNS.get(agg.rows))
        )

    def holds(self, column: str) -> bool:
        raise NotImplementedError

    def values(self, column: str) -> Any:
        raise NotImplementedError

    def rows(self, name: str) -> np.ndarray | None:
        """The filter ``name`` as a boolean mask, ``None`` for every row."""
        raise NotImplementedError

    def times(self, column: str) -> np.ndarray:
        return np.asarray(self.values(column))

    def mask_of(self, agg: Agg) -> np.ndarray | None:
        """The rows ``agg`` reads, as a mask (``None``: all), made once."""
        key = (agg.rows, agg.within_days, agg.skip_days, agg.at)
        cache: dict[Any, np.ndarray | None] = self.__dict__.setdefault("_masks", {})
        if key not in cache:
            mask = self.rows(agg.rows)
            window = self.window(agg)
            if window is not None:
                mask = window if mask is None else mask & window
            cache[key] = mask
        return cache[key]

    def selection(self, agg: Agg) -> tuple[np.ndarray | None, np.ndarray]:
        """The rows ``agg`` reads (``None``: all) and their customer codes, made once."""
        key = (agg.rows, agg.within_days, agg.skip_days, agg.at)
        cache: dict[Any, tuple[np.ndarray | None, np.ndarray]]
        cache = self.__dict__.setdefault("_selections", {})
        if key not in cache:
            mask = self.mask_of(agg)
            cache[key] = (mask, self.codes if mask is None else self.codes[mask])
        return cache[key]

    def window(self, agg: Agg) -> np.ndarray | None:
        """The rows inside ``agg``'s look-back window (``None``: no window)."""
        if agg.within_days is None and agg.skip_days is None:
            return None
        return _inside_window(self.times(agg.at), self.as_of_ns, agg)

    def aggregate(self, agg: Agg) -> np.ndarray:
        mask, codes = self.selection(agg)
        if agg.how == "count":
            return np.bincount(codes, minlength=self.n)
        if agg.column is None:
            msg = f"{agg.how} needs a column"
            raise ValueError(msg)
        values = self.values(agg.column)
        if agg.per is not None:
            msg = f"per={agg.per!r} is only known to transaction lines"
            raise NotImplementedError(msg)
        if agg.how == "last":
            picked = values if mask is None else values[mask]
            times = self.times(agg.at)
            return _latest_values(codes, picked, times if mask is None else times[mask], self.n)
        if agg.how in ("nunique", "argmax", "share"):
            picked = values if mask is None else values[mask]
            if agg.how == "nunique":
                if isinstance(picked, pd.Series):
                    return _distinct_per_customer(codes, picked, self.n)
                return _distinct_days(codes, picked, self.n)
            weight = np.asarray(self.values(agg.weight or ""), dtype=float)
            pairs = _weighted_pairs(
                codes, picked, weight if mask is None else weight[mask], self.n
            )
            return pairs["top"] if agg.how == "argmax" else pairs["share"]
        values = np.asarray(values)
        if mask is not None:
            values = values[mask]
        if agg.how == "sum":
            summed = _missing_as_zero(values)
            if agg.weight is not None:
                weight = np.asarray(self.values(agg.weight), dtype=float)
                summed = summed * _missing_as_zero(weight if mask is None else weight[mask])
            return np.bincount(codes, weights=summed, minlength=self.n)
        if agg.how in ("min", "max"):
            return _group_extreme(codes, values, self.n, agg.how)
        msg = f"{agg.how} over {agg.over} rows is not implemented"
        raise NotImplementedError(msg)


class _Lines(_Rows):
    """Transaction lines on or before ``as_of``; also the ``order`` rows.

    Sums and spans of purchases work per run of an order's adjacent lines rather than
    per line (see ``_common._runs``): a few million scatters instead of ten million.
    An order key has one customer by construction; an order counts unless all of its
    lines are returns.
    """

    def __init__(
        self, tx: pd.DataFrame, codes: np.ndarray, ns: np.ndarray, n: int, as_of_ns: int
    ) -> None:
        self.tx = tx
        self.codes = codes
        self.ns = ns
        self.n = n
        self.as_of_ns = as_of_ns

    def holds(self, column: str) -> bool:
        return column in self.tx or any(c in self.tx for c in DERIVED.get(column, ()))

    def values(self, column: str) -> Any:
        if column == "timestamp":
            return self.ns
        if column == "day":
            # Floor division: a time before 1970 falls on the day before, as in pandas.
            return self.ns // _DAY_NS
        if column == "amount":
            return self.amount
        if column == "price_ratio":
            return self.price_ratio
        values = self.tx[column]
        if isinstance(values.dtype, pd.CategoricalDtype):
            return values  # products, categories, brands, attributes: counted by codes
        return values.to_numpy(dtype=float, na_value=np.nan)

    def rows(self, name: str) -> np.ndarray | None:
        if name == "purchases":
            return self.sale
        if name == "returns":
            return self.is_return
        if name == "discounted":
            return self.sale & self.discounted
        if name == "full_price":
            return self.sale & ~self.discounted
        if name == "promo":
            return self.sale & self.tx["promo_code"].notna().to_numpy()
        if name == "priced":
            return ~np.isnan(self.price_ratio)  # only purchase lines are priced
        return None

    @cached_property
    def discounted(self) -> np.ndarray:
        """Lines with a discount above 0 (a missing discount is none)."""
        discount = self.tx["discount"].to_numpy(dtype=float, na_value=np.nan)
        return np.nan_to_num(discount) > 0

    @cached_property
    def unit_price(self) -> np.ndarray:
        """Each line's unit price: unit_price, else amount / quantity (> 0), else amount."""
        if "unit_price" in self.tx:
            return self.tx["unit_price"].to_numpy(dtype=float, na_value=np.nan)
        if "quantity" not in self.tx:
            return self.amount
        quantity = self.tx["quantity"].to_numpy(dtype=float, na_value=np.nan)
        out = np.full(len(quantity), np.nan)
        np.divide(self.amount, quantity, out=out, where=quantity > 0)
        return out

    @cached_property
    def price_ratio(self) -> np.ndarray:
        """A purchase line's unit price / its product's median (NaN: not priced)."""
        column = next(c for c in REFERENCE_KEYS if c in self.tx)
        key = category_codes(self.tx[column]).astype(np.int64)
        unit = self.unit_price
        eligible = self.sale & (key >= 0) & np.isfinite(unit)
        width = len(self.tx[column].cat.categories)
        reference = exact_medians(key[eligible], unit[eligible], width)[key[eligible]]
        ratio = np.full(len(key), np.nan)
        priced = reference > 0
        ratio[np.flatnonzero(eligible)[priced]] = unit[eligible][priced] / reference[priced]
        return ratio

    @cached_property
    def amount(self) -> np.ndarray:
        return self.tx["amount"].to_numpy(dtype=float)

    @cached_property
    def is_return(self) -> np.ndarray:
        return self.tx["is_return"].to_numpy(dtype=bool)

    @cached_property
    def sale(self) -> np.ndarray:
        return ~self.is_return

    @cached_property
    def returns(self) -> np.ndarray:
        return np.flatnonzero(self.is_return)

    @cached_property
    def order_key(self) -> np.ndarray:
        return self.tx["order_key"].to_numpy()

    @cached_property
    def starts(self) -> np.ndarray:
        return run_starts(self.order_key)

    @cached_property
    def run_customer(self) -> np.ndarray:
        # In numpy's index type: bincount would otherwise convert it at every call.
        return self.codes[self.starts].astype(np.intp)

    @cached_property
    def _return_runs(self) -> tuple[np.ndarray, np.ndarray]:
        return runs_holding(self.returns, self.starts)

    @cached_property
    def only_returns(self) -> np.ndarray:
        """The runs whose lines are all returns."""
        return_runs, returns_in_run = self._return_runs
        lengths = run_lengths(return_runs, self.starts, len(self.order_key))
        return return_runs[returns_in_run == lengths]

    @cached_property
    def times_in_runs(self) -> bool:
        """Whether an order's adjacent lines share one time (the usual export)."""
        return constant_within_runs(self.ns, self.order_key)

    @cached_property
    def purchase_days(self) -> np.ndarray:
        """Distinct UTC days with a purchase line, per customer."""
        if self.times_in_runs:
            # One time per run: the runs of an order with a sale line are the days'
            # rows, a few million instead of ten million lines.
            sale_runs = np.ones(len(self.starts), dtype=bool)
            sale_runs[self.only_returns] = False
            # In customer order, where a customer's days mostly come sorted already.
            runs = self.runs_by_customer[sale_runs[self.runs_by_customer]]
            run_ns = self.ns[self.starts[runs]]
            return _distinct_days(self.run_customer[runs], run_ns // _DAY_NS, self.n)
        return _distinct_days(self.codes[self.sale], self.ns[self.sale] // _DAY_NS, self.n)

    @cached_property
    def purchase_span(self) -> tuple[np.ndarray, np.ndarray]:
        return _purchase_span(
            self.times_in_runs,
            self.codes,
            self.ns,
            self.n,
            self.order_key,
            self.starts,
            self.run_customer,
            self.only_returns,
            self.returns,
        )

    def aggregate(self, agg: Agg) -> np.ndarray:
        plain = agg.within_days is None and agg.skip_days is None
        table = self._pair_table(agg.column or "") if agg.how in _PAIR_QUESTIONS else None
        if table is not None:
            if self._spans_tell(agg):
                return table.count_per_customer(self._pairs_in_window(agg, table), self.n)
            mask = self.mask_of(agg)
            if agg.per == "order":
                orders = table.distinct(self.order_key, mask, adjacent=self.orders_are_runs)
                return np.bincount(table.customer, weights=orders, minlength=self.n).astype(
                    np.int64
                )
            if agg.how == "nunique":
                return table.count_per_customer(table.any(mask), self.n)
            ranked = self._weighted(agg, table, mask)
            return ranked["top"] if agg.how == "argmax" else ranked["share"]
        if agg.over == "order":
            if plain and agg.rows == "purchases":  # frequency: the fast path
                return _orders_with_a_sale(
                    self.order_key, self.starts, self.run_customer, self.only_returns, self.n
                ).astype(np.int64)
            return self._orders_holding(self.selection(agg)[0])
        if agg.per == "order":
            return self._distinct_per_order(agg)
        summed_per_run = agg.column in ("amount", "quantity") and agg.weight is None
        if agg.how == "sum" and summed_per_run and agg.rows == "purchases":
            runs = None if plain else self._runs_inside(agg)
            if plain or runs is not None:
                sales = self._run_sales(agg.column or "")
                customers = self.run_customer
                if runs is not None:
                    sales, customers = sales[runs], customers[runs]
                return np.bincount(customers, weights=sales, minlength=self.n)
        if agg.how == "sum" and agg.column == "amount" and plain and agg.rows == "returns":
            returns = self.returns
            return np.bincount(self.codes[returns], weights=self.amount[returns], minlength=self.n)
        if agg.how == "nunique" and agg.column == "day" and plain and agg.rows == "purchases":
            return self.purchase_days
        timed = agg.column == "timestamp" and agg.how in ("min", "max")
        if timed and plain and agg.rows == "purchases":
            return self.purchase_span[0 if agg.how == "min" else 1]
        return super().aggregate(agg)

    def _run_sales(self, column: str) -> np.ndarray:
        """Each run's sum of ``column`` over its purchase lines (missing as 0)."""
        cache: dict[str, np.ndarray] = self.__dict__.setdefault("_run_sales_of", {})
        if column not in cache:
            values = self.amount if column == "amount" else _missing_as_zero(self.values(column))
            return_runs = self._return_runs[0]
            cache[column] = run_sums(values, self.starts, skip=self.returns, skip_runs=return_runs)
        return cache[column]

    def _runs_inside(self, agg: Agg) -> np.ndarray | None:
        """The runs inside ``agg``'s window, when an order's lines share one time (then a
        run is inside or outside as a whole); ``None`` otherwise."""
        if agg.at != "timestamp" or not self.times_in_runs:
            return None
        return _inside_window(self.ns[self.starts], self.as_of_ns, agg)

    @cached_property
    def runs_by_customer(self) -> np.ndarray:
        """The runs (of an order's adjacent lines) in customer order, stably."""
        return stable_order(self.run_customer, self.n)

    @cached_property
    def _ordered_run_lengths(self) -> np.ndarray:
        lengths = np.diff(self.starts, append=len(self.codes))
        return lengths[self.runs_by_customer]

    @cached_property
    def by_customer(self) -> np.ndarray:
        """The lines in customer order (a customer's lines in their original order).

        Sorted as runs, not lines: a run's lines are adjacent and share a customer, so
        the runs in customer order, each expanded to its lines, are exactly the stable
        sort of the lines, for the price of sorting a few million runs.
        """
        lengths = self._ordered_run_lengths
        first_line = self.starts[self.runs_by_customer]
        placed_at = np.cumsum(lengths) - lengths  # where each run lands in the output
        return np.repeat(first_line - placed_at, lengths) + np.arange(len(self.codes))

    @cached_property
    def customer_in_order(self) -> np.ndarray:
        """The customer code of each line of ``by_customer``, in that order."""
        return np.repeat(self.run_customer[self.runs_by_customer], self._ordered_run_lengths)

    @staticmethod
    def _spans_tell(agg: Agg) -> bool:
        """Whether a pair's first and last purchase tell ``agg``'s distinct values: a
        windowed count of purchases, the window 'the last w days' or 'before the last w
        days'."""
        windowed = agg.within_days is not None or agg.skip_days is not None
        return (
            agg.how == "nunique"
            and agg.per is None
            and agg.rows == "purchases"
            and agg.at == "timestamp"
            and windowed
            and not (agg.within_days is not None and agg.skip_days)
        )

    def _pairs_in_window(self, agg: Agg, table: PairTable) -> np.ndarray:
        """The pairs with a purchase in ``agg``'s window (see ``_spans_tell``)."""
        first, last = table.span(self.ns, self.sale)
        end = self.as_of_ns - (agg.skip_days or 0) * _DAY_NS
        if agg.within_days is None:  # bought by the window's end: first time before it
            return first <= end
        return last > end - agg.within_days * _DAY_NS  # bought in the last days

    def paired(self, aggs: Iterable[Agg]) -> list[Agg]:
        """The aggregations of ``aggs`` that a pair table answers (categorical columns)."""
        asked = [a for a in aggs if a.over == "line" and a.how in _PAIR_QUESTIONS]
        categorical = {c for c in {a.column for a in asked} if self._pair_input(c) is not None}
        return [a for a in asked if a.column in categorical]

    def start_pair_aggregates(self, aggs: list[Agg]) -> Callable[[], dict[Agg, np.ndarray]]:
        """Start the pair tables of ``aggs`` and their aggregations in the background;
        call the function returned for the results.

        Each table is a few sorts and gathers of ten million lines, during which numpy
        releases the GIL: on two cores the product, category and brand tables are built
        and asked two at a time while the caller computes the features that need none,
        then answers the columns no worker has started. Everything read from pandas or
        cached on these lines is read here, in the calling thread; the workers only run
        numpy on a table of their own. The results are the same either way.
        """
        if len(self.codes) < _THREADED_LINES or not aggs:
            return lambda: {agg: self.aggregate(agg) for agg in aggs}
        by_column: dict[str, list[Agg]] = {}
        for agg in aggs:
            by_column.setdefault(agg.column or "", []).append(agg)
            self._read_for_pairs(agg)
        inputs = {column: self._pair_input(column) for column in by_column}

        workers = ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1))
        # Every table starts from the lines in customer order: sorted once, first.
        in_customer_order = workers.submit(lambda: (self.by_customer, self.customer_in_order))

        def answer(column: str) -> dict[Agg, np.ndarray]:
            if column not in self._pair_tables:
                given = inputs[column]
                assert given is not None  # paired: categorical
                order, customers = in_customer_order.result()
                self._pair_tables[column] = PairTable.build(order, customers, *given)
            answered = {agg: self.aggregate(agg) for agg in by_column[column]}
            # Nothing else asks this table: its memory goes before the next one is built.
            del self._pair_tables[column]
            return answered

        answers = {column: workers.submit(answer, column) for column in by_column}

        def results() -> dict[Agg, np.ndarray]:
            # The caller answers the columns no worker has started: no core idles.
            mine = {column: answer(column) for column, job in answers.items() if job.cancel()}
            workers.shutdown(wait=True)
            parts = [mine[c] if c in mine else answers[c].result() for c in by_column]
            return {agg: value for part in parts for agg, value in part.items()}

        return results

    def _read_for_pairs(self, agg: Agg) -> None:
        """Read and cache here what answering ``agg`` from a pair table reads from pandas
        or caches on these lines, so that workers only read it."""
        self.run_customer  # noqa: B018
        self._pair_tables  # noqa: B018
        if self._spans_tell(agg):
            self.ns, self.sale  # noqa: B018
            return
        self.mask_of(agg)
        if agg.per == "order":
            self.order_key, self.orders_are_runs  # noqa: B018
        if agg.how in ("argmax", "share"):
            self._weight_and_total(agg)

    @cached_property
    def _pair_tables(self) -> dict[str, PairTable | None]:
        return {}

    def _pair_input(self, column: str | None) -> tuple[np.ndarray, int] | None:
        """A categorical column's codes and number of categories (``None``: not one)."""
        if column in ("timestamp", "day", "amount", "price_ratio"):
            return None
        values = self.values(column) if column and self.holds(column) else None
        if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
            return category_codes(values), len(values.cat.categories)
        return None

    def _pair_table(self, column: str) -> PairTable | None:
        """The (customer, value) pairs of a product attribute, built once and shared by
        every feature of it; ``None`` for a column that is not categorical."""
        if column not in self._pair_tables:
            given = self._pair_input(column)
            self._pair_tables[column] = (
                None
                if given is None
                else PairTable.build(self.by_customer, self.customer_in_order, *given)
            )
        return self._pair_tables[column]

    def _distinct_per_order(self, agg: Agg) -> np.ndarray:
        """Distinct (order, value) pairs per customer among the selected lines, for a
        column without a pair table (numbers, days)."""
        mask, _ = self.selection(agg)
        values = np.asarray(self.values(agg.column or ""))
        orders = self.order_key
        if mask is not None:
            values, orders = values[mask], orders[mask]
        value_codes, uniques = pd.factorize(values)  # a missing value is -1
        known = value_codes >= 0
        width = max(len(uniques), 1)
        keys = orders[known].astype(np.int64) * width + value_codes[known]
        pairs = pd.unique(keys)
        return np.bincount(self.order_customer[pairs // width], minlength=self.n).astype(np.int64)

    @cached_property
    def order_customer(self) -> np.ndarray:
        """The customer of each order key."""
        n_keys = int(self.order_key.max()) + 1 if len(self.order_key) else 0
        owner = np.zeros(n_keys, dtype=np.intp)
        owner[self.order_key[self.starts]] = self.run_customer
        return owner

    @cached_property
    def orders_are_runs(self) -> bool:
        """Whether every order is exactly one run of adjacent lines (the usual export)."""
        n_keys = int(self.order_key.max()) + 1 if len(self.order_key) else 0
        return one_run_each(keys_used(self.order_key[self.starts], n_keys), len(self.starts))

    def _orders_holding(self, mask: np.ndarray | None) -> np.ndarray:
        """Per customer, the orders holding at least one line of ``mask`` (``None``: any)."""
        starts = self.starts
        if len(starts) == 0:
            return np.zeros(self.n, dtype=np.int64)
        # A run is selected when any of its lines is: one sequential pass.
        chosen = None if mask is None else np.logical_or.reduceat(mask, starts)
        if self.orders_are_runs:
            customers = self.run_customer if chosen is None else self.run_customer[chosen]
            return np.bincount(customers, minlength=self.n).astype(np.int64)
        # An order split over several runs: count its key once (a key has one customer).
        run_order = self.order_key[starts]
        run_customer = self.run_customer
        if chosen is not None:
            run_order, run_customer = run_order[chosen], run_customer[chosen]
        n_keys = int(self.order_key.max()) + 1
        used = keys_used(run_order, n_keys)
        order_customer = np.zeros(n_keys, dtype=np.intp)
        order_customer[run_order] = run_customer
        return np.bincount(order_customer[used], minlength=self.n).astype(np.int64)

    def _weighted(
        self, agg: Agg, table: PairTable, mask: np.ndarray | None
    ) -> dict[str, np.ndarray]:
        """argmax and share of one (column, weight, rows): computed once for both."""
        key = (agg.column or "", agg.weight or "", agg.rows, agg.within_days, agg.skip_days)
        cache: dict[Any, dict[str, np.ndarray]] = self.__dict__.setdefault("_ranked", {})
        if key not in cache:
            weight, total, categories = self._weight_and_total(agg)
            cache[key] = _top_of_pairs(
                table.customer,
                table.value,
                table.sum(weight, mask),
                categories,
                self.n,
                total=total,
                customer_starts=table.customer_starts,
                held=table.any(mask),
            )
        return cache[key]

    def _weight_and_total(self, agg: Agg) -> tuple[np.ndarray, np.ndarray, pd.Index]:
        """The weights of ``agg``'s lines, each customer's total of them over the lines
        with a value, and the column's categories."""
        key = (agg.column or "", agg.weight or "", agg.rows, agg.within_days, agg.skip_days)
        cache: dict[Any, tuple[np.ndarray, np.ndarray, pd.Index]]
        cache = self.__dict__.setdefault("_weights", {})
        if key not in cache:
            mask = self.mask_of(agg)
            weight = np.asarray(self.values(agg.weight or ""), dtype=float)
            values = self.values(agg.column or "")
            # The total in line order, not pair order: pairs follow the value codes, which
            # lines after as_of can renumber, and a sum's last bit follows its order.
            known = category_codes(values) >= 0
            plain = agg.within_days is None and agg.skip_days is None
            if plain and agg.rows == "purchases" and agg.weight == "amount" and known.all():
                # Every line has a value: the total is the purchases' spend, per run.
                total = np.bincount(
                    self.run_customer, weights=self._run_sales("amount"), minlength=self.n
                )
            else:
                counted = known if mask is None else known & mask
                total = np.bincount(
                    self.codes, weights=np.where(counted, weight, 0.0), minlength=self.n
                )
            cache[key] = (weight, total, values.cat.categories)
        return cache[key]


class _Events(_Rows):
    """Browsing events on or before ``as_of``; ``lines`` are the customers' purchases
    that the ``views_not_bought`` filter joins them to."""

    def __init__(
        self,
        ev: pd.DataFrame,
        codes: np.ndarray,
        ns: np.ndarray,
        n: int,
        as_of_ns: int,
        lines: _Lines,
    ) -> None:
        self.ev = ev
        self.codes = codes
        self.ns = ns
        self.n = n
        self.as_of_ns = as_of_ns
        self.lines = lines
        self.kind = ev["event_type"].astype(object).to_numpy()

    def has(self, agg: Agg) -> bool:
        joined = agg.rows not in BOUGHT_JOIN or self.lines.holds(agg.column or "")
        return joined and super().has(agg)

    def holds(self, column: str) -> bool:
        return column in self.ev or column == "day"

    def values(self, column: str) -> Any:
        if column == "day":
            return self.ns // _DAY_NS
        if column == "timestamp":
            return self.ns
        values = self.ev[column]
        # Categorical (product, category, brand): counted and ranked by its codes.
        return values if isinstance(values.dtype, pd.CategoricalDtype) else values.to_numpy()

    def selection(self, agg: Agg) -> tuple[np.ndarray | None, np.ndarray]:
        if agg.rows not in BOUGHT_JOIN:
            return super().selection(agg)
        key = (agg.rows, agg.within_days, agg.at, agg.column)
        cache: dict[Any, tuple[np.ndarray | None, np.ndarray]]
        cache = self.__dict__.setdefault("_selections", {})
        if key not in cache:
            views, _ = super().selection(replace(agg, rows="views"))
            assert views is not None  # a filter always gives a mask
            mask = views & ~self._bought(agg.column or "", agg.within_days)
            cache[key] = (mask, self.codes[mask])
        return cache[key]

    def _bought(self, column: str, within_days: int | None) -> np.ndarray:
        """Per event: whether its customer has a purchase line of its ``column`` value
        in the window (as the ``day`` keys: one integer per customer and value)."""
        lines = self.lines
        sale = lines.sale
        if within_days is not None:
            sale = sale & (lines.ns > self.as_of_ns - within_days * _DAY_NS)
        bought_values = lines.tx[column]
        bought_codes = category_codes(bought_values).astype(np.int64)
        sale = sale & (bought_codes >= 0)
        # The two tables code their values apart: events' codes to the lines' ones.
        viewed = self.ev[column]
        to_lines = pd.Index(bought_values.cat.categories).get_indexer(viewed.cat.categories)
        # The code -1 (a missing value) indexes the last entry: -1 again.
        to_lines = np.append(to_lines, -1)
        mapped = to_lines[category_codes(viewed).astype(np.int64)]
        width = np.int64(len(bought_values.cat.categories) + 1)
        bought_keys = pd.unique(lines.codes[sale].astype(np.int64) * width + bought_codes[sale])
        event_keys = self.codes.astype(np.int64) * width + mapped
        return (mapped >= 0) & np.isin(event_keys, bought_keys)

    def rows(self, name: str) -> np.ndarray | None:
        if name == "views":
            return self.kind == "view"
        if name == "add_to_carts":
            return self.kind == "add_to_cart"
        return None


class _Visits(_Rows):
    """One row per visit: its customer, start, seconds on site and last cart.

    ``event_session`` is the visit of each event (read by the affinity table).
    """

    def __init__(
        self,
        columns: dict[str, np.ndarray],
        n: int,
        as_of_ns: int,
        event_session: np.ndarray | None = None,
    ) -> None:
        self.columns = columns
        self.codes = columns["customer"]
        self.n = n
        self.as_of_ns = as_of_ns
        self.event_session = event_session

    def holds(self, column: str) -> bool:
        return column in self.columns

    def values(self, column: str) -> Any:
        return self.columns[column]

    def rows(self, name: str) -> np.ndarray | None:
        return self.columns["abandoned"] if name == "abandoned" else None


# --- kernels -----------------------------------------------------------------------------


def _text_order(index: pd.Index) -> np.ndarray:
    """Positions that sort distinct text ids in code point order, as ``sort_index`` does.

    Ids of at most 16 UTF-8 bytes (nearly all real ones) are packed into one or two
    big-endian integers each and sorted as numbers: several times faster than comparing
    1.5M strings. Other ids are sorted as text.
    """
    if _sorted_arrow_texts(index):  # ids coded by direct addressing come sorted
        return np.arange(len(index))
    keys = _packed_texts(index)
    if keys is None:
        return index.argsort()
    if len(keys) == 1:
        return np.argsort(keys[0], kind="stable")
    return np.lexsort(keys[::-1])  # lexsort's primary key is its last


def _is_identity(order: np.ndarray) -> bool:
    return bool((order == np.arange(len(order))).all())


def _sorted_arrow_texts(index: pd.Index) -> bool:
    """Whether Arrow-backed texts are already in code point (byte) order."""
    if len(index) < 2 or not (
        isinstance(index.dtype, pd.StringDtype) and index.dtype.storage == "pyarrow"
    ):
        return False
    import pyarrow as pa
    import pyarrow.compute as pc

    texts = pa.array(index.array)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.null_count:
        return False
    return bool(pc.all(pc.less_equal(texts[:-1], texts[1:])).as_py())


def _packed_texts(index: pd.Index) -> list[np.ndarray] | None:
    """The UTF-8 bytes of each id as 8-byte big-endian words (zero-padded), or ``None``.

    Byte order is code point order. Zero padding cannot tie two distinct ids unless
    one holds a NUL byte, so those (and ids longer than 16 bytes) return ``None``.
    """
    if not (isinstance(index.dtype, pd.StringDtype) and index.dtype.storage == "pyarrow"):
        return None
    import pyarrow as pa

    texts = pa.array(index.array)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if len(texts) == 0 or texts.null_count or texts.buffers()[2] is None:
        return None
    if pa.types.is_large_string(texts.type):
        offset_type = np.int64
    elif pa.types.is_string(texts.type):
        offset_type = np.int32
    else:
        return None
    offsets = np.frombuffer(texts.buffers()[1], dtype=offset_type)
    offsets = offsets[texts.offset : texts.offset + len(texts) + 1].astype(np.int64)
    data = np.frombuffer(texts.buffers()[2], dtype=np.uint8)
    lengths = np.diff(offsets)
    longest = int(lengths.max())
    if longest > 16 or (data[offsets[0] : offsets[-1]] == 0).any():
        return None
    starts = offsets[:-1]
    last_byte = len(data) - 1
    words = []
    for word in range(1 if longest <= 8 else 2):
        key = np.zeros(len(starts), dtype=np.uint64)
        for position in range(8 * word, 8 * word + 8):
            byte = data[np.minimum(starts + position, last_byte)].astype(np.uint64)
            key = (key << np.uint64(8)) | np.where(position < lengths, byte, np.uint64(0))
        words.append(key)
    return words


def _union(indexes: Iterable[pd.Index]) -> pd.Index:
    values = np.concatenate([np.asarray(index, dtype=object) for index in indexes])
    return pd.Index(pd.unique(values), dtype=object)


def _days(ns: np.ndarray) -> np.ndarray:
    return ns / _DAY_NS


def _group_extreme(codes: np.ndarray, values: np.ndarray, n: int, how: str) -> np.ndarray:
    # Unbuffered ufunc.at is a tight C loop in numpy >= 2: several times faster than a
    # group-by here. Empty groups keep the NaT marker.
    if how == "min":
        out = np.full(n, _NO_EARLIEST, dtype=np.int64)
        np.minimum.at(out, codes, values)
        out[out == _NO_EARLIEST] = _NAT
    else:
        out = np.full(n, _NAT, dtype=np.int64)
        np.maximum.at(out, codes, values)
    return out


def _as_utc_times(ns: np.ndarray) -> pd.api.extensions.ExtensionArray:
    # A view, not a conversion: int64 nanoseconds are what datetime64[ns] stores, and
    # the int64 minimum is NaT.
    return pd.DatetimeIndex(ns.view("datetime64[ns]")).tz_localize("UTC").array


def _orders_with_a_sale(
    order_key: np.ndarray,
    starts: np.ndarray,
    run_customer: np.ndarray,
    only_returns: np.ndarray,
    n: int,
) -> np.ndarray:
    """Per customer, the orders holding at least one sale line.

    ``only_returns`` are the runs whose lines are all returns.
    """
    n_keys = int(order_key.max()) + 1 if len(order_key) else 0
    if one_run_each(keys_used(order_key[starts], n_keys), len(starts)):
        # Every order is exactly one run (its lines are adjacent), so orders are
        # counted as runs, less the few of returns only.
        runs = np.bincount(run_customer, minlength=n)
        return runs - np.bincount(run_customer[only_returns], minlength=n)
    run_has_sale = np.ones(len(starts), dtype=bool)
    run_has_sale[only_returns] = False
    sale_run_order = order_key[starts[run_has_sale]]
    order_customer = np.zeros(n_keys, dtype=run_customer.dtype)
    order_customer[sale_run_order] = run_customer[run_has_sale]
    order_has_sale = np.zeros(n_keys, dtype=bool)
    order_has_sale[sale_run_order] = True
    return np.bincount(order_customer[order_has_sale], minlength=n)


def _purchase_span(
    times_in_runs: bool,
    codes: np.ndarray,
    ns: np.ndarray,
    n: int,
    order_key: np.ndarray,
    starts: np.ndarray,
    run_customer: np.ndarray,
    only_returns: np.ndarray,
    returns: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Each customer's first and last purchase time (NaT for customers without one).

    ``only_returns`` are the runs whose lines are all returns, ``returns`` the return
    lines: neither is a purchase. ``times_in_runs``: whether ``ns`` is constant within
    the runs of ``order_key``.
    """
    if times_in_runs:
        # An order's lines share its time (the usual export): one value per run, the
        # runs of returns only blanked with the neutral value of each reduction.
        run_ns = ns[starts]
        run_ns[only_returns] = _NO_EARLIEST
        first = _group_extreme(run_customer, run_ns, n, "min")
        run_ns[only_returns] = _NAT
        return first, _group_extreme(run_customer, run_ns, n, "max")
    # Line by line: a run may mix sales and returns at different times.
    sale_ns = ns
    if len(returns):
        sale_ns = ns.copy()
        sale_ns[returns] = _NO_EARLIEST
    first = _group_extreme(codes, sale_ns, n, "min")
    if len(returns):
        sale_ns[returns] = _NAT
    return first, _group_extreme(codes, sale_ns, n, "max")


def _distinct_per_customer(codes: np.ndarray, values: pd.Series, n: int) -> np.ndarray:
    value_codes = category_codes(values)
    known = value_codes >= 0
    width = len(values.cat.categories)
    return _distinct_pairs(codes[known], value_codes[known], width, n)


def _distinct_days(codes: np.ndarray, day: np.ndarray, n: int) -> np.ndarray:
    """Per customer, the distinct days among ``day`` (days since 1970) of their rows.

    Rows grouped by customer with their days mostly in order (runs of an export sorted
    by time, put in customer order) are counted by a sort, nearly linear on such keys;
    other rows by hashing.
    """
    if len(day) == 0:
        return np.zeros(n, dtype=np.int64)
    first = int(day.min())
    width = int(day.max()) - first + 1
    keys = np.multiply(codes, width, dtype=np.int64)
    keys += day
    keys -= first
    ascending = keys[1:] >= keys[:-1]
    if ascending.all():  # grouped by customer, days in order: count the changes
        distinct = codes[run_starts(keys)]
    elif ascending.mean() >= 0.9:  # nearly so: timsort is nearly linear on it
        keys.sort(kind="stable")
        distinct = keys[run_starts(keys)] // width
    else:
        return _distinct_pairs(codes, day - first, width, n)
    return np.bincount(distinct, minlength=n).astype(np.int64)


def _distinct_pairs(codes: np.ndarray, values: np.ndarray, width: int, n: int) -> np.ndarray:
    """Per customer code (``0..n-1``), the distinct ``values`` (integers ``0..width-1``)."""
    # One integer per (customer, value) pair, hashed once. 32-bit keys whenever they fit:
    # pandas hashes them about twice as fast as 64-bit ones.
    width = max(width, 1)
    dtype = np.int32 if n * width < 2**31 else np.int64
    keys = codes.astype(dtype) * dtype(width) + values.astype(dtype)
    if len(keys) > 1:
        # Repeats listed together (an order's lines, one day's orders) are dropped before
        # hashing, in one sequential pass.
        keys = keys[run_starts(keys)]
    pairs = pd.unique(keys)
    return np.bincount(pairs // dtype(width), minlength=n).astype(np.int64)


def _weighted_pairs(
    codes: np.ndarray, category: pd.Series, weight: np.ndarray, n: int
) -> dict[str, np.ndarray]:
    """Per customer: the value of ``category`` with most ``weight`` and its share (rows
    without a pair table: events)."""
    cat_codes = category_codes(category).astype(np.int64)
    known = cat_codes >= 0
    width = len(category.cat.categories) + 1
    pair_codes, pairs = pd.factorize(codes[known].astype(np.int64) * width + cat_codes[known])
    spend = np.bincount(pair_codes, weights=weight[known], minlength=len(pairs))
    return _top_of_pairs(pairs // width, pairs % width, spend, category.cat.categories, n)


def _top_of_pairs(
    pair_customer: np.ndarray,
    pair_value: np.ndarray,
    spend: np.ndarray,
    categories: pd.Index,
    n: int,
    total: np.ndarray | None = None,
    *,
    customer_starts: np.ndarray | None = None,
    held: np.ndarray | None = None,
) -> dict[str, np.ndarray]:
    """Per customer: the value of their pairs with most ``spend``, and its share of
    ``total`` (default: the sum of their pairs' spend).

    ``customer_starts``: each customer's pairs are adjacent (a pair table), starting
    there. ``held``: the pairs that count (default: all); a customer without one has
    no top value.
    """
    if total is None:
        total = np.bincount(pair_customer, weights=spend, minlength=n)
    # Most spend first; on equal spend the alphabetically first value (codes of a
    # categorical follow its sorted categories only if sorted, so rank the names).
    # Grouped maxima and minima, not a sort of the pairs: linear in the pairs.
    names = np.asarray(categories, dtype=object)
    by_rank = np.argsort(names.astype(str))
    name_rank = np.empty(len(by_rank), dtype=np.int64)
    name_rank[by_rank] = np.arange(len(by_rank))
    most = np.full(n, -np.inf)
    no_rank = len(names)
    first_rank = np.full(n, no_rank, dtype=np.int64)
    if held is not None:
        # In place of dropping them: a pair that does not count never leads.
        np.putmask(spend, ~held, -np.inf)
    if customer_starts is not None and len(spend):
        # Pairs listed customer by customer (a pair table): sequential reductions.
        owners = pair_customer[customer_starts]
        most[owners] = np.maximum.reduceat(spend, customer_starts)
        leading = spend == most[pair_customer]
        if held is not None:
            leading &= held
        ranks = np.where(leading, name_rank[pair_value], no_rank)
        first_rank[owners] = np.minimum.reduceat(ranks, customer_starts)
    else:
        np.maximum.at(most, pair_customer, spend)
        leading = spend == most[pair_customer]
        if held is not None:
            leading &= held
        np.minimum.at(first_rank, pair_customer[leading], name_rank[pair_value[leading]])
    has = first_rank < no_rank
    top = np.full(n, None, dtype=object)
    top[has] = names[by_rank[first_rank[has]]]
    top_spend = np.where(has, most, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(total > 0, top_spend / total, np.nan)
    return {"top": top, "share": share}


def _latest_values(codes: np.ndarray, values: pd.Series, times: np.ndarray, n: int) -> np.ndarray:
    """Per customer, the value of their latest row where it is known (ties: the
    alphabetically first value); ``None`` without such a row."""
    value_codes = category_codes(values).astype(np.int64)
    known = value_codes >= 0
    names = np.asarray(values.cat.categories, dtype=object)
    name_rank = np.argsort(np.argsort(names.astype(str)))
    customer, value, ns = codes[known], value_codes[known], np.asarray(times)[known]
    # Latest first, then the alphabetically first value; one row per customer.
    order = np.lexsort((name_rank[value], -ns, customer))
    out = np.full(n, None, dtype=object)
    if len(order):
        first = np.r_[True, customer[order][1:] != customer[order][:-1]]
        winners = order[first]
        out[customer[winners]] = names[value[winners]]
    return out


def _visits(events: _Events, lines: _Lines, *, abandon_ns: int, gap_ns: int) -> _Visits:
    """The visits table: sessions from ids or time gaps, and which carts were abandoned."""
    ev, codes, ns = events.ev, events.codes, events.ns
    is_cart = events.kind == "add_to_cart"
    is_purchase = events.kind == "purchase"
    sessions = _sessions(ev, codes, ns, gap_ns)
    session_of = sessions["session_of_event"]
    n_sessions = sessions["n"]
    s_customer = np.zeros(n_sessions, dtype=np.int64)
    s_customer[session_of] = codes
    s_start = _group_extreme(session_of, ns, n_sessions, "min")
    if "duration_s" in ev:
        seconds = np.nan_to_num(ev["duration_s"].to_numpy(dtype=float))
        s_seconds = np.bincount(session_of, weights=seconds, minlength=n_sessions)
    else:
        s_end = _group_extreme(session_of, ns, n_sessions, "max")
        s_seconds = (s_end - s_start) / 1e9
    s_cart = _group_extreme(session_of[is_cart], ns[is_cart], n_sessions, "max")
    has_cart = s_cart != _NAT
    sale = lines.sale
    all_purchases = pd.DataFrame(
        {
            "customer": np.concatenate([lines.codes[sale], codes[is_purchase]]),
            "ts": np.concatenate([lines.ns[sale], ns[is_purchase]]),
        }
    )
    abandoned = has_cart & _no_purchase_after(
        s_customer, s_cart, all_purchases, abandon_ns, events.as_of_ns
    )
    columns = {
        "customer": s_customer,
        "start": s_start,
        "seconds": s_seconds,
        "last_cart": s_cart,
        "abandoned": abandoned,
    }
    return _Visits(columns, events.n, events.as_of_ns, session_of)


def _sessions(ev: pd.DataFrame, codes: np.ndarray, ns: np.ndarray, gap_ns: int) -> dict[str, Any]:
    if "session_id" in ev:
        session_codes = category_codes(ev["session_id"]).astype(np.int64)
        width = len(ev["session_id"].cat.categories) + 1
        # Events without a session id form one visit per customer and day.
        fallback = width + ns // _DAY_NS
        key = np.where(session_codes >= 0, session_codes, fallback)
        labels, uniques = pd.factorize(pd.MultiIndex.from_arrays([codes, key]))
        return {"session_of_event": labels.astype(np.int64), "n": len(uniques)}
    order = np.lexsort((ns, codes))
    sorted_codes = codes[order]
    sorted_ns = ns[order]
    new = np.ones(len(order), dtype=bool)
    if len(order) > 1:
        new[1:] = (sorted_codes[1:] != sorted_codes[:-1]) | (np.diff(sorted_ns) > gap_ns)
    sorted_labels = np.cumsum(new) - 1
    labels = np.empty(len(order), dtype=np.int64)
    labels[order] = sorted_labels
    return {"session_of_event": labels, "n": int(new.sum())}


def _no_purchase_after(
    customer: np.ndarray,
    cart_ns: np.ndarray,
    purchases: pd.DataFrame,
    abandon_ns: int,
    as_of_ns: int,
) -> np.ndarray:
    """For each session's last cart time: no purchase within the window, and decidable."""
    carts = pd.DataFrame({"customer": customer, "ts": cart_ns, "row": np.arange(len(customer))})
    carts = carts[carts["ts"] != _NAT].sort_values("ts", kind="stable")
    purchases = purchases.sort_values("ts", kind="stable").rename(columns={"ts": "bought"})
    purchases["bought_ts"] = purchases["bought"]
    matched = pd.merge_asof(
        carts,
        purchases[["customer", "bought", "bought_ts"]],
        left_on="ts",
        right_on="bought",
        by="customer",
        direction="forward",
        allow_exact_matches=True,
    )
    next_purchase = matched["bought_ts"].to_numpy(dtype=float)
    cart_time = matched["ts"].to_numpy()
    no_purchase = np.isnan(next_purchase) | (next_purchase - cart_time > abandon_ns)
    decidable = cart_time + abandon_ns <= as_of_ns
    out = np.zeros(len(customer), dtype=bool)
    out[matched["row"].to_numpy()] = no_purchase & decidable
    return out


def _profile_features(
    profiles: pd.DataFrame, codes: np.ndarray, n: int, as_of: pd.Timestamp
) -> dict[str, Any]:
    columns: dict[str, Any] = {}

    def spread(values: Any, fill: Any, dtype: Any = object) -> np.ndarray:
        out = np.full(n, fill, dtype=dtype)
        out[codes] = np.asarray(values, dtype=dtype)
        return out

    age = None
    if "birth_date" in profiles:
        born = profiles["birth_date"]
        years = as_of.year - born.dt.year
        before_birthday = (as_of.month < born.dt.month) | (
            (as_of.month == born.dt.month) & (as_of.day < born.dt.day)
        )
        age = (years - before_birthday.astype(float)).astype(float)
    if "age" in profiles:
        given = profiles["age"].astype(float)
        age = given if age is None else age.fillna(given)
    if age is not None:
        columns["age"] = spread(age.to_numpy(dtype=float), np.nan, float)
    for name in ("age_band", "gender", "city", "region", "country"):
        if name in profiles:
            columns[name] = spread(profiles[name].astype(object).to_numpy(), None)
    if "signup_date" in profiles:
        signup = to_ns(profiles["signup_date"])
        days = np.where(signup == _NAT, np.nan, _days(as_of.value - signup))
        columns["days_since_signup"] = spread(days, np.nan, float)
    for name in ("consent_email", "consent_sms", "consent_ads"):
        if name in profiles:
            flags = profiles[name].astype("boolean").to_numpy(dtype=object, na_value=None)
            columns[name] = pd.array(spread(flags, None), dtype="boolean")
    canonical = set(Customers.contract.names)
    for name in profiles.columns:
        if name not in canonical and name not in PII_COLUMNS:
            columns[name] = spread(profiles[name].to_numpy(dtype=object), None)
    return columns
