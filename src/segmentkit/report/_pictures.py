"""What the profile and migration pictures show, apart from how they are drawn.

:mod:`segmentkit.plots` draws them with matplotlib and the HTML report as inline SVG;
both take their numbers and layout from here, so the two pictures always agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from segmentkit.results._segmentation import Segmentation

__all__ = ["Band", "Flow", "ProfileGrid", "flow_layout", "profile_grid"]

#: Features a profile picture shows by default: the ones that tell segments apart most.
PROFILE_FEATURES = 12

_SIGN = {"higher_is_better": 1.0, "lower_is_better": -1.0}


@dataclass(frozen=True)
class ProfileGrid:
    """Segments (rows, most valuable first) × features (columns, catalog order).

    ``ratios`` are each segment's median over the median of all customers; ``logs``
    their ``log2``, clipped to ±2 (×4 and ×¼); ``directions`` each feature's catalog
    direction (``'neutral'`` when it has none).
    """

    segments: list[str]
    features: list[str]
    labels: list[str]
    directions: list[str]
    ratios: np.ndarray
    logs: np.ndarray

    @property
    def strong(self) -> np.ndarray:
        """Cells far enough from typical (beyond about ×2.3 or ×0.43) for light text."""
        return np.abs(np.nan_to_num(self.logs)) > 1.2

    @property
    def signed(self) -> np.ndarray:
        """``logs`` signed so that positive is better; NaN where there is no direction."""
        sign = np.array([_SIGN.get(d, np.nan) for d in self.directions])
        return self.logs * sign


def profile_grid(segmentation: Segmentation, columns: Sequence[str] | None = None) -> ProfileGrid:
    """The profile as a picture shows it: non-empty segments, the telling features."""
    from segmentkit.features._catalog import column_definition

    profile = segmentation.profile(columns=columns)
    profile = profile[profile["customers"] > 0]
    order = [n for n in segmentation.catalog["segment"] if n in profile.index]
    profile = profile.loc[order + [n for n in profile.index if n not in set(order)]]
    ratios = profile.xs("ratio", axis=1, level="statistic")
    # A median of 0 against a positive typical one is as far below as the scale goes.
    logs = np.log2(ratios.clip(lower=0.25)).clip(-2, 2)
    if columns is None:
        # A feature no segment can be compared on (the typical value is 0, or nobody
        # has one) would be a blank column.
        comparable = [c for c in ratios.columns if np.isfinite(ratios[c]).any()]
        logs, ratios = logs[comparable], ratios[comparable]
        spread = (logs.max() - logs.min()).fillna(0.0)
        chosen = set(spread.sort_values(ascending=False, kind="stable").index[:PROFILE_FEATURES])
        keep = [c for c in logs.columns if c in chosen]
        logs, ratios = logs[keep], ratios[keep]
    features = [str(c) for c in logs.columns]
    definitions = [column_definition(name) for name in features]
    labels = [
        d.label if d is not None and d.label else name
        for d, name in zip(definitions, features, strict=True)
    ]
    return ProfileGrid(
        segments=[str(n) for n in profile.index],
        features=features,
        labels=labels,
        directions=[d.direction if d is not None else "neutral" for d in definitions],
        ratios=ratios.to_numpy(dtype=float),
        logs=logs.to_numpy(dtype=float),
    )


@dataclass(frozen=True)
class Band:
    """Customers who moved from ``source`` (left) to ``target`` (right).

    ``y0`` and ``y1`` are the band's top on each side, in customers from the top of
    the picture; ``stayed`` says the customers kept their segment.
    """

    source: str
    target: str
    customers: int
    y0: float
    y1: float
    stayed: bool


@dataclass(frozen=True)
class Flow:
    """A migration as stacked segments on two sides joined by bands, in customers.

    ``left`` and ``right`` map each segment to its top and height; ``bands`` are the
    ones drawn; ``hidden`` counts the customers in bands too thin to draw.
    """

    left: dict[str, tuple[float, float]]
    right: dict[str, tuple[float, float]]
    bands: list[Band]
    hidden: int
    height: float
    gap: float
    min_share: float


def flow_layout(migration: Any, min_share: float = 0.005) -> Flow:
    """Where each segment and band of a migration's flow picture goes."""
    matrix = migration.matrix
    left = _flow_order(list(matrix.index), _catalog(migration, "before"), last="(new)")
    right = _flow_order(list(matrix.columns), _catalog(migration, "after"), last="(gone)")
    counts = matrix.loc[left, right].to_numpy(dtype=float)
    total = max(float(counts.sum()), 1.0)
    gap = 0.012 * total

    def stack(names: list[str], sizes: np.ndarray) -> dict[str, tuple[float, float]]:
        tops, y = {}, 0.0
        for name, size in zip(names, sizes, strict=True):
            tops[name] = (float(y), float(size))
            y += size + (gap if size > 0 else 0.0)
        return tops

    left_nodes = stack(left, counts.sum(axis=1))
    right_nodes = stack(right, counts.sum(axis=0))
    # Without a matching (segments kept their names), staying is keeping the name.
    stays = getattr(migration, "pairs", None) or {name: name for name in left}
    # Each band leaves its source below the bands before it, and enters its target
    # below the ones already there, so bands never cross inside a segment.
    out_used = dict.fromkeys(left, 0.0)
    in_used = dict.fromkeys(right, 0.0)
    bands, hidden = [], 0
    for i, source in enumerate(left):
        for j, target in enumerate(right):
            size = counts[i, j]
            if size <= 0:
                continue
            y0 = left_nodes[source][0] + out_used[source]
            y1 = right_nodes[target][0] + in_used[target]
            out_used[source] += size
            in_used[target] += size
            if size < min_share * total:
                hidden += int(size)
                continue
            stayed = stays.get(source) == target
            bands.append(Band(source, target, int(size), float(y0), float(y1), stayed))
    height = max(counts.sum(axis=1).sum(), counts.sum(axis=0).sum())
    height += gap * max(len(left), len(right))
    return Flow(left_nodes, right_nodes, bands, hidden, float(height), gap, min_share)


def _catalog(migration: Any, side: str) -> pd.DataFrame | None:
    run = getattr(migration, side, None)
    return getattr(run, "catalog", None)


def _flow_order(names: list[str], catalog: pd.DataFrame | None, *, last: str) -> list[str]:
    """``names`` most valuable first as the catalog lists them, ``last`` at the end."""
    listed = [] if catalog is None else list(catalog["segment"])
    ranked = [n for n in listed if n in set(names)]
    rest = [n for n in names if n not in set(ranked) and n != last]
    return [*ranked, *rest, *([last] if last in names else [])]
