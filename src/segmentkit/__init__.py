"""segmentkit: customer segments from an online store's orders and browsing events.

The path the data takes: raw tables → contracts (:class:`Transactions`,
:class:`Events`, :class:`Customers`) → :func:`extract_features` → an engine
(:class:`RFMSegmenter`, :class:`RuleSegmenter`, or any registered one) →
:class:`Segmentation` → files.

Engines import scikit-learn; they load on first use, so ``import segmentkit``
stays light for scripts that only validate data.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from segmentkit import datasets, errors
from segmentkit._catalog import feature_catalog
from segmentkit._customers import Customers
from segmentkit._events import Events
from segmentkit._features import CustomerFeatures, extract_features
from segmentkit._quality import QualityReport, StabilityReport, evaluate, stability
from segmentkit._registry import available_engines, get_engine, register_engine
from segmentkit._report import ValidationReport
from segmentkit._segmentation import NOISE, Segment, Segmentation
from segmentkit._transactions import Transactions
from segmentkit._version import __version__

if TYPE_CHECKING:
    from segmentkit._abtest import ExperimentAnalysis, analyze_test
    from segmentkit._groups import GroupAssignment, assign_groups
    from segmentkit._migration import Migration, SegmentChanges, migration
    from segmentkit._persistence import load
    from segmentkit._snapshots import Snapshots, snapshots
    from segmentkit.engines import (
        HDBSCANSegmenter,
        KMeansSegmenter,
        RFMSegmenter,
        Rule,
        RuleSegmenter,
        Segmenter,
        SegmenterTags,
        lifecycle_rules,
        load_rules,
    )

_LAZY = {
    "HDBSCANSegmenter": "segmentkit.engines",
    "KMeansSegmenter": "segmentkit.engines",
    "RFMSegmenter": "segmentkit.engines",
    "Rule": "segmentkit.engines",
    "RuleSegmenter": "segmentkit.engines",
    "Segmenter": "segmentkit.engines",
    "SegmenterTags": "segmentkit.engines",
    "lifecycle_rules": "segmentkit.engines",
    "load_rules": "segmentkit.engines",
    "engines": "segmentkit.engines",
    "plots": "segmentkit.plots",
    "exporters": "segmentkit.exporters",
    "testing": "segmentkit.testing",
    "load": "segmentkit._persistence",
    "Snapshots": "segmentkit._snapshots",
    "snapshots": "segmentkit._snapshots",
    "Migration": "segmentkit._migration",
    "migration": "segmentkit._migration",
    "SegmentChanges": "segmentkit._migration",
    "GroupAssignment": "segmentkit._groups",
    "assign_groups": "segmentkit._groups",
    "ExperimentAnalysis": "segmentkit._abtest",
    "analyze_test": "segmentkit._abtest",
}

__all__ = [
    "NOISE",
    "CustomerFeatures",
    "Customers",
    "Events",
    "ExperimentAnalysis",
    "GroupAssignment",
    "HDBSCANSegmenter",
    "KMeansSegmenter",
    "Migration",
    "QualityReport",
    "RFMSegmenter",
    "Rule",
    "RuleSegmenter",
    "Segment",
    "SegmentChanges",
    "Segmentation",
    "Segmenter",
    "SegmenterTags",
    "Snapshots",
    "StabilityReport",
    "Transactions",
    "ValidationReport",
    "__version__",
    "analyze_test",
    "assign_groups",
    "available_engines",
    "datasets",
    "errors",
    "evaluate",
    "exporters",
    "extract_features",
    "feature_catalog",
    "get_engine",
    "lifecycle_rules",
    "load",
    "load_rules",
    "migration",
    "plots",
    "register_engine",
    "snapshots",
    "stability",
    "testing",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module = importlib.import_module(_LAZY[name])
        modules = {"engines", "exporters", "plots", "testing"}
        value = module if name in modules else getattr(module, name)
        globals()[name] = value
        return value
    msg = f"module 'segmentkit' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
