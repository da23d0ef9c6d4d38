"""``extract_features``: one row per customer as of a date, on any backend.

This module only checks the parameters and dispatches: pandas tables to the numpy
kernels (:mod:`segmentkit.features._numpy`), tables kept in polars, DuckDB, Spark,
Dask... to narwhals expressions (:mod:`segmentkit.features._native`). Both compile the
same definitions (:mod:`segmentkit.features._definitions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from segmentkit.contracts._customers import Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._transactions import Transactions
from segmentkit.features._base import CustomerFeatures, checked_params, checked_windows
from segmentkit.features._base import as_utc_timestamp as _as_utc_timestamp
from segmentkit.features._definitions import PURCHASE_WINDOWS
from segmentkit.features._numpy import extract_pandas_features

if TYPE_CHECKING:
    from segmentkit.contracts._native_tables import NativeTransactions

# _as_utc_timestamp: read by timeline and cli under this name.
__all__ = ["CustomerFeatures", "_as_utc_timestamp", "extract_features"]


@overload
def extract_features(
    transactions: NativeTransactions,
    events: Events | None = ...,
    customers: Customers | None = ...,
    *,
    as_of: Any = ...,
    windows: Sequence[int] = ...,
    purchase_windows: Sequence[int] = ...,
    abandon_hours: float = ...,
    session_gap_minutes: float = ...,
    output: Literal["pandas"],
) -> CustomerFeatures: ...


# Transactions kept in polars, DuckDB, Spark, Dask...: a frame of that engine.
@overload
def extract_features(
    transactions: NativeTransactions,
    events: Events | None = ...,
    customers: Customers | None = ...,
    *,
    as_of: Any = ...,
    windows: Sequence[int] = ...,
    purchase_windows: Sequence[int] = ...,
    abandon_hours: float = ...,
    session_gap_minutes: float = ...,
    output: Literal["native"] = ...,
) -> Any: ...


@overload
def extract_features(
    transactions: Transactions,
    events: Events | None = ...,
    customers: Customers | None = ...,
    *,
    as_of: Any = ...,
    windows: Sequence[int] = ...,
    purchase_windows: Sequence[int] = ...,
    abandon_hours: float = ...,
    session_gap_minutes: float = ...,
    output: str = ...,
) -> CustomerFeatures: ...


def extract_features(
    transactions: Transactions,
    events: Events | None = None,
    customers: Customers | None = None,
    *,
    as_of: Any = None,
    windows: Sequence[int] = (7, 30, 90),
    purchase_windows: Sequence[int] = PURCHASE_WINDOWS,
    abandon_hours: float = 24.0,
    session_gap_minutes: float = 30.0,
    output: str = "native",
) -> Any:
    """Compute one row of features per customer from data up to ``as_of``.

    Customers are everyone with an order line (purchase or return), a browsing
    event or (when given) a profile on or before ``as_of``. People who never bought
    get ``frequency = 0``, ``monetary = 0`` and a missing ``recency_days``. Only rows
    with a timestamp ``<= as_of`` are used; the rest are counted in
    :attr:`CustomerFeatures.excluded`.
    Personal data (e-mail, phone, names, postal code, birth date) is never joined in.

    Parameters
    ----------
    transactions : Transactions
        Validated order lines.
    events : Events, optional
        Validated browsing events; adds the browsing features.
    customers : Customers, optional
        Validated profiles; adds age, gender, location, signup and consent columns
        and any extra profile columns.
    as_of : str or datetime-like, optional
        End of observation (inclusive). Defaults to the last transaction timestamp.
        A time zone-naive value is read as UTC; ``'2024-06-30'`` means midnight at the
        start of that day.
    windows : sequence of int, default=(7, 30, 90)
        Look-back windows in days for the browsing features.
    purchase_windows : sequence of int, default=(30, 90, 365)
        Look-back windows in days for the purchase features (``orders_90d``,
        ``spend_90d``, ``items_90d``, ``products_90d``, ``spend_trend_90d``,
        ``new_categories_90d``...). A line is in a window of ``w`` days when its time
        is after ``as_of - w days`` and on or before ``as_of``. ``()``: none.
    abandon_hours : float, default=24.0
        A visit with an add-to-cart and no purchase within this many hours counts as
        an abandoned cart. Carts younger than this at ``as_of`` are not counted yet.
    session_gap_minutes : float, default=30.0
        Without a ``session_id``, a pause longer than this starts a new visit.
    output : {'native', 'pandas'}, default='native'
        For transactions validated on polars, pyarrow, DuckDB, PySpark or Dask: return
        a frame of that engine (``customer_id`` plus the features) or, with
        ``'pandas'``, ``CustomerFeatures``. Pandas transactions always give the latter.

    Returns
    -------
    CustomerFeatures or native frame
        The features, their catalog and ``as_of``; for transactions kept in another
        engine (and ``output='native'``), a frame of that engine.

    Raises
    ------
    ValueError
        If no transaction falls on or before ``as_of``, or a parameter is out of range.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> features = sk.extract_features(tx, as_of="2017-12-01")
    >>> features.frame[["recency_days", "frequency", "monetary"]].describe().loc["count"]
    recency_days    ...
    frequency       ...
    monetary        ...
    Name: count, dtype: float64
    """
    windows = checked_params(windows, abandon_hours, session_gap_minutes, output)
    purchase_windows = checked_windows(purchase_windows, "purchase_windows")
    if hasattr(type(transactions), "native"):  # validated on polars, DuckDB, Spark...: stays
        from segmentkit.features._native import extract_native_features

        return extract_native_features(
            # Only NativeTransactions has `native`; the type is not imported to test it, so
            # that pandas users never import the narwhals path.
            cast("NativeTransactions", transactions),
            events,
            customers,
            as_of=as_of,
            windows=windows,
            purchase_windows=purchase_windows,
            abandon_hours=abandon_hours,
            session_gap_minutes=session_gap_minutes,
            output=output,
        )
    return extract_pandas_features(
        transactions,
        events,
        customers,
        as_of=as_of,
        windows=windows,
        purchase_windows=purchase_windows,
        abandon_hours=abandon_hours,
        session_gap_minutes=session_gap_minutes,
    )
