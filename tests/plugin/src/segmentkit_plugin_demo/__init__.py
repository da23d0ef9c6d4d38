"""A demo segmentkit plugin: customer segments from a Gaussian mixture.

Installed, the package publishes its engine in the ``segmentkit.engines`` entry-point
group (see its ``pyproject.toml``), so ``segmentkit.get_engine("gmm")`` builds it and
``segmentkit.available_engines()`` lists it, without segmentkit knowing the package.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from sklearn.mixture import GaussianMixture

from segmentkit import CustomerFeatures, Segment
from segmentkit.engines import (
    DEFAULT_CLUSTER_FEATURES,
    NONE,
    InstanceOf,
    Interval,
    OneOf,
    Satisfies,
    Segmenter,
    require_columns,
)
from segmentkit.engines._naming import describe_clusters

__all__ = ["GaussianMixtureSegmenter"]


def _is_feature_list(value: Any) -> bool:
    return (
        isinstance(value, list | tuple)
        and len(value) > 0
        and all(isinstance(name, str) for name in value)
    )


def _is_names(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, int) and isinstance(v, str) for k, v in value.items()
    )


class GaussianMixtureSegmenter(Segmenter):
    """Segments as the components of a Gaussian mixture on log-scaled features.

    Each numeric feature goes through ``sign(x)·log1p(|x|)`` and is standardised; a
    :class:`sklearn.mixture.GaussianMixture` is fitted, and every customer joins the
    component most likely to have produced it. Components get ids by median spend
    (segment 0 spends most) and names after what sets them apart from the base.

    Parameters
    ----------
    n_components : int, default=3
        Number of segments.
    covariance_type : {'full', 'tied', 'diag', 'spherical'}, default='full'
        Shape of each component (see ``GaussianMixture``).
    features : list of str or None, default=None
        Numeric features to model; ``None`` uses segmentkit's default cluster features
        (R, F, M and a few behaviour features), whichever the input has.
    names : dict of int to str, optional
        Your own segment names, by id.
    n_init : int, default=1
        Restarts of EM; the best likelihood is kept.
    max_iter : int, default=100
        EM iterations per restart.
    random_state : int or None, default=None
        Seed of the initialisation; fix it for reproducible segments.

    Attributes
    ----------
    columns_ : list of str
        The features modelled.
    mean_ : numpy.ndarray
        Mean of each log-scaled feature at fit.
    scale_ : numpy.ndarray
        Standard deviation of each log-scaled feature at fit (1 where constant).
    labels_ : numpy.ndarray
        Segment id of each customer seen in ``fit``.
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
    segmentkit.KMeansSegmenter : Hard clusters of the same kind of features.

    Examples
    --------
    >>> import segmentkit as sk
    >>> from segmentkit_plugin_demo import GaussianMixtureSegmenter
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> seg = GaussianMixtureSegmenter(n_components=3, random_state=0).fit_predict(features)
    >>> int(seg.catalog["customers"].sum()), len(seg.segments)
    (800, 3)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "n_components": [Interval(int, 2, None)],
        "covariance_type": [OneOf("full", "tied", "diag", "spherical")],
        "features": [Satisfies(_is_feature_list, "a non-empty list of feature names"), NONE],
        "names": [Satisfies(_is_names, "a dict of int to str"), NONE],
        "n_init": [Interval(int, 1, None)],
        "max_iter": [Interval(int, 1, None)],
        "random_state": [InstanceOf((int, np.integer), "an int"), NONE],
    }
    engine_name: ClassVar[str] = "gmm"
    _state_types: ClassVar[dict[str, Any]] = {
        "_model": GaussianMixture,
        "_remap": np.ndarray,
        "columns_": list,
        "mean_": np.ndarray,
        "scale_": np.ndarray,
    }

    def __init__(
        self,
        *,
        n_components: int = 3,
        covariance_type: str = "full",
        features: Sequence[str] | None = None,
        names: Mapping[int, str] | None = None,
        n_init: int = 1,
        max_iter: int = 100,
        random_state: int | None = None,
    ) -> None:
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.features = features
        self.names = names
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state

    def _check_params_vs_input(self, features: CustomerFeatures) -> None:
        if self.features is not None:
            require_columns(features, list(self.features), type(self).__name__)
        if len(features) < self.n_components:
            msg = f"n_customers={len(features)} should be >= n_components={self.n_components}."
            raise ValueError(msg)

    def _fit(self, features: CustomerFeatures) -> None:
        frame = features.frame
        if self.features is not None:
            self.columns_ = list(self.features)
        else:
            self.columns_ = [c for c in DEFAULT_CLUSTER_FEATURES if c in frame.columns] or [
                c for c in frame.columns if frame[c].dtype.kind in "iuf"
            ]
        if not self.columns_:
            msg = f"{type(self).__name__} found no numeric features; pass features=[...]."
            raise ValueError(msg)
        logged = self._logged(features)
        self.mean_ = logged.mean(axis=0)
        spread = logged.std(axis=0)
        self.scale_ = np.where(spread > 0, spread, 1.0)
        model = GaussianMixture(
            n_components=self.n_components,
            covariance_type=self.covariance_type,
            n_init=self.n_init,
            max_iter=self.max_iter,
            random_state=self.random_state,
        ).fit((logged - self.mean_) / self.scale_)
        raw = model.predict((logged - self.mean_) / self.scale_)
        # Most valuable component first, so that ids mean the same from run to run.
        spend = frame["monetary"].to_numpy(dtype=float) if "monetary" in frame else raw * 0.0
        k = self.n_components
        medians = np.array(
            [np.median(spend[raw == c]) if (raw == c).any() else -np.inf for c in range(k)]
        )
        order = np.lexsort((np.arange(k), -np.bincount(raw, minlength=k), -medians))
        self._remap = np.empty(k, dtype=np.int64)
        self._remap[order] = np.arange(k)
        self._model = model
        self.labels_ = self._remap[raw]
        overrides = dict(self.names or {})
        described = describe_clusters(frame[self.columns_], self.labels_, range(k))
        self.segments_ = [
            Segment(i, overrides.get(i, name), text) for i, (name, text) in enumerate(described)
        ]

    def _assign(self, features: CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        scaled = (self._logged(features) - self.mean_) / self.scale_
        probabilities = self._model.predict_proba(scaled)
        labels = self._remap[probabilities.argmax(axis=1)]
        return labels, {"probability": probabilities.max(axis=1)}

    def _logged(self, features: CustomerFeatures) -> np.ndarray:
        owner = type(self).__name__
        require_columns(features, self.columns_, owner)
        values = features.frame[self.columns_].to_numpy(dtype=float, na_value=np.nan)
        finite = np.isfinite(values).all(axis=0)
        if not finite.all():
            bad = [column for column, ok in zip(self.columns_, finite, strict=True) if not ok]
            msg = f"{owner} cannot place customers with missing or infinite values in {bad}."
            raise ValueError(msg)
        return np.sign(values) * np.log1p(np.abs(values))
