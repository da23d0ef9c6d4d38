"""Features: one row per customer, computed only from data up to ``as_of``."""

from segmentkit.features._affinity import affinity
from segmentkit.features._catalog import feature_catalog
from segmentkit.features._extract import CustomerFeatures, extract_features

__all__ = ["CustomerFeatures", "affinity", "extract_features", "feature_catalog"]
