"""Which engine a frame lives in, and moving between narwhals and that engine.

Only narwhals is imported here; the engines themselves are imported by narwhals
when it meets one of their frames, so ``import segmentkit`` stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import narwhals as nw

from segmentkit._frame._kind import SUPPORTED

__all__ = ["Backend", "collect", "detect", "to_native"]


@dataclass(frozen=True)
class Backend:
    """The engine of a caller's frame.

    Attributes
    ----------
    name : str
        ``'polars'``, ``'pyarrow'``, ``'duckdb'``, ``'pyspark'`` or ``'dask'``.
    eager : bool
        Whether the caller gave an eager frame (polars DataFrame, pyarrow Table);
        results are then handed back eager too.
    """

    name: str
    eager: bool

    def __str__(self) -> str:
        return f"{self.name} ({'eager' if self.eager else 'lazy'})"


def _wrap(frame: Any) -> nw.DataFrame[Any] | nw.LazyFrame[Any] | None:
    wrapped = nw.from_native(frame, pass_through=True)
    if isinstance(wrapped, nw.DataFrame | nw.LazyFrame):
        return wrapped
    return None


def detect(frame: Any, table: str) -> tuple[nw.DataFrame[Any] | nw.LazyFrame[Any], Backend]:
    """Wrap ``frame`` with narwhals and name its engine.

    Raises
    ------
    TypeError
        If the frame is not a dataframe, or its engine is not one segmentkit supports.
    """
    wrapped = _wrap(frame)
    if wrapped is None:
        msg = (
            f"{table} must be a pandas DataFrame, got {type(frame).__name__} (polars, "
            "pyarrow, DuckDB, PySpark and Dask frames work too). Hint: convert it first, "
            "e.g. with `.to_pandas()`."
        )
        raise TypeError(msg)
    implementation = str(wrapped.implementation)
    name = SUPPORTED.get(implementation)
    if name is None:
        msg = (
            f"{table} given as a {implementation} frame, which segmentkit does not support. "
            "Supported: pandas, polars, pyarrow, DuckDB, PySpark and Dask. Convert it to one "
            "of them first (e.g. `.to_pandas()`)."
        )
        raise TypeError(msg)
    if name == "duckdb":
        wrapped = _duckdb_microseconds(wrapped)
    return wrapped, Backend(name, eager=isinstance(wrapped, nw.DataFrame))


# DuckDB's nanosecond timestamps (what pandas data becomes) have no narwhals type.
_NANOSECOND_TYPES = {"TIMESTAMP_NS": "TIMESTAMP", "TIMESTAMPTZ_NS": "TIMESTAMPTZ"}


def _duckdb_microseconds(wrapped: Any) -> Any:
    """Nanosecond timestamp columns cast to microseconds, the unit every path uses."""
    relation = nw.to_native(wrapped)
    types = [str(t) for t in relation.types]
    if not any(t in _NANOSECOND_TYPES for t in types):
        return wrapped
    parts = []
    for name, kind in zip(relation.columns, types, strict=True):
        quoted = '"' + name.replace('"', '""') + '"'
        target = _NANOSECOND_TYPES.get(kind)
        parts.append(f"CAST({quoted} AS {target}) AS {quoted}" if target else quoted)
    return nw.from_native(relation.project(", ".join(parts)))


def collect(frame: nw.DataFrame[Any] | nw.LazyFrame[Any]) -> nw.DataFrame[Any]:
    """An eager narwhals frame: run the query if ``frame`` is lazy."""
    return frame.collect() if isinstance(frame, nw.LazyFrame) else frame


def distinct_rows(frame: nw.LazyFrame[Any], columns: list[str]) -> nw.LazyFrame[Any]:
    """The distinct rows of ``frame[columns]``, nulls as one value (as ``unique``).

    A hash group-by: narwhals runs ``unique`` on DuckDB as a ``row_number()`` window over
    the partition, three times slower on 1M lines.
    """
    return frame.group_by(*columns).agg(nw.len().alias("_rows")).select(columns)


def materialise_duckdb(relation: Any, kind: str = "features") -> Any:
    """``relation`` computed once into a temporary table of its own connection.

    A DuckDB relation is a query, rerun by every query that reads it: fitting a
    segmenter, then its predictions, would each redo the features' group-bys, and each
    group-by of the features would redo the validation. The table never leaves DuckDB
    (nothing reaches Python) and lives as long as the connection, like any temporary
    table. Where a table cannot be created (e.g. a read-only database), the lazy
    relation is returned.
    """
    import uuid

    import duckdb

    table = f"__segmentkit_{kind}_{uuid.uuid4().hex}"
    # The relation is reachable by name only inside these statements (a view alias).
    alias = f"__segmentkit_source_{uuid.uuid4().hex}"
    try:
        relation.query(alias, f'CREATE TEMPORARY TABLE "{table}" AS SELECT * FROM {alias}')
        return relation.query(alias, f'SELECT * FROM "{table}"')
    except duckdb.Error:
        return relation


def materialised(frame: nw.LazyFrame[Any], backend: Backend) -> nw.LazyFrame[Any]:
    """``frame`` computed once, where the engine holds the result cheaply.

    Every later query over a lazy frame reruns its whole plan: validated lines read by
    the report's counts, then by each group-by of the features, would convert every id
    and time once per read. DuckDB keeps the result in a temporary table of the same
    connection (spilling to disk when it must; it is freed with the connection, as a
    relation read from it may outlive any object of ours); an eager polars or pyarrow
    input is collected, as the caller's data already was. Spark, Dask and lazy polars
    stay lazy: their inputs may not fit in memory.
    """
    if backend.name == "duckdb":
        return nw.from_native(materialise_duckdb(nw.to_native(frame), "lines")).lazy()
    if backend.eager:
        return frame.collect().lazy()
    return frame


def to_native(frame: nw.DataFrame[Any] | nw.LazyFrame[Any], backend: Backend) -> Any:
    """The caller's kind of frame: eager in, eager out; lazy in, lazy out."""
    if backend.eager and isinstance(frame, nw.LazyFrame):
        frame = frame.collect()
    return nw.to_native(frame)
