"""HDBSCAN density clusters on log-scaled customer features, with noise as its own segment."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from segmentkit._common._params import NONE, InstanceOf, Interval, OneOf
from segmentkit._common._stack import caller_stacklevel
from segmentkit.engines._base import SegmenterTags
from segmentkit.engines._clustering import (
    FEATURES,
    LOG_TRANSFORM,
    NAMES,
    ClusteringSegmenter,
    value_order,
)
from segmentkit.engines._hdbscan_placement import place
from segmentkit.engines._naming import describe_clusters
from segmentkit.engines._plan import BatchPlan, FitInput
from segmentkit.engines._preprocess import Missing, Preprocessor, Scaler
from segmentkit.errors import InvalidParameterError, SegmentkitWarning
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import NOISE, Segment

__all__ = ["HDBSCANSegmenter"]

_NOISE_NAME = "Unclustered"


class HDBSCANSegmenter(ClusteringSegmenter):
    """Segments found as dense groups of customers by HDBSCAN, noise kept apart.

    The engine preprocesses the features like :class:`KMeansSegmenter` (``log1p`` on
    skewed ones, scaling, one-hot encoding of categorical ones) and runs
    ``hdbscan.HDBSCAN``. The number of clusters comes from the data; customers in no
    dense group form the explicit segment ``NOISE`` (id -1, named ``"Unclustered"``),
    listed first and present even when empty, so every customer is in exactly one
    segment. Clusters get ids 0..k-1 by median spend (cluster 0 spends most) and names
    after what sets them apart from the base, e.g. ``"Recent · Frequent · High spend"``.

    Large inputs are fitted on a random sample of ``max_fit_size`` customers (HDBSCAN
    is super-linear in customers); the others are placed as
    ``hdbscan.approximate_predict`` places them (same labels and strengths, computed
    for all customers at once), as are new customers in :meth:`predict`.

    Parameters
    ----------
    min_cluster_size : int, default=50
        Fewest customers a group needs to be a cluster rather than noise.
    min_samples : int or None, default=None
        Neighbours that make a customer a core point; larger values call more customers
        noise. ``None`` uses ``min_cluster_size``.
    cluster_selection_method : {'eom', 'leaf'}, default='eom'
        ``'eom'`` keeps the most persistent clusters (fewer, larger); ``'leaf'`` the
        leaves of the cluster tree (more, smaller, more homogeneous).
    cluster_selection_epsilon : float, default=0.0
        Clusters closer than this distance (in the preprocessed space) are merged.
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
        Your own names for segments, by id (``-1`` renames the noise segment);
        replaces the generated ones.
    noise : {'keep', 'attach'}, default='keep'
        ``'keep'`` leaves customers in no dense group in ``"Unclustered"`` (its
        description says what share of net spend they hold). ``'attach'`` puts each
        with the cluster of its nearest clustered customer, in that cluster's
        ``"<name> (outlying)"`` segment (ids ``n_clusters_`` to ``2 * n_clusters_ - 1``,
        membership 0): every customer is then reachable by a cluster's campaign while
        the core members stay apart.
    max_fit_size : int, default=50000
        Most customers HDBSCAN is fitted on; beyond this a random sample (drawn with
        ``random_state``) is fitted and the rest are placed by approximate prediction;
        segment descriptions then give medians and counts of the sample.
    random_state : int or None, default=None
        Seed for drawing the fit sample; fix it for reproducible runs on inputs larger
        than ``max_fit_size`` (smaller inputs are always clustered the same way).
        On a polars, DuckDB, PySpark or Dask frame the sample is the ``max_fit_size``
        customers with the smallest md5 of their id instead, the same in every engine.
        Approximate prediction has no expression form: ``predict`` on such frames runs
        it batch by batch in the engine's Python workers (Spark ``mapInPandas``, Dask
        ``map_partitions``, DuckDB ``map``, polars ``map_batches``).
    n_jobs : int or None, default=None
        Threads that place customers outside the fit sample (the nearest-neighbour
        search runs outside the GIL): ``None`` or 1 places them in the calling thread,
        ``-1`` uses every core. Results do not depend on it.

    Attributes
    ----------
    labels_ : numpy.ndarray
        Segment id of each customer of the fit sample (``-1`` for noise), in input
        order; aligned with ``fit_customer_ids_``.
    probabilities_ : numpy.ndarray
        Membership strength in [0, 1] of each customer of the fit sample (0 for noise).
    fit_customer_ids_ : numpy.ndarray
        Customer ids of the fit sample, in input order.
    fit_sample_size_ : int
        Number of customers HDBSCAN was fitted on.
    n_clusters_ : int
        Number of clusters found, noise not counted (may be 0).
    cluster_persistence_ : numpy.ndarray
        Stability of each cluster in [0, 1], in cluster id order.
    preprocessor_ : dict
        The learned transform (columns, log, fill values, centres, scales, categories).
    segments_ : list of Segment
        The segments: ``Unclustered`` (id -1) first, then clusters in id order.
    segment_names_ : dict of int to str
        Segment id to name.
    n_segments_ : int
        Number of segments, noise included.
    feature_names_in_ : numpy.ndarray
        Features seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    KMeansSegmenter : A fixed or silhouette-chosen number of clusters, no noise.
    RFMSegmenter : Quantile scores and the classic RFM grid.

    Notes
    -----
    ``predict`` returns, for customers of the fit sample whose features are unchanged,
    the labels and membership strengths of the fit itself, and the result of
    ``hdbscan.approximate_predict`` for everyone else (computed by segmentkit's own
    vectorised placement, which gives the same labels and strengths). Approximate
    prediction does not always give a training point its own fit label: customers with
    identical features (common, e.g. one-off buyers of the same amount on the same day)
    tie in distance and may be placed with a neighbour in another cluster. Looking the
    fit sample up keeps ``fit_predict(X)`` equal to ``fit(X).labels_`` on the sample.

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> model = sk.HDBSCANSegmenter(
    ...     features=["recency_days", "frequency", "monetary"], min_cluster_size=20, min_samples=5
    ... )
    >>> seg = model.fit_predict(features)
    >>> model.segments_[0].name, model.n_clusters_
    ('Unclustered', 2)
    >>> int(seg.catalog["customers"].sum())
    800

    The same on every machine, but not necessarily robust: a persistence near 0 (and a
    low ``sk.stability(model, features).mean``) says the clusters are fragile.

    >>> model.cluster_persistence_.round(2)
    array([0.08, 0.  ])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "min_cluster_size": [Interval(int, 2, None)],
        "min_samples": [Interval(int, 1, None), NONE],
        "cluster_selection_method": [OneOf("eom", "leaf")],
        "cluster_selection_epsilon": [Interval(float, 0, None)],
        "features": [FEATURES, NONE],
        "log_transform": [LOG_TRANSFORM],
        "scaler": [OneOf("standard", "robust", "none")],
        "missing": [OneOf("raise", "median", "zero")],
        "non_buyers": [OneOf("segment", "cluster")],
        "names": [NAMES, NONE],
        "noise": [OneOf("keep", "attach")],
        "max_fit_size": [Interval(int, 2, None)],
        "random_state": [InstanceOf((int, np.integer), "an int"), NONE],
        "n_jobs": [InstanceOf((int, np.integer), "an int"), NONE],
    }
    tags: ClassVar[SegmenterTags] = SegmenterTags(produces_noise=True, stable_segments=False)
    _score_names: ClassVar[tuple[str, ...]] = ("membership",)
    engine_name: ClassVar[str] = "hdbscan"
    _snapped: ClassVar[bool] = True
    _state_types: ClassVar[dict[str, Any]] = {
        "_model": object,
        "_pre": Preprocessor,
        "_remap": np.ndarray,
        "_fit_index": pd.Index,
        "_fit_hashes": np.ndarray,
    }
    _pickled_state: ClassVar[dict[str, str]] = {
        "_model": "the fitted hdbscan.HDBSCAN clusterer, for approximate_predict"
    }

    def __init__(
        self,
        *,
        min_cluster_size: int = 50,
        min_samples: int | None = None,
        cluster_selection_method: str = "eom",
        cluster_selection_epsilon: float = 0.0,
        features: Sequence[str] | None = None,
        log_transform: bool | Sequence[str] | str = "auto",
        scaler: Scaler = "standard",
        missing: Missing = "raise",
        non_buyers: str = "segment",
        names: Mapping[int, str] | None = None,
        noise: str = "keep",
        max_fit_size: int = 50_000,
        random_state: int | None = None,
        n_jobs: int | None = None,
    ) -> None:
        self.min_cluster_size = min_cluster_size
        self.min_samples = min_samples
        self.cluster_selection_method = cluster_selection_method
        self.cluster_selection_epsilon = cluster_selection_epsilon
        self.features = features
        self.log_transform = log_transform
        self.scaler = scaler
        self.missing = missing
        self.non_buyers = non_buyers
        self.names = names
        self.noise = noise
        self.max_fit_size = max_fit_size
        self.random_state = random_state
        self.n_jobs = n_jobs

    def _check_params_vs_input(self, features: CustomerFeatures) -> None:
        n_customers = len(features)
        if n_customers < self.min_cluster_size:
            msg = (
                f"HDBSCANSegmenter needs at least min_cluster_size={self.min_cluster_size} "
                f"customers to find a cluster; got n_customers={n_customers}. Pass a smaller "
                f"min_cluster_size (on the command line: --param min_cluster_size="
                f"{max(2, n_customers // 2)}), or use rules or RFM on so few customers."
            )
            raise InvalidParameterError(msg)
        if self.max_fit_size < self.min_cluster_size:
            msg = (
                f"max_fit_size={self.max_fit_size} should be >= "
                f"min_cluster_size={self.min_cluster_size}."
            )
            raise ValueError(msg)
        fit_size = min(n_customers, self.max_fit_size)
        if self.min_samples is not None and self.min_samples > fit_size:
            msg = f"min_samples={self.min_samples} should be <= the fit sample size {fit_size}."
            raise ValueError(msg)

    def _fit_clusters(self, features: CustomerFeatures) -> None:
        import hdbscan

        owner = type(self).__name__
        frame = features.frame
        matrix = self._fit_preprocessor(features)
        n = len(matrix)
        if n > self.max_fit_size:
            rng = np.random.default_rng(self.random_state)
            sample = np.sort(rng.choice(n, self.max_fit_size, replace=False))
        else:
            sample = np.arange(n)
        model = hdbscan.HDBSCAN(
            min_cluster_size=self.min_cluster_size,
            min_samples=self.min_samples,
            cluster_selection_method=self.cluster_selection_method,
            cluster_selection_epsilon=float(self.cluster_selection_epsilon),
            prediction_data=True,
            # The library's default (4) starts a process pool: seconds of start-up on
            # every first fit, for core distances that are a small part of the work.
            core_dist_n_jobs=1,
        )
        with _stable_edge_order():
            model.fit(matrix[sample])
        raw_labels = np.asarray(model.labels_, dtype=np.int64)
        k = int(raw_labels.max()) + 1 if raw_labels.size else 0
        order = value_order(frame.iloc[sample], raw_labels, k)
        # remap[raw + 1] is the segment id of hdbscan label `raw` (noise stays NOISE).
        self._remap = np.empty(k + 1, dtype=np.int64)
        self._remap[0] = NOISE
        self._remap[order + 1] = np.arange(k)
        self._model = model
        self.n_clusters_ = k
        self.fit_sample_size_ = len(sample)
        self.labels_ = self._remap[raw_labels + 1]
        self.probabilities_ = np.where(
            self.labels_ == NOISE, 0.0, np.clip(np.asarray(model.probabilities_), 0.0, 1.0)
        )
        self.cluster_persistence_ = np.asarray(model.cluster_persistence_, dtype=float)[order]
        self.fit_customer_ids_ = features.customer_ids[sample].to_numpy(dtype=object)
        # The fit sample, looked up in predict (see Notes): id -> row, plus a hash of
        # each preprocessed row so that changed features are predicted afresh.
        self._fit_index = pd.Index(self.fit_customer_ids_)
        self._fit_hashes = _row_hashes(matrix[sample])

        if k == 0:
            warnings.warn(
                f"{owner} found no dense group among {len(sample)} customers: all are "
                f"'{_NOISE_NAME}'. Try a smaller min_cluster_size (now "
                f"{self.min_cluster_size}) or min_samples, or fewer features.",
                SegmentkitWarning,
                stacklevel=caller_stacklevel(),
            )
        # Described on the fit sample: placing everyone else here would run the slow
        # approximate prediction twice in fit_predict. Counts then say "sampled".
        of = "" if len(sample) == n else f" of the {len(sample)} sampled"
        descriptions = describe_clusters(
            frame[self._pre.numeric].iloc[sample], self.labels_, range(k)
        )
        overrides = dict(self.names or {})
        self.segments_ = [
            Segment(NOISE, overrides.get(NOISE, _NOISE_NAME), self._noise_text(frame, sample, of))
        ]
        for i, (name, text) in enumerate(descriptions):
            self.segments_.append(Segment(i, overrides.get(i, name), _counted_in(text, of)))
        if self.noise == "attach":
            self._describe_outlying(frame, matrix, sample, descriptions, overrides, of)

    def _describe_outlying(
        self,
        frame: pd.DataFrame,
        matrix: np.ndarray,
        sample: np.ndarray,
        clusters: list[tuple[str, str]],
        overrides: dict[int, str],
        of: str,
    ) -> None:
        """Name each cluster's outlying customers by their own medians, not the cluster's.

        Customers in no dense group can differ from the cluster nearest to them as much
        as from any other (the big spenders nearest a low-spend cluster): a name
        borrowed from the cluster would say the opposite of their profile.
        """
        k = self.n_clusters_
        attached = self.labels_.copy()
        noise = attached == NOISE
        if k and noise.any():
            attached[noise] = k + self._nearest_cluster(matrix[sample][noise])
        own = describe_clusters(frame[self._pre.numeric].iloc[sample], attached, range(k, 2 * k))
        for i, ((cluster, _), (words, text)) in enumerate(zip(clusters, own, strict=True)):
            nearest = overrides.get(i, cluster)
            count = int((attached == k + i).sum())
            if count:
                name = f"{words} (outlying)"
                own_text = _counted_in(text, of).rstrip(".")
                text = f"{own_text}; in no dense group, nearest to '{nearest}' (noise='attach')."
            else:
                name = f"{nearest} (outlying)"
                text = (
                    f"Customers in no dense group whose nearest clustered customer is in "
                    f"'{nearest}' (noise='attach'); none in the fit sample."
                )
            self.segments_.append(Segment(k + i, overrides.get(k + i, name), text))

    def _noise_text(self, frame: pd.DataFrame, sample: np.ndarray, of: str) -> str:
        """What the noise segment holds: how many customers, and what share of spend."""
        noise = self.labels_ == NOISE
        text = (
            f"{int(noise.sum()):,}{of} customers fit no dense group: too far from every "
            "cluster to belong to one (HDBSCAN noise)"
        )
        if "monetary" in frame:
            spend = frame["monetary"].to_numpy(dtype=float, na_value=np.nan)[sample]
            total = np.nansum(spend)
            if total > 0:
                text += f"; they hold {np.nansum(spend[noise]) / total:.1%} of net spend"
        if self.noise == "attach" and self.n_clusters_:
            return (
                f"None with noise='attach': {text}, and each is in the '(outlying)' segment "
                "of its nearest cluster."
            )
        return text + ". noise='attach' puts each with its nearest cluster instead."

    def _fit_input(self, columns: list[str]) -> FitInput:
        # The fit sample is drawn in the engine (smallest md5 of the id, max_fit_size of
        # them), so it is the same in every engine; random_state does not apply.
        return FitInput(rows="sample", sample_size=self.max_fit_size)

    def _scoring_plan(self, columns: list[str]) -> BatchPlan:
        # No expression form (approximate prediction walks the fitted tree in Python),
        # but each customer's result depends on that customer alone: the pandas
        # scoring runs batch by batch where the data lives.
        def score(batch: pd.DataFrame) -> pd.DataFrame:
            if not len(batch):
                return pd.DataFrame(
                    {
                        "customer_id": batch["customer_id"],
                        "segment_id": pd.Series(dtype="int64"),
                        "membership": pd.Series(dtype="float64"),
                    }
                )
            labels, scores = self._assign(CustomerFeatures.from_frame(batch.copy()))
            return pd.DataFrame(
                {
                    "customer_id": batch["customer_id"].to_numpy(),
                    "segment_id": np.asarray(labels, dtype=np.int64),
                    "membership": np.asarray(scores["membership"], dtype=float),
                }
            )

        return BatchPlan(["customer_id", *self._pre.input_names], score, {"membership": "float64"})

    def _assign_clusters(self, features: CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        matrix = self._matrix(features.frame)
        labels = np.full(len(matrix), NOISE, dtype=np.int64)
        membership = np.zeros(len(matrix))
        position = self._fit_index.get_indexer(features.customer_ids)
        seen = position >= 0
        seen[seen] = _row_hashes(matrix[seen]) == self._fit_hashes[position[seen]]
        labels[seen] = self.labels_[position[seen]]
        membership[seen] = self.probabilities_[position[seen]]
        if (~seen).any():
            labels[~seen], membership[~seen] = self._approximate(matrix[~seen])
        noise = labels == NOISE
        if self.noise == "attach" and self.n_clusters_ and noise.any():
            labels[noise] = self.n_clusters_ + self._nearest_cluster(matrix[noise])
        return labels, {"membership": membership}

    def _nearest_cluster(self, points: np.ndarray) -> np.ndarray:
        """The cluster of each point's nearest clustered customer of the fit sample."""
        from sklearn.neighbors import NearestNeighbors

        fitted = np.asarray(self._model._raw_data)
        clustered = self.labels_ >= 0
        index = NearestNeighbors(n_neighbors=1).fit(fitted[clustered])
        nearest = index.kneighbors(points, return_distance=False)[:, 0]
        return self.labels_[clustered][nearest]

    def _approximate(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Segment ids and membership strengths of ``hdbscan.approximate_predict``."""
        if self.n_clusters_ == 0 or not len(matrix):
            return np.full(len(matrix), NOISE, dtype=np.int64), np.zeros(len(matrix))
        raw, strengths = place(self._model, matrix, n_jobs=self.n_jobs)
        labels = self._remap[raw + 1]
        strengths = np.where(labels == NOISE, 0.0, np.clip(strengths, 0.0, 1.0))
        return labels, strengths


class _StableArgsort(ModuleType):
    """numpy, except that ``argsort`` keeps equal keys in their order (a stable sort)."""

    def __init__(self, numpy: ModuleType) -> None:
        super().__init__(numpy.__name__)
        self.__dict__.update(numpy.__dict__)
        self.argsort = self._argsort

    @staticmethod
    def _argsort(a: Any, axis: int = -1, kind: str | None = None, order: Any = None) -> Any:
        return np.argsort(a, axis=axis, kind="stable", order=order)


_ORDER_LOCK = threading.Lock()
_ORDER_USERS = [0]


@contextmanager
def _stable_edge_order() -> Iterator[None]:
    """Make ``hdbscan`` sort its spanning-tree edges stably while the block runs.

    ``hdbscan`` orders the edges of the minimum spanning tree by weight with numpy's
    default ``argsort``, which is not stable and takes other code on AVX-512 machines
    than on AVX2 ones. Customers with equal features give many edges of equal weight,
    and their order decides which points fall out of a cluster first: the same input
    gave 4 clusters (579 noise) on one machine and 2 (385 noise) on another. A stable
    sort keeps ties in the order the spanning tree found them, which is the same
    everywhere. Only the module that does this sort sees the change; the counter keeps
    it in place while any thread still fits.
    """
    import hdbscan.hdbscan_ as fitting

    with _ORDER_LOCK:
        if _ORDER_USERS[0] == 0:
            fitting.np = _StableArgsort(np)
        _ORDER_USERS[0] += 1
    try:
        yield
    finally:
        with _ORDER_LOCK:
            _ORDER_USERS[0] -= 1
            if _ORDER_USERS[0] == 0:
                fitting.np = np


def _row_hashes(matrix: np.ndarray) -> np.ndarray:
    """One 64-bit hash per row; the same preprocessed values give the same hash."""
    if not len(matrix):
        return np.zeros(0, dtype=np.uint64)
    return pd.util.hash_pandas_object(pd.DataFrame(matrix), index=False).to_numpy()


def _counted_in(description: str, of: str) -> str:
    """A description whose leading count says it is of the fit sample (``of``)."""
    return description.replace(" customers;", f"{of} customers;", 1) if of else description
