"""Reading a delimited export: separator sniffed and said, every failure naming the file.

Store exports come with ``;`` and decimal commas (Finland, Sweden, Poland), tabs, pipes,
Windows encodings, and sometimes truncated downloads. pandas reports those as
tokenizer or codec errors that do not say which file or what to pass; here each one
becomes a :class:`~segmentkit.errors.ContractError` naming the file and the option.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import lzma
import os
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NoReturn

import pandas as pd

from segmentkit.errors import ContractError, ContractFailure, Reason

__all__ = ["SEPARATORS", "read_delimited"]

PathLike = str | os.PathLike

#: Separators tried, in order of preference when several fit equally.
SEPARATORS = (",", ";", "\t", "|")

#: Bytes read to sniff the separator and check the header.
_SAMPLE_BYTES = 256 * 1024

_LABELS = {",": "','", ";": "';'", "\t": "'\\t'", "|": "'|'"}


def read_delimited(
    path: PathLike, options: Mapping[str, Any] | None, dtype: Any, table: str
) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV-like file with ``pandas.read_csv``; return the frame and report notes.

    Parameters
    ----------
    path : str or os.PathLike
        The file (``.gz``, ``.bz2``, ``.xz``, ``.zip`` decompressed).
    options : dict, optional
        ``pandas.read_csv`` options. Without ``sep`` the separator is sniffed among
        ``,`` ``;`` tab ``|``; a note says which when it is not a comma.
    dtype : object
        ``dtype=`` for ``read_csv`` (identifier columns as text).
    table : str
        Table name, for messages.

    Returns
    -------
    tuple of (pandas.DataFrame, list of str)
        The rows as read, and notes for the validation report.

    Raises
    ------
    segmentkit.errors.ContractError
        The file is empty, truncated, not in the encoding, cannot be split into
        columns, or has a column name twice.
    """
    opts = dict(options or {})
    name = str(path)
    encoding = str(opts.get("encoding") or "utf-8")
    sample = _sample(path, name, table)
    text = _decode(sample, encoding, name, table, complete=len(sample) < _SAMPLE_BYTES)
    if not text.strip():
        _fail(table, "empty_file", Reason.EMPTY, f"The file {name} is empty: it holds no header "
              "and no rows. Check the export, or the path.")  # fmt: skip
    notes: list[str] = []
    sep = opts.get("sep", opts.get("delimiter"))
    if sep is None:
        sep = _sniff(text, decimal=str(opts.get("decimal", ".")))
        if sep is not None:
            opts["sep"] = sep
            if sep != ",":  # a comma is what any reader assumes: only news is said
                notes.append(f"file {Path(name).name}: separator {_LABELS[sep]} detected")
    elif sep == opts.get("decimal"):
        msg = f"The separator and the decimal mark are both {sep!r}: set one of them apart."
        _fail(table, "read_file", Reason.UNREADABLE, f"{name}: {msg}")
    if isinstance(sep, str) and len(sep) == 1:
        _refuse_duplicate_header(text, sep, name, table)
    opts.setdefault("low_memory", False)
    # pandas would otherwise take the extra fields of a too-long first row as an index
    # and shift every column silently; with index_col=False it warns, and that is made
    # an error below.
    opts.setdefault("index_col", False)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, dtype=dtype, **opts)
    except pd.errors.ParserWarning:
        _fail(
            table,
            "read_file",
            Reason.UNREADABLE,
            f"The file {name} has rows with more fields than its header: with the separator "
            f"{_LABELS.get(str(opts.get('sep')), repr(opts.get('sep')))} they could not be "
            f"split into its columns. Pass the right separator (read_options={{'sep': "
            f"{_other(opts.get('sep'))!r}}}, command line: --sep {_other(opts.get('sep'))!r}), "
            "or check for unquoted separators inside values.",
        )
    except pd.errors.EmptyDataError:
        _fail(table, "empty_file", Reason.EMPTY, f"The file {name} is empty: it holds no header "
              "and no rows. Check the export, or the path.")  # fmt: skip
    except pd.errors.ParserError as error:
        shown = _LABELS.get(str(opts.get("sep")), repr(opts.get("sep")))
        _fail(
            table,
            "read_file",
            Reason.UNREADABLE,
            f"The file {name} could not be split into columns with the separator {shown} "
            f"({_first_line(error)}). Pass the right one: read_options={{'sep': "
            f"{_other(opts.get('sep'))!r}}} (command line: --sep {_other(opts.get('sep'))!r}); "
            "also check for unbalanced quotes.",
        )
    except UnicodeDecodeError as error:
        _fail(table, "read_file", Reason.UNREADABLE, _encoding_message(name, encoding, error))
    except (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as error:
        _fail(table, "read_file", Reason.UNREADABLE, _truncated_message(name, error))
    if len(frame) == 0:
        _fail(table, "not_empty", Reason.EMPTY, f"The file {name} has a header but no rows "
              f"(columns: {[str(c) for c in frame.columns]}). Check the export.")  # fmt: skip
    return frame, notes


def _fail(table: str, check: str, reason: Reason, message: str) -> NoReturn:
    raise ContractError([ContractFailure("<file>", check, reason, message)], table=table)


def _first_line(error: BaseException) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _open(path: PathLike) -> Any:
    """A binary stream of the decompressed content, chosen by the file name."""
    name = str(path).lower()
    if name.endswith(".gz"):
        return gzip.open(path, "rb")
    if name.endswith(".bz2"):
        return bz2.open(path, "rb")
    if name.endswith(".xz"):
        return lzma.open(path, "rb")
    if name.endswith(".zip"):
        archive = zipfile.ZipFile(path)
        members = [m for m in archive.namelist() if not m.endswith("/")]
        return archive.open(members[0]) if members else io.BytesIO(b"")
    return open(path, "rb")


def _sample(path: PathLike, name: str, table: str) -> bytes:
    try:
        with _open(path) as stream:
            return bytes(stream.read(_SAMPLE_BYTES))
    except FileNotFoundError:
        _fail(table, "read_file", Reason.UNREADABLE, f"File not found: {name}.")
    except (EOFError, gzip.BadGzipFile, zlib.error, lzma.LZMAError, zipfile.BadZipFile) as error:
        _fail(table, "read_file", Reason.UNREADABLE, _truncated_message(name, error))


def _truncated_message(name: str, error: BaseException) -> str:
    return (
        f"The compressed file {name} is damaged or truncated ({_first_line(error)}): it "
        "ends before its content does, as after an interrupted download or copy. Fetch or "
        "export it again."
    )


def _decode(sample: bytes, encoding: str, name: str, table: str, *, complete: bool) -> str:
    try:
        return sample.decode(encoding)
    except LookupError:
        _fail(table, "read_file", Reason.UNREADABLE, f"Unknown encoding {encoding!r} for {name}: "
              "use a Python codec name such as 'utf-8', 'cp1252' or 'latin-1'.")  # fmt: skip
    except UnicodeDecodeError as error:
        # The sample may end inside a multi-byte character: only earlier bytes count.
        if complete or error.start < len(sample) - 4:
            _fail(table, "read_file", Reason.UNREADABLE, _encoding_message(name, encoding, error))
        return sample[: error.start].decode(encoding)


def _other(sep: object) -> str:
    """A separator to suggest instead of ``sep``: the most common one that it is not."""
    return next(candidate for candidate in SEPARATORS if candidate != sep)


def _encoding_message(name: str, encoding: str, error: UnicodeDecodeError) -> str:
    bad = error.object[error.start : error.start + 1] if error.object else b""
    if bytes(error.object[:2]) in (b"\xff\xfe", b"\xfe\xff"):
        # A byte-order mark: Excel's "Unicode text" export, not a Windows code page.
        return (
            f"The file {name} is UTF-16 text (it starts with a byte-order mark): pass "
            "read_options={'encoding': 'utf-16'} (command line: --encoding utf-16)."
        )
    return (
        f"The file {name} is not {encoding} text: byte {bad!r} at position {error.start} "
        "cannot be decoded. Exports from Excel on Windows are usually cp1252: pass "
        "read_options={'encoding': 'cp1252'} (command line: --encoding cp1252), or the "
        "encoding the export used."
    )


def _sniff(text: str, *, decimal: str) -> str | None:
    """The separator that splits the first lines into the same, largest number of fields."""
    lines = text.splitlines()
    if len(lines) > 1 and not text.endswith(("\n", "\r")):
        lines = lines[:-1]  # the sample may cut the last line short
    head = "\n".join(lines[:200])
    best: tuple[int, int] | None = None
    chosen: str | None = None
    for sep in SEPARATORS:
        if sep == decimal:
            continue
        rows = [row for row in csv.reader(io.StringIO(head), delimiter=sep) if row]
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        consistent = sum(len(row) == width for row in rows) / len(rows)
        # Every line with the header's width beats a wider but ragged split.
        score = (int(consistent == 1.0), width)
        if best is None or score > best:
            best, chosen = score, sep
    return chosen


def _refuse_duplicate_header(text: str, sep: str, name: str, table: str) -> None:
    header = next(csv.reader(io.StringIO(text), delimiter=sep), [])
    names = [field.strip() for field in header]
    listed = sorted(n for n, count in Counter(names).items() if count > 1)
    if listed:
        positions = [f"{i + 1}: {n!r}" for i, n in enumerate(names) if n in listed][:6]
        _fail(
            table,
            "unique_column_names",
            Reason.DUPLICATES,
            f"The file {name} has column name(s) {listed} more than once in its header "
            f"(columns {', '.join(positions)}); pandas would rename the copies silently. "
            "Rename the columns so every name is unique.",
        )
