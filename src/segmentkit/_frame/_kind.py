"""Which library a frame belongs to, answered without importing any of them.

The only module that decides "is this pandas?". pandas is asked first and costs an
``isinstance``; anything else goes to narwhals, which is imported only then, so
``import segmentkit`` and the pandas path never load narwhals or a backend.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from typing_extensions import TypeIs

__all__ = ["backend_of", "is_native", "is_pandas"]

# narwhals implementation name -> the name users know.
SUPPORTED = {
    "polars": "polars",
    "pyarrow": "pyarrow",
    "duckdb": "duckdb",
    "pyspark": "pyspark",
    "pyspark[connect]": "pyspark",
    "dask": "dask",
}
# Top-level modules whose objects are never a frame of another library: answered
# without asking narwhals (segmentkit's own objects, such as CustomerFeatures).
_NEVER_FRAMES = frozenset({"builtins", "numpy", "pandas", "segmentkit"})


def is_pandas(frame: Any) -> TypeIs[pd.DataFrame]:
    """Whether ``frame`` is a pandas DataFrame (the in-memory, numpy-backed path).

    Parameters
    ----------
    frame : object
        Anything a caller passed.

    Returns
    -------
    bool
        True for ``pandas.DataFrame`` and its subclasses.
    """
    return isinstance(frame, pd.DataFrame)


def backend_of(frame: Any) -> str | None:
    """The library ``frame`` belongs to, or ``None`` when it is not a dataframe.

    Parameters
    ----------
    frame : object
        Anything a caller passed.

    Returns
    -------
    str or None
        ``'pandas'``, ``'polars'``, ``'pyarrow'``, ``'duckdb'``, ``'pyspark'`` or
        ``'dask'``; narwhals' name of the implementation for other dataframes narwhals
        reads (which segmentkit refuses with a clear message); ``None`` for anything
        else (arrays, lists, segmentkit objects...).
    """
    if is_pandas(frame):
        return "pandas"
    if type(frame).__module__.partition(".")[0] in _NEVER_FRAMES:
        return None
    import narwhals as nw

    wrapped = nw.from_native(frame, pass_through=True)
    if not isinstance(wrapped, nw.DataFrame | nw.LazyFrame):
        return None
    implementation = str(wrapped.implementation)
    return SUPPORTED.get(implementation, implementation)


def is_native(frame: Any) -> bool:
    """Whether ``frame`` is a dataframe of another library than pandas.

    Such frames are validated, featurised and scored where they live (polars, pyarrow,
    DuckDB, PySpark, Dask); see ``docs/scaling.md`` and ``docs/native-scoring.md``.

    Parameters
    ----------
    frame : object
        Anything a caller passed.

    Returns
    -------
    bool
        True when :func:`backend_of` names a library other than pandas.
    """
    return backend_of(frame) not in (None, "pandas")
