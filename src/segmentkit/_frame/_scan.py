"""Files and globs read lazily by polars or DuckDB: larger than memory is fine."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from segmentkit.errors import InvalidParameterError

__all__ = ["scan_file"]

_ENGINES = ("pandas", "polars", "duckdb")


def scan_file(
    path: str | os.PathLike[str],
    kind: str,
    engine: str,
    id_columns: Sequence[str],
    read_options: Mapping[str, Any] | None = None,
) -> Any:
    """A lazy frame over a CSV or Parquet file, directory or glob.

    Parameters
    ----------
    path : str or os.PathLike
        File, directory (Parquet) or glob such as ``'orders/*.parquet'``.
    kind : {'csv', 'parquet'}
        File format.
    engine : {'polars', 'duckdb'}
        Who reads: ``polars.scan_*`` or DuckDB's ``read_*`` (both stream from disk).
    id_columns : sequence of str
        Columns read as text, so ``00042`` keeps its zeros.
    read_options : dict, optional
        Extra keyword arguments for ``polars.scan_csv`` or ``duckdb.read_csv``.

    Returns
    -------
    polars.LazyFrame or duckdb.DuckDBPyRelation
        Nothing is read yet.
    """
    if engine not in _ENGINES:
        msg = f"The 'engine' parameter must be one of {list(_ENGINES)}. Got {engine!r} instead."
        raise InvalidParameterError(msg)
    options = dict(read_options or {})
    target = str(path)
    if engine == "polars":
        polars = _require("polars", "polars")
        if kind == "parquet":
            return polars.scan_parquet(target, **options)
        overrides = {name: polars.String for name in id_columns}
        options.setdefault("try_parse_dates", True)
        return polars.scan_csv(target, schema_overrides=overrides, **options)
    duckdb = _require("duckdb", "duckdb")
    if Path(target).is_dir():
        target = str(Path(target) / "**" / f"*.{'parquet' if kind == 'parquet' else 'csv'}")
    if kind == "parquet":
        return duckdb.read_parquet(target, **options)
    # DuckDB refuses types for columns the file lacks (canonical names not in it).
    present = set(duckdb.read_csv(target, **options).columns)
    dtypes = {name: "VARCHAR" for name in id_columns if name in present}
    return duckdb.read_csv(target, dtype=dtypes, **options)


def _require(module: str, extra: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as error:
        msg = (
            f"engine={module!r} needs the {module!r} package. Install it with "
            f"pip install 'segmentkit[{extra}]'."
        )
        raise ImportError(msg) from error
