"""What the clustering engines share: the learned preprocessing and the value order."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from segmentkit._common._params import Satisfies
from segmentkit.engines._base import Segmenter, SegmenterTags, as_features
from segmentkit.engines._plan import NonBuyers, Preprocessing
from segmentkit.engines._preprocess import Missing, Preprocessor, Scaler, snap
from segmentkit.engines._rfm import NO_PURCHASES, NON_BUYER_DESCRIPTIONS, RETURNS_ONLY
from segmentkit.errors import check_is_fitted
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import Segment

#: Kind of each customer for clustering: clustered, or set apart as a non-buyer.
BUYER, NO_PURCHASE, RETURNS = -1, 0, 1


def _is_names(value: Any) -> bool:
    return isinstance(value, Mapping) and all(
        isinstance(k, int) and isinstance(v, str) for k, v in value.items()
    )


def _is_log_option(value: Any) -> bool:
    return value in ("auto", True, False) or (
        isinstance(value, list | tuple) and all(isinstance(v, str) for v in value)
    )


FEATURES = Satisfies(
    lambda v: isinstance(v, list | tuple) and len(v) > 0 and all(isinstance(c, str) for c in v),
    "a non-empty list of feature names",
)
NAMES = Satisfies(_is_names, "a dict of int to str")
LOG_TRANSFORM = Satisfies(_is_log_option, "'auto', a bool or a list of feature names")


class ClusteringSegmenter(Segmenter):
    """Base of engines that cluster a preprocessed numeric matrix.

    Subclasses have the parameters ``features``, ``log_transform``, ``scaler``,
    ``missing`` and ``non_buyers``, implement ``_fit_clusters`` and ``_assign_clusters``
    (on the customers that are clustered) and call :meth:`_fit_preprocessor` at the
    start of ``_fit_clusters``.

    With ``non_buyers='segment'``, customers without a purchase (``frequency`` 0 or
    missing; without that feature, no ``recency_days``) are set apart before
    clustering: they have no recency to place them by. They go to ``"Returns only"``
    when their net spend (``monetary``) is below 0, else to ``"No purchases"``, the two
    segments after the clusters.
    """

    # Cluster numbers carry no meaning across refits.
    tags: ClassVar[SegmenterTags] = SegmenterTags(stable_segments=False)
    #: Round the matrix to a 2**-24 grid (see ``snap``): for engines whose result can
    #: turn a last-bit difference between CPUs into other clusters (density clustering).
    _snapped: ClassVar[bool] = False

    features: Any
    log_transform: Any
    scaler: Scaler
    missing: Missing
    non_buyers: str
    #: Score columns of ``_assign_clusters`` (empty for customers set apart).
    _score_names: ClassVar[tuple[str, ...]] = ()

    def _fit(self, features: CustomerFeatures) -> None:
        kinds = self._kinds(features.frame, fitted=False)
        if kinds is None:
            self._fit_clusters(features)
            return
        buyers = kinds == BUYER
        n_apart = int((~buyers).sum())
        if not buyers.any():
            msg = (
                f"{type(self).__name__} found no customer with a purchase to cluster: all "
                f"{len(kinds)} are set apart as non-buyers. Segment customers with orders, "
                "or pass non_buyers='cluster' (on the command line: --param "
                "non_buyers=cluster) with missing='median' to cluster them anyway."
            )
            raise ValueError(msg)
        clustered = features if not n_apart else _subset(features, buyers)
        if n_apart:
            try:
                self._check_params_vs_input(clustered)
            except ValueError as error:
                msg = (
                    f"{error} Only the {len(clustered)} customers with a purchase are "
                    f"clustered; the {n_apart} without one are set apart (non_buyers="
                    "'segment')."
                )
                raise ValueError(msg) from None
        self._fit_clusters(clustered)
        next_id = max(s.id for s in self.segments_) + 1
        for offset, name in enumerate((NO_PURCHASES, RETURNS_ONLY)):
            self.segments_.append(Segment(next_id + offset, name, NON_BUYER_DESCRIPTIONS[name]))

    def _assign(self, features: CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        kinds = self._kinds(features.frame, fitted=True)
        if kinds is None or (kinds == BUYER).all():
            return self._assign_clusters(features)
        n = len(kinds)
        buyers = kinds == BUYER
        labels = np.empty(n, dtype=np.int64)
        scores = {name: np.full(n, np.nan) for name in self._score_names}
        if buyers.any():
            clustered, clustered_scores = self._assign_clusters(_subset(features, buyers))
            labels[buyers] = clustered
            for name, values in clustered_scores.items():
                scores.setdefault(name, np.full(n, np.nan))[buyers] = values
        no_purchase, returns_only = self._non_buyer_ids()
        labels[kinds == NO_PURCHASE] = no_purchase
        labels[kinds == RETURNS] = returns_only
        return labels, scores

    def _non_buyer_ids(self) -> tuple[int, int]:
        by_name = {s.name: s.id for s in self.segments_}
        return by_name[NO_PURCHASES], by_name[RETURNS_ONLY]

    def _sets_apart(self, *, fitted: bool) -> bool:
        if getattr(self, "non_buyers", "segment") != "segment":
            return False
        if not fitted:
            return True
        # A model saved before non-buyers had segments clusters everyone, as it did.
        names = {s.name for s in self.segments_}
        return NO_PURCHASES in names and RETURNS_ONLY in names

    def _non_buyers_plan(self, columns: list[str]) -> NonBuyers | None:
        """Non-buyers set apart in a scoring plan, told apart as ``non_buyer_kinds`` does."""
        if not self._sets_apart(fitted=True):
            return None
        if "frequency" not in columns and "recency_days" not in columns:
            return None
        no_purchase, returns_only = self._non_buyer_ids()
        by_frequency = "frequency" in columns
        return NonBuyers(
            no_purchase,
            returns_only,
            frequency="frequency" if by_frequency else None,
            recency=None if by_frequency else "recency_days",
            monetary="monetary" if "monetary" in columns else None,
        )

    def _kinds(self, frame: pd.DataFrame, *, fitted: bool) -> np.ndarray | None:
        """Each customer's kind (BUYER, NO_PURCHASE, RETURNS), or None to cluster all."""
        if not self._sets_apart(fitted=fitted):
            return None
        return non_buyer_kinds(frame)

    def _fit_clusters(self, features: CustomerFeatures) -> None:  # pragma: no cover
        raise NotImplementedError

    def _assign_clusters(
        self, features: CustomerFeatures
    ) -> tuple[np.ndarray, dict[str, Any]]:  # pragma: no cover
        raise NotImplementedError

    def transform(self, X: CustomerFeatures | pd.DataFrame) -> np.ndarray:
        """The preprocessed matrix the clusters live in.

        Parameters
        ----------
        X : CustomerFeatures or pandas.DataFrame
            Customers with the features used in ``fit``.

        Returns
        -------
        numpy.ndarray
            One row per customer; columns as ``preprocessor_['numeric']`` then one-hots.
        """
        check_is_fitted(self)
        return self._matrix(as_features(X).frame)

    def _matrix(self, frame: pd.DataFrame) -> np.ndarray:
        matrix = self._pre.transform(frame, owner=type(self).__name__)
        return snap(matrix) if self._snapped else matrix

    def _fit_preprocessor(self, features: CustomerFeatures) -> np.ndarray:
        owner = type(self).__name__
        self._pre = Preprocessor.fit(
            features.frame,
            features=self.features,
            log_transform=self.log_transform,
            scaler=self.scaler,
            missing=self.missing,
            owner=owner,
        )
        self.preprocessor_ = self._pre.to_dict()
        return self._matrix(features.frame)


def value_order(frame: pd.DataFrame, labels: np.ndarray, k: int) -> np.ndarray:
    """Cluster labels 0..k-1 ordered most valuable first (noise, label < 0, ignored).

    Median spend decides, then size, then the original label (itself fixed by the data
    and the seed), so that id 0 is the best cluster in every run.
    """
    value_column = next((c for c in ("monetary", "gross_spend") if c in frame), None)
    values = frame[value_column].to_numpy(dtype=float) if value_column else np.zeros(len(labels))
    clustered = labels >= 0
    medians = (
        pd.Series(values[clustered])
        .groupby(labels[clustered])
        .median()
        .reindex(range(k))
        .fillna(-np.inf)
    )
    sizes = np.bincount(labels[clustered], minlength=k)
    return np.lexsort((np.arange(k), -sizes, -medians.to_numpy()))


def non_buyer_kinds(frame: pd.DataFrame) -> np.ndarray | None:
    """BUYER, NO_PURCHASE or RETURNS per customer; None without purchase features.

    A non-buyer has ``frequency`` 0 or missing (without a ``frequency`` feature: no
    ``recency_days``); one whose net spend (``monetary``) is below 0 only returned or
    cancelled.
    """
    # The order count decides when there is one: a buyer missing another value is a
    # missing value (see ``missing``), not a non-buyer.
    if "frequency" in frame:
        frequency = frame["frequency"].to_numpy(dtype=float, na_value=np.nan)
        non_buyer = ~(frequency > 0)
    elif "recency_days" in frame:
        recency = frame["recency_days"].to_numpy(dtype=float, na_value=np.nan)
        non_buyer = ~np.isfinite(recency)
    else:
        return None
    kinds = np.full(len(frame), BUYER, dtype=np.int64)
    kinds[non_buyer] = NO_PURCHASE
    if "monetary" in frame:
        spent = frame["monetary"].to_numpy(dtype=float, na_value=np.nan)
        kinds[non_buyer & (spent < 0)] = RETURNS
    return kinds


def _subset(features: CustomerFeatures, rows: np.ndarray) -> CustomerFeatures:
    """The features of some customers, with the same as_of and catalog."""
    subset = copy.copy(features)
    subset.frame = features.frame[rows]
    return subset


def preprocessing_plan(pre: Preprocessor) -> Preprocessing:
    """The learned transform as plan data, for scoring on other backends."""
    return Preprocessing(
        numeric=tuple(pre.numeric),
        logged=tuple(pre.logged),
        fill=tuple(float(v) for v in pre.fill),
        center=tuple(float(v) for v in pre.center),
        scale=tuple(float(v) for v in pre.scale),
        categorical={name: tuple(levels) for name, levels in pre.categorical.items()},
        missing=pre.missing,
    )
