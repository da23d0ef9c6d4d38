"""``extract_features``: one row per customer as of a date, on any backend.

This module only checks the parameters and dispatches: pandas tables to the numpy
kernels (:mod:`segmentkit.features._numpy`), tables kept in polars, DuckDB, Spark,
Dask... to narwhals expressions (:mod:`segmentkit.features._native`). Both compile the
same definitions (:mod:`segmentkit.features._definitions`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, cast, overload

from segmentkit.contracts._customers import Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._transactions import Transactions
from segmentkit.features._affinity import affinity
from segmentkit.features._base import CustomerFeatures, checked_params, checked_windows
from segmentkit.features._base import as_utc_timestamp as _as_utc_timestamp
from segmentkit.features._definitions import PURCHASE_WINDOWS, definitions
from segmentkit.features._numpy import extract_pandas_features
from segmentkit.features._selection import FeatureSelection

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
    features: Sequence[str] | None = ...,
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
    features: Sequence[str] | None = ...,
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
    features: Sequence[str] | None = ...,
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
    features: Sequence[str] | None = None,
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
    features : sequence of str, optional
        Compute only these features: names (``'recency_days'``) or shell-style patterns
        (``'orders_*d'``, ``'top_*'``), in catalog order. Default: every feature the
        tables allow. Each entry must select at least one feature the tables can give;
        the features left out cost nothing (no price medians without ``price_index``).

    Returns
    -------
    CustomerFeatures or native frame
        The features, their catalog and ``as_of``; for transactions kept in another
        engine (and ``output='native'``), a frame of that engine.

    Raises
    ------
    ValueError
        If no transaction falls on or before ``as_of``, a parameter is out of range, or
        an entry of ``features`` names no feature or one these tables cannot give.

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

    Only what a campaign needs, by name or pattern:

    >>> sk.extract_features(tx, features=["recency_days", "orders_*d"]).frame.columns.tolist()
    ['recency_days', 'orders_30d', 'orders_90d', 'orders_365d']
    """
    windows = checked_params(windows, abandon_hours, session_gap_minutes, output)
    purchase_windows = checked_windows(purchase_windows, "purchase_windows")
    selection = None
    catalog = definitions(windows, purchase_windows=purchase_windows)
    if features is not None:
        selection = FeatureSelection(features, catalog, open_ended=customers is not None)
    computed = _extract(
        transactions,
        events,
        customers,
        as_of=as_of,
        windows=windows,
        purchase_windows=purchase_windows,
        abandon_hours=abandon_hours,
        session_gap_minutes=session_gap_minutes,
        output=output,
        selection=selection,
    )
    if selection is not None:
        produced = (
            computed.frame.columns
            if isinstance(computed, CustomerFeatures)
            else _native_columns(computed)
        )
        inputs = {
            "transactions": _input_columns(transactions),
            "events": _input_columns(events),
            "customers": _input_columns(customers),
        }
        selection.check(produced, catalog, inputs)
    if isinstance(computed, CustomerFeatures):
        # The affinity table is computed on first use only, from the same inputs.
        computed._affinity_source = functools.partial(
            affinity,
            transactions,
            events,
            as_of=computed.as_of,
            abandon_hours=abandon_hours,
            session_gap_minutes=session_gap_minutes,
        )
    return computed


def _input_columns(table: Any) -> set[str] | None:
    """The columns a validated table holds, ``None`` when it was not passed."""
    if table is None:
        return None
    return set(table.columns if hasattr(type(table), "native") else table.data.columns)


def _native_columns(frame: Any) -> list[str]:
    import narwhals as nw

    return list(nw.from_native(frame).collect_schema().names())


def _extract(
    transactions: Transactions,
    events: Events | None,
    customers: Customers | None,
    *,
    as_of: Any,
    windows: tuple[int, ...],
    purchase_windows: tuple[int, ...],
    abandon_hours: float,
    session_gap_minutes: float,
    output: str,
    selection: FeatureSelection | None = None,
) -> Any:
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
            selection=selection,
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
        selection=selection,
    )
