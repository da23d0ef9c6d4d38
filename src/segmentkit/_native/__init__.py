"""The non-pandas path: the same contracts and features on polars, pyarrow, DuckDB,
PySpark and Dask frames, written once with narwhals (transactions, profiles and
browsing events).

Nothing here is imported by ``import segmentkit``: the shared modules import it only
when they meet a frame that is not a pandas DataFrame (or ``engine=`` is not pandas).
"""

from __future__ import annotations

from segmentkit._native._detect import is_native
from segmentkit._native._events import events_from_native
from segmentkit._native._features import extract_native_features
from segmentkit._native._profiles import customers_from_native
from segmentkit._native._scan import scan_file
from segmentkit._native._tables import (
    NativeCustomers,
    NativeDataError,
    NativeEvents,
    NativeTransactions,
)
from segmentkit._native._validate import transactions_from_native

__all__ = [
    "NativeCustomers",
    "NativeDataError",
    "NativeEvents",
    "NativeTransactions",
    "customers_from_native",
    "events_from_native",
    "extract_native_features",
    "is_native",
    "scan_file",
    "transactions_from_native",
]
