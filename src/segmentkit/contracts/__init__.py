"""Contracts: the tables a store brings (orders, events, customers), validated once at the
edge into canonical columns, with a :class:`ValidationReport` accounting for every row.

Each ``from_frame`` validates pandas frames in memory and hands frames of other libraries
(polars, pyarrow, DuckDB, PySpark, Dask) to the narwhals path, which keeps the rows where
they are. That path's tables subclass the pandas ones, so the hand-over is wired here,
above both: neither path imports the other, and narwhals loads only when such a frame
arrives.
"""

from __future__ import annotations

from typing import Any

from segmentkit.contracts._customers import Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._transactions import Transactions
from segmentkit.contracts._validation import ValidationReport

__all__ = ["Customers", "Events", "Transactions", "ValidationReport"]


def _transactions_from_native(*args: Any, **kwargs: Any) -> Any:
    from segmentkit.contracts._native_transactions import transactions_from_native

    return transactions_from_native(*args, **kwargs)


def _events_from_native(*args: Any, **kwargs: Any) -> Any:
    from segmentkit.contracts._native_events import events_from_native

    return events_from_native(*args, **kwargs)


def _customers_from_native(*args: Any, **kwargs: Any) -> Any:
    from segmentkit.contracts._native_customers import customers_from_native

    return customers_from_native(*args, **kwargs)


Transactions._from_native = staticmethod(_transactions_from_native)
Events._from_native = staticmethod(_events_from_native)
Customers._from_native = staticmethod(_customers_from_native)
