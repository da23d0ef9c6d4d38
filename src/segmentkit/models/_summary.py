"""The one adapter from customer features (or a BTYD table) to (x, t_x, T, spend) arrays.

Every model reads its input through :func:`_summary`, so the conventions live here once:
a *purchase* is a distinct purchase day, ``x`` counts the repeat purchase days, ``t_x``
is the time from the first to the last purchase day and ``T`` the time from the first
purchase day to the observation end, both in the model's ``time_unit``. Days are UTC
calendar days, as in the feature ``purchase_days``.

Features kept in polars, pyarrow, DuckDB, Spark or Dask are read through
:mod:`._native` (imported only then), which brings one row of five numbers per customer
into Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from segmentkit._frame import is_native
from segmentkit.errors import ContractError, ContractFailure, Reason
from segmentkit.features._extract import CustomerFeatures

_DAY_US = 86_400 * 10**6

#: Days in one time unit. A month is a twelfth of the mean Gregorian year (365.25 / 12).
TIME_UNITS: dict[str, float] = {"D": 1.0, "W": 7.0, "M": 30.4375}
_DATE_COLUMNS = ("first_purchase", "last_purchase", "purchase_days")
_BTYD_COLUMNS = ("frequency", "recency", "T")


@dataclass(frozen=True)
class Summary:
    """Per-customer BTYD inputs, in the order of ``index``.

    ``buyers`` marks the customers with at least one purchase; the arrays hold NaN for
    the others. ``spend`` is the mean spend per purchase (NaN when unknown).
    """

    index: pd.Index
    frequency: np.ndarray
    recency: np.ndarray
    T: np.ndarray
    spend: np.ndarray
    buyers: np.ndarray

    @property
    def n_excluded(self) -> int:
        """Customers without a purchase (they get NaN predictions)."""
        return int((~self.buyers).sum())


def _missing(column: str, where: str, hint: str) -> ContractError:
    failure = ContractFailure(
        column=column,
        check="btyd_summary",
        reason=Reason.MISSING_COLUMN,
        message=f"{where} has no {column!r} column, which the purchase models need. {hint}",
    )
    return ContractError([failure], table="features")


def _bad(column: str, problem: str, index: pd.Index, rows: np.ndarray) -> ContractError:
    positions = np.flatnonzero(rows)
    failure = ContractFailure(
        column=column,
        check="btyd_summary",
        reason=Reason.OUT_OF_RANGE,
        message=f"{column!r} {problem} for {positions.size} customer(s).",
        failure_cases=[(int(p), index[p]) for p in positions[:5]],
        n_failed=int(positions.size),
    )
    return ContractError([failure], table="features")


def _summary(data: Any, time_unit: str) -> Summary:
    """Read (x, t_x, T, mean spend) per customer from ``data``.

    Parameters
    ----------
    data : CustomerFeatures, pandas.DataFrame or a polars, pyarrow, DuckDB, PySpark or Dask frame
        Customer features with ``first_purchase``, ``last_purchase`` and
        ``purchase_days`` (and ``as_of``: the attribute of :class:`CustomerFeatures`, or
        a column of a plain frame; a frame of another library gives ``tenure_days``
        instead, as ``sk.extract_features`` returns it); or a frame in the BTYD convention with
        ``frequency`` (repeat purchases), ``recency`` (t_x) and ``T`` already in
        ``time_unit``, and optionally ``monetary_value``, indexed by customer id.
    time_unit : {'D', 'W', 'M'}
        Unit of ``t_x`` and ``T`` for date columns.

    Returns
    -------
    Summary
    """
    if isinstance(data, CustomerFeatures):
        return _from_dates(data.frame, data.as_of, time_unit, "The customer features")
    if not isinstance(data, pd.DataFrame):
        data = local_inputs(data)
        if _is_inputs(data):
            return _from_epochs(data.frame, time_unit)
        msg = (
            "The purchase models take CustomerFeatures (from sk.extract_features), a pandas "
            "DataFrame or the features frame extract_features returns for polars, pyarrow, "
            f"DuckDB, PySpark or Dask transactions; got {type(data).__name__}."
        )
        raise TypeError(msg)
    if "first_purchase" in data.columns:
        if "as_of" not in data.columns:
            raise _missing("as_of", "The frame", "Add the observation end of each customer.")
        return _from_dates(data, data["as_of"], time_unit, "The frame")
    for column in _BTYD_COLUMNS:
        if column not in data.columns:
            hint = (
                "Pass CustomerFeatures, or a frame with 'frequency' (repeat purchases), "
                "'recency' (time from first to last purchase) and 'T' (time from first "
                "purchase to the observation end), indexed by customer id."
            )
            raise _missing(column, "The frame", hint)
    return _from_btyd(data)


def local_inputs(data: Any) -> Any:
    """``data`` with native features replaced by their collected model inputs.

    Call once where several predictions read the same data (e.g. lifetime value), so
    that the engine is queried once. Anything else is returned as it is.
    """
    if not is_native(data):
        return data
    from segmentkit.models._native import native_inputs

    return native_inputs(data)


def _is_inputs(data: Any) -> bool:
    # The class lives with the narwhals code: look at it only for objects that are
    # neither features nor pandas frames.
    if type(data).__module__ != "segmentkit.models._native":
        return False
    from segmentkit.models._native import NativeInputs

    return isinstance(data, NativeInputs)


def _numeric(frame: pd.DataFrame, column: str) -> np.ndarray:
    try:
        return pd.to_numeric(frame[column]).to_numpy(dtype=float, na_value=np.nan)
    except (TypeError, ValueError):
        raise _bad(column, "is not numeric", frame.index, np.ones(len(frame), bool)) from None


def _from_btyd(frame: pd.DataFrame) -> Summary:
    x, t_x, age = (_numeric(frame, c) for c in _BTYD_COLUMNS)
    buyers = np.isfinite(x) & np.isfinite(t_x) & np.isfinite(age)
    index = frame.index
    if (bad := buyers & ((x < 0) | (x != np.round(x)))).any():
        raise _bad("frequency", "is not a whole number >= 0", index, bad)
    if (bad := buyers & (t_x < 0)).any():
        raise _bad("recency", "is negative", index, bad)
    if (bad := buyers & (t_x > age)).any():
        raise _bad("age", "is smaller than 'recency'", index, bad)
    if (bad := buyers & (x == 0) & (t_x != 0)).any():
        raise _bad("recency", "is not 0 although 'frequency' is 0", index, bad)
    spend = (
        _numeric(frame, "monetary_value")
        if "monetary_value" in frame.columns
        else np.full(len(frame), np.nan)
    )
    nan = np.where(buyers, 0.0, np.nan)
    return Summary(index, x + nan, t_x + nan, age + nan, spend + nan, buyers)


def _days(values: Any, index: pd.Index) -> pd.Series:
    stamps = pd.to_datetime(pd.Series(values, index=index))
    return stamps.dt.normalize()


def _from_dates(frame: pd.DataFrame, as_of: Any, time_unit: str, where: str) -> Summary:
    hints = {
        "first_purchase": "Use sk.extract_features on transactions.",
        "last_purchase": "Use sk.extract_features on transactions.",
        "purchase_days": (
            "It is the number of distinct days with a purchase per customer, a feature "
            "sk.extract_features computes from transactions: keep it in the features."
        ),
    }
    for column in _DATE_COLUMNS:
        if column not in frame.columns:
            raise _missing(column, where, hints[column])
    index = frame.index
    first = _days(frame["first_purchase"], index)
    last = _days(frame["last_purchase"], index)
    end = pd.to_datetime(pd.Series(as_of, index=index))
    if end.dt.tz is None and first.dt.tz is not None:
        end = end.dt.tz_localize(first.dt.tz)
    day = np.timedelta64(1, "D")
    span = (last - first).to_numpy() / day
    age = (end - first).to_numpy() / day
    return _assemble(frame, first.notna().to_numpy(), span, age, time_unit)


def _from_epochs(frame: pd.DataFrame, time_unit: str) -> Summary:
    """The inputs collected from native features: purchase times in UTC microseconds."""
    from segmentkit.models._native import FIRST_US, LAST_US

    first_us = frame[FIRST_US].to_numpy(dtype=float)
    # Whole days since 1970 (exact: microsecond counts are exact in float64).
    first_day = np.floor_divide(first_us, _DAY_US)
    span = np.floor_divide(frame[LAST_US].to_numpy(dtype=float), _DAY_US) - first_day
    # tenure_days = (as_of - first purchase) / 1 day gives back as_of to the microsecond
    # (its rounding error is below 0.5 µs for any tenure under 130 years), so T is the
    # same division of the same whole microseconds as for CustomerFeatures: same bits.
    tenure = frame["tenure_days"].to_numpy(dtype=float)
    end_us = first_us + np.round(tenure * _DAY_US)
    age = (end_us - first_day * _DAY_US) / _DAY_US
    return _assemble(frame, np.isfinite(first_us), span, age, time_unit)


def _assemble(
    frame: pd.DataFrame, bought: np.ndarray, span: np.ndarray, age: np.ndarray, time_unit: str
) -> Summary:
    """Checked (x, t_x, T, spend) from purchase days and spans in days."""
    index = frame.index
    days = _numeric(frame, "purchase_days")
    buyers = bought & np.isfinite(days) & (days > 0)
    unit = TIME_UNITS[time_unit]
    t_x = span / unit
    age = age / unit
    x = days - 1.0
    if (bad := buyers & (days != np.round(days))).any():
        raise _bad("purchase_days", "is not a whole number", index, bad)
    if (bad := buyers & ~(t_x >= 0)).any():
        raise _bad("last_purchase", "is before 'first_purchase' or missing", index, bad)
    if (bad := buyers & ~(t_x <= age)).any():
        raise _bad("last_purchase", "is after the observation end (as_of)", index, bad)
    if (bad := buyers & (x == 0) & (t_x != 0)).any():
        raise _bad(
            "purchase_days", "is 1 although the first and last purchase days differ", index, bad
        )
    if "monetary" in frame.columns:
        spend = _numeric(frame, "monetary") / np.where(buyers, days, np.nan)
    else:
        spend = np.full(len(frame), np.nan)
    nan = np.where(buyers, 0.0, np.nan)
    return Summary(index, x + nan, t_x + nan, age + nan, spend + nan, buyers)


def distinct_values(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct values of ``x`` and, per row, the position of its value."""
    if x.size and np.all(x[1:] >= x[:-1]):
        new = np.empty(x.size, dtype=bool)
        new[0] = True
        new[1:] = x[1:] != x[:-1]
        return x[new], np.cumsum(new) - 1
    values, at = np.unique(x, return_inverse=True)
    return values, at.reshape(-1)


def group_rows(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct rows of ``columns`` (one array each), their inverse and their counts.

    Real customer bases repeat the same (x, t_x, T) many times (everyone who bought once
    on the same day): the likelihood is computed once per distinct row, weighted. The
    distinct rows come in lexicographic order (NaN last in each column).
    """
    n = len(columns[0])
    # Hash each column to its sorted value codes (linear time), then combine the codes
    # into one integer key per row: sorting one int64 key (or counting it, when the
    # key range is small) is several times faster than a lexsort of float columns.
    key = np.zeros(n, dtype=np.int64)
    size = 1
    values: list[np.ndarray] = []
    for column in columns:
        codes, uniques = pd.factorize(column, sort=True, use_na_sentinel=False)
        values.append(np.asarray(uniques, dtype=float))
        if size * len(uniques) >= 2**62:
            key, seen = pd.factorize(key, sort=True)
            size = len(seen)
        key = key * len(uniques) + codes
        size *= len(uniques)
    if size <= n:
        counts = np.bincount(key, minlength=size)
        groups = np.flatnonzero(counts)
        inverse = (np.cumsum(counts > 0) - 1)[key]
        counts = counts[groups]
    else:
        # Hash the keys, then sort only the distinct ones.
        codes, seen = pd.factorize(key)
        order = np.argsort(seen)
        rank = np.empty(order.size, dtype=np.int64)
        rank[order] = np.arange(order.size)
        inverse = rank[codes]
        groups = seen[order]
        counts = np.bincount(inverse, minlength=order.size)
    distinct = np.empty((groups.size, len(columns)))
    rest = groups
    for j in range(len(columns) - 1, -1, -1):
        m = len(values[j])
        distinct[:, j] = values[j][rest % m]
        rest = rest // m
    return distinct, inverse.astype(np.int64, copy=False), counts
