"""Text, number and datetime columns to UTC instants, with ONE date convention per column.

Exports from Finland, Sweden or Poland write ``13.02.2024 14:05``; American ones
``02/13/2024``. Both orders read ``01.02.2024`` without complaint, so a parser that
guesses per value silently mixes them. Here a text column is read with a single
convention for every row:

- ISO 8601 text (year first) is unambiguous and keeps pandas' fast vectorised parse.
- Numeric day/month text (``dd.mm.yyyy``, ``mm/dd/yyyy``...) is read with the order the
  caller gave (``dayfirst=`` or ``date_format=``), or the order the data settles (a
  value like ``13/02/2024`` fits only day-first); the choice is reported as a note.
- A column whose values fit both orders, fit neither, or mix formats is refused.

Detection works on the distinct values, with vectorised regular expressions, so a
column of ten million rows costs one factorisation, not ten million Python calls.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from segmentkit.errors import ContractFailure, InvalidParameterError, Reason

__all__ = [
    "EPOCH_UNITS",
    "DateOptions",
    "ParsedDates",
    "check_date_options",
    "out_of_range_message",
    "parse_dates",
]

#: ``date_format`` values for numbers counted from 1970-01-01 UTC, and their unit.
EPOCH_UNITS = {"epoch": "s", "epoch_s": "s", "epoch_ms": "ms", "epoch_us": "us", "epoch_ns": "ns"}

#: The instants a ``datetime64[ns]`` column can hold (pandas' nanosecond range).
_LOWEST = pd.Timestamp.min.ceil("s")
_HIGHEST = pd.Timestamp.max.floor("s")

#: Year first: ISO 8601 and its common variants (an optional time, 'T', offset...).
_YEAR_FIRST = r"^\d{4}-\d{1,2}-\d{1,2}"

#: Day and month first, in either order: 01.02.2024, 1/2/24, 01-02-2024 14:05[:09[.5]] [PM].
_DAY_MONTH = (
    r"^(?P<a>\d{1,2})(?P<sep>[./-])(?P<b>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})"
    r"(?:(?:[ T]+|,\s*)(?P<hour>\d{1,2})[:.](?P<minute>\d{2})"
    r"(?:[:.](?P<second>\d{2})(?:[.,](?P<fraction>\d{1,9}))?)?"
    r"\s*(?P<ampm>[AaPp]\.?[Mm]\.?)?)?$"
)

_SHAPES = {".": "dd.mm.yyyy", "/": "dd/mm/yyyy", "-": "dd-mm-yyyy"}


@dataclass(frozen=True)
class DateOptions:
    """How text dates are read: an explicit format, a day/month order, or neither.

    Attributes
    ----------
    date_format : str or None
        A ``strftime`` pattern such as ``'%d.%m.%Y %H:%M'``, or ``'epoch'``
        (``'epoch_ms'``, ``'epoch_us'``, ``'epoch_ns'``) for numbers of seconds
        (milli-, micro-, nanoseconds) since 1970-01-01 UTC.
    dayfirst : bool or None
        For numeric dates such as ``01/02/2024``: ``True`` reads day first, ``False``
        month first, ``None`` lets the data settle it (and refuses when it cannot).
    """

    date_format: str | None = None
    dayfirst: bool | None = None


def check_date_options(date_format: Any, dayfirst: Any) -> DateOptions:
    """Validate ``date_format`` and ``dayfirst`` before any data is read."""
    if date_format is not None:
        if not isinstance(date_format, str) or not date_format.strip():
            msg = (
                "'date_format' must be a strftime pattern such as '%d.%m.%Y %H:%M', or "
                f"one of {sorted(EPOCH_UNITS)}. Got {date_format!r} instead."
            )
            raise InvalidParameterError(msg)
        if date_format not in EPOCH_UNITS and "%" not in date_format:
            msg = (
                f"date_format={date_format!r} has no % directive. Write it as a strftime "
                "pattern, e.g. '%d.%m.%Y %H:%M' for 13.02.2024 14:05, or use one of "
                f"{sorted(EPOCH_UNITS)} for numbers since 1970-01-01 UTC."
            )
            raise InvalidParameterError(msg)
    if dayfirst is not None and not isinstance(dayfirst, bool | np.bool_):
        msg = f"'dayfirst' must be True, False or None. Got {dayfirst!r} instead."
        raise InvalidParameterError(msg)
    return DateOptions(date_format, None if dayfirst is None else bool(dayfirst))


@dataclass
class ParsedDates:
    """The result of reading one column.

    Attributes
    ----------
    values : pandas.Series
        ``datetime64[ns, UTC]``; NaT where missing or refused.
    bad : numpy.ndarray
        Present values that could not be read (the caller reports them).
    out_of_range : numpy.ndarray
        Values that are dates but outside the range a nanosecond timestamp holds.
    hint : str or None
        What to do about ``bad`` values, when more specific than the default.
    refusal : ContractFailure or None
        A whole-column refusal (ambiguous or mixed formats): nothing else is reported.
    notes : list of str
        What was decided for the column, for the validation report.
    """

    values: pd.Series
    bad: np.ndarray
    out_of_range: np.ndarray
    hint: str | None = None
    refusal: ContractFailure | None = None
    notes: list[str] = field(default_factory=list)


def parse_dates(
    values: pd.Series, column: str, table: str, timezone: str, options: DateOptions
) -> ParsedDates:
    """Read ``values`` as instants, converted to UTC, with one convention for the column.

    Parameters
    ----------
    values : pandas.Series
        Raw values: datetimes (naive or aware), numbers or text.
    column : str
        Canonical column name, for messages.
    table : str
        Table name, for messages.
    timezone : str
        Zone of values that carry none (epoch numbers are UTC by definition).
    options : DateOptions
        The caller's format and day/month order.

    Returns
    -------
    ParsedDates
        The instants and what went wrong or was decided.
    """
    present = values.notna().to_numpy()
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        utc, out = _to_ns(values.dt.tz_convert("UTC"))
        return ParsedDates(utc, np.zeros(len(values), dtype=bool), out)
    if pd.api.types.is_datetime64_dtype(values.dtype):
        return _finish(values, timezone, np.zeros(len(values), dtype=bool))
    epoch_unit = EPOCH_UNITS.get(options.date_format or "")
    numeric = pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    )
    if epoch_unit is not None:
        return _from_epoch(values, epoch_unit, present, numeric=numeric)
    if numeric and options.date_format is None:
        return _from_numbers(values, timezone, options, present)
    if numeric:  # e.g. 13022024 with date_format='%d%m%Y': the digits are the text
        whole = values.astype("Float64")
        values = whole.where(whole == whole.round()).astype("Int64")
    text = values.astype("string").str.strip()
    if options.date_format is not None:
        return _with_format(text, options.date_format, timezone, present)
    return _detect(text, column, table, timezone, options, present)


def _from_epoch(
    values: pd.Series, unit: str, present: np.ndarray, *, numeric: bool
) -> ParsedDates:
    number = values if numeric else pd.to_numeric(values.astype("string").str.strip(), "coerce")
    number = pd.Series(number, dtype="float64", index=values.index)
    seconds = number.to_numpy() / {"s": 1, "ms": 1e3, "us": 1e6, "ns": 1e9}[unit]
    finite = np.isfinite(seconds)
    low, high = _LOWEST.timestamp(), _HIGHEST.timestamp()
    inside = finite & (seconds >= low) & (seconds <= high)
    # Whole units are exact in int64; fractions of the unit are kept to the nanosecond.
    raw = number.to_numpy()
    as_int = np.where(inside, raw, 0)
    stamps = pd.to_datetime(pd.Series(as_int, index=values.index), unit=unit, utc=True)
    stamps = stamps.astype("datetime64[ns, UTC]").where(inside)
    out = present & finite & ~inside
    names = {"s": "seconds", "ms": "milliseconds", "us": "microseconds", "ns": "nanoseconds"}
    hint = (
        f"Hint: with date_format='epoch{'' if unit == 's' else '_' + unit}' every value must "
        f"be a number of {names[unit]} since 1970-01-01 UTC."
    )
    return ParsedDates(stamps, present & ~finite, out, hint=hint)


def _from_numbers(
    values: pd.Series, timezone: str, options: DateOptions, present: np.ndarray
) -> ParsedDates:
    # Integers such as 19970101 are dates written as numbers (CDNOW does this).
    whole = values.astype("Float64")
    integral = (whole == whole.round()).fillna(False).to_numpy(dtype=bool)
    text = whole.where(integral).astype("Int64").astype("string")
    parsed = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
    result = _finish(parsed, timezone, present & parsed.isna().to_numpy())
    big = present & (np.abs(np.nan_to_num(whole.to_numpy(dtype=float, na_value=np.nan))) > 1e8)
    if (result.bad & big).any():
        result.hint = (
            "Hint: these look like epoch times: pass date_format='epoch' for seconds since "
            "1970-01-01 UTC (or 'epoch_ms' for milliseconds); on the command line, "
            "--date-format epoch."
        )
    return result


def _with_format(text: pd.Series, fmt: str, timezone: str, present: np.ndarray) -> ParsedDates:
    codes, uniques = pd.factorize(text)
    try:
        parsed = pd.to_datetime(
            pd.Series(uniques), format=fmt, errors="coerce", utc=_has_zone(fmt)
        )
    except ValueError as error:  # a pattern pandas cannot use at all
        msg = f"date_format={fmt!r} is not a usable strftime pattern: {error}"
        raise InvalidParameterError(msg) from error
    stamps = _take(parsed, codes, text.index)
    hint = (
        f"Hint: every value must match date_format={fmt!r}; fix these rows or the pattern "
        "(on the command line: --date-format)."
    )
    result = _finish(stamps, timezone, present & stamps.isna().to_numpy())
    result.hint = hint
    return result


def _has_zone(fmt: str) -> bool:
    return "%z" in fmt or "%Z" in fmt


def _take(parsed: pd.Series, codes: np.ndarray, index: pd.Index) -> pd.Series:
    """Map per-distinct-value results back to the rows (code -1 is missing)."""
    taken = parsed.take(np.maximum(codes, 0)).to_numpy()
    out = pd.Series(taken, index=index)
    if (codes < 0).any():
        out = out.where(codes >= 0)
    return out


def _finish(parsed: pd.Series, timezone: str, bad: np.ndarray) -> ParsedDates:
    """Check the range, read naive values in ``timezone`` and convert to UTC nanoseconds."""
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        utc, out = _to_ns(parsed.dt.tz_convert("UTC"))
        return ParsedDates(utc, bad, out)
    naive, out = _to_ns(parsed)
    return ParsedDates(_localize(naive, timezone), bad, out)


def _to_ns(parsed: pd.Series) -> tuple[pd.Series, np.ndarray]:
    """Nanosecond resolution; values beyond its range become NaT and are flagged."""
    if not isinstance(parsed.dtype, pd.DatetimeTZDtype) and not pd.api.types.is_datetime64_dtype(
        parsed.dtype
    ):
        parsed = pd.to_datetime(parsed)
    dtype = parsed.dtype
    unit = dtype.unit if isinstance(dtype, pd.DatetimeTZDtype) else np.datetime_data(dtype)[0]
    if unit == "ns":
        return parsed, np.zeros(len(parsed), dtype=bool)
    naive = parsed.dt.tz_convert(None) if isinstance(parsed.dtype, pd.DatetimeTZDtype) else parsed
    low, high = _LOWEST.tz_localize(None), _HIGHEST.tz_localize(None)
    out = ((naive < low) | (naive > high)).to_numpy(dtype=bool)
    if out.any():
        parsed = parsed.where(~out)
    target = "datetime64[ns, UTC]" if isinstance(parsed.dtype, pd.DatetimeTZDtype) else "M8[ns]"
    return parsed.astype(target), out


def _localize(values: pd.Series, timezone: str) -> pd.Series:
    # Wall-clock times skipped by a DST change move forward to the first valid instant;
    # times that occur twice are read as standard time. Both are rare in order exports
    # and refusing the whole file over them would help nobody.
    ambiguous = np.zeros(len(values), dtype=bool)
    localized = values.dt.tz_localize(timezone, ambiguous=ambiguous, nonexistent="shift_forward")
    return localized.dt.tz_convert("UTC").astype("datetime64[ns, UTC]")


def _detect(
    text: pd.Series,
    column: str,
    table: str,
    timezone: str,
    options: DateOptions,
    present: np.ndarray,
) -> ParsedDates:
    first = _first_value(text)
    if first is not None and _is_year_first(first):
        return _year_first(text, column, table, timezone, present)
    compact = text.str.fullmatch(r"\d{8}", na=False)
    if compact.all():
        parsed = pd.to_datetime(text, format="%Y%m%d", errors="coerce")
        return _finish(parsed, timezone, present & parsed.isna().to_numpy())
    codes, uniques = pd.factorize(text)
    distinct = pd.Series(uniques, dtype="string")
    parts = _parts(distinct)
    day_month = parts["matched"].to_numpy(dtype=bool)
    if not day_month.any():
        return _general(text, timezone, present)
    return _day_month(text, codes, distinct, parts, day_month, column, table, timezone, options)


def _first_value(text: pd.Series) -> str | None:
    position = text.first_valid_index()
    return None if position is None else str(text[position])


def _is_year_first(value: str) -> bool:
    return re.match(_YEAR_FIRST, value) is not None


def _year_first(
    text: pd.Series, column: str, table: str, timezone: str, present: np.ndarray
) -> ParsedDates:
    # The fast path: one vectorised pass with the format pandas infers from the first
    # value. Values in another year-first form (a time added, an offset) get a slower
    # pass; a day/month value among them is a second convention and is refused.
    has_offset = bool(text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True, na=False).any())
    with warnings.catch_warnings():
        # pandas warns when it cannot infer one format from the first value and falls
        # back to reading each value; the values it cannot read are handled below.
        warnings.filterwarnings("ignore", "Could not infer format", UserWarning)
        parsed = pd.to_datetime(text, errors="coerce", utc=has_offset)
    retry = (parsed.isna() & text.notna() & (text != "")).to_numpy(dtype=bool)
    if retry.any():
        others = text[retry]
        day_month = others.str.fullmatch(_DAY_MONTH, na=False).to_numpy(dtype=bool)
        if day_month.any():
            iso_row = int(np.flatnonzero(~retry & present)[0])
            dm_row = int(np.flatnonzero(retry)[np.flatnonzero(day_month)[0]])
            refusal = _mixed(column, table, text, [iso_row, dm_row])
            return ParsedDates(
                pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]"),
                np.zeros(len(text), dtype=bool),
                np.zeros(len(text), dtype=bool),
                refusal=refusal,
            )
        again = pd.to_datetime(others, errors="coerce", utc=has_offset, format="mixed")
        parsed = parsed.copy()
        parsed[retry] = again
    return _finish(parsed, timezone, present & parsed.isna().to_numpy())


def _general(text: pd.Series, timezone: str, present: np.ndarray) -> ParsedDates:
    """No numeric day/month value: month names, 2024/06/30... as pandas reads them."""
    has_offset = bool(text.str.contains(r"(?:[+-]\d\d:?\d\d|Z)$", regex=True, na=False).any())
    parsed = pd.to_datetime(text, errors="coerce", utc=has_offset, format="mixed")
    return _finish(parsed, timezone, present & parsed.isna().to_numpy())


def _day_month(
    text: pd.Series,
    codes: np.ndarray,
    distinct: pd.Series,
    parts: pd.DataFrame,
    day_month: np.ndarray,
    column: str,
    table: str,
    timezone: str,
    options: DateOptions,
) -> ParsedDates:
    first_rows = _first_rows(codes, len(distinct))
    others = ~day_month & distinct.notna().to_numpy() & (distinct != "").to_numpy(dtype=bool)
    if others.any():
        # Another format next to dd.mm.yyyy is a second convention when it reads as a
        # date at all (garbage such as 'yesterday' is reported as unparseable instead).
        readable = pd.to_datetime(distinct[others], errors="coerce", format="mixed").notna()
        if readable.any():
            rows = [
                int(first_rows[np.flatnonzero(day_month)[0]]),
                int(first_rows[np.flatnonzero(others)[np.flatnonzero(readable.to_numpy())[0]]]),
            ]
            return _refused(text, _mixed(column, table, text, sorted(rows)))
    separators = parts["sep"][day_month].unique()
    if len(separators) > 1:
        rows = [
            int(first_rows[np.flatnonzero(day_month & (parts["sep"] == sep).to_numpy())[0]])
            for sep in separators[:3]
        ]
        return _refused(text, _mixed(column, table, text, sorted(rows)))
    a = parts["a"].to_numpy(dtype=float)
    b = parts["b"].to_numpy(dtype=float)
    separator = str(separators[0])
    notes: list[str] = []
    dayfirst = options.dayfirst
    if dayfirst is None:
        only_day_first = day_month & (a > 12) & (b <= 12)
        only_month_first = day_month & (b > 12) & (a <= 12)
        if only_day_first.any() and only_month_first.any():
            rows = [
                int(first_rows[np.flatnonzero(only_day_first)[0]]),
                int(first_rows[np.flatnonzero(only_month_first)[0]]),
            ]
            return _refused(text, _contradictory(column, table, text, sorted(rows)))
        if only_day_first.any() or only_month_first.any():
            dayfirst = bool(only_day_first.any())
            which = only_day_first if dayfirst else only_month_first
            row = int(first_rows[np.flatnonzero(which)[0]])
            notes.append(_settled_note(column, text, row, separator, dayfirst=dayfirst))
        elif (day_month & (a != b)).any():
            differing = np.flatnonzero(day_month & (a != b))[:3]
            rows = sorted(int(first_rows[i]) for i in differing)
            return _refused(text, _ambiguous(column, table, text, rows))
        else:
            dayfirst = True  # every value has day == month: both orders read the same
    day, month = (a, b) if dayfirst else (b, a)
    stamps_distinct, beyond = _assemble(parts, day, month)
    stamps = _take(stamps_distinct, codes, text.index)
    out = (codes >= 0) & beyond[np.maximum(codes, 0)]
    present = text.notna().to_numpy() & (text != "").fillna(False).to_numpy(dtype=bool)
    result = _finish(stamps, timezone, present & stamps.isna().to_numpy() & ~out)
    result.out_of_range = result.out_of_range | out
    result.notes = notes
    if options.dayfirst is not None and (result.bad & present).any():
        order = "day first" if dayfirst else "month first"
        result.hint = (
            f"Hint: with dayfirst={dayfirst} every value must read {order}; check these rows, "
            "or pass date_format='...' with the export's exact pattern."
        )
    return result


#: _DAY_MONTH without the back-reference, which RE2 (Arrow's engine) lacks: both
#: separators are captured and compared afterwards.
_DAY_MONTH_RE2 = _DAY_MONTH.replace("(?P=sep)", "(?P<sep2>[./-])")

_NUMBERS = ("a", "b", "year", "hour", "minute", "second")


def _parts(distinct: pd.Series) -> pd.DataFrame:
    """Numeric parts of each dd.mm.yyyy-like value; ``matched`` is false for others.

    Columns: ``matched``, ``sep``, ``a``, ``b``, ``year``, ``year_digits``, ``hour``,
    ``minute``, ``second``, ``nanos`` (floats, NaN when absent) and ``ampm`` ('a', 'p'
    or ''). Arrow's regular expressions run in C++ over all values at once; without
    pyarrow, pandas' per-value ``str.extract`` gives the same table, more slowly.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
    except ImportError:  # pragma: no cover - pyarrow is optional
        return _parts_with_pandas(distinct)
    texts = pa.array(distinct.to_numpy(dtype=object, na_value=None), type=pa.string())
    found = pc.extract_regex(texts, _DAY_MONTH_RE2)
    matched = found.is_valid().to_numpy(zero_copy_only=False)
    if not matched.any():
        return pd.DataFrame({"matched": matched})
    fields = {field.name: found.field(field.name) for field in found.type}
    sep = fields["sep"].to_numpy(zero_copy_only=False)
    matched &= sep == fields["sep2"].to_numpy(zero_copy_only=False)

    def number(text: Any) -> np.ndarray:
        # Optional groups that did not take part are '' in Arrow: missing, not zero.
        blank = pc.equal(text, "")
        return pc.cast(pc.if_else(blank, None, text), pa.float64()).to_numpy(zero_copy_only=False)

    out = {"matched": matched, "sep": sep}
    out |= {name: number(fields[name]) for name in _NUMBERS}
    out["year_digits"] = pc.utf8_length(fields["year"]).to_numpy(zero_copy_only=False)
    fraction = pc.utf8_rpad(fields["fraction"], 9, "0")
    out["nanos"] = number(pc.utf8_slice_codeunits(fraction, 0, 9))
    out["ampm"] = pc.utf8_lower(pc.utf8_slice_codeunits(fields["ampm"], 0, 1)).to_numpy(
        zero_copy_only=False
    )
    return pd.DataFrame(out)


def _parts_with_pandas(distinct: pd.Series) -> pd.DataFrame:
    parts = distinct.astype(object).str.extract(_DAY_MONTH)
    out = {"matched": parts["a"].notna().to_numpy(), "sep": parts["sep"].to_numpy(object)}
    out |= {name: pd.to_numeric(parts[name]).to_numpy(dtype=float) for name in _NUMBERS}
    out["year_digits"] = parts["year"].str.len().to_numpy(dtype=float)
    fraction = parts["fraction"].fillna("0").str.ljust(9, "0").str[:9]
    out["nanos"] = pd.to_numeric(fraction).to_numpy(dtype=float)
    out["ampm"] = parts["ampm"].str.lower().str[:1].to_numpy(dtype=object, na_value="")
    return pd.DataFrame(out)


def _assemble(
    parts: pd.DataFrame, day: np.ndarray, month: np.ndarray
) -> tuple[pd.Series, np.ndarray]:
    """Instants from extracted day, month, year and time parts (NaT when invalid).

    Also returns which values are dates in years a nanosecond timestamp cannot hold.
    """
    year = parts["year"].to_numpy(dtype=float)
    short = parts["year_digits"].to_numpy(dtype=float) == 2
    # strptime's %y rule: 69-99 are 1969-1999, 00-68 are 2000-2068.
    year = np.where(short, np.where(year >= 69, 1900 + year, 2000 + year), year)
    hour = np.nan_to_num(parts["hour"].to_numpy(dtype=float))
    minute = np.nan_to_num(parts["minute"].to_numpy(dtype=float))
    second = np.nan_to_num(parts["second"].to_numpy(dtype=float))
    nanos = np.nan_to_num(parts["nanos"].to_numpy(dtype=float))
    ampm = parts["ampm"].to_numpy(dtype=object)
    has_ampm = ampm != ""
    bad_hour = np.where(has_ampm, (hour < 1) | (hour > 12), hour > 23)
    hour = np.where(has_ampm, hour % 12 + np.where(ampm == "p", 12, 0), hour)
    valid = (
        ~np.isnan(day)
        & (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (day <= 31)
        & ~bad_hour
        & (minute < 60)
        & (second < 60)
    )
    # Whole years inside pandas' nanosecond range (1677-09-21 .. 2262-04-11).
    beyond = valid & ((year < _LOWEST.year + 1) | (year > _HIGHEST.year - 1))
    valid &= ~beyond
    dates = pd.to_datetime(
        pd.DataFrame(
            {
                "year": np.where(valid, year, 2000).astype(np.int64),
                "month": np.where(valid, month, 1).astype(np.int64),
                "day": np.where(valid, day, 1).astype(np.int64),
            }
        ),
        errors="coerce",
    )
    offset = pd.to_timedelta(
        ((hour * 60 + minute) * 60 + second) * 1_000_000_000 + nanos, unit="ns"
    )
    stamps = dates + pd.Series(offset, index=dates.index)
    return stamps.where(valid), beyond


def _first_rows(codes: np.ndarray, n_distinct: int) -> np.ndarray:
    """The first row holding each distinct value."""
    rows = np.full(n_distinct, -1, dtype=np.int64)
    present = np.flatnonzero(codes >= 0)
    uniq, first = np.unique(codes[present], return_index=True)
    rows[uniq] = present[first]
    return rows


def _refused(text: pd.Series, refusal: ContractFailure) -> ParsedDates:
    n = len(text)
    empty = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    return ParsedDates(empty, np.zeros(n, dtype=bool), np.zeros(n, dtype=bool), refusal=refusal)


def _cases(text: pd.Series, rows: Sequence[int]) -> list[tuple[int, Any]]:
    return [(int(row), str(text.iloc[row])) for row in rows]


_OPTIONS = (
    "Say which: pass dayfirst=True (day first) or dayfirst=False (month first), or "
    "date_format='{pattern}' with the exact pattern (command line: --dayfirst or "
    "--no-dayfirst, or --date-format; config file: dayfirst = true or date_format = '...')."
)


def _pattern(example: str) -> str:
    """The day-first strftime pattern of an example value (what a European export uses)."""
    parts = re.match(_DAY_MONTH, example)
    return day_month_format(parts, dayfirst=True) if parts else "%d.%m.%Y"


def day_month_format(parts: re.Match[str], *, dayfirst: bool) -> str:
    """The strftime pattern of one dd.mm.yyyy-like value, in the stated order."""
    sep = parts["sep"]
    first, second = ("%d", "%m") if dayfirst else ("%m", "%d")
    year = "%Y" if len(parts["year"]) == 4 else "%y"
    fmt = f"{first}{sep}{second}{sep}{year}"
    if parts["hour"] is not None:
        value = parts.group(0)
        between = value[parts.end("year") : parts.start("hour")]
        clock = value[parts.end("hour") : parts.start("minute")]
        fmt += f"{between}{'%I' if parts['ampm'] else '%H'}{clock}%M"
        if parts["second"] is not None:
            fmt += f"{clock}%S"
        if parts["ampm"] is not None:
            fmt += value[
                parts.end("second") if parts["second"] else parts.end("minute") : parts.start(
                    "ampm"
                )
            ]
            fmt += "%p"
    return fmt


def _ambiguous(column: str, table: str, text: pd.Series, rows: Sequence[int]) -> ContractFailure:
    return _convention_refusal(
        column,
        text,
        rows,
        f"Column {column!r} of {table} holds dates that read both day first and month "
        f"first (such as {text.iloc[rows[0]]!r}), and no value settles which. "
        + _OPTIONS.format(pattern=_pattern(str(text.iloc[rows[0]]))),
    )


def _contradictory(
    column: str, table: str, text: pd.Series, rows: Sequence[int]
) -> ContractFailure:
    return _convention_refusal(
        column,
        text,
        rows,
        f"Column {column!r} of {table} mixes date conventions: some values can only be "
        "day first, others only month first, so no single reading fits every row. Fix "
        "the export, or state the order of most rows to see the others reported. "
        + _OPTIONS.format(pattern=_pattern(str(text.iloc[rows[0]]))),
    )


def _mixed(column: str, table: str, text: pd.Series, rows: Sequence[int]) -> ContractFailure:
    return _convention_refusal(
        column,
        text,
        rows,
        f"Column {column!r} of {table} mixes date formats; every row must be read with "
        "one convention. Fix the export so every value has the same format, then pass "
        "date_format='...' with its pattern if it is not ISO 8601 (command line: "
        "--date-format; config file: date_format = '...').",
    )


def _convention_refusal(
    column: str, text: pd.Series, rows: Sequence[int], message: str
) -> ContractFailure:
    """A date column that one convention cannot read, with the rows that show it."""
    return ContractFailure(
        column=column,
        check="date_convention",
        reason=Reason.AMBIGUOUS,
        message=message,
        failure_cases=_cases(text, rows),
        n_failed=len(rows),
    )


def _settled_note(
    column: str, text: pd.Series, row: int, separator: str, *, dayfirst: bool
) -> str:
    shape = _SHAPES[separator]
    if not dayfirst:
        shape = shape.replace("dd", "DD").replace("mm", "dd").replace("DD", "mm")
    order = "day first" if dayfirst else "month first"
    return (
        f"{column}: dates read {order} ({shape}) for every row; {text.iloc[row]!r} "
        f"(row {row}) can only be {order} (pass dayfirst= or date_format= to state it)"
    )


def out_of_range_message(column: str, table: str) -> str:
    """The sentence for dates beyond what a nanosecond timestamp holds."""
    return (
        f"Column {column!r} of {table} has dates outside the range segmentkit can hold "
        f"({_LOWEST.date()} to {_HIGHEST.date()}). Dates such as 9999-12-31 or 0001-01-01 are "
        "often placeholders for 'no date': replace them with empty values, or fix the rows."
    )
