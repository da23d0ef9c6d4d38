"""Column expressions that give native columns the pandas path's canonical values.

Each builder returns the converted expression and, where values can be refused, an
expression over the raw column that is true for the refused rows (counted in the
one report query, and used to fetch a few examples).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import narwhals as nw

from segmentkit._native._detect import Backend
from segmentkit._schema import MISSING_TEXT

__all__ = ["Converted", "as_float", "as_id", "as_naive_or_aware_datetime", "is_missing_id"]

# Integral numbers written as floats ("17850.0") lose the ".0", as on the pandas path.
_POINT_ZERO = r"^-?\d+\.0+$"


@dataclass(frozen=True)
class Converted:
    """One converted column.

    Attributes
    ----------
    expr : narwhals.Expr
        The canonical values.
    bad : narwhals.Expr or None
        True where a present raw value could not be converted.
    naive : bool
        For datetimes: whether the values carry no time zone yet.
    """

    expr: nw.Expr
    bad: nw.Expr | None = None
    naive: bool = False


def as_id(source: str, dtype: Any, backend: Backend) -> Converted:
    """Identifiers and categories as stripped text, leading zeros kept.

    Parameters
    ----------
    source : str
        Raw column.
    dtype : narwhals.DType
        Its type.
    backend : Backend
        Engine of the frame.

    Returns
    -------
    Converted
        Text values; never refused.
    """
    values = nw.col(source)
    text: nw.Expr
    if dtype.is_float():
        finite = nw.when(values.is_finite()).then(values)
        if backend.name == "dask":
            # Dask casts with pandas, which prints 17850.0 in full and cannot cast NaN to
            # int: the text route and the '.0' rule below give the pandas ids.
            text = finite.cast(nw.String)
        else:
            # Spark prints large doubles in scientific notation, so whole numbers go
            # through int64 first. Only finite, floored values are cast: eager engines
            # cast every row, and inf or 12.5 would fail a safe cast.
            whole = finite == finite.floor()
            text = (
                nw.when(whole)
                .then(finite.floor().cast(nw.Int64).cast(nw.String))
                .otherwise(finite.cast(nw.String))
            )
    elif dtype == nw.String:
        text = values
    else:
        text = values.cast(nw.String)
    text = text.str.strip_chars()
    # replace_all runs on every row on polars, but only changes rows the pattern matches.
    # The literal '.' test is cheap and rules out nearly every id before the regex runs.
    has_point = text.str.contains(".", literal=True)
    expr = (
        nw.when(has_point & text.str.contains(_POINT_ZERO))
        .then(text.str.replace_all(r"\.0+$", ""))
        .otherwise(text)
    )
    return Converted(expr)


def is_missing_id(column: str) -> nw.Expr:
    """No id: null, or text such as ``''``, ``'nan'`` or ``'NULL'`` (as on the pandas path)."""
    values = nw.col(column)
    # The canonical column is already stripped.
    placeholder = values.str.to_lowercase().is_in(sorted(MISSING_TEXT))
    return values.is_null() | placeholder.fill_null(False)


def as_float(source: str, dtype: Any) -> Converted | None:
    """Numbers as float64, NaN as missing; ``None`` when the column is text.

    Infinite values are refused, as on the pandas path.
    """
    values = nw.col(source)
    if dtype == nw.String or not (dtype.is_numeric() or dtype == nw.Boolean):
        return None
    number = values.cast(nw.Float64)
    if dtype.is_float():
        number = number.fill_nan(None)
        bad = ~values.is_null() & ~values.is_nan() & ~values.is_finite()
        return Converted(number, bad.fill_null(False))
    return Converted(number)


_TEXT_FORMATS = (
    (r"^\d{4}-\d{2}-\d{2}$", "%Y-%m-%d"),
    (r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}$", "%Y-%m-%d %H:%M"),
    (r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$", "%Y-%m-%d %H:%M:%S"),
    (r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}$", "%Y-%m-%dT%H:%M"),
    (r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$", "%Y-%m-%dT%H:%M:%S"),
    (r"^\d{8}$", "%Y%m%d"),
)


def text_format(sample: str | None) -> tuple[str, str]:
    """The ISO format of a text timestamp, from one sample value (first listed if none)."""
    text = (sample or "").strip()
    for pattern, fmt in _TEXT_FORMATS:
        if re.match(pattern, text):
            return pattern, fmt
    return _TEXT_FORMATS[2]


def as_naive_or_aware_datetime(source: str, dtype: Any, sample: str | None) -> Converted | None:
    """Datetimes as they come (aware or naive); dates, YYYYMMDD numbers and ISO text parsed.

    Parameters
    ----------
    source : str
        Raw column.
    dtype : narwhals.DType
        Its type.
    sample : str or None
        First non-missing value when the column is text: every value must have its format.

    Returns
    -------
    Converted or None
        ``None`` for types that cannot hold times.
    """
    values = nw.col(source)
    if isinstance(dtype, nw.Datetime):
        return Converted(values, naive=dtype.time_zone is None)
    if dtype == nw.Date:
        return Converted(values.cast(nw.Datetime("us")), naive=True)
    if dtype.is_integer():
        # 19970101 is a date written as a number (CDNOW does this).
        ok = (values >= 10_000_101) & (values <= 99_991_231)
        text = nw.when(ok).then(values.cast(nw.String))
        return Converted(text.str.to_datetime("%Y%m%d"), (~values.is_null() & ~ok), True)
    if dtype == nw.String:
        pattern, fmt = text_format(sample)
        stripped = values.str.strip_chars()
        ok = stripped.str.contains(pattern).fill_null(False)
        # Non-matching text is nulled before parsing: engines raise on unparseable text.
        parsed = nw.when(ok).then(stripped).str.to_datetime(fmt)
        bad = ~values.is_null() & (stripped != "") & ~ok
        return Converted(parsed, bad.fill_null(False), True)
    return None
