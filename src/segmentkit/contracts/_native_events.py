"""The events contract checked with narwhals expressions, in the caller's engine.

The same mapping, coercions, event-type aliases and policies as the pandas
:meth:`Events.from_frame`, and a report with the same counts: one aggregation query
returns every count, and one small group-by lists the event types kept but unused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import narwhals as nw
import pandas as pd

from segmentkit._frame._detect import collect, detect
from segmentkit._frame._time import EPOCH_US, with_utc
from segmentkit.contracts._dates import DateOptions
from segmentkit.contracts._native_coerce import is_missing_id
from segmentkit.contracts._native_tables import NativeEvents
from segmentkit.contracts._native_transactions import _Plan, bad_value_failures
from segmentkit.contracts._schema import (
    Contract,
    check_timezone,
    map_columns,
    raise_if,
    refuse_empty,
    refuse_missing_ids,
)
from segmentkit.contracts._validation import ValidationReport

__all__ = ["events_from_native"]

# Stage of each row: 0 kept, else the first reason that excludes it (pandas order).
_STAGES = {
    1: "missing_customer_id",
    2: "missing_timestamp",
    3: "missing_event_type",
    4: "negative_duration",
}


def events_from_native(
    contract: Contract,
    frame: Any,
    *,
    missing_customer: str,
    event_map: Mapping[str, str] | None,
    timezone: str,
    aliases: Mapping[str, str],
    known_types: tuple[str, ...],
    policy_keys: list[str],
    columns: Mapping[str, str],
    dates: DateOptions | None = None,
) -> NativeEvents:
    """Validate browsing events held by polars, pyarrow, DuckDB, PySpark or Dask.

    Parameters
    ----------
    contract : Contract
        The events contract.
    frame : object
        The caller's frame.
    missing_customer : {'exclude', 'raise'}
        Policy for events without a customer id.
    event_map : dict of str to str or None
        The caller's event names to canonical ones, on top of ``aliases``.
    timezone : str
        Time zone of timestamps that carry none.
    aliases : dict of str to str
        Built-in spellings of the canonical event types.
    known_types : tuple of str
        Event types the features use; others are kept and noted in the report.
    policy_keys : list of str
        Keyword names that are policies, not column mappings.
    columns : dict of str to str
        Canonical names to the frame's column names.
    dates : DateOptions, optional
        How text timestamps are written (``date_format``, ``dayfirst``).

    Returns
    -------
    NativeEvents
        Validated events that stay in the caller's engine, with a complete report.
    """
    # The option policies were checked by Events.from_frame.
    table = contract.table
    check_timezone(timezone)
    wrapped, backend = detect(frame, table)
    raw = wrapped.lazy()
    schema = raw.collect_schema()
    empty = pd.DataFrame(columns=list(schema.names()))
    mapped, failures = map_columns(empty, contract, columns, extra_keys=policy_keys)
    raise_if(failures, table)
    selected = {key: columns.get(key, key) for key in mapped.columns}
    # The transactions plan converts by the contract's column kinds; events have the
    # same kinds (ids, categories, a datetime, a float), so its checks apply unchanged.
    plan = _Plan(contract, raw, schema, selected, backend, timezone, dates)

    exprs = [c.expr.alias(key) for key, c in plan.converted.items()]
    exprs += [
        c.bad.cast(nw.Int64).alias(f"_bad_{key}")
        for key, c in plan.converted.items()
        if c.bad is not None
    ]
    prepared = raw.select(exprs)
    prepared = with_utc(
        prepared,
        "timestamp",
        naive=plan.converted["timestamp"].naive,
        timezone=timezone,
        backend=backend,
    )
    lookup = {**aliases, **{k.strip().lower(): v for k, v in (event_map or {}).items()}}
    missing_type = is_missing_id("event_type")
    prepared = prepared.with_columns(
        event_type=nw.when(~missing_type).then(_canonical_types(lookup))
    )
    stage = (
        nw.when(is_missing_id("customer_id"))
        .then(nw.lit(1))
        .when(nw.col("timestamp").is_null())
        .then(nw.lit(2))
        .when(nw.col("event_type").is_null())
        .then(nw.lit(3))
    )
    if "duration_s" in plan.converted:
        stage = stage.when((nw.col("duration_s") < 0).fill_null(False)).then(nw.lit(4))
    prepared = prepared.with_columns(_stage=stage.otherwise(nw.lit(0)).cast(nw.Int64))

    counts = _count(prepared, plan)
    _raise_failures(plan, counts, raw, missing_customer)
    excluded = {
        reason: counts[f"stage_{s}"] for s, reason in _STAGES.items() if counts[f"stage_{s}"]
    }
    keep = [*plan.converted, EPOCH_US]
    kept = prepared.filter(nw.col("_stage") == 0).select(keep)
    notes = _unused_types(kept, known_types)
    report = ValidationReport(table, counts["rows"], counts["stage_0"], excluded, notes)
    return NativeEvents(kept, report, backend=backend)


def _canonical_types(lookup: Mapping[str, str]) -> nw.Expr:
    """Lower-cased event types renamed by ``lookup``: one ``is_in`` per canonical name."""
    text = nw.col("event_type").str.to_lowercase()
    targets: dict[str, list[str]] = {}
    for source, target in lookup.items():
        targets.setdefault(target, []).append(source)
    renamed: Any = None
    for target, sources in targets.items():
        test = text.is_in(sorted(sources)).fill_null(False)
        renamed = (nw.when if renamed is None else renamed.when)(test).then(nw.lit(target))
    return text if renamed is None else renamed.otherwise(text)


def _count(prepared: nw.LazyFrame[Any], plan: _Plan) -> dict[str, int]:
    """Rows, each stage and refused values: one query returning one row."""
    stage = nw.col("_stage")
    exprs = [nw.len().alias("rows")]
    exprs += [(stage == s).cast(nw.Int64).sum().alias(f"stage_{s}") for s in range(5)]
    exprs += [
        nw.col(f"_bad_{key}").sum().alias(f"_bad_{key}")
        for key, c in plan.converted.items()
        if c.bad is not None
    ]
    row = collect(prepared.select(exprs)).rows(named=True)[0]
    return {k: int(v or 0) for k, v in row.items()}


def _raise_failures(
    plan: _Plan, counts: Mapping[str, int], raw: nw.LazyFrame[Any], missing_customer: str
) -> None:
    table = plan.contract.table
    refuse_empty(counts["rows"], table)
    raise_if(bad_value_failures(plan, raw, counts), table)
    refuse_missing_ids(counts["stage_1"], counts["rows"], missing_customer, table)


def _unused_types(kept: nw.LazyFrame[Any], known_types: tuple[str, ...]) -> list[str]:
    """The pandas note on event types the features ignore (most frequent first)."""
    other = collect(
        kept.filter(~nw.col("event_type").is_in(list(known_types)))
        .group_by("event_type")
        .agg(nw.len().alias("n"))
    )
    if not len(other):
        return []
    pairs = sorted(
        zip(other["event_type"].to_list(), other["n"].to_list(), strict=True),
        key=lambda pair: (-int(pair[1]), str(pair[0])),
    )
    listed = ", ".join(f"{name!r}: {int(n)}" for name, n in pairs)
    return [f"event types kept but not used by the features: {listed}"]
