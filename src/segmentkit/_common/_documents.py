"""Checks shared by every reader of a user's JSON, TOML or YAML document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["exceeds_depth"]


def exceeds_depth(document: Any, limit: int) -> bool:
    """Whether mappings and lists in ``document`` nest more than ``limit`` levels.

    Iterative, so a hostile document is measured here rather than ending in a
    ``RecursionError`` in whatever walks it next.
    """
    stack = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        if isinstance(value, Mapping):
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)
    return False
