"""Validated transactions whose rows stay in the caller's engine."""

from __future__ import annotations

from typing import Any

import narwhals as nw
import pandas as pd

from segmentkit._native._detect import Backend, collect, to_native
from segmentkit._native._time import EPOCH_US
from segmentkit._report import ValidationReport
from segmentkit._transactions import Transactions
from segmentkit.errors import SegmentkitError

__all__ = ["NativeDataError", "NativeTransactions"]


class NativeDataError(SegmentkitError, TypeError):
    """Pandas data was asked of a table whose rows live in another engine."""


class NativeTransactions(Transactions):
    """Transactions validated on polars, pyarrow, DuckDB, PySpark or Dask, kept there.

    Built by :meth:`Transactions.from_frame` when given such a frame. The rows are a
    lazy query in the caller's engine: nothing is collected until features are
    computed (and then only one row per customer comes back, if asked for pandas).

    Parameters
    ----------
    frame : narwhals.LazyFrame
        The kept rows in canonical columns, plus the internal epoch column.
    report : ValidationReport
        The account of the input rows, counted in the engine.
    returns : narwhals.LazyFrame
        Return lines set aside by ``returns='separate'``.
    backend : Backend
        The caller's engine.
    orders_from : str
        How lines form orders when no ``order_id`` is mapped.
    """

    def __init__(
        self,
        frame: nw.LazyFrame[Any],
        report: ValidationReport,
        returns: nw.LazyFrame[Any],
        *,
        backend: Backend,
        orders_from: str,
    ) -> None:
        super().__init__(pd.DataFrame(), report, pd.DataFrame())
        self._frame = frame
        self._returns_frame = returns
        self._backend = backend
        self.orders_from = orders_from
        self._n_customers: int | None = None

    @property
    def backend(self) -> str:
        """The engine the rows live in: ``'polars'``, ``'duckdb'``, ``'pyspark'``..."""
        return self._backend.name

    @property
    def native(self) -> Any:
        """The kept rows as the caller's kind of frame (lazy for lazy inputs)."""
        return to_native(self._frame.drop(EPOCH_US), self._backend)

    @property
    def data(self) -> pd.DataFrame:
        """Not available: the rows are in another engine (see :meth:`to_pandas`)."""
        msg = (
            f"These transactions live in {self._backend}; `.data` would collect every line "
            "into pandas. Use `.native` for the frame in its engine, or `.to_pandas()` to "
            "collect them on purpose when they fit in memory."
        )
        raise NativeDataError(msg)

    @property
    def returns(self) -> Any:
        """Return lines set aside by ``returns='separate'``, in the caller's engine."""
        return to_native(self._returns_frame.drop(EPOCH_US), self._backend)

    @property
    def columns(self) -> list[str]:
        """Canonical columns of :attr:`native`."""
        return [c for c in self._frame.collect_schema().names() if c != EPOCH_US]

    def __len__(self) -> int:
        return self.report.rows_kept

    @property
    def n_customers(self) -> int:
        """Distinct customers among the kept rows (one query, then remembered)."""
        if self._n_customers is None:
            counted = collect(self._frame.select(nw.col("customer_id").n_unique()))
            self._n_customers = int(counted.item(0, 0))
        return self._n_customers

    def __repr__(self) -> str:
        # No customer count: it would run a query just to print the object.
        return f"<Transactions on {self._backend}: {len(self)} rows, columns={self.columns}>"

    def to_pandas(self) -> Transactions:
        """Collect the rows into ordinary pandas :class:`Transactions`.

        The report stays the one counted in the engine.

        Returns
        -------
        Transactions
            The same lines and report, with ``data`` in pandas.
        """
        data = _collect_pandas(self._frame)
        mapping = {name: name for name in data.columns if name != "is_return"}
        rebuilt = Transactions.from_frame(
            data.drop(columns="is_return"), orders_from=self.orders_from, **mapping
        )
        # Cancelled lines worth 0 are returns that amount < 0 alone would miss.
        kept = rebuilt.data.assign(is_return=data["is_return"].to_numpy(dtype=bool))
        returns = _collect_pandas(self._returns_frame)
        return Transactions(kept, self.report, returns)


def _collect_pandas(frame: nw.LazyFrame[Any]) -> pd.DataFrame:
    data = collect(frame.drop(EPOCH_US)).to_pandas()
    if "timestamp" in data:
        stamps = pd.to_datetime(data["timestamp"], utc=True)
        data["timestamp"] = stamps.astype("datetime64[ns, UTC]")
    return data
