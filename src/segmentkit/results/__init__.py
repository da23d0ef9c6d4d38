"""Results: a :class:`Segmentation` (every customer in exactly one segment) and its catalog."""

from segmentkit.results._segmentation import NOISE, Segment, Segmentation

__all__ = ["NOISE", "Segment", "Segmentation"]
