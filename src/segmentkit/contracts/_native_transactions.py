"""The transactions contract checked with narwhals expressions, in the caller's engine.

The same mapping, coercions and policies as the pandas path, and a report with the
same counts. Rows are never pulled to Python: one aggregation query returns every
count, and only a failing check fetches a few example values.
"""

from __future__ import annotations

import contextlib
import dataclasses
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import narwhals as nw
import pandas as pd

from segmentkit._frame._detect import Backend, collect, detect, distinct_rows, materialised
from segmentkit._frame._time import EPOCH_US, POLARS_NON_EXISTENT, with_utc
from segmentkit.contracts._attributes import blank_is_missing
from segmentkit.contracts._dates import DateOptions
from segmentkit.contracts._native_coerce import (
    Converted,
    as_float,
    as_id,
    as_naive_or_aware_datetime,
    is_missing_id,
)
from segmentkit.contracts._native_tables import NativeTransactions
from segmentkit.contracts._policies import (
    FUTURE_REASON,
    INVALID_REASONS,
    PRODUCT_REASON,
    OrdersFrom,
    boolean_failure,
    check_rates,
    exact_products,
    future_cutoff,
    future_message,
    invalid_value_failure,
    product_patterns,
    product_regex,
)
from segmentkit.contracts._schema import (
    Contract,
    check_timezone,
    map_columns,
    raise_if,
    refuse_empty,
    refuse_missing_ids,
    used_by_name,
)
from segmentkit.contracts._validation import ValidationReport
from segmentkit.errors import ContractFailure, InvalidParameterError, Reason, SegmentkitWarning

__all__ = ["transactions_from_native"]

_N_EXAMPLES = 5

# Stage of each row: 0 kept, else the first reason that excludes it (pandas order).
_STAGES = {
    1: "missing_customer_id",
    2: "missing_timestamp",
    3: "missing_amount",
    4: PRODUCT_REASON,
    5: FUTURE_REASON,
    6: INVALID_REASONS["amount"],
    7: INVALID_REASONS["unit_price"],
    8: INVALID_REASONS["discount"],
    9: "zero_amount",
    10: "return_or_cancellation",
}
_PRODUCT, _FUTURE, _RETURN = 4, 5, 10
#: The stage of each column's impossible values.
_INVALID = {"amount": 6, "unit_price": 7, "discount": 8}


def transactions_from_native(
    contract: Contract,
    frame: Any,
    *,
    returns: str,
    cancellation_prefix: str | None,
    missing_customer: str,
    zero_amount: str,
    duplicates: str,
    orders_from: OrdersFrom,
    timezone: str,
    rates: Mapping[str, float] | None,
    base_currency: str | None,
    exclude_products: Any,
    future: str,
    max_timestamp: Any,
    invalid_values: str,
    policy_keys: list[str],
    columns: Mapping[str, str],
    dates: DateOptions | None = None,
) -> NativeTransactions:
    """Validate order lines held by polars, pyarrow, DuckDB, PySpark or Dask.

    Parameters are those of :meth:`Transactions.from_frame`; see there.

    Returns
    -------
    NativeTransactions
        Validated lines that stay in the caller's engine, with a complete report.
    """
    # The option policies were checked by Transactions.from_frame.
    table = contract.table
    if (rates is None) != (base_currency is None):
        msg = "Pass 'rates' and 'base_currency' together (or neither)."
        raise InvalidParameterError(msg)
    if rates is not None:
        check_rates(rates)
    patterns = product_patterns(exclude_products)
    cutoff, cutoff_name = future_cutoff(max_timestamp)
    check_timezone(timezone)
    wrapped, backend = detect(frame, table)
    raw = wrapped.lazy()
    schema = raw.collect_schema()
    # The pandas mapping check on an empty frame with the same column names: one set
    # of messages for every engine.
    empty = pd.DataFrame(columns=list(schema.names()))
    mapped, failures = map_columns(empty, contract, columns, extra_keys=policy_keys)
    raise_if(failures, table)
    selected = {key: columns.get(key, key) for key in mapped.columns}
    booleans = [
        boolean_failure(key, source, table)
        for key, source in selected.items()
        if contract.spec(key).kind == "float" and schema[source] == nw.Boolean
    ]
    raise_if(booleans, table)
    if patterns and "product_id" not in selected:
        msg = (
            "'exclude_products' needs a product_id column: map product_id='<column>' "
            "(on the command line: --map product_id=<column>)."
        )
        raise InvalidParameterError(msg)
    if cancellation_prefix is not None and "order_id" not in selected:
        msg = "'cancellation_prefix' needs an order_id column: map order_id='...'."
        raise InvalidParameterError(msg)
    if rates is not None and "currency" not in selected:
        msg = "'rates' were given but no currency column is mapped: map currency='<column>'."
        raise InvalidParameterError(msg)

    plan = _Plan(contract, raw, schema, selected, backend, timezone, dates)
    plan.prepare_amount()

    every_line = plan.prepared(
        raw,
        cancellation_prefix=cancellation_prefix,
        zero_amount=zero_amount,
        returns=returns,
        rates=rates,
        base_currency=base_currency,
        patterns=patterns,
        cutoff_us=None if future == "keep" else cutoff.value // 1000,
    )
    # Computed once: the counts below and every group-by of the features read it.
    with _skipped_times_explained(timezone):
        prepared = materialised(every_line, backend)
    # Duplicates are judged on the mapped columns as read (stripped ids, parsed times),
    # as on the pandas path. Identical lines share every exclusion reason, so the repeats
    # among kept lines are kept lines minus distinct ones.
    distinct = distinct_rows(prepared.filter(nw.col("_stage") == 0), list(selected))
    counts = _count(prepared, distinct, plan, rates is not None, "currency" in selected)
    rows_read = counts["rows"]
    _raise_failures(plan, counts, raw, prepared, missing_customer, rates, base_currency)
    _refuse_policies(counts, prepared, future, cutoff_name, invalid_values, table)

    excluded = {
        reason: counts[f"stage_{stage}"]
        for stage, reason in _STAGES.items()
        if counts.get(f"stage_{stage}")
    }
    if returns == "separate" and "return_or_cancellation" in excluded:
        excluded["return_kept_separately"] = excluded.pop("return_or_cancellation")
    if counts.get(f"stage_{_FUTURE}"):
        message = future_message(counts[f"stage_{_FUTURE}"], cutoff_name, future)
        warnings.warn(message, SegmentkitWarning, stacklevel=3)
    rows_kept = counts["stage_0"]
    repeats = rows_kept - counts["kept_distinct"]
    flagged: dict[str, int] = {}
    notes: list[str] = used_by_name(list(selected), columns)
    if duplicates == "drop":
        excluded["duplicate_line"] = repeats
        rows_kept = counts["kept_distinct"]
    elif repeats:
        flagged["duplicate_line"] = repeats
    if rates:
        notes.append(f"amounts converted to {base_currency} with the given rates")
    amounts = {PRODUCT_REASON: counts["product_amount"]} if patterns else {}
    report = ValidationReport(table, rows_read, rows_kept, excluded, notes, amounts, flagged)
    keep = [*plan.output_columns, "is_return", EPOCH_US]
    kept = prepared.filter(nw.col("_stage") == 0).select(keep)
    if duplicates == "drop":
        # Every kept column follows from the mapped ones: one row per distinct line.
        kept = distinct_rows(kept, keep)
    # The return stage holds returns only with returns='separate' or 'exclude'; -1
    # matches nothing.
    set_aside = prepared.filter(nw.col("_stage") == (_RETURN if returns == "separate" else -1))
    first_us, last_us = counts["first_us"], counts["last_us"]
    return NativeTransactions(
        kept,
        report,
        set_aside.select(keep),
        backend=backend,
        orders_from=orders_from,
        # No kept line: None, or NaN on Dask.
        time_range=None if pd.isna(first_us) else (int(first_us), int(last_us)),
    )


class _Plan:
    """The column expressions for one input schema, applied to the raw frame on demand."""

    def __init__(
        self,
        contract: Contract,
        raw: nw.LazyFrame[Any],
        schema: Any,
        selected: Mapping[str, str],
        backend: Backend,
        timezone: str,
        dates: DateOptions | None = None,
    ) -> None:
        self.contract = contract
        self.selected = dict(selected)
        self.backend = backend
        self.timezone = timezone
        self.converted: dict[str, Converted] = {}
        failures: list[ContractFailure] = []
        blank = blank_is_missing(contract)
        for key, source in self.selected.items():
            dtype = schema[source]
            kind = contract.spec(key).kind
            if kind in {"id", "category"}:
                converted_id = as_id(source, dtype, backend)
                if key in blank:  # after trimming, "" is no value
                    text = converted_id.expr
                    converted_id = dataclasses.replace(
                        converted_id, expr=nw.when(text != "").then(text)
                    )
                self.converted[key] = converted_id
            elif kind == "float":
                converted = as_float(source, dtype)
                if converted is None:
                    failures.append(_text_number(key, source, dtype, backend, contract.table))
                else:
                    self.converted[key] = converted
            else:
                sample = None
                if dtype == nw.String:
                    # One value fixes the text format; every other value must follow it.
                    first = raw.select(nw.col(source)).filter(
                        nw.col(source).str.strip_chars() != ""
                    )
                    head = collect(first.head(1))
                    sample = str(head.item(0, 0)) if len(head) else None
                converted_time = as_naive_or_aware_datetime(
                    source, dtype, sample, dates=dates, key=key, table=contract.table
                )
                if converted_time is None:
                    failures.append(_not_a_time(key, source, dtype, backend, contract.table))
                else:
                    self.converted[key] = converted_time
        raise_if(failures, contract.table)

    def prepare_amount(self) -> None:
        if "amount" in self.converted:
            return
        if "quantity" in self.converted and "unit_price" in self.converted:
            return
        failure = ContractFailure(
            column="amount",
            check="required_column",
            reason=Reason.MISSING_COLUMN,
            message=(
                "The transactions need a value per line: map amount='<column>', or both "
                "quantity='<column>' and unit_price='<column>'."
            ),
        )
        raise_if([failure], self.contract.table)

    @property
    def output_columns(self) -> list[str]:
        names = list(self.converted)
        # Derived amounts come last, as on the pandas path.
        return names if "amount" in names else [*names, "amount"]

    def prepared(
        self,
        raw: nw.LazyFrame[Any],
        *,
        cancellation_prefix: str | None,
        zero_amount: str,
        returns: str,
        rates: Mapping[str, float] | None,
        base_currency: str | None,
        patterns: tuple[str, ...],
        cutoff_us: int | None,
    ) -> nw.LazyFrame[Any]:
        """Canonical columns, flags of refused values and each row's ``_stage``."""
        exprs = [c.expr.alias(key) for key, c in self.converted.items()]
        exprs += [
            c.bad.cast(nw.Int64).alias(f"_bad_{key}")
            for key, c in self.converted.items()
            if c.bad is not None
        ]
        frame = raw.select(exprs)
        if "amount" not in self.converted:
            frame = frame.with_columns(amount=nw.col("quantity") * nw.col("unit_price"))
        time = self.converted["timestamp"]
        frame = with_utc(
            frame, "timestamp", naive=time.naive, timezone=self.timezone, backend=self.backend
        )
        if rates is not None and base_currency is not None:
            frame = _convert_currency(frame, rates, base_currency)
        amount = nw.col("amount")
        is_return = (amount < 0).fill_null(False)
        cancelled = nw.lit(False)
        if cancellation_prefix is not None:
            cancelled = nw.col("order_id").str.starts_with(cancellation_prefix).fill_null(False)
        # Judged on the amounts as read, before cancellations are made negative.
        invalid = self._invalid(cancelled)
        if cancellation_prefix is not None:
            frame = frame.with_columns(
                amount=nw.when(cancelled).then(-amount.abs()).otherwise(amount),
                is_return=is_return | cancelled,
            )
        else:
            frame = frame.with_columns(is_return=is_return)
        stage = (
            nw.when(is_missing_id("customer_id"))
            .then(nw.lit(1))
            .when(nw.col("timestamp").is_null())
            .then(nw.lit(2))
            .when(nw.col("amount").is_null())
            .then(nw.lit(3))
        )
        if patterns:
            stage = stage.when(_product_matches(patterns)).then(nw.lit(_PRODUCT))
        if cutoff_us is not None:
            stage = stage.when(nw.col(EPOCH_US) > cutoff_us).then(nw.lit(_FUTURE))
        for column, bad in invalid.items():
            stage = stage.when(bad).then(nw.lit(_INVALID[column]))
        if zero_amount == "exclude":
            stage = stage.when(nw.col("amount") == 0).then(nw.lit(9))
        if returns != "net":
            stage = stage.when(nw.col("is_return")).then(nw.lit(_RETURN))
        return frame.with_columns(_stage=stage.otherwise(nw.lit(0)).cast(nw.Int64))

    def _invalid(self, cancelled: nw.Expr) -> dict[str, nw.Expr]:
        """Per column, the lines whose value cannot be right (as on the pandas path)."""
        amount = nw.col("amount")
        bad = {"amount": (~amount.is_finite() & ~amount.is_null()).fill_null(False)}
        if "unit_price" in self.converted:
            # A negative price is allowed on a return whose given amount says so.
            returning = cancelled
            if "amount" in self.converted:
                returning = returning | (amount < 0).fill_null(False)
            negative = (nw.col("unit_price") < 0).fill_null(False)
            bad["unit_price"] = negative & ~returning
        if "discount" in self.converted:
            bad["discount"] = (nw.col("discount") < 0).fill_null(False)
        return bad


def _convert_currency(
    frame: nw.LazyFrame[Any], rates: Mapping[str, float], base_currency: str
) -> nw.LazyFrame[Any]:
    full = {base_currency: 1.0, **{str(k): float(v) for k, v in rates.items()}}
    currency = nw.col("currency")
    rate: Any = None
    for name, value in full.items():
        rate = (nw.when if rate is None else rate.when)(currency == name).then(nw.lit(value))
    frame = frame.with_columns(_rate=rate.otherwise(nw.lit(None, nw.Float64)))
    scaled = [
        (nw.col(name) * nw.col("_rate")).alias(name)
        for name in ("amount", "discount", "unit_price")
        if name in frame.collect_schema().names()
    ]
    return frame.with_columns(
        *scaled,
        _bad_rate=nw.col("_rate").is_null().cast(nw.Int64),
        currency=nw.lit(base_currency, nw.String),
    ).drop("_rate")


#: Counts that are times (None when no line is kept), not numbers of rows.
_TIMES = ("first_us", "last_us")
#: Sums of values, not numbers of rows.
_SUMS = ("product_amount",)


def _count(
    prepared: nw.LazyFrame[Any],
    distinct_kept: nw.LazyFrame[Any],
    plan: _Plan,
    converted: bool,
    has_currency: bool,
) -> dict[str, int | Any]:
    """Every count of the report and of the checks, in one query returning one row."""
    stage = nw.col("_stage")
    exprs = [nw.len().alias("rows")]
    exprs += [
        (stage == s).cast(nw.Int64).sum().alias(f"stage_{s}") for s in range(len(_STAGES) + 1)
    ]
    product = nw.when(stage == _PRODUCT).then(nw.col("amount"))
    exprs.append(product.sum().alias("product_amount"))
    # The kept lines' time range, in the same pass: features need it for the default
    # as_of, and would otherwise run every validation step once more to find it.
    kept_time = nw.when(stage == 0).then(nw.col(EPOCH_US))
    exprs += [kept_time.min().alias("first_us"), kept_time.max().alias("last_us")]
    exprs += [
        nw.col(f"_bad_{key}").sum().alias(f"_bad_{key}")
        for key, c in plan.converted.items()
        if c.bad is not None
    ]
    if converted:
        exprs.append(nw.col("_bad_rate").sum().alias("_bad_rate"))
    elif has_currency:
        exprs += [
            nw.col("currency").min().alias("currency_min"),
            nw.col("currency").max().alias("currency_max"),
        ]
    query = prepared.select(exprs)
    distinct = distinct_kept.select(nw.len().alias("kept_distinct"))
    query = query.join(distinct, how="cross")
    with _skipped_times_explained(plan.timezone):
        row = collect(query).rows(named=True)[0]
    return {
        k: (
            float(v or 0.0)
            if k in _SUMS
            else v
            if k.startswith("currency") or k in _TIMES
            else int(v or 0)
        )
        for k, v in row.items()
    }


@contextlib.contextmanager
def _skipped_times_explained(timezone: str) -> Iterator[None]:
    """polars' error for wall-clock times a daylight-saving change skips, in words."""
    try:
        yield
    except Exception as error:  # the engine's own error type
        if POLARS_NON_EXISTENT not in str(error):
            raise
        msg = (
            f"Some timestamps do not exist in time zone {timezone!r} (a daylight-saving "
            "change skips them), and polars cannot move them forward as pandas does. Pass "
            "the data through pandas, or convert the timestamps to UTC in polars first "
            "(dt.replace_time_zone(..., non_existent='null') marks them missing)."
        )
        raise InvalidParameterError(msg) from error


def _raise_failures(
    plan: _Plan,
    counts: Mapping[str, Any],
    raw: nw.LazyFrame[Any],
    prepared: nw.LazyFrame[Any],
    missing_customer: str,
    rates: Mapping[str, float] | None,
    base_currency: str | None,
) -> None:
    table = plan.contract.table
    refuse_empty(counts["rows"], table)
    failures = bad_value_failures(plan, raw, counts)
    if rates is not None and counts.get("_bad_rate"):
        failures.append(_unknown_rates(prepared, counts["_bad_rate"], rates, base_currency))
    if counts.get("currency_min") is not None and counts["currency_min"] != counts.get(
        "currency_max"
    ):
        failures.append(_mixed_currencies(prepared))
    raise_if(failures, table)
    refuse_missing_ids(counts["stage_1"], counts["rows"], missing_customer, table)


def _refuse_policies(
    counts: Mapping[str, Any],
    prepared: nw.LazyFrame[Any],
    future: str,
    cutoff_name: str,
    invalid_values: str,
    table: str,
) -> None:
    """Raise for lines after the cutoff or with impossible values, when asked to."""
    failures = []
    n_future = counts[f"stage_{_FUTURE}"]
    if future == "raise" and n_future:
        failures.append(
            ContractFailure(
                column="timestamp",
                check=FUTURE_REASON,
                reason=Reason.OUT_OF_RANGE,
                message=future_message(n_future, cutoff_name, future),
                failure_cases=_examples(prepared, nw.col("_stage") == _FUTURE, "timestamp"),
                n_failed=n_future,
            )
        )
    if invalid_values == "raise":
        for column, stage in _INVALID.items():
            n_bad = counts[f"stage_{stage}"]
            if n_bad:
                cases = _examples(prepared, nw.col("_stage") == stage, column)
                failures.append(invalid_value_failure(column, n_bad, cases, table))
    raise_if(failures, table)


def _product_matches(patterns: tuple[str, ...]) -> nw.Expr:
    product = nw.col("product_id")
    match = product.is_in(exact_products(patterns))
    regex = product_regex(patterns)
    if regex is not None:
        match = match | product.str.contains(regex)
    return match.fill_null(False)


def _examples(frame: nw.LazyFrame[Any], mask: nw.Expr, column: str) -> list[tuple[None, Any]]:
    # Lazy engines have no row positions, so examples carry values only.
    head = collect(frame.filter(mask).select(nw.col(column)).head(_N_EXAMPLES))
    return [(None, value) for value in head.get_column(column).to_list()]


def bad_value_failures(
    plan: _Plan, raw: nw.LazyFrame[Any], counts: Mapping[str, Any]
) -> list[ContractFailure]:
    """One failure per converted column with values that cannot be read."""
    return [
        _bad_values(key, plan, raw, counts[f"_bad_{key}"])
        for key, c in plan.converted.items()
        if c.bad is not None and counts[f"_bad_{key}"]
    ]


def _bad_values(key: str, plan: _Plan, raw: nw.LazyFrame[Any], n_bad: int) -> ContractFailure:
    source = plan.selected[key]
    bad = plan.converted[key].bad
    assert bad is not None
    if plan.contract.spec(key).kind == "float":
        check, problem = "numeric", "non-numeric or infinite values"
        hint = "Hint: clean these rows before loading, or leave them empty."
    else:
        check, problem = "parse_timestamp", "values that are not dates or timestamps"
        hint = (
            "On this engine every text timestamp must have the format of the first one "
            "(ISO 8601: 2024-06-30, 2024-06-30 14:05[:00] or with a 'T'), or the one given "
            "with date_format='...' (command line: --date-format); or parse the column to "
            "a datetime in your engine first."
        )
    return ContractFailure(
        column=key,
        check=check,
        reason=Reason.WRONG_DTYPE,
        message=f"Column {key!r} of {plan.contract.table} has {n_bad} {problem}. {hint}",
        failure_cases=_examples(raw, bad, source),
        n_failed=n_bad,
    )


def _unknown_rates(
    prepared: nw.LazyFrame[Any],
    n_bad: int,
    rates: Mapping[str, float],
    base_currency: str | None,
) -> ContractFailure:
    return ContractFailure(
        column="currency",
        check="known_rate",
        reason=Reason.MIXED_CURRENCIES,
        message=(
            f"{n_bad} rows have a currency with no exchange rate (or no currency); rates "
            f"are given for {sorted(rates)}. Add them to 'rates' (units of {base_currency} "
            "per unit)."
        ),
        n_failed=n_bad,
    )


def _mixed_currencies(prepared: nw.LazyFrame[Any]) -> ContractFailure:
    counts = collect(
        prepared.filter(~nw.col("currency").is_null())
        .group_by("currency")
        .agg(nw.len().alias("n"))
        .sort("n", "currency", descending=[True, False])
    )
    pairs = list(zip(counts["currency"].to_list(), counts["n"].to_list(), strict=True))
    listed = ", ".join(f"{c} ({n} rows)" for c, n in pairs)
    return ContractFailure(
        column="currency",
        check="single_currency",
        reason=Reason.MIXED_CURRENCIES,
        message=(
            f"Column 'currency' mixes {len(pairs)} currencies: {listed}. Amounts in "
            "different currencies cannot be added up. Pass rates={'EUR': 1.08, ...} "
            "and base_currency='USD' to convert them, or filter to one currency."
        ),
        n_failed=sum(n for _, n in pairs[1:]),
    )


def _text_number(
    key: str, source: str, dtype: Any, backend: Backend, table: str
) -> ContractFailure:
    return ContractFailure(
        column=key,
        check="numeric",
        reason=Reason.WRONG_DTYPE,
        message=(
            f"Column {source!r} (mapped to {key!r}) of {table} is {dtype} in the "
            f"{backend.name} data; on this engine numbers must already be numeric. Cast it "
            "in your engine first (after removing currency symbols and thousands "
            "separators), or load it through pandas."
        ),
    )


def _not_a_time(
    key: str, source: str, dtype: Any, backend: Backend, table: str
) -> ContractFailure:
    return ContractFailure(
        column=key,
        check="parse_timestamp",
        reason=Reason.WRONG_DTYPE,
        message=(
            f"Column {source!r} (mapped to {key!r}) of {table} is {dtype} in the "
            f"{backend.name} data, which cannot hold times. Map a datetime, date, ISO text or "
            "YYYYMMDD integer column."
        ),
    )
