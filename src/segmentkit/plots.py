"""Plots of a segmentation (public home of :mod:`segmentkit.report.plots`)."""

from segmentkit.report.plots import *  # noqa: F403
from segmentkit.report.plots import __all__  # noqa: F401
