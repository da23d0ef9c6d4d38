"""Writers that a lower stage calls but a higher stage provides (e.g. HTML reports).

A result object (a backtest in ``models``) offers ``.report(path)``, but the HTML report
sits higher on the data path and may not be imported from below. The package root
plugs the writer in here; the result looks it up when called.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

_writers: dict[str, Callable[..., Path]] = {}


def set_writer(kind: str, function: Callable[..., Path]) -> None:
    """Plug in the function that writes a ``kind`` of report (called by the root)."""
    _writers[kind] = function


def writer(kind: str) -> Callable[..., Path]:
    """The writer of ``kind``; raises RuntimeError if segmentkit did not plug one in."""
    try:
        return _writers[kind]
    except KeyError:  # pragma: no cover - wired by segmentkit/__init__
        msg = f"the {kind} report is not available: import segmentkit first"
        raise RuntimeError(msg) from None
