"""The interface every segmentation engine implements."""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, overload

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from typing_extensions import Self

from segmentkit._common._params import validate_params
from segmentkit._frame import is_native
from segmentkit.engines._plan import FitInput, ScoringPlan
from segmentkit.errors import check_is_fitted
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import Segment, Segmentation, label_positions

if TYPE_CHECKING:
    # A polars, DuckDB, PySpark or Dask frame: predict answers with the same kind.
    from narwhals.typing import IntoFrame, IntoFrameT

__all__ = ["Segmenter", "SegmenterTags", "as_features"]

_RESERVED_COLUMNS = frozenset({"customer_id", "segment_id", "segment"})


@dataclass(frozen=True)
class SegmenterTags:
    """What an engine can do, as data (read by :mod:`segmentkit.testing` and ``stability``).

    Parameters
    ----------
    supports_predict : bool, default=True
        ``predict`` scores customers not seen in ``fit``.
    deterministic : bool, default=True
        Same input and parameters give the same segments.
    produces_noise : bool, default=False
        Some customers may get the explicit "unassigned" segment (``NOISE``).
    requires_numeric : bool, default=False
        Only numeric features can be used.
    stable_segments : bool, default=True
        A segment means the same customers' profile after a refit (named rules, RFM
        grid cells). Clusters are not: cluster 2 of one fit may be cluster 0 of the
        next, so :func:`~segmentkit.migration` matches them across snapshots.
    """

    supports_predict: bool = True
    deterministic: bool = True
    produces_noise: bool = False
    requires_numeric: bool = False
    stable_segments: bool = True


class Segmenter(BaseEstimator, ABC):
    """Base class of segmentation engines: ``fit``, ``predict``, ``fit_predict``.

    Subclasses follow the scikit-learn contract: ``__init__`` stores its keyword
    arguments unchanged and does nothing else; ``fit`` validates the parameters
    (``_parameter_constraints``), learns state in attributes ending in ``_`` and
    returns ``self``. They implement :meth:`_fit` and :meth:`_assign`, and set
    ``segments_`` (a list of :class:`~segmentkit.Segment`) in ``_fit``.

    See Also
    --------
    RuleSegmenter : Named rules, first match wins.
    RFMSegmenter : Recency, frequency and monetary quantile scores.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    tags: ClassVar[SegmenterTags] = SegmenterTags()
    engine_name: ClassVar[str] = ""
    #: Fitted attributes, beyond the ones every engine sets, that a saved model must
    #: hold, with their types; :func:`segmentkit.load` refuses files that lack them.
    #: List the private state ``_assign`` needs (e.g. ``{"_pre": Preprocessor}``).
    _state_types: ClassVar[dict[str, type | tuple[type, ...]]] = {}
    #: Fitted attributes with no JSON form that :meth:`save` stores pickled, each with
    #: what it holds (e.g. ``{"_model": "the fitted hdbscan.HDBSCAN clusterer"}``).
    #: :func:`segmentkit.load` refuses a pickled section for any other attribute, even
    #: with ``trust_pickle=True``; engines that pickle nothing leave it empty.
    _pickled_state: ClassVar[dict[str, str]] = {}

    def fit(self, X: CustomerFeatures | pd.DataFrame | IntoFrame, y: None = None) -> Self:
        """Learn the segments from customer features.

        Parameters
        ----------
        X : CustomerFeatures, pandas.DataFrame or a polars, DuckDB, PySpark or Dask frame
            One row per customer (a frame is wrapped with
            :meth:`CustomerFeatures.from_frame`). From a frame of another library only
            what the engine learns from reaches memory: the schema for rules, the R/F/M
            columns for RFM, a reproducible sample for clustering (see
            ``docs/native-scoring.md``).
        y : None
            Ignored; present for scikit-learn compatibility.

        Returns
        -------
        Self
            The fitted segmenter.
        """
        validate_params(
            type(self).__name__, self.get_params(deep=False), self._parameter_constraints
        )
        if is_native(X):
            from segmentkit.engines._scoring import fit_native

            fit_native(self, X)
            return self
        features = as_features(X)
        self._check_params_vs_input(features)
        self._fit(features)
        self._check_segments()
        self.feature_names_in_ = np.asarray(features.columns, dtype=object)
        self.n_features_in_ = len(features.columns)
        self.n_segments_ = len(self.segments_)
        self.segment_names_ = {s.id: s.name for s in self.segments_}
        return self

    @overload
    def predict(self, X: CustomerFeatures | pd.DataFrame) -> Segmentation: ...
    @overload
    def predict(self, X: IntoFrameT) -> IntoFrameT: ...

    def predict(self, X: CustomerFeatures | pd.DataFrame | IntoFrame) -> Any:
        """Assign every customer to exactly one segment.

        Parameters
        ----------
        X : CustomerFeatures, pandas.DataFrame or a polars, DuckDB, PySpark or Dask frame
            Customers to segment, with the features used in ``fit`` (and a
            ``customer_id`` column for frames of other libraries).

        Returns
        -------
        Segmentation or native frame
            Assignments and the segment catalog; for a frame of another library, a
            frame of that library with ``customer_id, segment_id, segment`` and the
            engine's scores, computed by that library (lazy when the input is lazy).
        """
        check_is_fitted(self)
        if is_native(X):
            from segmentkit.engines._scoring import predict_native

            return predict_native(self, X)
        features = as_features(X)
        labels, scores = self._assign(features)
        labels = self._checked_labels(labels, scores, len(features))
        assignments = pd.DataFrame(
            {"customer_id": _id_column(features.customer_ids), "segment_id": labels}
        )
        assignments["segment"] = self._segment_column(labels)
        for name, values in scores.items():
            # Text columns built by text_column are kept: through numpy they would
            # become one Python string per customer and back.
            keep = isinstance(values, pd.api.extensions.ExtensionArray)
            assignments[name] = values if keep else np.asarray(values)
        return Segmentation(assignments, self.segments_, features, self._name())

    @overload
    def fit_predict(self, X: CustomerFeatures | pd.DataFrame, y: None = None) -> Segmentation: ...
    @overload
    def fit_predict(self, X: IntoFrameT, y: None = None) -> IntoFrameT: ...

    def fit_predict(self, X: CustomerFeatures | pd.DataFrame | IntoFrame, y: None = None) -> Any:
        """Fit on ``X`` and segment the same customers.

        Parameters
        ----------
        X : CustomerFeatures, pandas.DataFrame or a polars, DuckDB, PySpark or Dask frame
            One row per customer.
        y : None
            Ignored.

        Returns
        -------
        Segmentation or native frame
            Assignments and the segment catalog; for a frame of another library, a
            frame of that library (see :meth:`predict`).
        """
        return self.fit(X).predict(X)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the segmenter, parameters and fitted state, to a JSON file, atomically.

        Read it back with :func:`segmentkit.load`. State that is not plain data (such
        as the fitted ``hdbscan.HDBSCAN`` object) is stored pickled, and loading such a
        file needs ``trust_pickle=True``.

        Parameters
        ----------
        path : str or os.PathLike
            Destination, conventionally ``*.json``; its folder must exist.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        PersistenceError
            If a rule's condition is a Python function, or the state cannot be saved.

        Examples
        --------
        >>> import tempfile
        >>> from pathlib import Path
        >>> import segmentkit as sk
        >>> raw, mapping = sk.datasets.load_sample()
        >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
        >>> model = sk.RFMSegmenter().fit(features)
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = model.save(Path(folder) / "rfm.json")
        ...     again = sk.load(path)
        >>> again.predict(features).assignments.equals(model.predict(features).assignments)
        True
        """
        from segmentkit.engines._model_file import save

        return save(self, path)

    def __sklearn_tags__(self) -> Any:
        # scikit-learn >= 1.6 reads an estimator's capabilities from here.
        tags = super().__sklearn_tags__()
        tags.estimator_type = "clusterer"
        tags.non_deterministic = not self.tags.deterministic
        if callable(getattr(self, "transform", None)):
            from sklearn.utils import TransformerTags

            tags.transformer_tags = TransformerTags()
        return tags

    def _check_params_vs_input(self, features: CustomerFeatures) -> None:
        """Data-dependent parameter checks; override to add some."""

    def _check_segments(self) -> None:
        # Third-party engines implement _fit: check the contract they must meet once,
        # here, with messages that say which rule of the contract broke.
        owner = type(self).__name__
        segments = getattr(self, "segments_", None)
        if not isinstance(segments, list) or not segments:
            msg = f"{owner}._fit must set 'segments_' to a non-empty list of Segment."
            raise TypeError(msg)
        if not all(isinstance(s, Segment) for s in segments):
            msg = f"{owner}.segments_ must hold segmentkit.Segment objects."
            raise TypeError(msg)
        for attribute in ("id", "name"):
            values = [getattr(s, attribute) for s in segments]
            repeated = sorted({v for v in values if values.count(v) > 1}, key=str)
            if repeated:
                msg = (
                    f"{owner}.segments_ repeats segment {attribute}s {repeated}; "
                    "they must be unique."
                )
                raise ValueError(msg)

    def _checked_labels(self, labels: Any, scores: dict[str, Any], n_customers: int) -> np.ndarray:
        owner = type(self).__name__
        reserved = sorted(set(scores) & _RESERVED_COLUMNS)
        if reserved:
            msg = f"{owner}._assign returned score columns {reserved}, which are reserved names."
            raise ValueError(msg)
        values = np.asarray(labels)
        if values.shape != (n_customers,):
            msg = (
                f"{owner}._assign returned labels of shape {values.shape}; expected one per "
                f"customer ({n_customers},)."
            )
            raise ValueError(msg)
        known = np.array([s.id for s in self.segments_])
        unknown = ~np.isin(values, known)
        if unknown.any():
            shown = pd.unique(values[unknown])[:5].tolist()
            msg = (
                f"{owner}._assign returned labels {shown} that are not ids of segments_ "
                f"{known.tolist()}: every customer must be in exactly one known segment."
            )
            raise ValueError(msg)
        return values.astype(np.int64)

    def _segment_column(self, labels: np.ndarray) -> Any:
        # Segment names by label, taken from the few names instead of mapping every row.
        ids = np.fromiter(self.segment_names_, dtype=np.int64, count=len(self.segment_names_))
        position = label_positions(ids, labels)
        if len(labels) == 0 or (position < 0).any():
            return pd.Series(labels).map(self.segment_names_).array
        return text_column(list(self.segment_names_.values()), position)

    def _fit_input(self, columns: list[str]) -> FitInput | None:
        """What ``fit`` on a frame of another library collects into memory.

        Override to fit on polars, DuckDB, PySpark or Dask frames: return a
        :class:`~segmentkit.engines._plan.FitInput` (the schema only, some columns, or a
        reproducible sample); ``fit`` then runs on that pandas frame. The default,
        ``None``, refuses such frames.

        Parameters
        ----------
        columns : list of str
            The frame's columns (``customer_id`` and the features).
        """
        return None

    def _scoring_plan(self, columns: list[str]) -> ScoringPlan | None:
        """How the fitted engine scores, as data that runs on any backend.

        Override to score frames of other libraries where they live: return a
        :class:`~segmentkit.engines._plan.RulePlan`, ``ThresholdPlan``,
        ``CentroidPlan`` or ``BatchPlan`` built from the fitted state (see
        ``docs/custom-engine.md``). Return ``None`` (the default) or raise
        ``NotImplementedError`` when the engine cannot: eager frames are then scored
        on the pandas path, lazy ones get the error.

        Parameters
        ----------
        columns : list of str
            The frame's columns (``customer_id`` and the features).
        """
        return None

    @abstractmethod
    def _fit(self, features: CustomerFeatures) -> None:
        """Learn state from the features and set ``segments_``."""

    @abstractmethod
    def _assign(self, features: CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        """Return one segment id per customer and extra score columns."""

    def _name(self) -> str:
        return self.engine_name or type(self).__name__


def as_features(X: Any) -> CustomerFeatures:
    """Accept the features object or a plain frame with a ``customer_id`` column or index."""
    if isinstance(X, CustomerFeatures):
        return X
    if isinstance(X, pd.DataFrame):
        return CustomerFeatures.from_frame(X)
    if isinstance(X, np.ndarray) and X.ndim == 2:
        # A plain numeric matrix (scikit-learn style): rows are customers numbered from 0.
        frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
        frame.index = pd.Index([str(i) for i in range(len(frame))], name="customer_id")
        return CustomerFeatures.from_frame(frame, as_of="1970-01-01")
    msg = (
        f"Segmenters take CustomerFeatures or a pandas DataFrame, got {type(X).__name__}. "
        "Hint: build features with segmentkit.extract_features(...)."
    )
    raise TypeError(msg)


def text_column(choices: list[str], codes: np.ndarray) -> Any:
    """Text column ``choices[codes]``, in the dtype pandas gives text (``str`` or object).

    Parameters
    ----------
    choices : list of str
        The distinct texts.
    codes : numpy.ndarray
        Integer position in ``choices`` of each row's text.

    Returns
    -------
    pandas.api.extensions.ExtensionArray
        One text per code; a DataFrame column gets the dtype it would get from the
        same strings in an object array.
    """
    # The dtype is inferred once from the few distinct strings; take() then copies
    # them by code, with no Python string per row (Arrow-backed on pandas 3).
    return pd.Series(np.array(choices, dtype=object)).array.take(np.asarray(codes))


def _id_column(ids: pd.Index) -> Any:
    # Text ids already in the dtype pandas infers for text are passed as they are:
    # the round trip through one Python string per customer would give the same column.
    if isinstance(ids.dtype, pd.StringDtype) and ids.dtype == _text_dtype():
        return ids.array
    return ids.to_numpy(dtype=object)


def _text_dtype() -> Any:
    # Depends on the pandas version and its string options, so it is asked each time.
    return pd.Series(np.array(["text"], dtype=object)).dtype


def require_columns(features: CustomerFeatures, names: list[str], owner: str) -> None:
    """Raise a ``ValueError`` naming features an engine needs but the input lacks.

    Parameters
    ----------
    features : CustomerFeatures
        The engine's input.
    names : list of str
        Features the engine needs.
    owner : str
        Engine name for the message.

    Raises
    ------
    ValueError
        If any of ``names`` is missing, with close matches and the available features.
    """
    from segmentkit.contracts._schema import suggest

    missing = [name for name in names if name not in features.frame.columns]
    if missing:
        hints = "".join(suggest(name, features.columns) for name in missing)
        msg = (
            f"{owner} needs the features {missing}, which the input does not have.{hints} "
            f"Available features: {features.columns}."
        )
        raise ValueError(msg)
