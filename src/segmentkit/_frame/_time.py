"""Timestamps to UTC instants plus integer epoch microseconds, on every engine.

narwhals covers polars, pyarrow and Dask. DuckDB and Spark keep time zones in the
connection or session rather than in the column type, and narwhals has no epoch
conversion for them, so those two get one native expression each.
"""

from __future__ import annotations

from typing import Any

import narwhals as nw
import numpy as np

from segmentkit._frame._detect import Backend
from segmentkit.errors import InvalidParameterError

__all__ = ["DAY_US", "EPOCH_US", "with_utc"]

#: Name of the internal column holding UTC microseconds since the epoch.
EPOCH_US = "_ts_us"
DAY_US = 86_400 * 10**6


def with_utc(
    frame: nw.LazyFrame[Any],
    column: str,
    *,
    naive: bool,
    timezone: str,
    backend: Backend,
    epoch: str = EPOCH_US,
) -> nw.LazyFrame[Any]:
    """Make ``column`` a UTC instant and add its epoch microseconds as ``epoch``.

    Parameters
    ----------
    frame : narwhals.LazyFrame
        Frame whose ``column`` is a datetime.
    column : str
        The datetime column.
    naive : bool
        Whether the values carry no time zone (they are then read in ``timezone``).
    timezone : str
        IANA name of the zone of naive values.
    backend : Backend
        Engine of the frame.
    epoch : str, default=EPOCH_US
        Name of the added column of UTC microseconds since the epoch.

    Returns
    -------
    narwhals.LazyFrame
        The frame with the converted column and the epoch column.
    """
    if backend.name == "duckdb":
        return _duckdb_utc(frame, column, naive=naive, timezone=timezone, epoch=epoch)
    if backend.name == "pyspark":
        return _spark_utc(frame, column, naive=naive, timezone=timezone, epoch=epoch)
    if backend.name == "dask":
        frame = _dask_utc(frame, column, naive=naive, timezone=timezone)
        return frame.with_columns(nw.col(column).dt.timestamp("us").alias(epoch))
    if naive and backend.name == "polars":
        frame = _polars_localize(frame, column, timezone)
    elif naive and backend.name == "pyarrow":
        frame = _pyarrow_localize(frame, column, timezone)
    utc = nw.col(column).dt.convert_time_zone("UTC")
    frame = frame.with_columns(utc.alias(column))
    return frame.with_columns(nw.col(column).dt.timestamp("us").alias(epoch))


#: Text of the error polars raises for a wall-clock time skipped by a DST change.
POLARS_NON_EXISTENT = "non-existent"


def _polars_localize(frame: nw.LazyFrame[Any], column: str, timezone: str) -> nw.LazyFrame[Any]:
    import polars as pl

    # Repeated wall-clock times are read as standard time (the later instant), as on
    # the pandas path. Skipped ones make polars raise: it cannot shift them forward.
    local = pl.col(column).dt.replace_time_zone(timezone, ambiguous="latest")
    return nw.from_native(nw.to_native(frame).with_columns(local))


def _pyarrow_localize(frame: nw.LazyFrame[Any], column: str, timezone: str) -> nw.LazyFrame[Any]:
    import pyarrow.compute as pc

    table = nw.to_native(frame)
    # 'latest' for both: standard time for repeated times, and skipped times move to the
    # end of the gap; the pandas path's rules.
    local = pc.assume_timezone(table[column], timezone, ambiguous="latest", nonexistent="latest")
    position = table.schema.get_field_index(column)
    return nw.from_native(table.set_column(position, column, local)).lazy()


def _duckdb_utc(
    frame: nw.LazyFrame[Any], column: str, *, naive: bool, timezone: str, epoch: str
) -> nw.LazyFrame[Any]:
    relation = nw.to_native(frame)
    quoted = '"' + column.replace('"', '""') + '"'
    zone = timezone.replace("'", "''")
    # timezone(zone, naive) reads wall-clock time in that zone and returns TIMESTAMPTZ,
    # an instant whatever the connection's own zone.
    # Microseconds: epoch_us has no nanosecond-TIMESTAMPTZ overload (pandas data is ns).
    if naive and timezone in ("UTC", "Etc/UTC"):
        # Wall-clock time in UTC is the instant: its microseconds need no time zone
        # lookup, which costs 15 times the rest of the conversion.
        micros = f"epoch_us(CAST({quoted} AS TIMESTAMP))"
        relation = relation.project(f'*, {micros} AS "{epoch}"')
        instant = f'make_timestamptz("{epoch}")'
        return nw.from_native(relation.project(f"* REPLACE ({instant} AS {quoted})"))
    instant = f"timezone('{zone}', {quoted})" if naive else quoted
    instant = f"CAST({instant} AS TIMESTAMPTZ)"
    relation = relation.project(f"* REPLACE ({instant} AS {quoted})")
    relation = relation.project(f'*, epoch_us({quoted}) AS "{epoch}"')
    return nw.from_native(relation)


def _spark_utc(
    frame: nw.LazyFrame[Any], column: str, *, naive: bool, timezone: str, epoch: str
) -> nw.LazyFrame[Any]:
    from pyspark.sql import functions as F  # noqa: N812 (Spark's own convention)

    df = nw.to_native(frame)
    if naive:
        session_zone = df.sparkSession.conf.get("spark.sql.session.timeZone")
        if session_zone not in {"UTC", "Etc/UTC", "GMT", "Z", "+00:00"}:
            msg = (
                f"Column {column!r} holds timestamps without a time zone (TIMESTAMP_NTZ or "
                f"text) and the Spark session time zone is {session_zone!r}. Set "
                "spark.conf.set('spark.sql.session.timeZone', 'UTC') and pass the data's "
                "zone as timezone='...', or convert the column to TIMESTAMP first."
            )
            raise InvalidParameterError(msg)
        # In a UTC session the cast keeps the wall-clock time; to_utc_timestamp then reads
        # it in the data's zone.
        df = df.withColumn(column, F.to_utc_timestamp(F.col(column).cast("timestamp"), timezone))
    return nw.from_native(df.withColumn(epoch, F.unix_micros(F.col(column))))


def _dask_utc(
    frame: nw.LazyFrame[Any], column: str, *, naive: bool, timezone: str
) -> nw.LazyFrame[Any]:
    df = nw.to_native(frame)

    def localize(part: Any) -> Any:
        if naive:
            # The pandas path's rule: skipped wall-clock times move forward, repeated
            # ones are read as standard time.
            ambiguous = np.zeros(len(part), dtype=bool)
            part = part.dt.tz_localize(timezone, ambiguous=ambiguous, nonexistent="shift_forward")
        return part.dt.tz_convert("UTC").astype("datetime64[us, UTC]")

    utc = df[column].map_partitions(localize, meta=(column, "datetime64[us, UTC]"))
    return nw.from_native(df.assign(**{column: utc}))
