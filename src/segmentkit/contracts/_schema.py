"""Declared table contracts and the one pass that maps, checks and coerces a raw frame.

Contracts are data (:class:`ColumnSpec` tuples), so the same declaration drives the
column mapping, the error messages and the docs. Validation is lazy: every failure
in a pass is collected and raised together as one :class:`~segmentkit.errors.ContractError`.
"""

from __future__ import annotations

import concurrent.futures
import difflib
import functools
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from segmentkit.contracts._dates import DateOptions, out_of_range_message, parse_dates
from segmentkit.contracts._idcodes import DenseIds, dense_codes, text_buffers
from segmentkit.errors import ContractError, ContractFailure, InvalidParameterError, Reason

ColumnKind = Literal["id", "datetime", "float", "string", "category", "bool", "date"]

_N_EXAMPLES = 5


@dataclass(frozen=True)
class ColumnSpec:
    """One canonical column of a contract."""

    name: str
    kind: ColumnKind
    required: bool
    description: str


@dataclass(frozen=True)
class Contract:
    """The declared columns of one table."""

    table: str
    columns: tuple[ColumnSpec, ...]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    def spec(self, name: str) -> ColumnSpec:
        return next(c for c in self.columns if c.name == name)


def suggest(name: str, choices: Sequence[str]) -> str:
    """A ``" Did you mean 'x'?"`` phrase, or an empty string when nothing is close."""
    # Compare without case and separators, so "CustomerID" is close to "customer_id".
    folded = {_fold(c): str(c) for c in choices}
    key = _fold(name)
    # Short names differ by one letter at a low ratio ('rfn' vs 'rfm' is 0.67).
    cutoff = 0.6 if len(key) <= 4 else 0.72
    close = difflib.get_close_matches(key, list(folded), n=3, cutoff=cutoff)
    if not close:
        return ""
    quoted = " or ".join(repr(folded[c]) for c in close)
    return f" Did you mean {quoted}?"


def _fold(name: Any) -> str:
    return str(name).lower().replace("_", "").replace(" ", "").replace("-", "")


def examples(mask: np.ndarray, values: pd.Series) -> list[tuple[int, Any]]:
    """The first few ``(row, value)`` pairs where ``mask`` is true (row = input position)."""
    positions = np.flatnonzero(mask)[:_N_EXAMPLES]
    return [(int(p), _plain(values.iloc[p])) for p in positions]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value


#: Columns every table of lines reads: taking them by name changes no feature.
_ESSENTIAL = frozenset({"customer_id", "timestamp", "amount"})


def used_by_name(keys: Sequence[str], mapping: Mapping[str, str]) -> list[str]:
    """A note for the report when optional columns were used by their names.

    A column named like a contract column is read without being mapped; a ``category``
    column then adds the category features. When the user mapped some columns, the
    optional ones taken by name are said (``[]`` when nothing was mapped: everything
    is then by name, on purpose).
    """
    by_name = [key for key in keys if key not in mapping and key not in _ESSENTIAL]
    if not mapping or not by_name:
        return []
    return [
        f"used by their names, not mapped: {', '.join(by_name)} (a column named like a "
        "contract column is read unless another column is mapped to that name)"
    ]


def map_columns(
    frame: Any,
    contract: Contract,
    mapping: Mapping[str, str],
    *,
    extra_keys: Sequence[str] = (),
) -> tuple[pd.DataFrame, list[ContractFailure]]:
    """Select and rename the user's columns to the contract's canonical names.

    A canonical column not named in ``mapping`` is taken from a column of the same
    name when the frame has one. Returns the renamed frame (only contract columns)
    and the failures found; nothing is raised here so that later checks can add theirs.
    """
    if not isinstance(frame, pd.DataFrame):
        msg = (
            f"{contract.table} must be a pandas DataFrame, got {type(frame).__name__}. "
            "Hint: convert it first, e.g. with `.to_pandas()`."
        )
        raise TypeError(msg)
    failures: list[ContractFailure] = []
    available = [str(c) for c in frame.columns]
    _refuse_duplicate_columns(frame.columns, contract.table)
    selected: dict[str, str] = {}
    for key, source in mapping.items():
        if key not in contract.names:
            valid = contract.names + list(extra_keys)
            failures.append(
                ContractFailure(
                    column=key,
                    check="mapping_key",
                    reason=Reason.UNKNOWN_MAPPING_KEY,
                    message=(
                        f"Unknown column key {key!r} for {contract.table}.{suggest(key, valid)} "
                        f"Valid column keys: {sorted(contract.names)}"
                        + (f"; policies: {sorted(extra_keys)}." if extra_keys else ".")
                    ),
                )
            )
        elif source not in frame.columns:
            failures.append(
                ContractFailure(
                    column=key,
                    check="mapping_target",
                    reason=Reason.MISSING_COLUMN,
                    message=(
                        f"Column {source!r} (mapped to {key!r}) is not in the {contract.table} "
                        f"data.{suggest(source, available)} Available columns: {available}."
                    ),
                )
            )
        else:
            selected[key] = source
    used = set(mapping.values())
    for name in contract.names:
        # A column already mapped to another key (age_band="age") is not also taken
        # as the same-named canonical column.
        if name not in mapping and name in frame.columns and name not in used:
            selected[name] = name
    for name in contract.required:
        if name not in selected and name not in mapping:
            failures.append(
                ContractFailure(
                    column=name,
                    check="required_column",
                    reason=Reason.MISSING_COLUMN,
                    message=(
                        f"Required column {name!r} is missing from the {contract.table} data."
                        f"{suggest(name, available)} Map it with {name}='<your column>'. "
                        f"Available columns: {available}."
                    ),
                )
            )
    # No copy of the user's columns (tens of MB each at 10M rows): nothing below writes
    # into them, it builds new columns, and copy-on-write protects the input anyway.
    renamed = pd.DataFrame(
        {key: frame[source] for key, source in selected.items()}, index=frame.index, copy=False
    )
    # Positions, not labels, identify rows in messages: a user can find row 17 in
    # any export, while an index label may be meaningless or duplicated.
    renamed.index = pd.RangeIndex(len(renamed))
    return renamed, failures


def _refuse_duplicate_columns(columns: pd.Index, table: str) -> None:
    """Two columns with one name: which one a mapping means is anyone's guess."""
    repeated = columns[columns.duplicated()].unique()
    if len(repeated) == 0:
        return
    names = [str(name) for name in repeated]
    positions = [(int(i), str(name)) for i, name in enumerate(columns) if str(name) in set(names)][
        :_N_EXAMPLES
    ]
    failure = ContractFailure(
        column=names[0],
        check="unique_column_names",
        reason=Reason.DUPLICATES,
        message=(
            f"The {table} data has {len(names)} column name(s) used more than once: "
            f"{names}. Rename the columns so every name is unique (e.g. "
            f"frame.columns = [...]; in a file, fix the header line)."
        ),
        failure_cases=[(None, f"column {i}: {name!r}") for i, name in positions],
        n_failed=len(names),
    )
    raise ContractError([failure], table=table)


def coerce(
    frame: pd.DataFrame,
    contract: Contract,
    *,
    timezone: str = "UTC",
    dates: DateOptions | None = None,
    notes: list[str] | None = None,
) -> tuple[pd.DataFrame, list[ContractFailure]]:
    """Convert each present column to its declared kind, reporting values that cannot be.

    Missing values stay missing (policies decide about them later); a present value
    that cannot be converted is a failure. ``dates`` says how text dates are read;
    what was decided about them (a day/month order the data settled) goes to ``notes``.
    """
    failures: list[ContractFailure] = []
    jobs: dict[str, functools.partial[tuple[pd.Series, ContractFailure | None]]] = {}
    for name in frame.columns:
        kind = contract.spec(name).kind
        args = (frame[name], contract.spec(name), contract, timezone)
        if kind in ("datetime", "date"):
            jobs[name] = functools.partial(_as_datetime, *args, dates=dates, notes=notes)
        else:
            jobs[name] = functools.partial(_COERCERS[kind], *args)
    # Coding Arrow strings or integers releases the GIL: on large inputs the id columns
    # (customer, order...) are factorised side by side on the machine's cores, the rest
    # meanwhile here. Object columns hold the GIL while hashing: threads would not help.
    threaded = [
        name
        for name in frame.columns
        if contract.spec(name).kind in ("id", "category") and _hashes_without_gil(frame[name])
    ]
    if len(frame) < _THREADED_ROWS or len(threaded) < 2:
        threaded = []
    results: dict[str, Any] = {}
    with concurrent.futures.ThreadPoolExecutor(
        max_workers=max(1, min(len(threaded), os.cpu_count() or 1))
    ) as pool:
        futures = {name: pool.submit(jobs[name]) for name in threaded}
        for name in frame.columns:
            if name not in futures:
                results[name] = jobs[name]()
        results |= {name: future.result() for name, future in futures.items()}
    if threaded or any(_hashes_without_gil(frame[name]) for name in frame.columns):
        _release_arrow_memory()
    out = {}
    for name in frame.columns:
        converted, failure = results.pop(name)
        out[name] = converted
        if failure is not None:
            failures.append(failure)
    # Columns of different dtypes: nothing to consolidate, so this does not copy them.
    return pd.DataFrame(out, index=frame.index, copy=False), failures


#: Rows from which id columns are factorised in threads (below, threads cost more).
_THREADED_ROWS = 200_000


def _release_arrow_memory() -> None:
    # Arrow's allocator keeps the pages of the hash tables pyarrow built to encode the
    # ids (hundreds of MB at 10M rows) for reuse; hand them back, the rest of the
    # pipeline runs in numpy.
    pyarrow = sys.modules.get("pyarrow")
    if pyarrow is not None:
        pyarrow.default_memory_pool().release_unused()


def _hashes_without_gil(values: pd.Series) -> bool:
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "pyarrow"
    # Integer ids are coded by numpy or pandas' hash table, both outside the GIL.
    return isinstance(dtype, pd.ArrowDtype) or (isinstance(dtype, np.dtype) and dtype.kind in "iu")


def _as_id(
    values: pd.Series, spec: ColumnSpec, contract: Contract, timezone: str
) -> tuple[pd.Series, ContractFailure | None]:
    return _as_category(values, integral_floats=True), None


def _as_category(values: pd.Series, *, integral_floats: bool = False) -> pd.Series:
    # Categorical with string categories: ids keep leading zeros, and group-bys on the
    # integer codes stay fast at tens of millions of rows.
    if isinstance(values.dtype, pd.CategoricalDtype):
        cats = values.cat.categories
        if not (pd.api.types.is_string_dtype(cats.dtype) and cats.map(type).isin([str]).all()):
            return _as_category(values.astype(object), integral_floats=integral_floats)
        return values.cat.remove_unused_categories()
    if integral_floats and pd.api.types.is_float_dtype(values.dtype):
        # CSV readers turn integer ids with gaps into floats (123.0); ids are text.
        finite = values.dropna()
        if (finite == np.floor(finite)).all():
            values = values.astype("Int64")
    dense = dense_codes(values)
    if dense is not None and (dense.byte_low is None or _unchanged(dense)):
        # Integers, or texts that trimming and number clean-up cannot touch.
        return _category_series(_categorical(dense.codes, dense.uniques), values.index)
    codes, uniques = dense[:2] if dense is not None else _factorize(values)
    categories, changed = _id_texts(uniques)
    # factorize returned distinct values; only values whose text changed (padding, 1.0,
    # numbers) can collide, so the costly duplicate check runs only then.
    if changed and categories.has_duplicates:
        # Distinct raw values with the same text (1 and "1") must share one id.
        categories_unique, remap = np.unique(categories.to_numpy(), return_inverse=True)
        codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
        categories = pd.Index(categories_unique, dtype=categories.dtype)
    return _category_series(_categorical(codes, categories), values.index)


def _category_series(categorical: pd.Categorical, index: pd.Index) -> pd.Series:
    # The codes are ours, fresh from the coding above: pandas 3 would copy them (40 MB
    # per id column at 10M rows) without copy=False.
    return pd.Series(categorical, index=index, copy=False)


def _unchanged(dense: DenseIds) -> bool:
    """Whether no text can change in ``_id_texts``, judged from bytes seen per position.

    True when the first and last bytes are printable ASCII other than a space (so no
    whitespace at either end) and no text both holds a '.' and ends in '0'.
    """
    low, high = dense.byte_low, dense.byte_high
    if low is None or high is None:
        return True  # integers
    printable = bool(low[[0, -1]].min() > 0x20 and high[[0, -1]].max() < 0x7F)
    dot = bool(((low <= ord(".")) & (high >= ord("."))).any())
    ends_in_zero = bool(low[-1] <= ord("0") <= high[-1])
    return printable and not (dot and ends_in_zero)


def _factorize(values: pd.Series) -> tuple[np.ndarray, Any]:
    """``pd.factorize`` (first-seen codes, -1 when missing); Arrow text goes to pyarrow.

    Encoding an Arrow column chunk by chunk gives every chunk the same final dictionary;
    pandas would still unify the chunks' dictionaries, hashing every value once more.
    """
    dtype = values.dtype
    if isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow":
        import pyarrow as pa

        texts = pa.array(values.array)
        chunks = texts.dictionary_encode().chunks if isinstance(texts, pa.ChunkedArray) else []
        dictionary = chunks[-1].dictionary if chunks else None
        if dictionary is not None and all(
            len(chunk.dictionary) == len(dictionary) for chunk in chunks
        ):
            codes = np.concatenate(
                [
                    chunk.indices.fill_null(-1).to_numpy()
                    if chunk.null_count
                    else chunk.indices.to_numpy()
                    for chunk in chunks
                ]
            )
            return codes, pd.Index(pd.Series(dictionary, dtype=dtype))
    return pd.factorize(values, use_na_sentinel=True)


def _categorical(codes: np.ndarray, categories: pd.Index) -> pd.Categorical:
    # The categories are distinct by construction and the codes come from factorize:
    # skip pandas' checks, which hash every distinct id once more (seconds at 10M rows).
    fastpath = getattr(pd.CategoricalDtype, "_from_fastpath", None)
    if fastpath is None:  # pragma: no cover - older or newer pandas
        return pd.Categorical.from_codes(codes, categories=categories)
    return pd.Categorical.from_codes(codes, dtype=fastpath(categories, False), validate=False)


#: Every character ``str.isspace`` accepts (Unicode has none above U+3000).
_WHITESPACE = [chr(c) for c in range(0x3001) if chr(c).isspace()]


def _id_texts(uniques: Any) -> tuple[pd.Index, bool]:
    """Distinct raw ids as stripped text, and whether any text differs from its raw value.

    Integral numbers written as floats ('17850.0', as spreadsheets and CSV round trips
    produce) lose the '.0', so the same customer has one id whatever the reader.
    Text ids are normalised only where a cheap whole-array test says they may change
    (whitespace at an end, or a '.' and a final '0'): in a clean export that is none.
    Arrow-backed text stays Arrow-backed, so the categories keep the input's string dtype.
    """
    arrow = isinstance(uniques.dtype, pd.StringDtype)
    if arrow or pd.api.types.infer_dtype(uniques, skipna=True) == "string":
        maybe = _may_change(uniques, arrow=arrow)
        if not maybe.any():
            return pd.Index(uniques, dtype=uniques.dtype if arrow else object), False
        raw = np.asarray(uniques, dtype=object)
        texts = raw.copy()
        texts[maybe] = _normalised(raw[maybe])
        changed = bool((texts[maybe] != raw[maybe]).any())
        return pd.Index(texts, dtype=uniques.dtype if arrow else object), changed
    return pd.Index(_normalised(np.asarray(uniques, dtype=object)), dtype=object), True


def _normalised(raw: np.ndarray) -> np.ndarray:
    texts = pd.Series(raw, dtype=object).astype(str).str.strip()
    texts = texts.str.replace(r"^(-?\d+)\.0+$", r"\1", regex=True)
    return texts.to_numpy(dtype=object)


def _may_change(texts: Any, *, arrow: bool) -> np.ndarray:
    """Texts that stripping or dropping a '.0' could change (a superset, never fewer)."""
    if arrow:
        # Arrow kernels: no Python object per id.
        series = pd.Series(texts)
        edge = series.str[:1].isin(_WHITESPACE) | series.str[-1:].isin(_WHITESPACE)
        number = series.str.endswith("0") & series.str.contains(".", regex=False)
        return (edge | number).to_numpy(dtype=bool)
    strings = np.asarray(texts, dtype=object).astype(np.dtypes.StringDType())
    edge = np.strings.isspace(np.strings.slice(strings, 0, 1)) | np.strings.isspace(
        np.strings.slice(strings, -1, None)
    )
    number = np.strings.endswith(strings, "0") & (np.strings.find(strings, ".") >= 0)
    return edge | number


def _as_string_category(
    values: pd.Series, spec: ColumnSpec, contract: Contract, timezone: str
) -> tuple[pd.Series, ContractFailure | None]:
    return _as_category(values), None


def _as_string(
    values: pd.Series, spec: ColumnSpec, contract: Contract, timezone: str
) -> tuple[pd.Series, ContractFailure | None]:
    return values.astype("string"), None


def _as_float(
    values: pd.Series, spec: ColumnSpec, contract: Contract, timezone: str
) -> tuple[pd.Series, ContractFailure | None]:
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype(float)
    if values.dtype == np.float64:
        converted = values  # to_numeric would copy what is already float64
    else:
        converted = pd.to_numeric(values, errors="coerce").astype("float64")
    if pd.api.types.is_float_dtype(values.dtype):
        bad = np.zeros(len(values), dtype=bool)
    else:
        bad = converted.isna().to_numpy() & values.notna().to_numpy()
    bad |= np.isinf(converted.to_numpy())
    hint = (
        "Hint: remove currency symbols and thousands separators, or clean these rows "
        "before loading."
        if spec.name in {"amount", "unit_price", "discount"}
        else "Hint: clean these rows before loading, or leave them empty."
    )
    if bad.any() and _decimal_commas(values[bad]):
        hint = (
            "Hint: these look like numbers written with a decimal comma: read the file "
            "with read_options={'decimal': ','} (command line: --decimal ','), or convert "
            "the column before loading."
        )
    return converted, _conversion_failure(
        spec,
        contract,
        values,
        bad,
        check="numeric",
        problem="non-numeric or infinite values",
        hint=hint,
    )


def _decimal_commas(bad: pd.Series) -> bool:
    """Whether refused numbers read as numbers once a decimal comma is a point."""
    text = bad.astype("string").str.strip()
    return bool(text.str.fullmatch(r"-?[\d .\u00a0\u202f]*\d,\d+", na=False).any())


def _conversion_failure(
    spec: ColumnSpec,
    contract: Contract,
    values: pd.Series,
    bad: np.ndarray,
    *,
    check: str,
    problem: str,
    hint: str,
) -> ContractFailure | None:
    if not bad.any():
        return None
    n_bad = int(bad.sum())
    return ContractFailure(
        column=spec.name,
        check=check,
        reason=Reason.WRONG_DTYPE,
        message=f"Column {spec.name!r} of {contract.table} has {n_bad} {problem}. {hint}",
        failure_cases=examples(bad, values),
        n_failed=n_bad,
    )


def _as_datetime(
    values: pd.Series,
    spec: ColumnSpec,
    contract: Contract,
    timezone: str,
    *,
    dates: DateOptions | None = None,
    notes: list[str] | None = None,
) -> tuple[pd.Series, ContractFailure | None]:
    parsed = parse_dates(values, spec.name, contract.table, timezone, dates or DateOptions())
    if parsed.refusal is not None:
        return parsed.values, parsed.refusal
    if notes is not None:
        notes.extend(parsed.notes)
    if parsed.out_of_range.any():
        n_out = int(parsed.out_of_range.sum())
        return parsed.values, ContractFailure(
            column=spec.name,
            check="timestamp_range",
            reason=Reason.OUT_OF_RANGE,
            message=out_of_range_message(spec.name, contract.table),
            failure_cases=examples(parsed.out_of_range, values),
            n_failed=n_out,
        )
    return parsed.values, _conversion_failure(
        spec,
        contract,
        values,
        parsed.bad,
        check="parse_timestamp",
        problem="values that are not dates or timestamps",
        hint=parsed.hint
        or "Hint: use ISO 8601 (2024-06-30 or 2024-06-30T14:05:00), or pass "
        "date_format='...' with the column's strftime pattern (e.g. '%d.%m.%Y %H:%M'; "
        "command line: --date-format).",
    )


def check_timezone(timezone: str) -> None:
    """Refuse an unknown time zone name up front, with the fix."""
    try:
        pd.Timestamp("2000-01-01").tz_localize(timezone)
    except Exception as error:  # zoneinfo and dateutil raise different types
        msg = (
            f"The 'timezone' parameter must be an IANA time zone name such as 'UTC' or "
            f"'Europe/Paris'. Got {timezone!r} instead."
        )
        raise InvalidParameterError(msg) from error


def _as_bool(
    values: pd.Series, spec: ColumnSpec, contract: Contract, timezone: str
) -> tuple[pd.Series, ContractFailure | None]:
    if pd.api.types.is_bool_dtype(values.dtype):
        return values.astype("boolean"), None
    truthy = {"true", "t", "yes", "y", "1", "1.0", "granted", "opt-in", "optin", "subscribed"}
    falsy = {"false", "f", "no", "n", "0", "0.0", "denied", "opt-out", "optout", "unsubscribed"}
    text = values.astype("string").str.strip().str.lower()
    result = pd.Series(pd.NA, index=values.index, dtype="boolean")
    result[text.isin(truthy).fillna(False).to_numpy()] = True
    result[text.isin(falsy).fillna(False).to_numpy()] = False
    bad = (result.isna() & values.notna() & (text != "")).to_numpy(dtype=bool)
    return result, _conversion_failure(
        spec,
        contract,
        values,
        bad,
        check="boolean",
        problem="values that are not yes/no flags",
        hint="Use true/false, yes/no, 1/0 or granted/denied.",
    )


_COERCERS = {
    "id": _as_id,
    "category": _as_string_category,
    "string": _as_string,
    "float": _as_float,
    "datetime": _as_datetime,
    "date": _as_datetime,
    "bool": _as_bool,
}


def raise_if(failures: list[ContractFailure], table: str) -> None:
    """Raise one :class:`ContractError` carrying every failure, if there are any."""
    if failures:
        raise ContractError(failures, table=table)


def check_not_empty(frame: Any, table: str) -> None:
    """Refuse an input with no rows: nothing downstream can mean anything on it."""
    refuse_empty(len(frame), table)


def refuse_empty(n_rows: int, table: str) -> None:
    """:func:`check_not_empty` from a row count (native engines count in a query)."""
    if n_rows == 0:
        failure = ContractFailure(
            column="<table>",
            check="not_empty",
            reason=Reason.EMPTY,
            message=(
                f"The {table} data is empty (0 rows). Check the file or the filter that "
                "produced it."
            ),
        )
        raise ContractError([failure], table=table)


def refuse_missing_ids(
    n_missing: int,
    n_rows: int,
    policy: str,
    table: str,
    failure_cases: Sequence[tuple[Any, Any]] = (),
) -> None:
    """Raise when every row lacks a customer id, or any does under ``'raise'``."""
    if n_missing == 0 or (n_missing < n_rows and policy != "raise"):
        return
    if n_missing == n_rows:
        message = (
            f"Every one of the {n_rows} rows has an empty 'customer_id'. Check that "
            "customer_id is mapped to the right column."
        )
    else:
        rows = "1 row has" if n_missing == 1 else f"{n_missing} rows have"
        message = (
            f"{rows} no 'customer_id' and missing_customer='raise'. Use "
            "missing_customer='exclude' to leave them out (they are counted in the report)."
        )
    failure = ContractFailure(
        column="customer_id",
        check="not_null",
        reason=Reason.NULLS,
        message=message,
        failure_cases=failure_cases,
        n_failed=n_missing,
    )
    raise_if([failure], table)


def check_option(value: Any, name: str, options: Sequence[Any], table: str) -> None:
    """Validate a policy parameter against its allowed values."""
    if value not in options:
        msg = (
            f"The {name!r} parameter of {table} must be one of {list(options)}. "
            f"Got {value!r} instead."
        )
        raise InvalidParameterError(msg)


#: Text that stands for "no value" in exports (after ``astype(str)``, in CSVs).
MISSING_TEXT = frozenset({"", "nan", "none", "null", "na", "n/a", "<na>", "nat"})


def null_mask(values: pd.Series) -> np.ndarray:
    """Missing values, treating blank strings and placeholders such as 'nan' as missing."""
    mask = values.isna().to_numpy().copy()
    if isinstance(values.dtype, pd.CategoricalDtype):
        placeholder = _placeholders(values.cat.categories)
        if placeholder.any():
            codes = category_codes(values)
            mask |= (codes >= 0) & placeholder[np.maximum(codes, 0)]
    elif values.dtype == object or isinstance(values.dtype, pd.StringDtype):
        text = values.astype("string").str.strip().str.lower()
        mask |= text.isin(MISSING_TEXT).fillna(False).to_numpy(dtype=bool)
    return mask


def _placeholders(categories: pd.Index) -> np.ndarray:
    """Which categories are blank or a placeholder such as 'nan' once stripped."""
    placeholder = np.zeros(len(categories), dtype=bool)
    maybe = _may_be_placeholders(categories)
    if maybe.any():
        texts = pd.Series(categories[maybe].astype(str))
        placeholder[maybe] = texts.str.strip().str.lower().isin(MISSING_TEXT).to_numpy(bool)
    return placeholder


#: Longest text in MISSING_TEXT, in bytes.
_LONGEST_PLACEHOLDER = max(len(text.encode()) for text in MISSING_TEXT)


def _may_be_placeholders(categories: pd.Index) -> np.ndarray:
    """A superset of the placeholders, from the texts' bytes alone (for Arrow text).

    A longer text is a placeholder only with spaces around it, so it starts or ends
    with a space or a non-ASCII byte (Unicode spaces). Testing two bytes per id is
    several times cheaper than stripping and lower-casing millions of ids.
    """
    dtype = categories.dtype
    if not (isinstance(dtype, pd.StringDtype) and dtype.storage == "pyarrow"):
        return np.ones(len(categories), dtype=bool)
    import pyarrow as pa

    texts = pa.array(categories.array)
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    if texts.null_count or len(texts) == 0:
        return np.ones(len(categories), dtype=bool)
    offsets, data = text_buffers(texts)
    maybe = np.diff(offsets) <= _LONGEST_PLACEHOLDER
    longer = np.flatnonzero(~maybe)
    if len(longer):
        first, last = data[offsets[longer]], data[offsets[longer + 1] - 1]
        maybe[longer] = (first <= 0x20) | (first >= 0x7F) | (last <= 0x20) | (last >= 0x7F)
    return maybe


def category_codes(values: pd.Series) -> np.ndarray:
    """The codes of a categorical column, as a read-only view.

    ``Series.cat.codes`` builds a new Series, which pandas 3 fills with a copy of the
    codes: tens of MB at 10M rows, for values that are only read.
    """
    return values.array.codes


def to_ns(timestamps: pd.Series) -> np.ndarray:
    """UTC timestamps as int64 nanoseconds since the epoch (NaT becomes the int64 minimum)."""
    values = timestamps.array
    if isinstance(values, pd.arrays.DatetimeArray) and values.unit == "ns":
        # Time zone-aware arrays hold UTC nanoseconds already: a view, not a copy.
        return values.asi8
    naive = timestamps.dt.tz_convert(None) if timestamps.dt.tz is not None else timestamps
    return naive.to_numpy(dtype="datetime64[ns]").view("int64")
