"""The customers contract checked with narwhals expressions, in the caller's engine."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import narwhals as nw
import pandas as pd

from segmentkit._frame._detect import Backend, collect, detect
from segmentkit._frame._time import with_utc
from segmentkit.contracts._customer_columns import extra_columns_of
from segmentkit.contracts._dates import DateOptions
from segmentkit.contracts._native_coerce import (
    Converted,
    as_float,
    as_id,
    as_naive_or_aware_datetime,
    is_missing_id,
)
from segmentkit.contracts._native_tables import NativeCustomers
from segmentkit.contracts._schema import (
    Contract,
    check_timezone,
    map_columns,
    raise_if,
    refuse_empty,
    refuse_missing_ids,
)
from segmentkit.contracts._validation import ValidationReport
from segmentkit.errors import ContractFailure, InvalidParameterError, Reason

__all__ = ["customers_from_native"]

_TRUTHY = ["true", "t", "yes", "y", "1", "1.0", "granted", "opt-in", "optin", "subscribed"]
_FALSY = ["false", "f", "no", "n", "0", "0.0", "denied", "opt-out", "optout", "unsubscribed"]
#: Epoch-microsecond columns kept beside the two dates.
EPOCHS = {"signup_date": "_signup_us", "birth_date": "_birth_us"}


def customers_from_native(
    contract: Contract,
    frame: Any,
    *,
    missing_customer: str,
    duplicates: str,
    extra_columns: Sequence[str] | str,
    timezone: str,
    policy_keys: list[str],
    columns: Mapping[str, str],
    dates: DateOptions | None = None,
) -> NativeCustomers:
    """Validate customer profiles held by polars, pyarrow, DuckDB, PySpark or Dask.

    Parameters are those of :meth:`Customers.from_frame`; see there.

    Returns
    -------
    NativeCustomers
        Validated profiles that stay in the caller's engine, with a complete report.
    """
    # The option policies were checked by Customers.from_frame.
    table = contract.table
    check_timezone(timezone)
    wrapped, backend = detect(frame, table)
    if duplicates != "raise":
        msg = (
            f"duplicates={duplicates!r} keeps one row by its position, and {backend} frames "
            "have no row order segmentkit can rely on. Deduplicate the profiles in your "
            "engine first (e.g. the latest row per customer_id by an update time), then "
            "validate with duplicates='raise'."
        )
        raise InvalidParameterError(msg)
    raw = wrapped.lazy()
    schema = raw.collect_schema()
    empty = pd.DataFrame(columns=list(schema.names()))
    mapped, failures = map_columns(empty, contract, columns, extra_keys=policy_keys)
    raise_if(failures, table)
    extras = extra_columns_of(empty, dict(columns), extra_columns)
    selected = {key: columns.get(key, key) for key in mapped.columns}

    converted: dict[str, Converted] = {}
    for key, source in selected.items():
        dtype = schema[source]
        kind = contract.spec(key).kind
        if kind in {"id", "category"}:
            converted[key] = as_id(source, dtype, backend)
        elif kind == "string":
            values = nw.col(source)
            converted[key] = Converted(values if dtype == nw.String else values.cast(nw.String))
        elif kind == "bool":
            converted[key] = _as_bool(source, dtype)
            if backend.name == "dask" and dtype != nw.Boolean:
                # Dask's when/otherwise builds numpy bools, where a missing flag would
                # become False; pandas' nullable booleans keep it missing.
                raw = _dask_flags(raw, source, f"_flag_{key}")
                converted[key] = Converted(nw.col(f"_flag_{key}"), converted[key].bad)
        elif kind == "float":
            number = as_float(source, dtype)
            if number is None:
                failures.append(_refused(key, source, dtype, backend, "a number"))
            else:
                converted[key] = number
        else:
            sample = _first_text(raw, source) if dtype == nw.String else None
            time = as_naive_or_aware_datetime(
                source, dtype, sample, dates=dates, key=key, table=table
            )
            if time is None:
                failures.append(_refused(key, source, dtype, backend, "a date"))
            else:
                converted[key] = time
    raise_if(failures, table)

    exprs = [c.expr.alias(key) for key, c in converted.items()]
    exprs += [nw.col(name) for name in extras]
    exprs += [
        c.bad.cast(nw.Int64).alias(f"_bad_{key}")
        for key, c in converted.items()
        if c.bad is not None
    ]
    prepared = raw.select(exprs)
    for key, epoch in EPOCHS.items():
        if key in converted:
            prepared = with_utc(
                prepared,
                key,
                naive=converted[key].naive,
                timezone=timezone,
                backend=backend,
                epoch=epoch,
            )
    implausible = nw.lit(False)
    if "age" in converted:
        implausible = ((nw.col("age") < 0) | (nw.col("age") > 120)).fill_null(False)
        prepared = prepared.with_columns(
            _implausible=implausible.cast(nw.Int64),
            age=nw.when(~implausible).then(nw.col("age")),
        )
    prepared = prepared.with_columns(_missing=is_missing_id("customer_id"))
    kept = prepared.filter(~nw.col("_missing"))
    counts = _count(prepared, kept, converted)
    _raise_failures(table, counts, converted, raw, selected, kept, missing_customer)
    notes = []
    if counts.get("_implausible"):
        notes.append(f"{counts['_implausible']} ages outside 0-120 set to missing")
    excluded = {"missing_customer_id": counts["missing"]}
    report = ValidationReport(table, counts["rows"], counts["rows"] - counts["missing"],
                              excluded, notes)  # fmt: skip
    names = [*converted, *extras, *(EPOCHS[k] for k in EPOCHS if k in converted)]
    return NativeCustomers(kept.select(names), report, backend=backend)


def _as_bool(source: str, dtype: Any) -> Converted:
    values = nw.col(source)
    if dtype == nw.Boolean:
        return Converted(values)
    text = (values if dtype == nw.String else values.cast(nw.String)).str.strip_chars()
    text = text.str.to_lowercase()
    truthy = text.is_in(_TRUTHY).fill_null(False)
    falsy = text.is_in(_FALSY).fill_null(False)
    flag = nw.when(truthy).then(nw.lit(True)).when(falsy).then(nw.lit(False))
    bad = (~values.is_null() & (text != "") & ~truthy & ~falsy).fill_null(False)
    return Converted(flag.otherwise(nw.lit(None, nw.Boolean)), bad)


def _dask_flags(raw: nw.LazyFrame[Any], source: str, name: str) -> nw.LazyFrame[Any]:
    df = nw.to_native(raw)

    def parse(part: Any) -> Any:
        text = part.astype("string").str.strip().str.lower()
        flags = pd.Series(pd.NA, index=part.index, dtype="boolean")
        flags[text.isin(_TRUTHY).fillna(False).to_numpy(dtype=bool)] = True
        flags[text.isin(_FALSY).fillna(False).to_numpy(dtype=bool)] = False
        return flags

    flags = df[source].map_partitions(parse, meta=(name, "boolean"))
    return nw.from_native(df.assign(**{name: flags}))


def _first_text(raw: nw.LazyFrame[Any], source: str) -> str | None:
    first = raw.select(nw.col(source)).filter(nw.col(source).str.strip_chars() != "")
    head = collect(first.head(1))
    return str(head.item(0, 0)) if len(head) else None


def _count(
    prepared: nw.LazyFrame[Any], kept: nw.LazyFrame[Any], converted: Mapping[str, Converted]
) -> dict[str, int]:
    """Rows, missing ids, refused values, implausible ages and repeated ids: one query."""
    exprs = [nw.len().alias("rows"), nw.col("_missing").cast(nw.Int64).sum().alias("missing")]
    exprs += [
        nw.col(f"_bad_{key}").sum().alias(f"_bad_{key}")
        for key, c in converted.items()
        if c.bad is not None
    ]
    if "age" in converted:
        exprs.append(nw.col("_implausible").sum().alias("_implausible"))
    repeated = (
        kept.group_by("customer_id")
        .agg(nw.len().alias("_n"))
        .filter(nw.col("_n") > 1)
        .select(nw.len().alias("repeated_ids"), nw.col("_n").sum().alias("repeated_rows"))
    )
    row = collect(prepared.select(exprs).join(repeated, how="cross")).rows(named=True)[0]
    return {k: int(v or 0) for k, v in row.items()}


def _raise_failures(
    table: str,
    counts: Mapping[str, int],
    converted: Mapping[str, Converted],
    raw: nw.LazyFrame[Any],
    selected: Mapping[str, str],
    kept: nw.LazyFrame[Any],
    missing_customer: str,
) -> None:
    refuse_empty(counts["rows"], table)
    failures = []
    for key, c in converted.items():
        if c.bad is None or not counts[f"_bad_{key}"]:
            continue
        head = collect(raw.filter(c.bad).select(nw.col(selected[key])).head(5))
        failures.append(
            ContractFailure(
                column=key,
                check="boolean" if key.startswith("consent") else "parse_timestamp",
                reason=Reason.WRONG_DTYPE,
                message=(
                    f"Column {key!r} of {table} has {counts[f'_bad_{key}']} values that "
                    "cannot be read. Use true/false, yes/no, 1/0 or granted/denied for "
                    "flags, and ISO dates (one format per column) for dates."
                ),
                failure_cases=[(None, v) for v in head.get_column(selected[key]).to_list()],
                n_failed=counts[f"_bad_{key}"],
            )
        )
    raise_if(failures, table)
    refuse_missing_ids(counts["missing"], counts["rows"], missing_customer, table)
    if counts["repeated_ids"]:
        ids = collect(
            kept.group_by("customer_id")
            .agg(nw.len().alias("_n"))
            .filter(nw.col("_n") > 1)
            .select("customer_id")
            .head(5)
        )
        failure = ContractFailure(
            column="customer_id",
            check="unique",
            reason=Reason.DUPLICATES,
            message=(
                f"{counts['repeated_ids']} customer ids appear on more than one row "
                f"({counts['repeated_rows']} rows). Profiles must be one row per customer: "
                "deduplicate them in your engine first."
            ),
            failure_cases=[(None, v) for v in ids.get_column("customer_id").to_list()],
            n_failed=counts["repeated_rows"],
        )
        raise_if([failure], table)


def _refused(key: str, source: str, dtype: Any, backend: Backend, what: str) -> ContractFailure:
    return ContractFailure(
        column=key,
        check="dtype",
        reason=Reason.WRONG_DTYPE,
        message=(
            f"Column {source!r} (mapped to {key!r}) of customers is {dtype} in the "
            f"{backend.name} data, which this engine cannot read as {what}. Cast it in your "
            "engine first, or load the profiles through pandas."
        ),
    )
