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

from segmentkit._frame._detect import Backend
from segmentkit.contracts._dates import _DAY_MONTH, EPOCH_UNITS, DateOptions, day_month_format
from segmentkit.contracts._schema import MISSING_TEXT
from segmentkit.errors import ContractError, ContractFailure, InvalidParameterError, Reason

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
    text = _stripped(text, backend)
    # replace_all runs on every row on polars, but only changes rows the pattern matches.
    # The literal '.' test is cheap and rules out nearly every id before the regex runs.
    has_point = text.str.contains(".", literal=True)
    expr = (
        nw.when(has_point & text.str.contains(_POINT_ZERO))
        .then(text.str.replace_all(r"\.0+$", ""))
        .otherwise(text)
    )
    return Converted(expr)


#: What ``str.strip`` strips on the pandas path (and ``strip_chars`` everywhere).
_WHITESPACE = (" ", "\t", "\n", "\r", "\x0b", "\x0c")


def _stripped(text: nw.Expr, backend: Backend) -> nw.Expr:
    """``text`` without surrounding whitespace.

    DuckDB strips a character set by copying every string; only ids that start or end
    with whitespace (nearly none) need it, and testing the two ends is 2.4 times
    cheaper there. polars strips faster than it tests.
    """
    if backend.name != "duckdb":
        return text.str.strip_chars()
    edge = text.str.slice(0, 1).is_in(_WHITESPACE) | text.str.slice(-1, 1).is_in(_WHITESPACE)
    return nw.when(edge).then(text.str.strip_chars()).otherwise(text)


def is_missing_id(column: str) -> nw.Expr:
    """No id: null, or text such as ``''``, ``'nan'`` or ``'NULL'`` (as on the pandas path)."""
    values = nw.col(column)
    # The canonical column is already stripped. Only a short text can be a placeholder:
    # the length test spares lowercasing every real id (40 times faster on DuckDB).
    short = values.str.len_chars() <= max(len(text) for text in MISSING_TEXT)
    placeholder = short & values.str.to_lowercase().is_in(sorted(MISSING_TEXT))
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


def as_naive_or_aware_datetime(
    source: str,
    dtype: Any,
    sample: str | None,
    *,
    dates: DateOptions | None = None,
    key: str = "timestamp",
    table: str = "data",
) -> Converted | None:
    """Datetimes as they come (aware or naive); dates, YYYYMMDD numbers and text parsed.

    Parameters
    ----------
    source : str
        Raw column.
    dtype : narwhals.DType
        Its type.
    sample : str or None
        First non-missing value when the column is text: every value must have its format.
    dates : DateOptions, optional
        The caller's ``date_format`` and ``dayfirst``.
    key : str, default='timestamp'
        Canonical name, for messages.
    table : str, default='data'
        Table name, for messages.

    Returns
    -------
    Converted or None
        ``None`` for types that cannot hold times.
    """
    options = dates or DateOptions()
    values = nw.col(source)
    if isinstance(dtype, nw.Datetime):
        return Converted(values, naive=dtype.time_zone is None)
    if dtype == nw.Date:
        return Converted(values.cast(nw.Datetime("us")), naive=True)
    if options.date_format in EPOCH_UNITS:
        msg = (
            f"date_format={options.date_format!r} is read on pandas data only. Convert "
            f"the column {source!r} in your engine first (polars: pl.from_epoch(...); "
            "DuckDB: to_timestamp(...)), or pass a pandas DataFrame."
        )
        raise InvalidParameterError(msg)
    if dtype.is_integer() and options.date_format is None:
        # 19970101 is a date written as a number (CDNOW does this).
        ok = (values >= 10_000_101) & (values <= 99_991_231)
        text = nw.when(ok).then(values.cast(nw.String))
        return Converted(text.str.to_datetime("%Y%m%d"), (~values.is_null() & ~ok), True)
    if dtype == nw.String or (dtype.is_integer() and options.date_format is not None):
        text_values = values if dtype == nw.String else values.cast(nw.String)
        pattern, fmt = _text_pattern(sample, options, key, table)
        stripped = text_values.str.strip_chars()
        ok = stripped.str.contains(pattern).fill_null(False)
        # Non-matching text is nulled before parsing: engines raise on unparseable text.
        parsed = nw.when(ok).then(stripped).str.to_datetime(fmt)
        bad = ~values.is_null() & (stripped != "") & ~ok
        return Converted(parsed, bad.fill_null(False), not _has_zone(fmt))
    return None


def _text_pattern(
    sample: str | None, options: DateOptions, key: str, table: str
) -> tuple[str, str]:
    """The regular expression and strftime format every text value of a column must have."""
    if options.date_format is not None:
        return format_regex(options.date_format), options.date_format
    parts = re.match(_DAY_MONTH, (sample or "").strip())
    if parts is None:
        return text_format(sample)
    if options.dayfirst is None:
        # This engine is not asked to scan the whole column for a value that settles
        # the order: the caller states it.
        failure = ContractFailure(
            column=key,
            check="date_convention",
            reason=Reason.AMBIGUOUS,
            message=(
                f"Column {key!r} of {table} holds day/month dates such as {sample!r}, which "
                "read either day first or month first. Say which: pass dayfirst=True or "
                "dayfirst=False, or date_format='...' with the exact pattern (command line: "
                "--dayfirst or --no-dayfirst, or --date-format)."
            ),
            failure_cases=[(None, sample)],
            n_failed=1,
        )
        raise ContractError([failure], table=table)
    return format_regex(day_month_format(parts, dayfirst=options.dayfirst)), (
        day_month_format(parts, dayfirst=options.dayfirst)
    )


#: strftime directives this path can match with a regular expression.
_DIRECTIVES = {
    # Field ranges in the pattern, so that a month of 13 is reported as unparseable
    # rather than stopping the engine (engines raise on text they cannot parse).
    "d": r"(?:0?[1-9]|[12]\d|3[01])",
    "m": r"(?:0?[1-9]|1[0-2])",
    "Y": r"\d{4}",
    "y": r"\d{2}",
    "H": r"(?:[01]?\d|2[0-3])",
    "I": r"(?:0?[1-9]|1[0-2])",
    "M": r"[0-5]\d",
    "S": r"[0-5]\d",
    "f": r"\d{1,9}",
    "p": r"[AaPp][Mm]",
    "b": r"[A-Za-z]{3}",
    "B": r"[A-Za-z]+",
    "z": r"(?:[+-]\d{2}:?\d{2}|Z)",
    "%": "%",
}


def format_regex(fmt: str) -> str:
    """A regular expression matching the text a strftime pattern produces.

    Engines raise on text that does not parse, so values are checked first and the
    others reported as unparseable. Directives beyond the common ones are refused.
    """
    out, i = ["^"], 0
    while i < len(fmt):
        char = fmt[i]
        if char == "%" and i + 1 < len(fmt):
            directive = fmt[i + 1]
            if directive not in _DIRECTIVES:
                msg = (
                    f"date_format={fmt!r} uses %{directive}, which this engine cannot check; "
                    f"use the directives %{', %'.join(sorted(_DIRECTIVES))}, or pass a pandas "
                    "DataFrame."
                )
                raise InvalidParameterError(msg)
            out.append(_DIRECTIVES[directive])
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out) + "$"


def _has_zone(fmt: str) -> bool:
    return "%z" in fmt
