"""What the three input contracts share: reading files and holding validated data."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit.contracts._dates import DateOptions
from segmentkit.contracts._readers import read_delimited
from segmentkit.contracts._schema import (
    Contract,
    check_not_empty,
    check_option,
    check_timezone,
    coerce,
    examples,
    map_columns,
    null_mask,
    raise_if,
    refuse_missing_ids,
)
from segmentkit.contracts._validation import ValidationReport
from segmentkit.errors import InvalidParameterError

PathLike = str | os.PathLike


class _Table:
    """Base of :class:`Transactions`, :class:`Events` and :class:`Customers`."""

    contract: ClassVar[Contract]
    #: The policies that are a choice among named options, with their allowed values.
    _options: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: Validates a frame of another library (polars, DuckDB, Spark...) where it lives.
    #: Set by :mod:`segmentkit.contracts`, which sits above the pandas and the narwhals
    #: paths, so that neither imports the other (the narwhals tables subclass these).
    _from_native: ClassVar[Callable[..., Any]]

    @classmethod
    def _check_options(cls, **values: Any) -> None:
        """Check the option policies once, whichever path validates the rows."""
        for name, value in values.items():
            check_option(value, name, cls._options[name], cls.contract.table)

    def __init__(self, data: pd.DataFrame, report: ValidationReport) -> None:
        self._data = data
        self._report = report

    @property
    def data(self) -> pd.DataFrame:
        """The validated rows, with canonical column names and dtypes."""
        return self._data

    @property
    def report(self) -> ValidationReport:
        """How every input row was accounted for: kept, or excluded with a reason."""
        return self._report

    @property
    def columns(self) -> list[str]:
        """Canonical columns present in :attr:`data`."""
        return list(self._data.columns)

    def __len__(self) -> int:
        return len(self._data)

    @property
    def n_customers(self) -> int:
        """Distinct customers among the kept rows."""
        return int(self._data["customer_id"].nunique())

    def __repr__(self) -> str:
        # Counts and column names only: the rows may hold personal data.
        return (
            f"<{type(self).__name__}: {len(self)} rows, {self.n_customers} customers, "
            f"columns={self.columns}>"
        )

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, /, **kwargs: Any) -> Self:  # pragma: no cover
        raise NotImplementedError

    @classmethod
    def _canonical(
        cls,
        frame: Any,
        mapping: Mapping[str, str],
        *,
        timezone: str,
        extra_keys: list[str],
        dates: DateOptions | None = None,
        notes: list[str] | None = None,
        contract: Contract | None = None,
    ) -> pd.DataFrame:
        """Map, then coerce, raising every contract failure of the two steps at once.

        What reading decided (e.g. the day/month order of text dates) is added to ``notes``.
        ``contract``: the class's contract with the user's product attributes added.
        """
        contract = contract or cls.contract
        check_timezone(timezone)
        canonical, failures = map_columns(frame, contract, mapping, extra_keys=extra_keys)
        raise_if(failures, contract.table)
        check_not_empty(canonical, contract.table)
        coerced, failures = coerce(
            canonical, contract, timezone=timezone, dates=dates, notes=notes
        )
        raise_if(failures, contract.table)
        return coerced

    @classmethod
    def from_csv(
        cls,
        path: PathLike,
        /,
        *,
        read_options: Mapping[str, Any] | None = None,
        engine: str = "pandas",
        **kwargs: Any,
    ) -> Self:
        """Read a CSV file (plain or compressed) and validate it with :meth:`from_frame`.

        Columns mapped to identifiers are read as text, so ``00042`` keeps its zeros.

        Parameters
        ----------
        path : str or os.PathLike
            File to read; ``.gz``, ``.zip``, ``.bz2`` and ``.xz`` are decompressed.
        read_options : dict, optional
            Extra keyword arguments for :func:`pandas.read_csv` (``sep``, ``decimal``,
            ``thousands``, ``encoding``...), or for ``polars.scan_csv`` / ``duckdb.read_csv``
            with those engines. Without ``sep``, the separator is sniffed among ``,`` ``;``
            tab and ``|`` (the report notes which). A file that is empty, truncated, not in
            the encoding, cannot be split into columns or repeats a column name is a
            :class:`~segmentkit.errors.ContractError` naming the file.
        engine : {'pandas', 'polars', 'duckdb'}, default='pandas'
            Who reads. ``'polars'`` and ``'duckdb'`` scan lazily (files and globs larger
            than memory), validate in that engine and return native transactions.
        **kwargs
            Column mapping and policies, as for :meth:`from_frame`.

        Returns
        -------
        Self
            The validated table.
        """
        if engine != "pandas":  # lazy scan: the file stays on disk
            from segmentkit._frame._scan import scan_file

            lazy = scan_file(path, "csv", engine, cls._id_sources(kwargs), read_options)
            return cls.from_frame(lazy, **kwargs)
        options = dict(read_options or {})
        id_sources = cls._id_sources(kwargs)
        dtype = options.pop("dtype", None) or {name: str for name in id_sources}
        # One pass over the whole file for types, instead of guessing per chunk (which
        # warns about mixed types and can type one column two ways).
        options.setdefault("low_memory", False)
        frame, notes = read_delimited(path, options, dtype, cls.contract.table)
        _check_separator(frame, path)
        table = cls.from_frame(frame, **kwargs)
        if notes:
            # How the file was read belongs with how its rows were: one report.
            report = table.report
            table._report = dataclasses.replace(report, notes=(*notes, *report.notes))
        return table

    @classmethod
    def from_parquet(cls, path: PathLike, /, *, engine: str = "pandas", **kwargs: Any) -> Self:
        """Read a Parquet file and validate it with :meth:`from_frame`.

        Needs ``pyarrow`` (``pip install "segmentkit[parquet]"``).

        Parameters
        ----------
        path : str or os.PathLike
            File or directory of Parquet files (with ``engine='polars'`` or
            ``'duckdb'`` also a glob such as ``'orders/*.parquet'``).
        engine : {'pandas', 'polars', 'duckdb'}, default='pandas'
            Who reads. ``'polars'`` and ``'duckdb'`` scan lazily (data larger than
            memory), validate in that engine and return native transactions.
        **kwargs
            Column mapping and policies, as for :meth:`from_frame`.

        Returns
        -------
        Self
            The validated table.
        """
        if engine != "pandas":  # lazy scan: the files stay on disk
            from segmentkit._frame._scan import scan_file

            return cls.from_frame(scan_file(path, "parquet", engine, []), **kwargs)
        return cls.from_frame(read_parquet(path), **kwargs)

    @classmethod
    def _id_sources(cls, kwargs: Mapping[str, Any]) -> list[str]:
        ids = [c.name for c in cls.contract.columns if c.kind in {"id", "category"}]
        sources = [kwargs.get(name, name) for name in ids]
        # Product attributes are text too (a department code "007" keeps its zeros).
        attributes = kwargs.get("attributes")
        if isinstance(attributes, Mapping):
            sources += list(attributes.values())
        elif isinstance(attributes, list | tuple):
            sources += list(attributes)
        return [source for source in sources if isinstance(source, str)]


def exclude_rows(
    keep: np.ndarray, mask: np.ndarray, reason: str, excluded: dict[str, int]
) -> None:
    """Drop ``mask`` rows from ``keep``, charging each to the first reason that excludes it.

    Counting only rows still kept makes the report's counts add up to rows read.
    """
    newly = keep & mask
    if newly.any():
        excluded[reason] = excluded.get(reason, 0) + int(newly.sum())
        keep &= ~mask


def missing_ids(data: pd.DataFrame, policy: str, table: str) -> np.ndarray:
    """Rows without a customer id; raises when all are missing, or any with ``'raise'``."""
    missing = null_mask(data["customer_id"])
    n_missing = int(missing.sum())
    if n_missing:
        ids = data["customer_id"]
        cases = (
            examples(missing, ids)
            if n_missing == len(missing)
            else [(row, None) for row, _ in examples(missing, ids)]
        )
        refuse_missing_ids(n_missing, len(missing), policy, table, cases)
    return missing


def _check_separator(frame: pd.DataFrame, path: PathLike) -> None:
    """One column whose name holds separators means the file was split on the wrong one."""
    if len(frame.columns) != 1:
        return
    header = str(frame.columns[0])
    for separator, label in ((";", "';'"), ("\t", "'\\t'"), ("|", "'|'"), (" ", r"'\s+'")):
        if separator in header.strip():
            msg = (
                f"{path} was read as a single column {header!r}: the separator used "
                f"does not split it. Pass read_options={{'sep': {label}}} (on the command "
                f"line: --sep {label}), or leave the separator out to have it detected."
            )
            raise InvalidParameterError(msg)


def require_pyarrow() -> None:
    """Parquet goes through pyarrow, an optional dependency: say how to get it."""
    try:
        import pyarrow  # noqa: F401
    except ImportError as error:
        msg = (
            "Parquet needs the 'pyarrow' package. Install it with "
            "pip install 'segmentkit[parquet]'."
        )
        raise ImportError(msg) from error


def read_parquet(path: PathLike) -> pd.DataFrame:
    require_pyarrow()
    return pd.read_parquet(path)
