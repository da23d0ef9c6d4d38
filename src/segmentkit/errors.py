"""Exceptions and warnings raised by segmentkit.

Every exception subclasses :class:`SegmentkitError` *and* the built-in that code
written before segmentkit would already catch (``ValueError``, ``KeyError``), so
``except ValueError`` keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "ContractError",
    "ContractFailure",
    "InvalidParameterError",
    "JournalLockedError",
    "NotFittedError",
    "PersistenceError",
    "PushError",
    "Reason",
    "RuleSyntaxError",
    "SegmentkitError",
    "SegmentkitWarning",
    "UnknownEngineError",
    "UnknownSegmentError",
    "check_is_fitted",
]


class SegmentkitError(Exception):
    """Base class of every error segmentkit raises on purpose."""


class SegmentkitWarning(UserWarning):
    """Warnings about data or parameters that segmentkit accepted but you should know of."""


class Reason(str, Enum):
    """Why a contract check failed; the ``reason`` column of :attr:`ContractError.failures`."""

    MISSING_COLUMN = "missing_column"
    UNKNOWN_MAPPING_KEY = "unknown_mapping_key"
    EMPTY = "empty"
    WRONG_DTYPE = "wrong_dtype"
    NULLS = "nulls"
    DUPLICATES = "duplicates"
    OUT_OF_RANGE = "out_of_range"
    MIXED_CURRENCIES = "mixed_currencies"
    INVALID_POLICY = "invalid_policy"
    AMBIGUOUS = "ambiguous"
    UNREADABLE = "unreadable"


@dataclass(frozen=True)
class ContractFailure:
    """One failed check of a data contract.

    Parameters
    ----------
    column : str
        Canonical column the check is about (or ``"<table>"`` for whole-table checks).
    check : str
        Short name of the check, e.g. ``"parse_timestamp"``.
    reason : Reason
        Category of the failure.
    message : str
        Sentence saying what is wrong and what to do.
    failure_cases : Sequence[tuple[int | None, object]], default=()
        A few ``(row, value)`` examples; ``row`` is the 0-based position in the input.
    n_failed : int, default=0
        How many rows failed the check in total.
    """

    column: str
    check: str
    reason: Reason
    message: str
    failure_cases: Sequence[tuple[int | None, Any]] = ()
    n_failed: int = 0


class ContractError(SegmentkitError, ValueError):
    """Input data does not meet its contract.

    All failures found in one validation pass are collected before raising, so a
    user sees every problem at once, not one per run.

    Parameters
    ----------
    failures : sequence of ContractFailure
        Every failed check found in the validation pass.
    table : str, default='data'
        Name of the table that failed (``"transactions"``...).

    Attributes
    ----------
    failures : pandas.DataFrame
        One row per failing example, columns ``column, check, reason, failure_case, row``.
    counts : pandas.Series
        Number of failed rows per ``(column, check)``.
    """

    def __init__(self, failures: Sequence[ContractFailure], *, table: str = "data") -> None:
        self._failures = tuple(failures)
        self.table = table
        super().__init__(self._render())

    def _render(self) -> str:
        n = len(self._failures)
        head = f"{self.table} failed {n} check{'s' if n != 1 else ''}:"
        lines = [head]
        for failure in self._failures:
            lines.append(f"- {failure.message}")
            if failure.failure_cases:
                shown = ", ".join(
                    f"row {row}: {value!r}" if row is not None else repr(value)
                    for row, value in failure.failure_cases
                )
                more = failure.n_failed - len(failure.failure_cases)
                suffix = f" (and {more} more)" if more > 0 else ""
                lines.append(f"  e.g. {shown}{suffix}")
        return "\n".join(lines) if n > 1 else "\n".join([lines[1][2:], *lines[2:]])

    @property
    def failures(self) -> pd.DataFrame:
        rows = []
        for failure in self._failures:
            cases = failure.failure_cases or [(None, None)]
            for row, value in cases:
                rows.append(
                    {
                        "column": failure.column,
                        "check": failure.check,
                        "reason": failure.reason.value,
                        "failure_case": value,
                        "row": row,
                    }
                )
        return pd.DataFrame(rows, columns=["column", "check", "reason", "failure_case", "row"])

    @property
    def counts(self) -> pd.Series:
        index = pd.MultiIndex.from_tuples(
            [(f.column, f.check) for f in self._failures], names=["column", "check"]
        )
        return pd.Series([max(f.n_failed, 1) for f in self._failures], index=index, name="n")

    @property
    def reasons(self) -> list[Reason]:
        """The reason of each failure, in the order found."""
        return [f.reason for f in self._failures]


class RuleSyntaxError(SegmentkitError, ValueError):
    """A rule cannot be parsed, names an unknown feature, or a rules file is malformed.

    Parameters
    ----------
    message : str
        What is wrong, with the position.
    text : str
        The rule text.
    position : int
        0-based character offset of the problem.

    Attributes
    ----------
    text : str
        The rule text.
    position : int
        0-based character offset of the problem in ``text``.
    message : str
        The sentence without the text and caret lines.
    """

    def __init__(self, message: str, *, text: str, position: int) -> None:
        self.message = message
        self.text = text
        self.position = position
        if not text:  # about a rule file's structure, not the text of a condition
            super().__init__(message)
            return
        pointer = " " * position + "^"
        super().__init__(f"{message}\n    {text}\n    {pointer}")


class InvalidParameterError(SegmentkitError, ValueError, TypeError):
    """A parameter has the wrong type or value.

    Subclasses both ``ValueError`` and ``TypeError``, as scikit-learn's error of the
    same name does, so either ``except`` clause catches it.
    """


class NotFittedError(SegmentkitError, ValueError, AttributeError):
    """A segmenter was used before ``fit``."""


class PersistenceError(SegmentkitError, ValueError):
    """A model cannot be saved, or a model file cannot be loaded.

    Raised by :meth:`Segmenter.save` (e.g. for a rule whose condition is a Python
    function) and by :func:`segmentkit.load` (not a model file, a newer format, an
    unknown engine, damaged or edited content, or pickled state without
    ``trust_pickle=True``). The message says which, and what to do.
    """


class _UnquotedKeyError(KeyError):
    def __str__(self) -> str:
        # KeyError quotes its argument; a sentence reads better unquoted.
        return str(self.args[0]) if self.args else ""


class UnknownEngineError(SegmentkitError, _UnquotedKeyError):
    """No engine is registered under the requested name."""


class UnknownSegmentError(SegmentkitError, _UnquotedKeyError):
    """No segment has the requested name or id."""


class PushError(SegmentkitError, RuntimeError):
    """A push stopped: a request was refused or kept failing after every retry.

    Raised by :func:`segmentkit.exporters.push` (also importable from
    :mod:`segmentkit.exporters`). The message never holds a secret, an e-mail address
    or a phone number: a platform's error text is scrubbed of them before it is quoted.

    Parameters
    ----------
    message : str
        What happened, with secrets and personal data masked.
    request : Request
        The :class:`~segmentkit.exporters.Request` that failed.
    status : int or None
        HTTP status of the last answer.
    summary : PushSummary
        What was delivered before the failure.

    Attributes
    ----------
    request : Request
        The request that failed.
    status : int or None
        HTTP status of the last answer (``None`` after a network error).
    summary : PushSummary
        What was delivered before the failure (acknowledged requests are journaled).
    """

    # Typed loosely: errors sits below every stage and cannot import the exporters' types.
    def __init__(self, message: str, *, request: Any, status: int | None, summary: Any) -> None:
        super().__init__(message)
        self.request = request
        self.status = status
        self.summary = summary


class JournalLockedError(SegmentkitError, RuntimeError):
    """Another push holds the journal: two pushers must never share one.

    Raised by :func:`segmentkit.exporters.push` (also importable from
    :mod:`segmentkit.exporters`).

    Parameters
    ----------
    message : str
        Names the journal, the lock file and its holder, and what to do.
    lock_path : pathlib.Path
        The lock file (``<journal>.lock``).
    """

    def __init__(self, message: str, *, lock_path: Path) -> None:
        super().__init__(message)
        self.lock_path = lock_path


def check_is_fitted(segmenter: object) -> None:
    """Raise :class:`NotFittedError` unless ``segmenter`` has been fitted.

    A segmenter counts as fitted when it has at least one public attribute ending
    in ``_`` (the scikit-learn convention for learned state).

    Parameters
    ----------
    segmenter : object
        The segmenter to check.

    Raises
    ------
    NotFittedError
        If ``fit`` has not been called.

    Examples
    --------
    >>> from segmentkit import RFMSegmenter
    >>> from segmentkit.errors import check_is_fitted
    >>> check_is_fitted(RFMSegmenter())
    Traceback (most recent call last):
    ...
    segmentkit.errors.NotFittedError: This RFMSegmenter instance is not fitted yet. Call 'fit'...
    """
    fitted = [
        name
        for name in vars(segmenter)
        if name.endswith("_") and not name.startswith("__") and not name.startswith("_")
    ]
    if not fitted:
        msg = (
            f"This {type(segmenter).__name__} instance is not fitted yet. Call 'fit' with "
            "appropriate arguments before using this segmenter."
        )
        raise NotFittedError(msg)
