"""The account of what happened to every input row of a table."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from segmentkit._common._terminal import TERMINAL_WIDTH

__all__ = ["ValidationReport"]

#: What a flag means and how to change it, shown beside its count.
_FLAG_NOTES = {
    "duplicate_line": " (repeat an earlier line in every mapped column; "
    "duplicates='drop' leaves them out)",
}


@dataclass(frozen=True)
class ValidationReport:
    """Rows read, kept and excluded (by reason) when a table was validated.

    ``rows_read == rows_kept + sum(excluded.values())`` always holds; the
    constructor refuses numbers that do not add up.

    Parameters
    ----------
    table : str
        Which table the report is about (``"transactions"``, ``"events"``, ``"customers"``).
    rows_read : int
        Rows in the input.
    rows_kept : int
        Rows that passed every check and policy.
    excluded : Mapping[str, int]
        Rows left out, by reason; reasons with zero rows are omitted.
    notes : Sequence[str], default=()
        Things done to kept rows that change values (currency conversion, implausible
        ages set to missing) or that are worth knowing (unrecognised event types).
    excluded_amounts : Mapping[str, float], default={}
        Value (sum of ``amount``, rounded to cents) of the lines left out, for reasons
        where it matters, such as ``excluded_product`` (postage, fees).
    flagged : Mapping[str, int], default={}
        Kept rows worth knowing about, by kind, e.g. ``duplicate_line`` for exact
        repeats kept under ``duplicates='keep'``. They are counted in ``rows_kept``.

    Examples
    --------
    >>> report = ValidationReport("transactions", 10, 8, {"missing_customer_id": 2})
    >>> report.rows_excluded
    2
    >>> print(report)
    transactions: 10 rows read, 8 kept (80.0%), 2 excluded
      - missing_customer_id: 2
    """

    table: str
    rows_read: int
    rows_kept: int
    excluded: Mapping[str, int] = field(default_factory=dict)
    notes: Sequence[str] = ()
    excluded_amounts: Mapping[str, float] = field(default_factory=dict)
    flagged: Mapping[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        excluded = {reason: int(n) for reason, n in self.excluded.items() if n}
        object.__setattr__(self, "excluded", excluded)
        object.__setattr__(self, "notes", tuple(self.notes))
        amounts = {
            reason: round(float(value), 2)
            for reason, value in self.excluded_amounts.items()
            if reason in excluded
        }
        object.__setattr__(self, "excluded_amounts", amounts)
        object.__setattr__(self, "flagged", {k: int(n) for k, n in self.flagged.items() if n})
        if self.rows_kept + sum(excluded.values()) != self.rows_read:
            msg = (
                f"{self.table}: rows do not add up: {self.rows_read} read != {self.rows_kept} "
                f"kept + {sum(excluded.values())} excluded {excluded}. This is a bug in "
                "segmentkit; please report it."
            )
            raise AssertionError(msg)

    @property
    def rows_excluded(self) -> int:
        """Total rows left out, over all reasons."""
        return self.rows_read - self.rows_kept

    def to_frame(self) -> pd.DataFrame:
        """The report as a table: one row per outcome (``kept`` and each exclusion reason).

        Returns
        -------
        pandas.DataFrame
            Columns ``table, outcome, reason, rows, share``.

        Examples
        --------
        >>> ValidationReport("events", 4, 3, {"missing_timestamp": 1}).to_frame()
            table    outcome             reason  rows  share
        0  events       kept                      3   0.75
        1  events   excluded  missing_timestamp     1   0.25
        """
        rows = [("kept", "", self.rows_kept)]
        rows += [("excluded", reason, n) for reason, n in self.excluded.items()]
        frame = pd.DataFrame(rows, columns=["outcome", "reason", "rows"])
        frame.insert(0, "table", self.table)
        frame["share"] = frame["rows"] / self.rows_read if self.rows_read else 0.0
        return frame

    def __str__(self) -> str:
        share = self.rows_kept / self.rows_read if self.rows_read else 0.0
        # "100.0%" next to "5 excluded" reads as a contradiction.
        shown = ">99.9%" if self.rows_excluded and share > 0.999 else f"{share:.1%}"
        lines = [
            f"{self.table}: {self.rows_read} rows read, {self.rows_kept} kept ({shown}), "
            f"{self.rows_excluded} excluded"
        ]
        lines += [
            f"  - {reason}: {n}"
            + (
                f" (amount {self.excluded_amounts[reason]:,.2f})"
                if reason in self.excluded_amounts
                else ""
            )
            for reason, n in self.excluded.items()
        ]
        lines += [
            f"  kept, flagged {kind}: {n}" + _FLAG_NOTES.get(kind, "")
            for kind, n in self.flagged.items()
        ]
        lines += [f"  note: {note}" for note in self.notes]
        # Read in terminals and logs: a long note wraps under its own indent.
        return "\n".join(
            textwrap.fill(
                line,
                width=TERMINAL_WIDTH,
                subsequent_indent="      ",
                break_on_hyphens=False,
                break_long_words=False,
            )
            if len(line) > TERMINAL_WIDTH
            else line
            for line in lines
        )

    def _repr_html_(self) -> str:
        return "<pre>" + str(self).replace("&", "&amp;").replace("<", "&lt;") + "</pre>"
