"""k-means on log-scaled customer features, with k chosen from the data when not given."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from segmentkit._common._params import NONE, InstanceOf, Interval, OneOf, Satisfies
from segmentkit._common._stack import caller_stacklevel
from segmentkit.engines._clustering import (
    FEATURES,
    LOG_TRANSFORM,
    NAMES,
    ClusteringSegmenter,
    preprocessing_plan,
    value_order,
)
from segmentkit.engines._naming import describe_clusters
from segmentkit.engines._plan import CentroidPlan, FitInput
from segmentkit.engines._preprocess import Missing, Preprocessor, Scaler
from segmentkit.errors import InvalidParameterError, SegmentkitWarning
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import Segment

__all__ = ["KMeansSegmenter"]


def _is_k_range(value: Any) -> bool:
    return (
        isinstance(value, tuple | list)
        and len(value) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        and 2 <= value[0] <= value[1]
    )


class KMeansSegmenter(ClusteringSegmenter):
    """Segments found by k-means on log-scaled, standardised customer features.

    The engine preprocesses the features itself (``log1p`` on skewed ones, scaling,
    one-hot encoding of categorical ones), chooses ``k`` by silhouette when
    ``n_clusters`` is not given, and orders clusters by median spend (cluster 0 spends
    most) so that ids mean the same thing from run to run. Each cluster is named after
    what sets it apart from the base, e.g. ``"Recent · Frequent · High spend"``.

    Parameters
    ----------
    n_clusters : int or None, default=None
        Number of segments; ``None`` picks the k in ``k_range`` with the best
        silhouette score.
    k_range : tuple of (int, int), default=(2, 8)
        Smallest and largest k tried when ``n_clusters`` is None.
    features : list of str or None, default=None
        Features to cluster on; ``None`` uses R, F, M and a few behaviour features
        (see ``segmentkit.engines.DEFAULT_CLUSTER_FEATURES``), whichever exist.
    log_transform : 'auto', bool or list of str, default='auto'
        Features to pass through ``sign(x)·log1p(|x|)``; ``'auto'`` takes the skewed
        ones (counts, spend, day counts).
    scaler : {'standard', 'robust', 'none'}, default='standard'
        Centring and scaling after the log transform.
    missing : {'raise', 'median', 'zero'}, default='raise'
        What to do with missing feature values (e.g. the recency of customers who
        never bought): refuse with a clear error, or impute.
    non_buyers : {'segment', 'cluster'}, default='segment'
        Customers without a purchase have no recency to place them by. ``'segment'``
        sets them apart before clustering, in the segments ``"No purchases"`` and
        ``"Returns only"`` (net spend below 0: they only returned or cancelled);
        ``'cluster'`` clusters them with everyone else (``missing`` then decides
        about their missing values).
    names : dict of int to str, optional
        Your own names for clusters, by id; replaces the generated ones.
    min_cluster_share : float, default=0.01
        Smallest share of the clustered customers a cluster should hold. With
        ``n_clusters=None`` no k whose clusters go below it is chosen (on the silhouette
        sample, then checked on everyone: the next best k is taken if the full fit makes
        a smaller cluster); when no k in ``k_range`` manages, or ``n_clusters`` is
        given, a ``SegmentkitWarning`` names the small clusters. ``0`` allows any size.
    silhouette_sample : int, default=10000
        Customers sampled to fit and score each candidate k (silhouette is quadratic in
        customers); the chosen k is then fitted on everyone.
    minibatch_threshold : int or None, default=None
        From this many customers on, mini-batch k-means is used; ``None`` never uses
        it. Full (Lloyd) k-means is the default at every size: on 1M and 3M customers
        it was measured 2.5-3× faster than mini-batch, with lower inertia
        (``benchmarks/README.md``).
    n_init : int, default=4
        Restarts of k-means; the best inertia is kept.
    fit_sample_size : int, default=200000
        Customers fitted on when ``fit`` is given a polars, DuckDB, PySpark or Dask
        frame: the ones with the smallest md5 of their id, the same in every engine
        (pandas features are always fitted on everyone). ``predict`` then scores every
        customer inside that engine.
    random_state : int or None, default=None
        Seed for centroid initialisation and sampling; fix it for reproducible runs.

    Attributes
    ----------
    cluster_centers_ : numpy.ndarray
        Centroids in the preprocessed space, in cluster id order.
    n_clusters_ : int
        Number of clusters used.
    k_scores_ : pandas.DataFrame or None
        Silhouette, inertia and smallest cluster's share for each k tried, all measured
        on the ``silhouette_sample`` customers the candidates were fitted on (``None``
        when ``n_clusters`` was given).
    small_clusters_ : dict of int to float
        Clusters under ``min_cluster_share``, by id, with their share (empty: none).
    preprocessor_ : dict
        The learned transform (columns, log, fill values, centres, scales, categories).
    labels_ : numpy.ndarray
        Cluster id of each customer seen in ``fit``.
    inertia_ : float
        Sum of squared distances to the closest centroid on the fit data.
    segments_ : list of Segment
        The segments, in id order.
    segment_names_ : dict of int to str
        Segment id to name.
    n_segments_ : int
        Number of segments.
    feature_names_in_ : numpy.ndarray
        Features seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    HDBSCANSegmenter : Density-based clusters with an explicit noise segment.
    RFMSegmenter : Quantile scores and the classic RFM grid.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> seg = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit_predict(features)
    >>> int(seg.catalog["customers"].sum())
    800
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_clusters": [Interval(int, 2, None), NONE],
        "k_range": [Satisfies(_is_k_range, "a pair (low, high) of ints with 2 <= low <= high")],
        "features": [FEATURES, NONE],
        "log_transform": [LOG_TRANSFORM],
        "scaler": [OneOf("standard", "robust", "none")],
        "missing": [OneOf("raise", "median", "zero")],
        "non_buyers": [OneOf("segment", "cluster")],
        "names": [NAMES, NONE],
        "min_cluster_share": [Interval(float, 0, 1, closed="left")],
        "silhouette_sample": [Interval(int, 100, None)],
        "minibatch_threshold": [Interval(int, 1, None), NONE],
        "n_init": [Interval(int, 1, None)],
        "fit_sample_size": [Interval(int, 2, None)],
        "random_state": [InstanceOf((int, np.integer), "an int"), NONE],
    }
    _score_names: ClassVar[tuple[str, ...]] = ("distance",)
    engine_name: ClassVar[str] = "kmeans"
    _state_types: ClassVar[dict[str, Any]] = {"_pre": Preprocessor, "cluster_centers_": np.ndarray}

    def __init__(
        self,
        *,
        n_clusters: int | None = None,
        k_range: tuple[int, int] = (2, 8),
        features: Sequence[str] | None = None,
        log_transform: bool | Sequence[str] | str = "auto",
        scaler: Scaler = "standard",
        missing: Missing = "raise",
        non_buyers: str = "segment",
        names: Mapping[int, str] | None = None,
        min_cluster_share: float = 0.01,
        silhouette_sample: int = 10_000,
        minibatch_threshold: int | None = None,
        n_init: int = 4,
        fit_sample_size: int = 200_000,
        random_state: int | None = None,
    ) -> None:
        self.n_clusters = n_clusters
        self.k_range = k_range
        self.features = features
        self.log_transform = log_transform
        self.scaler = scaler
        self.missing = missing
        self.non_buyers = non_buyers
        self.names = names
        self.min_cluster_share = min_cluster_share
        self.silhouette_sample = silhouette_sample
        self.minibatch_threshold = minibatch_threshold
        self.n_init = n_init
        self.fit_sample_size = fit_sample_size
        self.random_state = random_state

    def _check_params_vs_input(self, features: CustomerFeatures) -> None:
        n = len(features)
        # Rules and RFM have no minimum: the way out for a handful of customers.
        others = "or segment them with rules or RFM (engine 'rules' or 'rfm')"
        if n < 2:
            msg = f"k-means needs at least 2 customers; got {n}. Add customers {others}."
            raise InvalidParameterError(msg)
        if self.n_clusters is not None:
            if n < self.n_clusters:
                msg = (
                    f"n_clusters={self.n_clusters} is more segments than customers: "
                    f"n_customers={n} should be >= n_clusters={self.n_clusters}. Set "
                    f"n_clusters to at most {n} (on the command line --param "
                    f"n_clusters={n}), {others}."
                )
                raise InvalidParameterError(msg)
            return
        low = self.k_range[0]
        # A silhouette needs fewer clusters than points: k must be below the customers
        # scored (all of them, or the silhouette sample).
        scored = min(n, self.silhouette_sample)
        if low >= scored:
            what = f"{n} customers" if scored == n else f"silhouette_sample={scored}"
            msg = (
                f"Choosing k by silhouette (n_clusters=None, k_range={tuple(self.k_range)}) "
                f"needs more than {low} customers to score k={low}; got {what}. Set "
                f"n_clusters to a number of segments from 2 to {n} (on the command line "
                f"--param n_clusters=2), lower k_range, {others}."
            )
            raise InvalidParameterError(msg)

    def _fit_clusters(self, features: CustomerFeatures) -> None:
        matrix = self._fit_preprocessor(features)
        if self.n_clusters is None:
            self.k_scores_ = self._score_k(matrix)
            scored = self.k_scores_.dropna(subset=["silhouette"])
            if scored.empty:
                # Every candidate put all customers in one cluster (or each in its own).
                distinct = _distinct_rows(matrix)
                msg = (
                    f"Choosing k by silhouette failed: the {len(matrix)} customers' features "
                    f"take only {distinct} distinct value(s) after preprocessing, too few "
                    f"for k in {tuple(self.k_range)}. Cluster on features that differ "
                    "between customers (features=[...]), or use rules or RFM."
                )
                raise InvalidParameterError(msg)
            # Best silhouette first among the k without a cluster under the minimum share
            # (on the sample), then the others: a tiny cluster is a last resort.
            ranked = scored.assign(small=scored["smallest_share"] < self.min_cluster_share)
            ranked = ranked.sort_values(
                ["small", "silhouette", "k"], ascending=[True, False, True]
            )
            candidates = [int(k) for k in ranked["k"]]
        else:
            self.k_scores_ = None
            k = self.n_clusters
            distinct = _distinct_rows(matrix, at_least=k)
            if distinct < k:
                fix = (
                    f"Set n_clusters to at most {distinct}, cluster"
                    if distinct >= 2
                    else "Cluster"
                )
                msg = (
                    f"n_clusters={k} is more than the {distinct} distinct customer(s) in the "
                    f"features after preprocessing ({len(matrix)} customers): k-means "
                    f"cannot make {k} segments. {fix} on features that differ between "
                    "customers (features=[...]), or use rules or RFM."
                )
                raise InvalidParameterError(msg)
            candidates = [k]
        for k in candidates:
            model = self._model(k, len(matrix)).fit(matrix)
            shares = np.bincount(model.labels_, minlength=k) / len(matrix)
            if shares.min() >= self.min_cluster_share:
                break
        else:
            # No candidate manages: the best one, its small clusters flagged below.
            k = candidates[0]
            if len(candidates) > 1:
                model = self._model(k, len(matrix)).fit(matrix)
                shares = np.bincount(model.labels_, minlength=k) / len(matrix)
        order = value_order(features.frame, model.labels_, k)
        remap = np.empty(k, dtype=np.int64)
        remap[order] = np.arange(k)
        self.cluster_centers_ = model.cluster_centers_[order]
        self.labels_ = remap[model.labels_]
        self.inertia_ = float(model.inertia_)
        self.n_clusters_ = k
        descriptions = describe_clusters(features.frame[self._pre.numeric], self.labels_, range(k))
        overrides = dict(self.names or {})
        self.segments_ = [
            Segment(i, overrides.get(i, name), text) for i, (name, text) in enumerate(descriptions)
        ]
        self.small_clusters_ = {
            int(remap[i]): float(share)
            for i, share in enumerate(shares)
            if share < self.min_cluster_share
        }
        if self.small_clusters_:
            self._warn_small_clusters(len(matrix))

    def _warn_small_clusters(self, n: int) -> None:
        small = ", ".join(
            f"{self.segments_[i].name!r} (id {i}: {share:.2%}, {round(share * n)} customers)"
            for i, share in sorted(self.small_clusters_.items())
        )
        how = (
            f"n_clusters={self.n_clusters}"
            if self.n_clusters is not None
            else f"every k in k_range={tuple(self.k_range)}"
        )
        warnings.warn(
            f"KMeansSegmenter: {how} makes clusters under min_cluster_share="
            f"{self.min_cluster_share:g} of the {n} clustered customers: {small}. Such a "
            "cluster is usually a handful of outliers, not a segment to market to: use "
            "fewer clusters, log_transform or scaler='robust' to tame outliers, or set "
            "min_cluster_share=0 to accept it.",
            SegmentkitWarning,
            stacklevel=caller_stacklevel(),
        )

    def _fit_input(self, columns: list[str]) -> FitInput:
        # A reproducible sample (smallest md5 of the id) is fitted in memory.
        return FitInput(rows="sample", sample_size=self.fit_sample_size)

    def _scoring_plan(self, columns: list[str]) -> CentroidPlan:
        # Preprocessing and nearest centroid compile to expressions: scored in the engine.
        return CentroidPlan(
            preprocessing_plan(self._pre),
            np.asarray(self.cluster_centers_, dtype=float),
            self._non_buyers_plan(columns),
        )

    def _assign_clusters(self, features: CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        matrix = self._pre.transform(features.frame, owner=type(self).__name__)
        distances = _squared_distances(matrix, self.cluster_centers_)
        labels = distances.argmin(axis=1)
        nearest = np.sqrt(np.maximum(distances[np.arange(len(labels)), labels], 0.0))
        return labels, {"distance": nearest}

    def _model(self, k: int, n: int) -> Any:
        from sklearn.cluster import KMeans, MiniBatchKMeans

        if self.minibatch_threshold is not None and n >= self.minibatch_threshold:
            return MiniBatchKMeans(
                n_clusters=k,
                n_init=self.n_init,
                random_state=self.random_state,
                batch_size=4096,
            )
        return KMeans(n_clusters=k, n_init=self.n_init, random_state=self.random_state)

    def _score_k(self, matrix: np.ndarray) -> pd.DataFrame:
        low, high = self.k_range
        high = min(high, len(matrix) - 1)
        rng = np.random.default_rng(self.random_state)
        sample = (
            rng.choice(len(matrix), self.silhouette_sample, replace=False)
            if len(matrix) > self.silhouette_sample
            else np.arange(len(matrix))
        )
        # Candidates are fitted on the silhouette sample, not on everyone: choosing k
        # then costs the same at 20 thousand or 2 million customers. Only the chosen k
        # is fitted on all customers.
        points = matrix[sample]
        candidates = []
        for k in range(low, max(high, low) + 1):
            if k >= len(points):
                break
            with warnings.catch_warnings():
                # A candidate finding fewer clusters than k (duplicate points) is what
                # the silhouette judges: it scores NaN, not a warning to the user.
                warnings.filterwarnings("ignore", message="Number of distinct clusters")
                candidates.append((k, self._model(k, len(points)).fit(points)))
        scores = mean_silhouettes(points, [model.labels_ for _, model in candidates])
        return pd.DataFrame(
            [
                {
                    "k": k,
                    "silhouette": score,
                    "inertia": float(model.inertia_),
                    "smallest_share": float(
                        np.bincount(model.labels_, minlength=k).min() / len(points)
                    ),
                }
                for (k, model), score in zip(candidates, scores, strict=True)
            ]
        )


def mean_silhouettes(points: np.ndarray, labelings: Sequence[np.ndarray]) -> list[float]:
    """The mean silhouette of each labeling of ``points`` (NaN with one cluster or all
    singletons), as ``sklearn.metrics.silhouette_score`` defines it.

    All labelings share one pass over the pairwise distances, which is where the time
    goes: the distances from a block of points to every point are computed once, then
    summed per cluster of every labeling with one matrix product.

    Examples
    --------
    >>> points = np.array([[0.0], [0.1], [5.0], [5.2]])
    >>> [round(s, 3) for s in mean_silhouettes(points, [np.array([0, 0, 1, 1])])]
    [0.97]
    """
    n = len(points)
    codes = [np.unique(labels, return_inverse=True)[1].reshape(-1) for labels in labelings]
    widths = [int(c.max()) + 1 for c in codes]
    offsets = np.cumsum([0, *widths])
    # One indicator column per cluster of every labeling: distances @ indicators sums
    # each point's distances to every cluster at once.
    indicators = np.zeros((n, int(offsets[-1])))
    for offset, c in zip(offsets[:-1], codes, strict=True):
        indicators[np.arange(n), offset + c] = 1.0
    sizes = indicators.sum(axis=0)
    squared_norms = np.einsum("ij,ij->i", points, points)
    totals = np.zeros(len(codes))
    block = max(1, 2**22 // max(n, 1))
    for start in range(0, n, block):
        rows = slice(start, min(start + block, n))
        squared = squared_norms[rows, None] - 2 * points[rows] @ points.T + squared_norms[None, :]
        np.maximum(squared, 0.0, out=squared)
        # A point's distance to itself is 0, not the rounding error of the formula.
        squared[np.arange(squared.shape[0]), np.arange(rows.start, rows.stop)] = 0.0
        per_cluster = np.sqrt(squared) @ indicators
        for j, c in enumerate(codes):
            sums = per_cluster[:, offsets[j] : offsets[j + 1]]
            own_size = sizes[offsets[j] + c[rows]]
            own = sums[np.arange(len(sums)), c[rows]]
            with np.errstate(divide="ignore", invalid="ignore"):
                intra = own / (own_size - 1)
                means = sums / sizes[offsets[j] : offsets[j + 1]]
                means[np.arange(len(sums)), c[rows]] = np.inf
                inter = means.min(axis=1)
                silhouette = (inter - intra) / np.maximum(intra, inter)
            silhouette[own_size == 1] = 0.0
            totals[j] += np.nan_to_num(silhouette).sum()
    return [float(totals[j] / n) if 1 < widths[j] < n else float("nan") for j in range(len(codes))]


def _distinct_rows(matrix: np.ndarray, at_least: int | None = None) -> int:
    """Distinct rows of ``matrix``; with ``at_least``, stops counting once there are
    that many among the first rows (cheap on large inputs, which nearly always do)."""
    if at_least is not None:
        head = matrix[: max(at_least * 100, 1000)]
        found = len(np.unique(head, axis=0))
        if found >= at_least:
            return found
    return len(np.unique(matrix, axis=0))


def _squared_distances(matrix: np.ndarray, centers: np.ndarray) -> np.ndarray:
    # |x|² - 2x·c + |c|², in chunks-free vector form: k is small, so this is (n, k).
    cross = matrix @ centers.T
    return (
        np.einsum("ij,ij->i", matrix, matrix)[:, None]
        - 2 * cross
        + np.einsum("ij,ij->i", centers, centers)[None, :]
    )
