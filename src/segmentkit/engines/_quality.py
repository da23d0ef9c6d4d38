"""How good is a segmentation? Separation of the segments and stability under resampling.

* :func:`evaluate` scores how well the segments are separated in a feature space
  (silhouette, Davies–Bouldin, Calinski–Harabasz);
* :func:`stability` refits an engine on subsamples of the customers and measures
  how much the segments change (adjusted Rand index).

scikit-learn is imported when a function runs, not when this module is imported.
"""

from __future__ import annotations

import copy
import textwrap
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segmentkit._common._params import (
    NONE,
    InstanceOf,
    Interval,
    ListLike,
    Satisfies,
    validated,
)
from segmentkit.errors import InvalidParameterError, SegmentkitWarning
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import NOISE, Segmentation, feature_rows

if TYPE_CHECKING:
    from segmentkit.engines._base import Segmenter

__all__ = ["QualityReport", "StabilityReport", "evaluate", "stability"]

_SEED = [InstanceOf((int, np.integer), "an int"), NONE]
_FEATURES = [
    InstanceOf(
        (CustomerFeatures, pd.DataFrame, np.ndarray),
        "CustomerFeatures, a pandas DataFrame or a 2-D numpy array",
    )
]


def _is_segmenter(value: object) -> bool:
    # Imported on use: the engines package imports this module.
    from segmentkit.engines._base import Segmenter

    return isinstance(value, Segmenter)


#: Width of the paragraphs ``str(report)`` returns.
_WIDTH = 88


@dataclass(frozen=True)
class QualityReport:
    """How well separated the segments of a segmentation are, from :func:`evaluate`.

    Parameters
    ----------
    silhouette : float
        Mean silhouette coefficient, from -1 to 1; higher is better. NaN when the
        silhouette sample holds fewer than 2 segments (or one customer per segment).
    davies_bouldin : float
        Davies–Bouldin index, 0 or more; lower is better.
    calinski_harabasz : float
        Calinski–Harabasz index (variance ratio), 0 or more; higher is better.
    n_customers : int
        Customers in the segmentation, noise included.
    n_segments : int
        Non-empty segments scored (the noise segment is not counted).
    n_noise : int
        Customers in the ``NOISE`` segment, left out of every score.
    sample_size : int
        Customers the silhouette was computed on (all scored customers, or a sample).
    space : str, default=''
        The space distances were measured in.

    Examples
    --------
    >>> from segmentkit.engines._quality import QualityReport
    >>> report = QualityReport(0.41, 0.9, 350.0, n_customers=800, n_segments=4,
    ...                        n_noise=0, sample_size=800)
    >>> print(report)
    Segment quality of 800 customers in 4 segments. Silhouette 0.410 (all 800 customers):
    from -1 to 1, higher is better; ... Davies-Bouldin 0.900: 0 or more, lower is better;
    ... Calinski-Harabasz 350.0: 0 or more, higher is better; ...
    """

    silhouette: float
    davies_bouldin: float
    calinski_harabasz: float
    n_customers: int
    n_segments: int
    n_noise: int
    sample_size: int
    space: str = ""

    def __str__(self) -> str:
        scored = self.n_customers - self.n_noise
        noise = f" ({self.n_noise:,} noise customers left out)" if self.n_noise else ""
        space = f", measured in {self.space}" if self.space else ""
        sampled = (
            f"a random sample of {self.sample_size:,}"
            if self.sample_size < scored
            else f"all {self.sample_size:,}"
        )
        silhouette = (
            f"Silhouette {self.silhouette:.3f} ({sampled} customers)"
            if np.isfinite(self.silhouette)
            else f"Silhouette not computed (its sample of {self.sample_size:,} customers "
            "held fewer than 2 segments)"
        )
        text = (
            f"Segment quality of {scored:,} customers in {self.n_segments} segments{noise}"
            f"{space}. {silhouette}: from -1 to 1, higher is better; how much closer "
            "customers are to their own segment than to the nearest other one. As rules "
            "of thumb, above 0.5 the segments are clearly apart, 0.25 to 0.5 they are "
            "distinct but touch, below 0.25 they overlap. "
            f"Davies-Bouldin {self.davies_bouldin:.3f}: 0 or more, lower is better; "
            "the typical ratio of a segment's spread to its distance from the most "
            "similar segment, so below 1 segments are farther apart than they are wide. "
            f"Calinski-Harabasz {self.calinski_harabasz:,.1f}: 0 or more, higher is "
            "better; variance between segments over variance within them, each per "
            "degree of freedom. It has no absolute scale: compare it only between "
            "segmentations of the same customers in the same space. Segments cut by "
            "rules or quantiles (RFM) are made for meaning, not compactness, and score "
            "lower than k-means clusters; use these numbers to compare alternatives "
            "rather than to judge one segmentation alone."
        )
        return textwrap.fill(text, width=_WIDTH)


@dataclass(frozen=True)
class StabilityReport:
    """How much segments change when the engine sees other customers, from :func:`stability`.

    Parameters
    ----------
    ari : tuple of float
        Adjusted Rand index of each resample's segmentation of all customers against
        the reference (the engine fitted on all customers).
    mean : float
        Mean of ``ari``.
    std : float
        Sample standard deviation of ``ari`` (``ddof=1``; 0 for one resample).
    min : float
        Smallest of ``ari``: the worst resample.
    n_customers : int
        Customers segmented.
    sample_fraction : float
        Share of the customers each resample was fitted on.
    engine : str, default=''
        Class name of the engine.

    Examples
    --------
    >>> from segmentkit.engines._quality import StabilityReport
    >>> report = StabilityReport((0.95, 0.91), 0.93, 0.028, 0.91, 800, 0.8, "KMeansSegmenter")
    >>> report.n_resamples, report.verdict
    (2, 'stable')
    """

    ari: tuple[float, ...]
    mean: float
    std: float
    min: float
    n_customers: int
    sample_fraction: float
    engine: str = ""

    @property
    def n_resamples(self) -> int:
        """Number of resamples."""
        return len(self.ari)

    @property
    def verdict(self) -> str:
        """``'stable'`` (mean ARI > 0.9), ``'fairly stable'`` (0.75–0.9) or ``'unstable'``."""
        if self.mean > 0.9:
            return "stable"
        if self.mean >= 0.75:
            return "fairly stable"
        return "unstable"

    def __str__(self) -> str:
        engine = self.engine or "the engine"
        text = (
            f"Stability of {engine} over {self.n_resamples} resamples, each fitted on "
            f"{self.sample_fraction:.0%} of {self.n_customers:,} customers: adjusted Rand "
            f"index against the segments fitted on all customers mean {self.mean:.3f} "
            f"(std {self.std:.3f}, min {self.min:.3f}), {self.verdict}. The index is 1 "
            "when a resample puts every pair of customers together or apart exactly as "
            "the reference does, and about 0 when the agreement is no better than "
            "chance. Rules of thumb, not laws: above 0.9 stable; 0.75 to 0.9 fairly "
            "stable; below 0.75 unstable, the segments depend on which customers "
            "happened to be in the data. A low min beside a high mean means the engine "
            "sometimes finds a different split (for k-means, often another k when k is "
            "chosen from the data)."
        )
        return textwrap.fill(text, width=_WIDTH)


@validated(
    segmentation=[InstanceOf((Segmentation,), "a Segmentation")],
    features=_FEATURES,
    segmenter=[Satisfies(_is_segmenter, "a fitted Segmenter"), NONE],
    columns=[ListLike("a list of feature names (str)", item=InstanceOf((str,), "a str")), NONE],
    sample_size=[Interval(int, 2, None)],
    random_state=_SEED,
)
def evaluate(
    segmentation: Segmentation,
    features: CustomerFeatures | pd.DataFrame,
    *,
    segmenter: Segmenter | None = None,
    columns: list[str] | None = None,
    sample_size: int = 10_000,
    random_state: int | None = 0,
) -> QualityReport:
    """Score how well separated the segments are: silhouette, Davies–Bouldin, Calinski–Harabasz.

    The scores are computed with :mod:`sklearn.metrics` on the customers' points in
    one space:

    * ``segmenter.transform(features)`` when ``segmenter`` has a ``transform``
      method (e.g. a fitted :class:`~segmentkit.KMeansSegmenter`): the space the
      engine clustered in;
    * otherwise the numeric ``columns`` (default: R, F, M and a few behaviour
      features, see ``segmentkit.engines.DEFAULT_CLUSTER_FEATURES``), with
      ``sign(x)·log1p(|x|)`` on the skewed ones (counts, amounts, day counts),
      missing values replaced by the median and each column standardised, as
      ``KMeansSegmenter`` does by default. The transform is learned on all customers
      of the segmentation, noise included, so that segmentations of the same
      customers are compared in the same space.

    Customers in the ``NOISE`` segment are left out of every score.

    Parameters
    ----------
    segmentation : Segmentation
        The segments to score.
    features : CustomerFeatures or pandas.DataFrame
        Features of (at least) every segmented customer.
    segmenter : Segmenter, optional
        A fitted engine; its ``transform``, if it has one, defines the space.
    columns : list of str, optional
        Numeric features of the default space; not allowed when ``segmenter`` has a
        ``transform``.
    sample_size : int, default=10000
        The silhouette (quadratic in customers) is computed on a random sample of this
        many customers when there are more: the sample scikit-learn's
        ``silhouette_score(..., sample_size=sample_size, random_state=random_state)``
        draws. The other two scores always use every customer.
    random_state : int or None, default=0
        Seed of the silhouette sample.

    Returns
    -------
    QualityReport
        The three scores and the counts behind them; ``print`` it for a reading guide.

    Raises
    ------
    ValueError
        If fewer than 2 segments have customers (noise aside), the features lack
        segmented customers, or a column is missing or not numeric.

    See Also
    --------
    stability : Whether the engine finds the same segments on other customers.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit.engines._quality import evaluate
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> model = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit(features)
    >>> report = evaluate(model.predict(features), features, segmenter=model)
    >>> report.n_segments, report.sample_size, round(report.silhouette, 2)
    (3, 800, 0.25)

    RFM segments are cut by quantiles, not to be compact; in the default space
    (log-scaled, standardised R, F, M and behaviour features) they overlap more:

    >>> rfm = sk.RFMSegmenter().fit_predict(features)
    >>> report = evaluate(rfm, features)
    >>> round(report.silhouette, 2), round(report.davies_bouldin, 2)
    (0.04, 3.1)
    """
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score
    from sklearn.utils import check_random_state

    from segmentkit.engines._base import as_features

    aligned = _aligned(as_features(features), segmentation)
    labels = segmentation.assignments["segment_id"].to_numpy(dtype=np.int64)
    matrix, space = _space(aligned, segmenter, columns)

    keep = labels != NOISE
    points, kept = matrix[keep], labels[keep]
    n_segments = len(np.unique(kept))
    if n_segments < 2:
        msg = (
            f"evaluate needs at least 2 segments with customers; this segmentation has "
            f"{n_segments} (noise aside). Separation scores compare segments with each other."
        )
        raise ValueError(msg)
    if n_segments >= len(kept):
        msg = (
            f"evaluate needs fewer segments than customers; got {n_segments} segments for "
            f"{len(kept)} customers."
        )
        raise ValueError(msg)

    if len(kept) > sample_size:
        # The same draw as sklearn's silhouette_score(sample_size=..., random_state=...).
        chosen = check_random_state(random_state).permutation(len(kept))[:sample_size]
        silhouette = _silhouette(points[chosen], kept[chosen])
        used = sample_size
    else:
        silhouette = _silhouette(points, kept)
        used = len(kept)
    return QualityReport(
        silhouette=silhouette,
        davies_bouldin=float(davies_bouldin_score(points, kept)),
        calinski_harabasz=float(calinski_harabasz_score(points, kept)),
        n_customers=len(labels),
        n_segments=n_segments,
        n_noise=int((~keep).sum()),
        sample_size=used,
        space=space,
    )


@validated(
    segmenter=[Satisfies(_is_segmenter, "a Segmenter, e.g. sk.KMeansSegmenter()")],
    features=_FEATURES,
    n_resamples=[Interval(int, 1, None)],
    sample_fraction=[Interval(float, 0, 1, closed="right")],
    random_state=_SEED,
)
def stability(
    segmenter: Segmenter,
    features: CustomerFeatures | pd.DataFrame,
    *,
    n_resamples: int = 10,
    sample_fraction: float = 0.8,
    random_state: int | None = 0,
) -> StabilityReport:
    """Refit an engine on subsamples and measure how much its segments change.

    The reference is a clone of ``segmenter`` fitted on all customers and applied to
    all of them. Each resample fits another clone on a random ``sample_fraction`` of
    the customers, drawn without replacement, and segments *all* customers with it;
    its adjusted Rand index (ARI) against the reference says how much the segments
    moved. Noise (``NOISE``) counts as a segment of its own.

    Subsamples, not bootstrap samples: a bootstrap sample repeats customers, which
    shifts quantile cut points (RFM) and weighs repeated customers double in k-means,
    so part of the change measured would come from the duplicates rather than from
    seeing other customers.

    An engine with a ``random_state`` parameter gets a different seed in each
    resample, so the ARI also covers sensitivity to initialisation; the reference
    keeps the engine's own seed, or gets one drawn from ``random_state`` when it is
    ``None``, so the result is reproducible either way. The subsamples
    and seeds depend only on ``random_state`` and the number of customers: two
    engines given the same seed are compared on the same subsamples.

    Parameters
    ----------
    segmenter : Segmenter
        The engine with its parameters; it is cloned, never fitted itself.
    features : CustomerFeatures or pandas.DataFrame
        One row per customer.
    n_resamples : int, default=10
        Number of refits.
    sample_fraction : float, default=0.8
        Share of the customers each refit sees, in (0, 1]. With 1 every refit sees
        all customers and only the seed changes.
    random_state : int or None, default=0
        Seed of the subsamples and of the engines' seeds; fix it for reproducible
        results.

    Returns
    -------
    StabilityReport
        ARI of each resample, their mean, std and min; ``print`` it for a reading
        guide.

    Raises
    ------
    ValueError
        If a parameter is out of range, a subsample would hold fewer than 2 customers,
        or the engine cannot segment customers it was not fitted on.

    See Also
    --------
    evaluate : How well separated the segments are.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit.engines._quality import stability
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> report = stability(sk.KMeansSegmenter(n_clusters=3), features, n_resamples=3)
    >>> [round(ari, 2) for ari in report.ari], report.verdict
    ([0.85, 0.84, 0.91], 'fairly stable')
    """
    from sklearn.base import clone
    from sklearn.metrics import adjusted_rand_score

    from segmentkit.engines._base import as_features

    name = type(segmenter).__name__
    if not segmenter.tags.supports_predict:
        msg = (
            f"stability fits {name} on subsamples and segments all customers with it, "
            "but it cannot segment customers it was not fitted on "
            "(tags.supports_predict is False)."
        )
        raise ValueError(msg)
    features = as_features(features)
    n = len(features)
    size = round(sample_fraction * n)
    if size < 2:
        msg = (
            f"sample_fraction={sample_fraction} of {n} customers leaves {size}; each "
            "resample needs at least 2 customers."
        )
        raise ValueError(msg)

    params = segmenter.get_params(deep=False)
    seeded = "random_state" in params
    rng = np.random.default_rng(random_state)
    # Drawn whatever the engine, so that every engine sees the same subsamples.
    reference_seed = int(rng.integers(2**31 - 1))
    model = clone(segmenter)
    if seeded and params["random_state"] is None:
        model.set_params(random_state=reference_seed)
    reference = _labels(model.fit(features), features)
    scores = []
    for _ in range(n_resamples):
        rows = np.sort(rng.choice(n, size=size, replace=False))
        seed = int(rng.integers(2**31 - 1))
        model = clone(segmenter)
        if seeded:
            model.set_params(random_state=seed)
        with warnings.catch_warnings():
            # A resample's small cluster is part of what the index measures; warning
            # about it ten times would bury the reference fit's own warnings.
            warnings.filterwarnings(
                "ignore", "KMeansSegmenter: .*min_cluster_share", SegmentkitWarning
            )
            model.fit(_subset(features, rows))
        scores.append(float(adjusted_rand_score(reference, _labels(model, features))))
    values = np.asarray(scores)
    return StabilityReport(
        ari=tuple(scores),
        mean=float(values.mean()),
        std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        min=float(values.min()),
        n_customers=n,
        sample_fraction=float(sample_fraction),
        engine=name,
    )


def _labels(model: Any, features: CustomerFeatures) -> np.ndarray:
    return model.predict(features).assignments["segment_id"].to_numpy(dtype=np.int64)


def _subset(features: CustomerFeatures, rows: np.ndarray) -> CustomerFeatures:
    # A shallow copy keeps as_of, the feature definitions and the exclusion counts.
    subset = copy.copy(features)
    subset.frame = features.frame.iloc[rows]
    return subset


def _aligned(
    features: CustomerFeatures, segmentation: Segmentation, user: str = "evaluate"
) -> CustomerFeatures:
    """The features of the segmented customers, in assignment order."""
    rows = feature_rows(features.frame, segmentation.assignments, user)
    if len(rows) == len(features) and (rows == np.arange(len(rows))).all():
        return features
    return _subset(features, rows)


def _space(
    features: CustomerFeatures, segmenter: Any, columns: list[str] | None
) -> tuple[np.ndarray, str]:
    from segmentkit.engines._preprocess import Preprocessor

    transform = getattr(segmenter, "transform", None)
    if callable(transform):
        if columns is not None:
            msg = (
                f"evaluate measures in {type(segmenter).__name__}.transform's space, which "
                "has its own features; pass columns=... only without a segmenter (or with "
                "one that has no transform)."
            )
            raise InvalidParameterError(msg)
        matrix = np.asarray(transform(features), dtype=float)
        return matrix, f"the space of {type(segmenter).__name__}.transform"
    frame = features.frame
    if columns is not None:
        columns = list(columns)
        present = [c for c in columns if c in frame.columns]
        not_numeric = [
            c
            for c in present
            if not pd.api.types.is_numeric_dtype(frame[c].dtype)
            or pd.api.types.is_bool_dtype(frame[c].dtype)
        ]
        if not_numeric:
            msg = f"evaluate measures distances on numeric features; {not_numeric} are not."
            raise ValueError(msg)
    pre = Preprocessor.fit(
        frame,
        features=columns,
        log_transform="auto",
        scaler="standard",
        missing="median",
        owner="evaluate",
    )
    if pre.categorical:
        msg = (
            f"evaluate measures distances on numeric features; {list(pre.categorical)} "
            "are not. Pass columns=[...] with numeric features."
        )
        raise ValueError(msg)
    matrix = pre.transform(frame, owner="evaluate")
    names = ", ".join(pre.output_names)
    return matrix, f"the standardised features {names} (log_ = sign(x)·log1p(|x|) first)"


def _silhouette(points: np.ndarray, labels: np.ndarray) -> float:
    from sklearn.metrics import silhouette_score

    n_labels = len(np.unique(labels))
    if not 1 < n_labels < len(labels):
        return float("nan")
    return float(silhouette_score(points, labels))
