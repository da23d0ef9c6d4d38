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
from segmentkit._common._hooks import set_writer as _set_writer
from segmentkit._version import __version__
from segmentkit.contracts._customers import Customers
from segmentkit.contracts._events import Events
from segmentkit.contracts._transactions import Transactions
from segmentkit.contracts._validation import ValidationReport
from segmentkit.features._affinity import affinity
from segmentkit.features._catalog import feature_catalog
from segmentkit.features._extract import CustomerFeatures, extract_features
from segmentkit.results._segmentation import NOISE, Segment, Segmentation

if TYPE_CHECKING:
    from segmentkit.engines import (
        HDBSCANSegmenter,
        KMeansSegmenter,
        RFMSegmenter,
        Rule,
        RuleSegmenter,
        Segmenter,
        SegmenterTags,
        ValueRiskSegmenter,
        abandoner_rules,
        lifecycle_rules,
        load_rules,
        offer_rules,
        value_risk_rules,
    )
    from segmentkit.engines._persistence import load
    from segmentkit.engines._quality import QualityReport, StabilityReport, evaluate, stability
    from segmentkit.engines._registry import available_engines, get_engine, register_engine
    from segmentkit.models import (
        Backtest,
        BetaGeoModel,
        GammaGammaModel,
        NextBestItems,
        ParetoNBDModel,
        PropensityEvaluation,
        PurchasePropensity,
        add_predictions,
        associations,
        backtest,
        customer_lifetime_value,
        evaluate_next_best,
        next_best_items,
        segment_items,
    )
    from segmentkit.timeline._abtest import ExperimentAnalysis, analyze_test
    from segmentkit.timeline._groups import GroupAssignment, assign_groups
    from segmentkit.timeline._migration import Migration, SegmentChanges, migration
    from segmentkit.timeline._snapshots import Snapshots, snapshots

_LAZY = {
    # The purchase models load scipy: only when a model is asked for.
    "BetaGeoModel": "segmentkit.models",
    "GammaGammaModel": "segmentkit.models",
    "ParetoNBDModel": "segmentkit.models",
    "PropensityEvaluation": "segmentkit.models",
    "PurchasePropensity": "segmentkit.models",
    "customer_lifetime_value": "segmentkit.models",
    "Backtest": "segmentkit.models",
    "backtest": "segmentkit.models",
    "add_predictions": "segmentkit.models",
    # What to offer: associations load scipy.sparse.
    "NextBestItems": "segmentkit.models",
    "associations": "segmentkit.models",
    "evaluate_next_best": "segmentkit.models",
    "next_best_items": "segmentkit.models",
    "segment_items": "segmentkit.models",
    # The engines package loads scikit-learn: only when an engine is asked for.
    "QualityReport": "segmentkit.engines._quality",
    "StabilityReport": "segmentkit.engines._quality",
    "evaluate": "segmentkit.engines._quality",
    "stability": "segmentkit.engines._quality",
    "available_engines": "segmentkit.engines._registry",
    "get_engine": "segmentkit.engines._registry",
    "register_engine": "segmentkit.engines._registry",
    "HDBSCANSegmenter": "segmentkit.engines",
    "KMeansSegmenter": "segmentkit.engines",
    "RFMSegmenter": "segmentkit.engines",
    "Rule": "segmentkit.engines",
    "RuleSegmenter": "segmentkit.engines",
    "Segmenter": "segmentkit.engines",
    "SegmenterTags": "segmentkit.engines",
    "lifecycle_rules": "segmentkit.engines",
    "abandoner_rules": "segmentkit.engines",
    "load_rules": "segmentkit.engines",
    "offer_rules": "segmentkit.engines",
    "ValueRiskSegmenter": "segmentkit.engines",
    "value_risk_rules": "segmentkit.engines",
    "engines": "segmentkit.engines",
    "plots": "segmentkit.plots",
    "exporters": "segmentkit.exporters",
    "testing": "segmentkit.testing",
    "load": "segmentkit.engines._persistence",
    "Snapshots": "segmentkit.timeline._snapshots",
    "snapshots": "segmentkit.timeline._snapshots",
    "Migration": "segmentkit.timeline._migration",
    "migration": "segmentkit.timeline._migration",
    "SegmentChanges": "segmentkit.timeline._migration",
    "GroupAssignment": "segmentkit.timeline._groups",
    "assign_groups": "segmentkit.timeline._groups",
    "ExperimentAnalysis": "segmentkit.timeline._abtest",
    "analyze_test": "segmentkit.timeline._abtest",
}

__all__ = [
    "NOISE",
    "Backtest",
    "BetaGeoModel",
    "CustomerFeatures",
    "Customers",
    "Events",
    "ExperimentAnalysis",
    "GammaGammaModel",
    "GroupAssignment",
    "HDBSCANSegmenter",
    "KMeansSegmenter",
    "Migration",
    "NextBestItems",
    "ParetoNBDModel",
    "PropensityEvaluation",
    "PurchasePropensity",
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
    "ValueRiskSegmenter",
    "__version__",
    "abandoner_rules",
    "add_predictions",
    "affinity",
    "analyze_test",
    "assign_groups",
    "associations",
    "available_engines",
    "backtest",
    "customer_lifetime_value",
    "datasets",
    "errors",
    "evaluate",
    "evaluate_next_best",
    "exporters",
    "extract_features",
    "feature_catalog",
    "get_engine",
    "lifecycle_rules",
    "load",
    "load_rules",
    "migration",
    "next_best_items",
    "offer_rules",
    "plots",
    "register_engine",
    "segment_items",
    "snapshots",
    "stability",
    "testing",
    "value_risk_rules",
]


def _write_report(*args: Any, **kwargs: Any) -> Any:
    # The report (and its plotting imports) loads only when a report is written.
    from segmentkit.report._html import write_report

    return write_report(*args, **kwargs)


def _write_backtest_report(*args: Any, **kwargs: Any) -> Any:
    from segmentkit.report._html import write_backtest_report

    return write_backtest_report(*args, **kwargs)


_set_writer("segmentation", _write_report)
_set_writer("backtest", _write_backtest_report)


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
