"""The feature catalog: every feature's definition as a table."""

from __future__ import annotations

import pandas as pd

from segmentkit.features._definitions import FeatureDef, definitions

__all__ = ["FeatureDef", "definitions_by_name", "feature_catalog"]


def feature_catalog(windows: tuple[int, ...] = (7, 30, 90)) -> pd.DataFrame:
    """Every feature segmentkit can compute, with its definition.

    Parameters
    ----------
    windows : tuple of int, default=(7, 30, 90)
        Browsing windows in days, as passed to :func:`extract_features`.

    Returns
    -------
    pandas.DataFrame
        Columns ``name, description, unit, source, kind, label, dtype, direction,
        skewed, needs``, one row per feature. ``direction`` says whether more is better
        (``higher_is_better``, ``lower_is_better`` or ``neutral``); ``skewed`` features
        are log-transformed before clustering; ``needs`` names the optional input
        columns the feature needs (for profile features: any one of them).

    Examples
    --------
    >>> import segmentkit as sk
    >>> catalog = sk.feature_catalog()
    >>> catalog.set_index("name").loc["frequency", "description"]
    'Distinct orders with at least one purchase line.'
    >>> catalog.set_index("name").loc["recency_days", "direction"]
    'lower_is_better'
    """
    return pd.DataFrame(
        [
            d.catalog_row()
            | {
                "label": d.label,
                "dtype": d.dtype,
                "direction": d.direction,
                "skewed": d.skewed,
                "needs": ", ".join(d.needs),
            }
            for d in definitions(tuple(windows))
        ]
    )


def definitions_by_name(windows: tuple[int, ...]) -> dict[str, FeatureDef]:
    return {d.name: d for d in definitions(tuple(windows))}
