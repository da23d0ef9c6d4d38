"""The ``segmentkit`` command."""

from segmentkit.cli._main import main

__all__ = ["main"]
