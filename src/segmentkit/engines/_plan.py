"""How a fitted engine scores, as data: the one interface between engines and backends.

An engine that can score frames of other libraries (polars, DuckDB, PySpark, Dask...)
where they live returns one of these plans from ``Segmenter._scoring_plan(columns)``;
:mod:`segmentkit.engines._scoring` compiles it to narwhals expressions (or batches)
and runs it on any backend. Engines never see the frame nor test its type, and the
executor never reads an engine's private state: everything it needs is in the plan.

A plan holds plain data: rule texts in the rule language, cut points, centroids and
their preprocessing. See ``docs/custom-engine.md`` ("Scoring where the data lives")
for a third-party engine that opts in, and ``docs/native-scoring.md`` for what each
built-in engine's plan computes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd

__all__ = [
    "BatchPlan",
    "CentroidPlan",
    "FitInput",
    "NonBuyers",
    "Preprocessing",
    "RulePlan",
    "ScoringPlan",
    "ThresholdPlan",
]

# Amounts that differ only in their last bits (the same lines summed in another order,
# as every backend does) must score alike: a value within this relative distance below
# a cut point counts as at it, when cuts are learned and when they are applied.
TIE_TOLERANCE = 1e-11


def cut_reach(cut: float) -> float:
    """The smallest value that counts as at or above ``cut`` (see ``TIE_TOLERANCE``)."""
    value = float(cut)
    return value - TIE_TOLERANCE * abs(value) if math.isfinite(value) else value


@dataclass(frozen=True)
class FitInput:
    """What ``fit`` on a frame of another library brings into memory.

    Returned by ``Segmenter._fit_input(columns)``; ``fit`` then runs on the collected
    pandas frame (one row per customer, with ``customer_id``).

    Parameters
    ----------
    columns : sequence of str, optional
        Columns to collect, ``customer_id`` included; ``None`` for every column.
    rows : {'all', 'none', 'sample'}, default='all'
        Every customer, none (only the schema: an empty frame with the columns), or a
        reproducible sample of ``sample_size`` customers (the smallest md5 of their id).
    sample_size : int, optional
        Customers in the sample, for ``rows='sample'``.
    """

    columns: Sequence[str] | None = None
    rows: Literal["all", "none", "sample"] = "all"
    sample_size: int | None = None


@dataclass(frozen=True)
class NonBuyers:
    """Customers without a purchase set apart, as on the pandas path.

    A customer is a buyer when every given test passes: ``frequency`` above 0 (NaN is
    not) and ``recency`` finite. A non-buyer whose ``monetary`` is below 0 returned
    more than it bought and goes to ``returns_only``; the others to ``no_purchase``.

    Parameters
    ----------
    no_purchase, returns_only : int
        Segment ids of the two groups.
    frequency, recency, monetary : str, optional
        Columns of the tests; a test whose column is ``None`` is not made.
    """

    no_purchase: int
    returns_only: int
    frequency: str | None = None
    recency: str | None = None
    monetary: str | None = None


@dataclass(frozen=True)
class RulePlan:
    """First matching rule wins: ``rules`` in order, else ``default``.

    Parameters
    ----------
    rules : sequence of (int, str)
        Segment id and condition in the rule language (``"frequency >= 4 and
        recency_days <= 90"``), with the semantics of :class:`~segmentkit.Rule`.
    default : int
        Segment id of customers no rule matches.
    """

    rules: Sequence[tuple[int, str]]
    default: int


@dataclass(frozen=True)
class ThresholdPlan:
    """Quantile scores from learned cut points, then a grid or rules on the scores (RFM).

    ``r_score``, ``f_score`` and ``m_score`` are ``1 +`` the number of cut points at or
    below the value (recency reversed: fewer days score higher; a value within
    ``TIE_TOLERANCE`` relative below a cut counts as at it, so the same amounts summed in
    another order score alike on every backend); values that are not
    finite score 1. ``fm_score`` is ``floor((f_score + m_score + 1) / 2)``. Buyers get
    the first of ``cells`` (by ``(r_score, fm_score)``) or of ``rules`` that matches,
    else ``default``; non-buyers (see :class:`NonBuyers`) their own segments and
    scores 0. The outputs are ``r_score, f_score, m_score, rfm_score``.

    Parameters
    ----------
    recency, frequency, monetary : str
        Feature columns.
    cuts : dict
        ``'recency'``, ``'frequency'``, ``'monetary'`` to ascending cut points (recency
        in days, as learned).
    cells : sequence of (int, sequence of (int, int)), optional
        Segment id and the ``(r_score, fm_score)`` cells it covers, in priority order.
    rules : sequence of (int, str), optional
        Segment id and condition in the rule language, which may name the scores and
        the features; used when ``cells`` is ``None``.
    default : int
        Segment id of buyers nothing matches.
    non_buyers : NonBuyers
        How non-buyers are told apart.
    """

    recency: str
    frequency: str
    monetary: str
    cuts: Mapping[str, Sequence[float]]
    cells: Sequence[tuple[int, Sequence[tuple[int, int]]]] | None
    rules: Sequence[tuple[int, str]] | None
    default: int
    non_buyers: NonBuyers


@dataclass(frozen=True)
class Preprocessing:
    """The learned transform of features into the space centroids live in.

    Numeric features, in order: ``sign(x)·log1p(|x|)`` for those in ``logged``; values
    that are not finite replaced by ``fill``; then ``(x - center) / scale``. Then one
    column per level of each categorical feature (1.0 where the text equals it).

    Parameters
    ----------
    numeric : sequence of str
        Numeric features.
    logged : sequence of str
        Numeric features log-transformed first.
    fill, center, scale : sequence of float
        Per numeric feature.
    categorical : dict of str to list of str
        One-hot encoded features and their levels.
    missing : {'raise', 'median', 'zero'}, default='raise'
        ``'raise'`` refuses customers with values that are not finite (one count query).
    """

    numeric: Sequence[str]
    logged: Sequence[str] = ()
    fill: Sequence[float] = ()
    center: Sequence[float] = ()
    scale: Sequence[float] = ()
    categorical: Mapping[str, Sequence[str]] = field(default_factory=dict)
    missing: str = "raise"

    @property
    def input_names(self) -> list[str]:
        """Features the transform reads."""
        return [*self.numeric, *self.categorical]


@dataclass(frozen=True)
class CentroidPlan:
    """Nearest centroid in the preprocessed space; ties go to the lowest id.

    The label is the centroid's position (0, 1, ...); the output ``distance`` is the
    Euclidean distance to it (missing for non-buyers set apart).

    Parameters
    ----------
    preprocessing : Preprocessing
        The learned transform.
    centers : numpy.ndarray
        Centroids, one row per segment id, in the preprocessed space.
    non_buyers : NonBuyers, optional
        Non-buyers set apart before the centroids are asked.
    """

    preprocessing: Preprocessing
    centers: np.ndarray
    non_buyers: NonBuyers | None = None


@dataclass(frozen=True)
class BatchPlan:
    """Pandas scoring run batch by batch where the data lives (no expression form).

    For scoring that depends on each customer alone but cannot compile to expressions
    (HDBSCAN's tree walk). Lazy frames are scored in the engine's Python workers
    (Spark ``mapInPandas``, Dask ``map_partitions``, DuckDB ``map``, polars
    ``map_batches``); eager ones on the pandas path.

    Parameters
    ----------
    columns : sequence of str
        Columns ``score`` reads, ``customer_id`` first.
    score : callable
        A pandas batch of ``columns`` to a frame of ``customer_id, segment_id`` and the
        ``outputs``, one row per input row.
    outputs : dict of str to {'float64', 'int64'}
        Score columns ``score`` adds and their dtypes.
    """

    columns: Sequence[str]
    score: Callable[[pd.DataFrame], pd.DataFrame]
    outputs: Mapping[str, str] = field(default_factory=dict)


#: What ``Segmenter._scoring_plan`` may return.
ScoringPlan = RulePlan | ThresholdPlan | CentroidPlan | BatchPlan
