"""The frame libraries the tests run on, which of them a run selects, and optional imports.

The ``backend`` fixture of ``conftest.py`` is built from this module; tests/README.md says
how to use it. Nothing here imports a backend at import time: a missing package skips the
tests that need it, one by one, with the reason.
"""

from __future__ import annotations

import importlib
import os
import types
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import pytest

ENV = "SEGMENTKIT_TEST_BACKENDS"

# Every backend the library supports, in the order tests run and are named.
NAMES = ("pandas", "polars", "polars_lazy", "pyarrow", "duckdb", "spark", "dask")
# A plain `pytest` run: the reference, one eager and one lazy engine, all fast.
DEFAULT = ("pandas", "polars", "duckdb")
# Every backend but the reference, for tests that compare a backend with pandas.
NATIVE = NAMES[1:]
# NATIVE without Spark, for comparisons too slow to repeat on Spark's seconds per query.
NATIVE_FAST = tuple(name for name in NATIVE if name != "spark")

PACKAGES = {
    "pandas": "pandas",
    "polars": "polars",
    "polars_lazy": "polars",
    "pyarrow": "pyarrow",
    "duckdb": "duckdb",
    "spark": "pyspark",
    "dask": "dask.dataframe",
}
_ALIASES = {"pyspark": "spark", "polars-lazy": "polars_lazy", "lazy_polars": "polars_lazy"}


def parse_selection(text: str | None) -> tuple[tuple[str, ...], list[str]]:
    """The backends a value of SEGMENTKIT_TEST_BACKENDS selects, and the unknown names.

    Empty or unset: `DEFAULT`. ``all``: every backend. Otherwise a comma-separated list
    (``pandas,spark``); the selection keeps the order of `NAMES`.
    """
    text = (text or "").strip()
    if not text:
        return DEFAULT, []
    if text.lower() == "all":
        return NAMES, []
    asked = {
        _ALIASES.get(name, name)
        for name in (part.strip().lower() for part in text.split(","))
        if name
    }
    unknown = sorted(asked - set(NAMES))
    return tuple(name for name in NAMES if name in asked), unknown


def selected() -> tuple[str, ...]:
    """The backends this run selects (from the environment)."""
    return parse_selection(os.environ.get(ENV))[0]


class OptionalModule(types.ModuleType):
    """A module imported on first use; if it is missing, the test using it is skipped.

    A stand-in for a module-level ``pytest.importorskip``, which skips the whole file,
    including the tests that do not need the package.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._module: types.ModuleType | None = None

    def _load(self) -> types.ModuleType:
        if self._module is None:
            try:
                self._module = importlib.import_module(self.__name__)
            except ImportError as error:
                pytest.skip(f"{self.__name__} is not installed ({error})")
        return self._module

    def __getattr__(self, attribute: str) -> Any:
        if attribute.startswith("__") or attribute == "_module":
            raise AttributeError(attribute)
        return getattr(self._load(), attribute)


def optional_module(name: str) -> Any:
    """``name`` imported when a test first uses it; the test is skipped if it is missing."""
    return OptionalModule(name)


def require(package: str, *, why: str = "") -> None:
    """Skip the calling test (or fixture) when ``package`` cannot be imported."""
    try:
        importlib.import_module(package)
    except ImportError as error:
        reason = f"{package} is not installed ({error})"
        pytest.skip(f"{why}: {reason}" if why else reason)


@dataclass
class Backend:
    """One backend in a test: converts pandas frames to it and its results back.

    ``spark`` is the run's Spark session, for the Spark backend only.
    """

    name: str
    spark: Any = field(default=None, repr=False)

    def __str__(self) -> str:
        return self.name

    @property
    def is_pandas(self) -> bool:
        return self.name == "pandas"

    def frame(self, data: pd.DataFrame) -> Any:
        """``data`` (a pandas frame, no meaningful index) as this backend's frame."""
        if self.name == "pandas":
            return data.copy()
        if self.name in ("polars", "polars_lazy"):
            import polars as pl

            eager = pl.from_pandas(data)
            return eager.lazy() if self.name == "polars_lazy" else eager
        if self.name in ("pyarrow", "duckdb"):
            import pyarrow as pa

            table = pa.Table.from_pandas(data, preserve_index=False)
            if self.name == "pyarrow":
                return table
            import duckdb

            return duckdb.from_arrow(table)
        if self.name == "dask":
            import dask.dataframe as dd

            return dd.from_pandas(data, npartitions=2)
        if self.name == "spark":
            assert self.spark is not None
            return self.spark.createDataFrame(data)
        raise AssertionError(self.name)

    def to_pandas(self, native: Any) -> pd.DataFrame:
        """Any result of this backend (eager or lazy) collected into pandas."""
        if isinstance(native, pd.DataFrame):
            return native
        import narwhals as nw

        frame = nw.from_native(native)
        if isinstance(frame, nw.LazyFrame):
            frame = frame.collect()
        return frame.to_pandas()
