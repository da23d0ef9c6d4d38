"""``price_ratio`` in the caller's engine (the narwhals twin of ``_numpy._Lines.price_ratio``).

Each product's reference price is the exact median of the unit prices of every purchase
line up to ``as_of``. The lines are first reduced to one row per (product, unit price)
with its count. polars, DuckDB and Spark then find each product's two middle values
with an ordered window (the running count of the prices sorted within the product);
pyarrow (in memory) and Dask (no ordered windows) collect that reduced table, which
has one row per distinct price of a product, and pick them with numpy
(:func:`~._prices.exact_medians`). Both average them as ``(a + b) / 2``, so every
backend gets the same bits.
"""

from __future__ import annotations

from typing import Any

import narwhals as nw
import numpy as np
import pandas as pd

from segmentkit._frame._detect import Backend, collect
from segmentkit.features._prices import REFERENCE_KEYS, exact_medians

__all__ = ["with_price_ratio"]

_ORDERED = ("polars", "duckdb", "pyspark")
_UNIT = "_unit_price"
_MEDIAN = "_reference_price"


def with_price_ratio(
    lines: nw.LazyFrame[Any], names: list[str], backend: Backend
) -> nw.LazyFrame[Any]:
    """``lines`` with ``price_ratio``: a purchase line's unit price / its product's median.

    Parameters
    ----------
    lines : narwhals.LazyFrame
        Validated transaction lines up to ``as_of``.
    names : list of str
        Their columns; ``product_id`` or ``category`` must be one of them.
    backend : Backend
        Their engine.

    Returns
    -------
    narwhals.LazyFrame
        The same lines (in no set order) and ``price_ratio``, null where a line is not
        priced (a return, no unit price, no product, a reference price not above 0).
    """
    key = next(c for c in REFERENCE_KEYS if c in names)
    if "unit_price" in names:
        unit = nw.col("unit_price").cast(nw.Float64)
    elif "quantity" in names:
        quantity = nw.col("quantity").cast(nw.Float64)
        unit = nw.when(quantity > 0).then(nw.col("amount").cast(nw.Float64) / quantity)
    else:
        unit = nw.col("amount").cast(nw.Float64)
    eligible = ~nw.col("is_return") & ~nw.col(key).is_null() & ~nw.col(_UNIT).is_null()
    lines = lines.with_columns(unit.alias(_UNIT))
    lines = lines.with_columns(nw.when(eligible).then(nw.col(_UNIT)).alias(_UNIT))
    pairs = (
        lines.filter(~nw.col(_UNIT).is_null())
        .group_by(key, _UNIT)
        .agg(nw.len().alias("_n"))
        .with_columns(nw.col("_n").cast(nw.Int64))
    )
    if backend.name in _ORDERED:
        medians = _windowed_medians(pairs, key)
    else:
        medians = _collected_medians(pairs, key, backend)
    reference = nw.col(_MEDIAN)
    ratio = nw.when(~nw.col(_UNIT).is_null() & (reference > 0)).then(nw.col(_UNIT) / reference)
    return (
        lines.join(medians, on=key, how="left")
        .with_columns(ratio.alias("price_ratio"))
        .drop(_UNIT, _MEDIAN)
    )


def _windowed_medians(pairs: nw.LazyFrame[Any], key: str) -> nw.LazyFrame[Any]:
    """Per key, the mean of the two middle prices, from the running count in price order."""
    count = nw.col("_n")
    pairs = pairs.with_columns(
        nw.col("_n").cum_sum().over(key, order_by=_UNIT).cast(nw.Int64).alias("_end"),
        nw.col("_n").sum().over(key).cast(nw.Int64).alias("_total"),
    )
    end, total = nw.col("_end"), nw.col("_total")

    def holds(position: nw.Expr) -> nw.Expr:
        # 0-based positions end - n .. end - 1 are this price's.
        return (end - count <= position) & (position < end)

    # Prepared row-wise first: some engines' group-bys take only plain columns.
    middle = (
        pairs.with_columns(
            nw.when(holds((total - 1) // 2)).then(nw.col(_UNIT)).alias("_low"),
            nw.when(holds(total // 2)).then(nw.col(_UNIT)).alias("_high"),
        )
        .group_by(key)
        .agg(nw.col("_low").max(), nw.col("_high").max())
    )
    return middle.select(key, ((nw.col("_low") + nw.col("_high")) / 2).alias(_MEDIAN))


def _collected_medians(pairs: nw.LazyFrame[Any], key: str, backend: Backend) -> nw.LazyFrame[Any]:
    """The medians picked by numpy from the collected pairs, as a frame of ``backend``."""
    collected = collect(pairs)
    table = collected.to_pandas()
    codes, uniques = pd.factorize(table[key], sort=True)
    medians = exact_medians(
        codes,
        table[_UNIT].to_numpy(dtype=float),
        len(uniques),
        counts=table["_n"].to_numpy(dtype=np.int64),
    )
    keys = [str(value) for value in uniques]
    if backend.name == "dask":
        import dask.dataframe as dd

        frame = pd.DataFrame({key: pd.Series(keys, dtype=object), _MEDIAN: medians})
        native = nw.from_native(dd.from_pandas(frame, npartitions=1)).lazy()
        return native.with_columns(nw.col(key).cast(pairs.collect_schema()[key]))
    import pyarrow as pa

    # The key in the lines' own Arrow type (string and large_string do not join).
    key_type = collected.to_native().schema.field(key).type
    built = pa.table({key: pa.array(keys, type=key_type), _MEDIAN: pa.array(medians)})
    return nw.from_native(built).lazy()
