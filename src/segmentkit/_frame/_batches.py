"""Python code run batch by batch where the data lives, and results brought back home.

:func:`map_batches` runs a pandas function lazily on each batch of a frame in the
frame's own engine (Spark's ``mapInPandas``, Dask's ``map_partitions``, DuckDB's
``map``, polars' lazy ``map_batches``). :func:`from_pandas` hands a small pandas result
back as a frame of the caller's library.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import narwhals as nw
import pandas as pd

__all__ = ["from_pandas", "map_batches"]

#: Dtypes a batch function may add, by the names it declares them with.
_DTYPES = ("int64", "float64")


def map_batches(
    frame: Any,
    function: Callable[[pd.DataFrame], pd.DataFrame],
    key: str,
    outputs: Mapping[str, str],
    owner: str,
) -> Any:
    """Run ``function`` lazily on each batch of ``frame``, in the frame's engine.

    Parameters
    ----------
    frame : narwhals LazyFrame
        The rows, with the ``key`` column.
    function : callable
        A pandas batch to a frame of ``key`` and the ``outputs``, one row per row.
    key : str
        Column passed through unchanged (its type is kept).
    outputs : dict of str to {'int64', 'float64'}
        Columns ``function`` adds, with their dtypes (never null).
    owner : str
        Who asks, for messages.

    Returns
    -------
    narwhals LazyFrame
        ``key`` and the outputs, not computed yet.

    Raises
    ------
    NotImplementedError
        For a library with no batch interface segmentkit uses.
    """
    unknown = sorted(set(outputs.values()) - set(_DTYPES))
    if unknown:
        msg = f"{owner}: batch outputs must be one of {list(_DTYPES)}; got {unknown}."
        raise ValueError(msg)
    impl = frame.implementation
    native = frame.to_native()
    if impl.is_spark_like() and impl is not nw.Implementation.SQLFRAME:
        from pyspark.sql import types as T  # noqa: N812

        spark_types = {"int64": T.LongType(), "float64": T.DoubleType()}
        struct = T.StructType(
            [
                native.schema[key],
                *(T.StructField(n, spark_types[t], False) for n, t in outputs.items()),
            ]
        )
        return nw.from_native(
            native.mapInPandas(lambda batches: (function(batch) for batch in batches), struct)
        )
    if impl is nw.Implementation.DASK:
        meta = function(native._meta)
        return nw.from_native(native.map_partitions(function, meta=meta))
    if impl is nw.Implementation.DUCKDB:
        import duckdb

        types = dict(zip(native.columns, native.types, strict=True))
        sql_types = {"int64": "BIGINT", "float64": "DOUBLE"}
        schema = {
            key: types[key],
            **{n: duckdb.sqltype(sql_types[t]) for n, t in outputs.items()},
        }
        return nw.from_native(native.map(function, schema=schema))
    if impl is nw.Implementation.POLARS:
        import polars as pl

        polars_types = {"int64": pl.Int64, "float64": pl.Float64}

        def run_polars(batch: pl.DataFrame) -> pl.DataFrame:
            out = function(batch.to_pandas())
            return pl.DataFrame(
                {
                    key: pl.Series(out[key].tolist(), dtype=batch.schema[key]),
                    **{
                        n: pl.Series(out[n].to_numpy(), dtype=polars_types[t])
                        for n, t in outputs.items()
                    },
                }
            )

        schema = {
            key: native.collect_schema()[key],
            **{n: polars_types[t] for n, t in outputs.items()},
        }
        return nw.from_native(native.map_batches(run_polars, schema=schema))
    msg = (
        f"{owner} cannot score a {impl} frame where it lives; score pandas features "
        "instead (bring the frame to pandas chunk by chunk)."
    )
    raise NotImplementedError(msg)


def from_pandas(data: pd.DataFrame, like: nw.DataFrame[Any], text: tuple[str, ...]) -> Any:
    """``data`` as an eager frame of ``like``'s library.

    Parameters
    ----------
    data : pandas.DataFrame
        A small result.
    like : narwhals DataFrame
        A frame of the library to build in.
    text : tuple of str
        Columns passed as Python strings (pandas text dtypes do not cross libraries).

    Returns
    -------
    native frame
        The same columns, built by that library.

    Raises
    ------
    Exception
        Whatever the library raises when narwhals cannot build frames in it.
    """
    columns = {
        column: data[column].tolist() if column in text else data[column]
        for column in data.columns
    }
    return nw.from_dict(columns, backend=like.implementation).to_native()
