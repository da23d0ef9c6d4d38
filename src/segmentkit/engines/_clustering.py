"""What the clustering engines share: the learned preprocessing and the value order."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from segmentkit._features import CustomerFeatures
from segmentkit._params import Satisfies
from segmentkit.engines._base import Segmenter, SegmenterTags, as_features
from segmentkit.engines._preprocess import Missing, Preprocessor, Scaler, snap
from segmentkit.errors import check_is_fitted


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

    Subclasses have the parameters ``features``, ``log_transform``, ``scaler`` and
    ``missing``, and call :meth:`_fit_preprocessor` at the start of ``_fit``.
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
