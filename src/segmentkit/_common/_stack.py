"""Where a warning should point: at the user's line, not at segmentkit's internals."""

from __future__ import annotations

import sys
from types import FrameType

__all__ = ["caller_stacklevel"]


def caller_stacklevel() -> int:
    """``stacklevel`` that points a warning at the first frame outside segmentkit.

    Engines are fitted from many places (directly, by ``stability``, by the CLI): a
    fixed level would point at whichever of those called, and the project's own
    ``filterwarnings`` would then treat the warning as one of segmentkit's.
    """
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("segmentkit"):
        level, frame = level + 1, frame.f_back
    return level
