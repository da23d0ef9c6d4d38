"""Store policies of the transactions contract shared by the pandas and native paths.

Non-product lines (postage, fees, gift cards), lines dated after the run, exact
repeats and values that cannot be right (negative prices on sales, overflowing
amounts, negative discounts) are each decided here once: which lines they are, the
report reason they are counted under and the message that says what to do.
Everything works on unique values or one vectorised pass over the rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

from segmentkit.errors import ContractFailure, InvalidParameterError, Reason

__all__ = [
    "CUSTOMER_OPTIONS",
    "EVENT_OPTIONS",
    "FUTURE_REASON",
    "INVALID_REASONS",
    "PRODUCT_REASON",
    "TRANSACTION_OPTIONS",
    "OrdersFrom",
    "boolean_failure",
    "check_rates",
    "duplicate_lines",
    "exact_products",
    "future_cutoff",
    "future_message",
    "invalid_value_failure",
    "is_boolean_column",
    "product_patterns",
    "product_regex",
    "products_matching",
    "run_time",
]

OrdersFrom = Literal["timestamp", "day", "row"]

# The policies that are a choice among named options, with the allowed values (the
# default first), per contract. ``from_frame`` checks them once, before the pandas and
# the narwhals paths part; the paths themselves never list them again.
TRANSACTION_OPTIONS: dict[str, tuple[str, ...]] = {
    "returns": ("net", "exclude", "separate"),
    "missing_customer": ("exclude", "raise"),
    "zero_amount": ("keep", "exclude"),
    "duplicates": ("keep", "drop"),
    "orders_from": ("timestamp", "day", "row"),
    "future": ("exclude", "keep", "raise"),
    "invalid_values": ("raise", "exclude"),
}
EVENT_OPTIONS: dict[str, tuple[str, ...]] = {"missing_customer": ("exclude", "raise")}
CUSTOMER_OPTIONS: dict[str, tuple[str, ...]] = {
    "missing_customer": ("exclude", "raise"),
    "duplicates": ("raise", "keep_first", "keep_last"),
}

PRODUCT_REASON = "excluded_product"
FUTURE_REASON = "future_timestamp"
#: Report reason of each kind of impossible value, in the order lines are charged.
INVALID_REASONS = {
    "amount": "non_finite_amount",
    "unit_price": "negative_unit_price",
    "discount": "negative_discount",
}


def run_time() -> pd.Timestamp:
    """The time of the run, in UTC: the default ``max_timestamp`` of the transactions.

    One function, so that tests (and anyone who needs a reproducible run) can pass
    ``max_timestamp=`` instead of depending on the clock.
    """
    return pd.Timestamp.now(tz="UTC")


def product_patterns(value: Any) -> tuple[str, ...]:
    """``exclude_products`` as a tuple of ids or glob patterns.

    A string is split on commas (as ``--policy exclude_products=POST,DOT`` gives it),
    a list is taken as it is; blanks around each entry are ignored.
    """
    if value is None:
        return ()
    items: list[Any]
    if isinstance(value, str):
        items = value.split(",")
    elif isinstance(value, Sequence | set | frozenset) and not isinstance(value, bytes):
        items = list(value)
    else:
        msg = (
            "'exclude_products' must be a list of product ids or glob patterns, e.g. "
            "['POST', 'DOT', 'gift_*'] (on the command line: --policy "
            f"exclude_products=POST,DOT,gift_*). Got {type(value).__name__}."
        )
        raise InvalidParameterError(msg)
    patterns = []
    for item in items:
        if not isinstance(item, str | int) or isinstance(item, bool):
            msg = (
                "'exclude_products' holds product ids or glob patterns as text; got "
                f"{item!r} ({type(item).__name__})."
            )
            raise InvalidParameterError(msg)
        text = str(item).strip()
        if text:
            patterns.append(text)
    return tuple(dict.fromkeys(patterns))


#: Characters with a meaning in regular expressions, escaped with a backslash, which
#: every engine's dialect (Python, Rust, RE2, Java) reads as the character itself.
_REGEX_META = frozenset("\\.+()[]{}|^$")


def product_regex(patterns: Sequence[str]) -> str | None:
    """One anchored regular expression for the glob patterns (``*`` and ``?``), if any.

    Written for every engine's regex dialect, so that polars, DuckDB, Spark and Dask
    match exactly the products pandas does. Case-sensitive, as ids are.
    """
    globs = [p for p in patterns if "*" in p or "?" in p]
    if not globs:
        return None
    parts = []
    for glob in globs:
        text = "".join(
            ".*" if c == "*" else "." if c == "?" else f"\\{c}" if c in _REGEX_META else c
            for c in glob
        )
        parts.append(text)
    return "^(?:" + "|".join(parts) + ")$"


def exact_products(patterns: Sequence[str]) -> list[str]:
    """The patterns without wildcards: product ids matched as they are."""
    return [p for p in patterns if "*" not in p and "?" not in p]


def products_matching(product_id: pd.Series, patterns: Sequence[str]) -> np.ndarray:
    """Rows whose product matches a pattern, judged once per distinct product id."""
    categories = pd.Series(product_id.cat.categories.astype(str))
    flagged = categories.isin(exact_products(patterns)).to_numpy(dtype=bool, copy=True)
    regex = product_regex(patterns)
    if regex is not None:
        flagged |= categories.str.contains(regex, regex=True).fillna(False).to_numpy(bool)
    codes = np.asarray(product_id.array.codes)
    if not flagged.any():
        return np.zeros(len(codes), dtype=bool)
    return (codes >= 0) & flagged[np.maximum(codes, 0)]


def future_cutoff(max_timestamp: Any) -> tuple[pd.Timestamp, str]:
    """The latest time a line may have, and how to name it in messages."""
    if max_timestamp is None:
        stamp = run_time()
        return stamp, f"the time of the run ({stamp.isoformat(timespec='seconds')})"
    if isinstance(max_timestamp, int | np.integer) and 10_000_101 <= max_timestamp <= 99_991_231:
        max_timestamp = str(max_timestamp)  # 20240630: a date written as a number
    elif isinstance(max_timestamp, bool | int | float | np.integer | np.floating):
        # pandas would read a bare number as nanoseconds since 1970: never what is meant.
        raise InvalidParameterError(_bad_cutoff(max_timestamp))
    try:
        stamp = pd.Timestamp(max_timestamp)
    except (ValueError, TypeError, OverflowError) as error:
        raise InvalidParameterError(_bad_cutoff(max_timestamp)) from error
    if stamp is pd.NaT:
        raise InvalidParameterError(_bad_cutoff(max_timestamp))
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    try:
        # Lines are compared in nanoseconds: 9999-12-31 parses, but cannot be held.
        stamp = stamp.as_unit("ns")
    except (OverflowError, ValueError):
        msg = (
            f"max_timestamp={max_timestamp!r} is outside the range segmentkit can hold "
            "(1677-09-21 to 2262-04-11). To keep every line whatever its date, pass "
            "future='keep' (on the command line: --policy future=keep)."
        )
        raise InvalidParameterError(msg) from None
    return stamp, f"max_timestamp={stamp.isoformat()}"


def _bad_cutoff(value: Any) -> str:
    return (
        f"max_timestamp={value!r} is not a date or time. Use ISO 8601, e.g. "
        "'2024-06-30T23:59:59' (on the command line: --policy max_timestamp=2024-06-30)."
    )


def future_message(n: int, cutoff: str, policy: str) -> str:
    """The warning (or, with ``future='raise'``, the error) about lines after the cutoff."""
    lines = "1 line is" if n == 1 else f"{n} lines are"
    if policy == "raise":
        return (
            f"{lines} dated after {cutoff} and future='raise'. Fix the dates, pass "
            "max_timestamp=... for a later cutoff, or future='exclude' to leave them out "
            "(counted as future_timestamp)."
        )
    return (
        f"{lines} dated after {cutoff}: left out and counted as {FUTURE_REASON}. Pass "
        "max_timestamp=... to set the cutoff, or future='keep' to keep them "
        "(on the command line: --policy future=keep)."
    )


def check_rates(rates: Mapping[str, Any]) -> None:
    """Refuse exchange rates that are not positive finite numbers."""
    if not isinstance(rates, Mapping):
        msg = (
            f"'rates' must map each currency to its rate, e.g. {{'SEK': 0.087, 'PLN': 0.23}} "
            "(in a --config file: rates = { SEK = 0.087, PLN = 0.23 } under "
            f"[transactions.policy]); got a {type(rates).__name__}."
        )
        raise InvalidParameterError(msg)
    bad = {}
    for currency, rate in rates.items():
        try:
            value = float(rate)
        except (TypeError, ValueError):
            bad[str(currency)] = rate
            continue
        if isinstance(rate, bool) or not np.isfinite(value) or value <= 0:
            bad[str(currency)] = rate
    if bad:
        msg = (
            f"Exchange rates must be positive numbers (units of base currency per unit); "
            f"got {bad} in 'rates'. A zero or negative rate would turn sales into "
            "returns or nothing: fix these rates."
        )
        raise InvalidParameterError(msg)


def is_boolean_column(values: Any) -> bool:
    """True/false values mapped to a number column (a mapping mistake, never an amount)."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return True
    if pd.api.types.is_object_dtype(dtype):
        kind = pd.api.types.infer_dtype(values, skipna=True)
        if kind == "boolean":
            return True
        if kind.startswith("mixed"):
            # True beside numbers would silently count as 1.0; a column of Python
            # objects is slow anyway, so the one pass over the types costs nothing extra.
            return bool(values.map(type, na_action="ignore").isin([bool, np.bool_]).any())
    return False


def boolean_failure(key: str, source: str, table: str) -> ContractFailure:
    """The failure of a number column that holds true/false."""
    return ContractFailure(
        column=key,
        check="numeric",
        reason=Reason.WRONG_DTYPE,
        message=(
            f"Column {source!r} (mapped to {key!r}) of {table} holds true/false values, "
            f"not numbers: {key} cannot be read from it. Map {key}='<column>' to the "
            "column with the line's value (on the command line: --map "
            f"{key}=<column>)."
        ),
    )


def invalid_value_failure(
    column: str, n_bad: int, cases: Sequence[tuple[int | None, Any]], table: str
) -> ContractFailure:
    """The failure of impossible values under ``invalid_values='raise'``."""
    reason = INVALID_REASONS[column]
    problem = {
        "amount": (
            "infinite amounts (quantity × unit_price, or the amount after currency "
            "conversion, is too large for a number)"
        ),
        "unit_price": (
            "negative unit prices on lines that are not returns (a negative price would "
            "turn a sale into a return; returns are negative amounts or cancelled orders)"
        ),
        "discount": "negative discounts (a discount is what was taken off, >= 0)",
    }[column]
    return ContractFailure(
        column=column,
        check=reason,
        reason=Reason.OUT_OF_RANGE,
        message=(
            f"Column {column!r} of {table} has {n_bad} "
            f"{'value' if n_bad == 1 else 'values'} that cannot be right: {problem}. "
            "Correct these rows, "
            "leave non-product lines out with exclude_products=[...], or pass "
            f"invalid_values='exclude' to leave them out (counted as {reason}; on the "
            "command line: --policy invalid_values=exclude)."
        ),
        failure_cases=cases,
        n_failed=n_bad,
    )


#: Odd 64-bit multiplier of the row hash (the golden ratio's, as in Fibonacci hashing).
_MIX = np.uint64(0x9E3779B97F4A7C15)


def duplicate_lines(data: pd.DataFrame, columns: Sequence[str]) -> np.ndarray:
    """Rows that repeat an earlier row in every one of ``columns`` (first one not marked).

    One 64-bit hash per row from the columns' codes and bits. Rows sharing a hash are
    found without a hash table over every row when the export groups equal lines
    (an order's lines together, or lines sorted by time): then repeats lie in one run
    of equal order ids or timestamps, and a few shifted comparisons inside short runs
    find them. Only candidate rows are compared exactly, so a hash collision never
    marks a row.
    """
    n = len(data)
    out = np.zeros(n, dtype=bool)
    if n < 2 or not columns:
        return out
    key, key_column = _grouping_key(data, columns)
    hashed = np.zeros(n, dtype=np.uint64)
    scratch = np.empty(n, dtype=np.uint64)  # one buffer for every column's bits
    with np.errstate(over="ignore"):
        for name in columns:
            if name != key_column:  # equal inside a run by construction
                hashed ^= _row_bits(data[name], scratch)
                hashed *= _MIX
        hashed ^= hashed >> np.uint64(29)
    candidates = _same_hash(hashed, key)
    if not candidates.any():
        return out
    rows = np.flatnonzero(candidates)
    exact = data[list(columns)].iloc[rows].duplicated(keep="first").to_numpy()
    out[rows[exact]] = True
    return out


#: Longest run searched by shifted comparisons; rows of longer runs go to a hash table.
_SHORT_RUN = 8


def _grouping_key(
    data: pd.DataFrame, columns: Sequence[str]
) -> tuple[np.ndarray | None, str | None]:
    """A mapped column whose equal values are adjacent (one run each), and its name."""
    from segmentkit._common._runs import keys_used, one_run_each, run_starts

    if "order_id" in columns:
        codes = np.asarray(data["order_id"].array.codes)
        if len(codes) and codes.min() >= 0:
            starts = run_starts(codes)
            n_keys = len(data["order_id"].cat.categories)
            if one_run_each(keys_used(codes[starts], n_keys), len(starts)):
                return codes, "order_id"
    if "timestamp" in columns:
        ns = np.asarray(data["timestamp"].array.asi8)
        # Sorted by time: equal timestamps are adjacent.
        if bool((ns[1:] >= ns[:-1]).all()):
            return ns, "timestamp"
    return None, None


def _same_hash(hashed: np.ndarray, key: np.ndarray | None) -> np.ndarray:
    """Rows whose hash some other row shares (a superset of the repeated rows)."""
    if key is None:
        return pd.Series(hashed, copy=False).duplicated(keep=False).to_numpy()
    from segmentkit._common._runs import run_starts

    n = len(hashed)
    starts = run_starts(key)
    lengths = np.diff(np.append(starts, n))
    shared = np.zeros(n, dtype=bool)
    longest = int(lengths.max())
    # Each key is one run: rows ``shift`` apart are in one run exactly when their keys
    # are equal.
    equal = np.empty(n, dtype=bool)
    same_run = np.empty(n, dtype=bool)
    for shift in range(1, min(longest, _SHORT_RUN)):
        np.equal(hashed[shift:], hashed[:-shift], out=equal[shift:])
        np.equal(key[shift:], key[:-shift], out=same_run[shift:])
        equal[shift:] &= same_run[shift:]
        shared[shift:] |= equal[shift:]
        shared[:-shift] |= equal[shift:]
    if longest > _SHORT_RUN:
        # Rows of the few long runs: a hash table over them only.
        long_rows = np.flatnonzero(np.repeat(lengths > _SHORT_RUN, lengths))
        shared[long_rows] |= (
            pd.Series(hashed[long_rows], copy=False).duplicated(keep=False).to_numpy()
        )
    return shared


def _row_bits(values: pd.Series, scratch: np.ndarray) -> np.ndarray:
    """64 bits per row that are equal whenever the values are (NaN equals NaN), in
    ``scratch`` (uint64, one per row) where they are not the column's own bits."""
    array = values.array
    if isinstance(values.dtype, pd.CategoricalDtype):
        np.copyto(scratch, np.asarray(array.codes), casting="unsafe")
        return scratch
    if isinstance(array, pd.arrays.DatetimeArray):
        return np.asarray(array.asi8).view(np.uint64)
    if values.dtype == np.float64:
        # -0.0 + 0.0 is 0.0, and every NaN gets one bit pattern.
        floats = scratch.view(np.float64)
        np.add(values.to_numpy(), 0.0, out=floats)
        missing = np.isnan(floats)
        if missing.any():
            floats[missing] = np.nan
        return scratch
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.uint64, na_value=2)
    return pd.util.hash_pandas_object(values, index=False).to_numpy()
