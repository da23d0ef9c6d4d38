"""Turning customer features into the numeric matrix a clustering algorithm needs.

The transform is learned at ``fit`` and stored as plain numbers (medians, centres,
scales, category lists), so a fitted engine can be saved as JSON and applied to next
month's customers unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from segmentkit.contracts._schema import suggest
from segmentkit.features._catalog import column_definition

__all__ = ["DEFAULT_CLUSTER_FEATURES", "MISSING_HINT", "Preprocessor", "signed_log1p", "snap"]

#: Used when an engine is given no feature list: R, F, M and a few behaviour features,
#: whichever the input has.
DEFAULT_CLUSTER_FEATURES = (
    "recency_days",
    "frequency",
    "monetary",
    "avg_order_value",
    "tenure_days",
    "n_categories",
    "discount_share",
    "return_rate",
)

Missing = Literal["raise", "median", "zero"]

#: What to do about missing feature values, in Python and on the command line.
MISSING_HINT = (
    "Pass missing='median' or missing='zero' to impute (on the command line: --param "
    "missing=median), or choose features every customer has (--param "
    'features=\'["frequency", "monetary"]\').'
)
Scaler = Literal["standard", "robust", "none"]


# numpy computes log1p with different SIMD code on AVX-512 and AVX2 machines, and the
# two differ in the last bit. Density clustering can turn such a difference into other
# clusters (a split of exactly min_cluster_size points on one machine, one fewer on the
# other), so such engines snap their matrix to a grid of 2**-24 (6e-8, far finer than
# any feature needs). A value moves to another grid point only when it lies within an
# ulp of a grid midpoint: about once in 10**8 values.
_GRID = float(2**24)


def snap(values: np.ndarray) -> np.ndarray:
    """``values`` rounded to multiples of 2**-24, the same on every CPU (exact arithmetic)."""
    return np.round(values * _GRID) / _GRID


def signed_log1p(values: np.ndarray) -> np.ndarray:
    """``sign(x) * log1p(|x|)``: compresses tails and keeps net-negative spend defined."""
    return np.sign(values) * np.log1p(np.abs(values))


def is_skewed(name: str) -> bool:
    """Whether the feature has a heavy right tail (its definition says so): one customer
    with 200 orders would otherwise dominate a distance."""
    definition = column_definition(name)
    return definition is not None and definition.skewed


@dataclass
class Preprocessor:
    """Learned column selection, log transform, imputation, scaling and one-hot encoding.

    Every learned value is a plain list or float, so ``asdict`` gives JSON.
    """

    numeric: list[str] = field(default_factory=list)
    logged: list[str] = field(default_factory=list)
    categorical: dict[str, list[str]] = field(default_factory=dict)
    fill: list[float] = field(default_factory=list)
    center: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    missing: str = "raise"

    @classmethod
    def fit(
        cls,
        frame: pd.DataFrame,
        *,
        features: Sequence[str] | None,
        log_transform: bool | Sequence[str] | Literal["auto"],
        scaler: Scaler,
        missing: Missing,
        owner: str,
    ) -> Preprocessor:
        columns = _choose_columns(frame, features, owner)
        numeric = [c for c in columns if _is_numeric(frame[c])]
        categorical = [c for c in columns if c not in numeric]
        if log_transform == "auto":
            logged = [c for c in numeric if is_skewed(c)]
        elif log_transform is True:
            logged = list(numeric)
        elif log_transform is False:
            logged = []
        else:
            logged = [c for c in log_transform if c in numeric]
        pre = cls(numeric=numeric, logged=logged, missing=missing)
        matrix = pre._numeric_matrix(frame)
        pre._check_missing(matrix, frame, owner)
        with np.errstate(all="ignore"):
            fill = np.nanmedian(matrix, axis=0) if missing == "median" else np.zeros(len(numeric))
        pre.fill = [float(v) if np.isfinite(v) else 0.0 for v in np.atleast_1d(fill)]
        # Column by column: a reduction down a column of a row-major matrix is strided
        # and several times slower than over a contiguous copy of it.
        columns_filled = [np.ascontiguousarray(c) for c in pre._impute(matrix).T]
        if scaler == "standard":
            center = [c.mean() for c in columns_filled]
            scale = [c.std() for c in columns_filled]
        elif scaler == "robust":
            quartiles = [np.percentile(c, [25, 50, 75]) for c in columns_filled]
            center = [q[1] for q in quartiles]
            scale = [q[2] - q[0] for q in quartiles]
        else:
            center, scale = [0.0] * len(numeric), [1.0] * len(numeric)
        # A constant column carries no information; scale 1 keeps it at 0 instead of NaN.
        pre.center = [float(v) for v in center]
        pre.scale = [float(v) if v > 0 else 1.0 for v in scale]
        pre.categorical = {
            c: sorted({str(v) for v in frame[c].dropna().unique()}) for c in categorical
        }
        return pre

    @property
    def output_names(self) -> list[str]:
        """Matrix column names: ``log_`` marks logged ones, ``col=value`` one-hots."""
        names = [f"log_{c}" if c in self.logged else c for c in self.numeric]
        for column, levels in self.categorical.items():
            names += [f"{column}={level}" for level in levels]
        return names

    @property
    def input_names(self) -> list[str]:
        return self.numeric + list(self.categorical)

    def transform(self, frame: pd.DataFrame, *, owner: str) -> np.ndarray:
        missing = [c for c in self.input_names if c not in frame.columns]
        if missing:
            hints = "".join(suggest(c, list(frame.columns)) for c in missing)
            msg = (
                f"{owner} was fitted on features {self.input_names}; the input lacks "
                f"{missing}.{hints}"
            )
            raise ValueError(msg)
        matrix = self._numeric_matrix(frame)
        self._check_missing(matrix, frame, owner)
        # In place: the matrix is ours, and at a million customers each copy counts.
        scaled = self._impute(matrix)
        scaled -= np.asarray(self.center)
        scaled /= np.asarray(self.scale)
        blocks = [scaled]
        for column, levels in self.categorical.items():
            # Levels unseen at fit get all-zero indicators rather than an error.
            encoded = pd.Categorical(frame[column].astype("string"), categories=levels)
            one_hot = np.zeros((len(frame), len(levels)))
            codes = np.asarray(encoded.codes)
            known = codes >= 0
            one_hot[np.flatnonzero(known), codes[known]] = 1.0
            blocks.append(one_hot)
        return np.hstack(blocks) if len(blocks) > 1 else scaled

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _numeric_matrix(self, frame: pd.DataFrame) -> np.ndarray:
        if not self.numeric:
            return np.zeros((len(frame), 0))
        matrix = np.empty((len(frame), len(self.numeric)))
        for position, column in enumerate(self.numeric):
            values = frame[column].to_numpy(dtype=float, na_value=np.nan)
            matrix[:, position] = signed_log1p(values) if column in self.logged else values
        return matrix

    def _check_missing(self, matrix: np.ndarray, frame: pd.DataFrame, owner: str) -> None:
        if self.missing != "raise":
            return
        bad = ~np.isfinite(matrix)
        if bad.any():
            counts = {
                self.numeric[j]: int(bad[:, j].sum()) for j in np.flatnonzero(bad.any(axis=0))
            }
            first = frame.index[np.flatnonzero(bad.any(axis=1))[:3]].tolist()
            why = (
                " Customers who never bought have no recency_days."
                if "recency_days" in counts
                else ""
            )
            msg = (
                f"{owner} cannot place customers with missing feature values: {counts} "
                f"(e.g. customers {first}).{why} {MISSING_HINT}"
            )
            raise ValueError(msg)

    def _impute(self, matrix: np.ndarray) -> np.ndarray:
        finite = np.isfinite(matrix)
        if finite.all():
            return matrix
        return np.where(finite, matrix, np.asarray(self.fill)[None, :])


def _is_numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    )


def _choose_columns(frame: pd.DataFrame, features: Sequence[str] | None, owner: str) -> list[str]:
    if features is None:
        chosen = [c for c in DEFAULT_CLUSTER_FEATURES if c in frame.columns]
        if not chosen:
            chosen = [c for c in frame.columns if _is_numeric(frame[c])]
        if not chosen:
            msg = f"{owner} found no numeric features to cluster on; pass features=[...]."
            raise ValueError(msg)
        return chosen
    missing = [c for c in features if c not in frame.columns]
    if missing:
        hints = "".join(suggest(c, list(frame.columns)) for c in missing)
        msg = (
            f"{owner} was asked for features {missing}, which the input does not have."
            f"{hints} Available features: {list(frame.columns)}."
        )
        raise ValueError(msg)
    unusable = [c for c in features if pd.api.types.is_datetime64_any_dtype(frame[c].dtype)]
    if unusable:
        msg = (
            f"{owner} cannot cluster on timestamps {unusable}; use the day counts "
            "(recency_days, tenure_days) instead."
        )
        raise ValueError(msg)
    return list(features)
