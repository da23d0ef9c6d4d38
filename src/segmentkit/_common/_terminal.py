"""What a terminal gives the text segmentkit prints."""

from __future__ import annotations

__all__ = ["TERMINAL_WIDTH"]

#: Columns every printed table, report and summary is made to fit.
TERMINAL_WIDTH = 100
