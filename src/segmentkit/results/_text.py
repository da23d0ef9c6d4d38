"""Segments as a terminal reads them: figures first, descriptions last, 100 columns.

The command line, ``print(segmentation)`` and ``print(segmentation.summary())`` all
print through here, so a segment reads the same wherever it is printed.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from typing import Any

import pandas as pd

from segmentkit._common._terminal import TERMINAL_WIDTH

__all__ = ["SegmentSummary", "segment_lines"]


def _count(value: Any) -> str:
    return "–" if pd.isna(value) else f"{int(value):,}"


def _share(value: Any) -> str:
    return "–" if pd.isna(value) else f"{value:.1%}"


def _money(value: Any) -> str:
    return "–" if pd.isna(value) else f"{value:,.2f}"


def _tenth(value: Any) -> str:
    return "–" if pd.isna(value) else f"{value:,.1f}"


def _counted(value: Any) -> str:
    # A median count is whole unless it falls between two counts.
    if pd.isna(value):
        return "–"
    return f"{value:,.0f}" if value == round(value) else f"{value:,.1f}"


#: The figures of a summary in the order shown, with their headers and formats.
FIGURES: dict[str, tuple[str, Callable[[Any], str]]] = {
    "customers": ("customers", _count),
    "share": ("share", _share),
    "revenue": ("revenue", _money),
    "revenue_share": ("revenue share", _share),
    "median_recency_days": ("recency (days)", _tenth),
    "median_frequency": ("orders", _counted),
    "median_monetary": ("spend", _money),
}


def segment_lines(
    summary: pd.DataFrame, columns: Sequence[str] | None = None, *, width: int = TERMINAL_WIDTH
) -> list[str]:
    """The rows of ``summary`` (indexed by segment) as aligned lines of text.

    Figures come in the order of ``FIGURES`` (``columns`` picks some), as many as fit
    in ``width`` columns; the ones left out are named on the last line. Descriptions
    follow on each row when every one fits, else under the table, each wrapped under
    its segment's name.
    """
    names = [str(name) for name in summary.index]
    wanted = [c for c in (columns or FIGURES) if c in summary.columns and c in FIGURES]
    cells = {c: [FIGURES[c][1](v) for v in summary[c]] for c in wanted}
    name_width = max(len("segment"), *(len(name) for name in names))
    widths = {c: max(len(FIGURES[c][0]), *(len(v) for v in cells[c])) for c in wanted}
    shown: list[str] = []
    used = name_width
    for column in wanted:
        if used + 2 + widths[column] > width:
            break
        shown.append(column)
        used += 2 + widths[column]
    hidden = [c for c in wanted if c not in shown]

    def row(name: str, values: list[str]) -> str:
        figures = [f"{v:>{widths[c]}}" for c, v in zip(shown, values, strict=True)]
        return "  ".join([f"{name:<{name_width}}", *figures])

    header = row("segment", [FIGURES[c][0] for c in shown])
    described = "description" in summary.columns
    descriptions = [
        "" if pd.isna(text) else str(text)
        for text in (summary["description"] if described else [""] * len(names))
    ]
    room = width - len(header) - 2
    inline = described and all(len(text) <= room for text in descriptions)
    lines = [header + ("  description" if inline else "")]
    for i, name in enumerate(names):
        line = row(name, [cells[c][i] for c in shown])
        lines.append(f"{line}  {descriptions[i]}".rstrip() if inline else line)
    if described and not inline and any(descriptions):
        lines.append("")
        for name, text in zip(names, descriptions, strict=True):
            if text:
                lines.extend(textwrap.wrap(f"{name}: {text}", width, subsequent_indent="    "))
    if hidden:
        lines.append(
            textwrap.fill(
                f"(not shown to fit {width} columns: {', '.join(hidden)}; "
                "summary().to_string() prints every column)",
                width,
            )
        )
    return lines


class SegmentSummary(pd.DataFrame):
    """The frame :meth:`Segmentation.summary` returns, printed as a terminal reads it.

    A plain :class:`pandas.DataFrame` in every other respect; anything computed from it
    (a selection, ``round``, ``head``) is a plain frame with pandas' own printing.
    """

    @property
    def _constructor(self) -> type[pd.DataFrame]:
        return pd.DataFrame

    def __repr__(self) -> str:
        return "\n".join(segment_lines(self))
