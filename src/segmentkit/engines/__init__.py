"""Segmentation engines: the :class:`Segmenter` interface, the built-in engines, and the
parameter constraints and helpers that third-party engines use, and the scoring plans
(:class:`RulePlan`, :class:`ThresholdPlan`, :class:`CentroidPlan`, :class:`BatchPlan`,
with :class:`FitInput`) through which an engine scores frames of other libraries where
they live."""

from segmentkit._common._params import NONE, InstanceOf, Interval, OneOf, Satisfies
from segmentkit.engines._base import Segmenter, SegmenterTags, require_columns
from segmentkit.engines._hdbscan import HDBSCANSegmenter
from segmentkit.engines._kmeans import KMeansSegmenter
from segmentkit.engines._naming import describe_clusters
from segmentkit.engines._plan import (
    BatchPlan,
    CentroidPlan,
    FitInput,
    NonBuyers,
    Preprocessing,
    RulePlan,
    ThresholdPlan,
)
from segmentkit.engines._preprocess import DEFAULT_CLUSTER_FEATURES
from segmentkit.engines._rfm import CLASSIC_GRID, RFMSegmenter
from segmentkit.engines._rules import (
    Rule,
    RuleSegmenter,
    abandoner_rules,
    lifecycle_rules,
    load_rules,
    offer_rules,
)
from segmentkit.engines._value_risk import VALUE_RISK_DEFAULT, ValueRiskSegmenter, value_risk_rules

__all__ = [
    "CLASSIC_GRID",
    "DEFAULT_CLUSTER_FEATURES",
    "NONE",
    "VALUE_RISK_DEFAULT",
    "BatchPlan",
    "CentroidPlan",
    "FitInput",
    "HDBSCANSegmenter",
    "InstanceOf",
    "Interval",
    "KMeansSegmenter",
    "NonBuyers",
    "OneOf",
    "Preprocessing",
    "RFMSegmenter",
    "Rule",
    "RulePlan",
    "RuleSegmenter",
    "Satisfies",
    "Segmenter",
    "SegmenterTags",
    "ThresholdPlan",
    "ValueRiskSegmenter",
    "abandoner_rules",
    "describe_clusters",
    "lifecycle_rules",
    "load_rules",
    "offer_rules",
    "require_columns",
    "value_risk_rules",
]
