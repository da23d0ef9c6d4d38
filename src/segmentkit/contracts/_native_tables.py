"""Validated tables whose rows stay in the caller's engine."""

from __future__ import annotations

from typing import Any

import narwhals as nw
import pandas as pd

from segmentkit._frame._detect import Backend, collect, to_native
from segmentkit._frame._time import EPOCH_US
from segmentkit.contracts._customers import Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._policies import OrdersFrom
from segmentkit.contracts._transactions import Transactions
from segmentkit.contracts._validation import ValidationReport
from segmentkit.errors import SegmentkitError

__all__ = ["NativeCustomers", "NativeDataError", "NativeEvents", "NativeTransactions"]


class NativeDataError(SegmentkitError, TypeError):
    """Pandas data was asked of a table whose rows live in another engine."""


class _NativeRows:
    """What native tables share: the rows are a query in the caller's engine."""

    _frame: nw.LazyFrame[Any]
    _backend: Backend
    _n_customers: int | None
    report: ValidationReport
    #: Internal columns (epoch microseconds) kept beside the canonical ones.
    _internal: tuple[str, ...] = ()

    @property
    def backend(self) -> str:
        """The engine the rows live in: ``'polars'``, ``'duckdb'``, ``'pyspark'``..."""
        return self._backend.name

    @property
    def native(self) -> Any:
        """The kept rows as the caller's kind of frame (lazy for lazy inputs)."""
        return to_native(self._visible(self._frame), self._backend)

    def _visible(self, frame: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
        hidden = [c for c in self._internal if c in frame.collect_schema().names()]
        return frame.drop(hidden) if hidden else frame

    @property
    def data(self) -> pd.DataFrame:
        """Not available: the rows are in another engine (see ``to_pandas``)."""
        msg = (
            f"These {self.report.table} live in {self._backend}; `.data` would collect "
            "every row into pandas. Use `.native` for the frame in its engine, or "
            "`.to_pandas()` to collect them on purpose when they fit in memory."
        )
        raise NativeDataError(msg)

    @property
    def columns(self) -> list[str]:
        """Canonical columns of :attr:`native`."""
        return [c for c in self._frame.collect_schema().names() if c not in self._internal]

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
        name = self.report.table.capitalize()
        return f"<{name} on {self._backend}: {len(self)} rows, columns={self.columns}>"


class NativeTransactions(_NativeRows, Transactions):
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
    time_range : tuple of int, optional
        First and last kept timestamp (microseconds since the epoch), counted during
        validation; ``None`` when unknown.
    """

    _internal = (EPOCH_US,)

    def __init__(
        self,
        frame: nw.LazyFrame[Any],
        report: ValidationReport,
        returns: nw.LazyFrame[Any],
        *,
        backend: Backend,
        orders_from: OrdersFrom,
        time_range: tuple[int, int] | None = None,
    ) -> None:
        Transactions.__init__(self, pd.DataFrame(), report, pd.DataFrame())
        self.time_range = time_range
        self._frame = frame
        self._returns_frame = returns
        self._backend = backend
        self.orders_from = orders_from
        self._n_customers = None

    @property
    def returns(self) -> Any:
        """Return lines set aside by ``returns='separate'``, in the caller's engine."""
        return to_native(self._visible(self._returns_frame), self._backend)

    def to_pandas(self) -> Transactions:
        """Collect the rows into ordinary pandas :class:`Transactions`.

        The report stays the one counted in the engine.

        Returns
        -------
        Transactions
            The same lines and report, with ``data`` in pandas.
        """
        data = _collect_pandas(self._visible(self._frame))
        canonical = Transactions.contract.names
        mapping = {name: name for name in data.columns if name in canonical}
        attributes = [name for name in data.columns if name not in canonical]
        attributes.remove("is_return")
        rebuilt = Transactions.from_frame(
            data.drop(columns="is_return"),
            orders_from=self.orders_from,
            attributes=attributes or None,
            **mapping,
        )
        # Cancelled lines worth 0 are returns that amount < 0 alone would miss.
        kept = rebuilt.data.assign(is_return=data["is_return"].to_numpy(dtype=bool))
        returns = _collect_pandas(self._visible(self._returns_frame))
        return Transactions(kept, self.report, returns)


class NativeCustomers(_NativeRows, Customers):
    """Customer profiles validated on polars, pyarrow, DuckDB, PySpark or Dask, kept there.

    Parameters
    ----------
    frame : narwhals.LazyFrame
        The kept profiles in canonical columns (and extra columns), plus internal
        epoch columns of ``signup_date`` and ``birth_date``.
    report : ValidationReport
        The account of the input rows, counted in the engine.
    backend : Backend
        The caller's engine.
    """

    _internal = ("_signup_us", "_birth_us")

    def __init__(
        self, frame: nw.LazyFrame[Any], report: ValidationReport, *, backend: Backend
    ) -> None:
        Customers.__init__(self, pd.DataFrame(), report)
        self._frame = frame
        self._backend = backend
        self._n_customers = None


class NativeEvents(_NativeRows, Events):
    """Browsing events validated on polars, pyarrow, DuckDB, PySpark or Dask, kept there.

    Built by :meth:`Events.from_frame` when given such a frame; browsing features are
    then computed in the same engine by :func:`~segmentkit.extract_features`.

    Parameters
    ----------
    frame : narwhals.LazyFrame
        The kept events in canonical columns, plus the internal epoch column.
    report : ValidationReport
        The account of the input rows, counted in the engine.
    backend : Backend
        The caller's engine.
    """

    _internal = (EPOCH_US,)

    def __init__(
        self, frame: nw.LazyFrame[Any], report: ValidationReport, *, backend: Backend
    ) -> None:
        Events.__init__(self, pd.DataFrame(), report)
        self._frame = frame
        self._backend = backend
        self._n_customers = None

    def to_pandas(self) -> Events:
        """Collect the rows into ordinary pandas :class:`Events`.

        The report stays the one counted in the engine.

        Returns
        -------
        Events
            The same events and report, with ``data`` in pandas.
        """
        data = _collect_pandas(self._visible(self._frame))
        canonical = Events.contract.names
        attributes = [name for name in data.columns if name not in canonical]
        rebuilt = Events.from_frame(
            data,
            attributes=attributes or None,
            **{name: name for name in data.columns if name in canonical},
        )
        return Events(rebuilt.data, self.report)


def _collect_pandas(frame: nw.LazyFrame[Any]) -> pd.DataFrame:
    data = collect(frame).to_pandas()
    if "timestamp" in data:
        stamps = pd.to_datetime(data["timestamp"], utc=True)
        data["timestamp"] = stamps.astype("datetime64[ns, UTC]")
    return data
