"""The non-pandas path: the same contracts and features on polars, pyarrow, DuckDB,
PySpark and Dask frames, written once with narwhals (transactions, profiles and
browsing events).

Nothing here is imported by ``import segmentkit``: the shared modules import it only
when they meet a frame that is not a pandas DataFrame (or ``engine=`` is not pandas).
"""

from __future__ import annotations

from typing import Any

from segmentkit._native._detect import detect, is_native
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
    "refuse_native",
    "scan_file",
    "transactions_from_native",
]


def refuse_native(table: str, frame: Any) -> None:
    """Say clearly that events must be pandas for now.

    Frames narwhals does not know fall through, to the pandas path's own type error.
    """
    from segmentkit.errors import InvalidParameterError

    if not is_native(frame):
        return
    _, backend = detect(frame, table)
    msg = (
        f"{table} on {backend.name} is not supported yet: only Transactions and Customers "
        "are validated and featurised outside pandas. Collect this table to pandas first "
        "(e.g. `.to_pandas()`, or `.collect().to_pandas()` when lazy); browsing features "
        "are computed on the pandas path only."
    )
    raise InvalidParameterError(msg)
