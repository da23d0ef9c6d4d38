"""Collecting frames of other libraries: small results to pandas, and a reproducible sample.

The sample depends only on the customer ids (the smallest md5 of each id), so pandas,
polars, DuckDB, Spark and Dask pick the same customers in any row order or
partitioning. Hashing is the one place with engine-specific code: narwhals has no hash
that agrees across engines.
"""

from __future__ import annotations

import hashlib
from typing import Any

import narwhals as nw
import pandas as pd

__all__ = ["count_rows", "hash_sample", "md5_hex", "to_pandas", "with_md5"]

ID = "customer_id"
_HASH = "__segmentkit_md5"
_HEX_DIGITS = 12  # 48 bits of the md5: collisions are negligible for sampling


def to_pandas(frame: Any) -> pd.DataFrame:
    """Collect a (small) narwhals frame to pandas."""
    if isinstance(frame, nw.LazyFrame):
        frame = frame.collect()
    return frame.to_pandas()


def hash_sample(frame: Any, size: int) -> pd.DataFrame:
    """The ``size`` customers with the smallest md5 of their id, collected to pandas.

    The sample depends only on the customer ids, so every engine (pandas, polars,
    DuckDB, Spark, Dask) picks the same customers, in any row order or partitioning.
    The engine keeps the customers whose hash falls under a threshold set to give a
    little more than ``size`` rows; those are collected and the exact ``size`` with the
    smallest ``(md5, customer_id)`` kept. In SQL the sample is
    ``ORDER BY md5(CAST(customer_id AS VARCHAR)), customer_id LIMIT size``, then
    ordered by the id's text.

    Parameters
    ----------
    frame : narwhals DataFrame or LazyFrame
        One row per customer, with ``customer_id``.
    size : int
        Customers to keep.

    Returns
    -------
    pandas.DataFrame
        All columns of the sampled customers, sorted by customer id as text.
    """
    total = len(frame) if isinstance(frame, nw.DataFrame) else count_rows(frame)
    hashed = with_md5(frame, ID, _HASH)
    if total <= size:
        local = to_pandas(hashed)
    else:
        # Binomial spread of the kept count is about sqrt(size): 5% + 100 rows of
        # margin almost never falls short, and a short draw retries with a wider net.
        fraction = (size * 1.05 + 100) / total
        while True:
            cut = min(int(fraction * 16**_HEX_DIGITS), 16**_HEX_DIGITS)
            kept = hashed.filter(nw.col(_HASH).str.slice(0, _HEX_DIGITS) < f"{cut:012x}")
            local = to_pandas(kept)
            if len(local) >= size or fraction >= 1:
                break
            fraction = min(1.0, fraction * 2)
    local[ID + "_text"] = local[ID].astype(str)
    local = local.sort_values([_HASH, ID + "_text"], kind="stable").head(size)
    # Engines then see the customers in the order extract_features gives on pandas (by
    # id as text), so a fit whose result depends on row order (k-means' initial
    # centres) matches the pandas fit.
    local = local.sort_values(ID + "_text", kind="stable")
    return local.drop(columns=[_HASH, ID + "_text"]).reset_index(drop=True)


def count_rows(frame: Any) -> int:
    """Rows of a (lazy) narwhals frame, counted by its engine."""
    return int(to_pandas(frame.select(nw.len().alias("n")))["n"].iloc[0])


def md5_hex(values: Any) -> list[str]:
    """Lower-case hex md5 of each value's text (UTF-8), as SQL's ``md5`` gives it."""
    # Sampling, not security: md5 because Spark and DuckDB have it built in.
    return [hashlib.md5(str(v).encode("utf-8"), usedforsecurity=False).hexdigest() for v in values]


def with_md5(frame: Any, column: str, name: str) -> Any:
    """``frame`` with the md5 hex of ``column`` as text in a new column ``name``.

    narwhals has no hash function that agrees across engines, so this is the one
    place with engine-specific code: Spark and DuckDB use their SQL ``md5``, the
    in-process libraries Python's ``hashlib``.
    """
    impl = frame.implementation
    native = frame.to_native()
    if impl.is_spark_like() and impl is not nw.Implementation.SQLFRAME:
        from pyspark.sql import functions as F  # noqa: N812

        return nw.from_native(native.withColumn(name, F.md5(F.col(column).cast("string"))))
    if impl is nw.Implementation.DUCKDB:
        quoted = column.replace('"', '""')
        return nw.from_native(native.project(f'*, md5(CAST("{quoted}" AS VARCHAR)) AS "{name}"'))
    if impl is nw.Implementation.POLARS:
        import polars as pl

        def _hash(series: pl.Series) -> pl.Series:
            return pl.Series(md5_hex(series.to_list()), dtype=pl.String)

        expr = pl.col(column).cast(pl.String).map_batches(_hash, return_dtype=pl.String)
        return nw.from_native(native.with_columns(expr.alias(name)))
    if impl is nw.Implementation.DASK:
        series = native[column].map_partitions(
            lambda part: pd.Series(md5_hex(part.tolist()), index=part.index, dtype="string"),
            # A text dtype in the meta: with object, dask infers the sliced text as float.
            meta=(column, "string"),
        )
        return nw.from_native(native.assign(**{name: series}))
    if isinstance(frame, nw.DataFrame):
        values = md5_hex(frame[column].to_list())
        return frame.with_columns(nw.new_series(name, values, nw.String, backend=impl))
    msg = (
        f"Cannot draw a reproducible fit sample from a {impl} frame; pass a pandas, "
        "polars, DuckDB, PySpark or Dask frame, or fit on pandas features."
    )
    raise TypeError(msg)
