"""Segmentation engines: the :class:`Segmenter` interface and the built-in engines."""

from segmentkit.engines._base import Segmenter, SegmenterTags
from segmentkit.engines._rfm import CLASSIC_GRID, RFMSegmenter
from segmentkit.engines._rules import Rule, RuleSegmenter, lifecycle_rules, load_rules

__all__ = [
    "CLASSIC_GRID",
    "RFMSegmenter",
    "Rule",
    "RuleSegmenter",
    "Segmenter",
    "SegmenterTags",
    "lifecycle_rules",
    "load_rules",
]
