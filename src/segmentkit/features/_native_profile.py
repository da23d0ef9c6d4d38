"""Profile features (age, location, signup, consent) of native customers.

Calendar parts of birth dates come from epoch days by integer arithmetic (the
civil-from-days algorithm), so no engine's session or connection time zone can shift
a birthday: every engine has integer division, not every one has UTC calendars.
"""

from __future__ import annotations

from typing import Any

import narwhals as nw
import pandas as pd

from segmentkit._frame._detect import collect
from segmentkit._frame._time import DAY_US
from segmentkit.contracts._native_tables import NativeCustomers

__all__ = ["profile_features"]

_ID = "customer_id"
_CATEGORIES = ("age_band", "gender", "city", "region", "country")
_CONSENTS = ("consent_email", "consent_sms", "consent_ads")
# Days from 1900-01-01 to the epoch: shifting by it keeps 20th-century birth dates
# positive, where integer division truncating or flooring agree.
_SHIFT_DAYS = 25_567


def profile_features(
    customers: NativeCustomers, as_of: pd.Timestamp, excluded: dict[str, int]
) -> tuple[nw.LazyFrame[Any], list[str]]:
    """One row per eligible profile: ``customer_id`` and the profile features.

    Parameters
    ----------
    customers : NativeCustomers
        Validated profiles.
    as_of : pandas.Timestamp
        Observation end (UTC).
    excluded : dict of str to int
        Filled with ``profiles_signed_up_after_as_of`` when signup dates are known.

    Returns
    -------
    tuple of (narwhals.LazyFrame, list of str)
        The features and their column names, in the pandas path's order.
    """
    from segmentkit.contracts._customers import PII_COLUMNS, CustomersContract

    frame = customers._frame
    names = frame.collect_schema().names()
    as_of_us = as_of.value // 1000
    if "_signup_us" in names:
        signup = nw.col("_signup_us")
        eligible = signup.is_null() | (signup <= as_of_us)
        late = collect(frame.select((~eligible).cast(nw.Int64).sum().alias("n")))
        excluded["profiles_signed_up_after_as_of"] = int(late.item(0, 0) or 0)
        frame = frame.filter(eligible)
    columns: dict[str, nw.Expr] = {}
    age = None
    if "_birth_us" in names:
        frame = _with_birthday(frame)
        before_birthday = (nw.col("_birth_month") > as_of.month) | (
            (nw.col("_birth_month") == as_of.month) & (nw.col("_birth_day") > as_of.day)
        )
        age = (nw.lit(as_of.year) - nw.col("_birth_year") - before_birthday.cast(nw.Int64)).cast(
            nw.Float64
        )
    if "age" in names:
        given = nw.col("age").cast(nw.Float64)
        age = given if age is None else age.fill_null(given)
    if age is not None:
        columns["age"] = age
    for name in _CATEGORIES:
        if name in names:
            columns[name] = nw.col(name).cast(nw.String)
    if "_signup_us" in names:
        columns["days_since_signup"] = (nw.lit(as_of_us) - nw.col("_signup_us")) / DAY_US
    for name in _CONSENTS:
        if name in names:
            columns[name] = nw.col(name)
    canonical = set(CustomersContract.names)
    for name in names:
        if name not in canonical and name not in PII_COLUMNS and not name.startswith("_"):
            columns[name] = nw.col(name)
    selected = frame.select(nw.col(_ID), *(expr.alias(name) for name, expr in columns.items()))
    return selected, list(columns)


def _with_birthday(frame: nw.LazyFrame[Any]) -> nw.LazyFrame[Any]:
    """Year, month and day of ``_birth_us`` (UTC), by Hinnant's civil-from-days."""
    days = (nw.col("_birth_us") + _SHIFT_DAYS * DAY_US) // DAY_US - _SHIFT_DAYS
    frame = frame.with_columns(_z=days + 719_468)
    frame = frame.with_columns(_era=nw.col("_z") // 146_097)
    frame = frame.with_columns(_doe=nw.col("_z") - nw.col("_era") * 146_097)
    doe = nw.col("_doe")
    frame = frame.with_columns(_yoe=(doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365)
    yoe = nw.col("_yoe")
    frame = frame.with_columns(_doy=doe - (365 * yoe + yoe // 4 - yoe // 100))
    frame = frame.with_columns(_mp=(5 * nw.col("_doy") + 2) // 153)
    mp = nw.col("_mp")
    month = nw.when(mp < 10).then(mp + 3).otherwise(mp - 9)
    return frame.with_columns(
        _birth_day=nw.col("_doy") - (153 * mp + 2) // 5 + 1,
        _birth_month=month,
        _birth_year=yoe + nw.col("_era") * 400 + (month <= 2).cast(nw.Int64),
    )
