"""How well a purchase propensity ranks and calibrates on a later cut-off: metrics and result.

The metric functions are small and private, built on ``sklearn.metrics``, so that the
backtest of the BTYD models can share them (same names, same tie rules).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

#: Rows of :attr:`PropensityEvaluation.metrics`, in the order they are shown.
MODEL = "model"
FREQUENCY_ONLY = "frequency-only"
RECENCY_ONLY = "recency-only"


def _auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present (it is undefined)."""
    from sklearn.metrics import roc_auc_score

    if np.unique(y).size < 2:
        return math.nan
    return float(roc_auc_score(y, score))


def _brier(y: np.ndarray, probability: np.ndarray) -> float:
    """Mean squared difference between the probability and the 0/1 outcome."""
    from sklearn.metrics import brier_score_loss

    return float(brier_score_loss(y, probability))


def _top_decile_lift(y: np.ndarray, score: np.ndarray, share: float = 0.1) -> float:
    """Buying rate of the top ``share`` by score over the buying rate of everyone.

    Ties at the boundary count in proportion (as if broken at random, in expectation),
    so the lift of a score with many ties (recency in days, order counts) does not
    depend on the order of the rows.
    """
    n = y.size
    base = float(y.mean()) if n else math.nan
    if n == 0 or base == 0:
        return math.nan
    k = share * n
    ordered = np.sort(score)[::-1]
    threshold = ordered[max(math.ceil(k) - 1, 0)]
    above = score > threshold
    tied = score == threshold
    room = k - above.sum()
    top_buyers = y[above].sum() + y[tied].mean() * room
    return float(top_buyers / k / base)


def _calibration_table(y: np.ndarray, probability: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted probability against the observed buying rate, by decile of prediction.

    Customers are ranked by probability (ties by row order, which is the sorted customer
    id order of the features) and cut into ``bins`` groups of equal size.
    """
    n = y.size
    order = np.argsort(-probability, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    group = (rank * bins) // max(n, 1)
    frame = pd.DataFrame({"bin": group + 1, "predicted": probability, "bought": y})
    table = frame.groupby("bin").agg(
        customers=("bought", "size"),
        mean_predicted=("predicted", "mean"),
        observed_rate=("bought", "mean"),
    )
    return table


def _score_metrics(y: np.ndarray, score: np.ndarray, probability: np.ndarray) -> dict[str, float]:
    return {
        "auc": _auc(y, score),
        "brier": _brier(y, probability),
        "top_decile_lift": _top_decile_lift(y, score),
    }


def _as_probability(train_score: np.ndarray, train_y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """A baseline score as a probability: isotonic regression fitted on the training cut-offs.

    The baselines rank customers; their Brier score needs probabilities, learned the
    same honest way as the model's (on earlier cut-offs only).
    """
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    iso.fit(train_score, train_y.astype(float))
    return np.asarray(iso.predict(score), dtype=float)


def json_value(value: Any) -> Any:
    """A numpy scalar as plain Python for JSON; NaN and infinities become None."""
    if isinstance(value, float | np.floating):
        return None if not math.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def json_records(table: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``table`` as JSON-ready dicts (see :func:`json_value`)."""
    return [{str(k): json_value(v) for k, v in row.items()} for row in table.to_dict("records")]


@dataclass(frozen=True)
class PropensityEvaluation:
    """How a purchase propensity did on the latest cut-off whose outcome is known.

    Made by :meth:`PurchasePropensity.fit` (its ``evaluation_``): a model trained on the
    earlier cut-offs scores the customers of the last one, and its predictions are
    compared with who actually bought in the following ``horizon_days``, next to two
    baselines that need no model. Every field is also an attribute.

    Parameters
    ----------
    horizon_days : int
        Length of the outcome window.
    train_cutoffs : tuple of pandas.Timestamp
        Cut-offs the evaluated model learned from.
    test_cutoff : pandas.Timestamp
        Cut-off it was evaluated on.
    n_train, n_test : int
        Training examples (customer × cut-off) and evaluated customers.
    base_rate : float
        Share of the evaluated customers who bought within the horizon.
    metrics : pandas.DataFrame
        One row per scorer (``model``, ``frequency-only``, ``recency-only``), columns
        ``auc``, ``brier`` and ``top_decile_lift``.
    calibration : pandas.DataFrame
        The model's calibration by decile of predicted probability (1 = highest):
        ``customers``, ``mean_predicted``, ``observed_rate``.
    importance : pandas.DataFrame
        Permutation importance on the evaluated customers: the drop in AUC when a
        feature is shuffled (``importance``, its ``std`` over repeats), highest first.
    """

    horizon_days: int
    train_cutoffs: tuple[pd.Timestamp, ...]
    test_cutoff: pd.Timestamp
    n_train: int
    n_test: int
    base_rate: float
    metrics: pd.DataFrame
    calibration: pd.DataFrame
    importance: pd.DataFrame

    def summary(self, top: int = 5) -> str:
        """A readable account of the evaluation, rounded to stable digits.

        Parameters
        ----------
        top : int, default=5
            How many of the most important features to list.

        Returns
        -------
        str
            Several lines of text.
        """
        day = "%Y-%m-%d"
        lines = [
            f"Purchase within {self.horizon_days} days, evaluated at "
            f"{self.test_cutoff.strftime(day)} on {self.n_test} customers "
            f"(trained on {self.n_train} examples from {len(self.train_cutoffs)} earlier "
            f"cut-off{'s' if len(self.train_cutoffs) != 1 else ''}); "
            f"{self.base_rate:.1%} bought.",
            f"{'':<16}{'AUC':>7}{'Brier':>8}{'lift@10%':>10}",
        ]
        for name, row in self.metrics.iterrows():
            lines.append(
                f"{name:<16}{row['auc']:>7.3f}{row['brier']:>8.3f}{row['top_decile_lift']:>10.2f}"
            )
        shown = self.importance.head(top)
        if len(shown):
            names = ", ".join(shown.index)
            lines.append(f"Most important features: {names}.")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """The evaluation as plain JSON-ready data (NaN becomes None).

        Returns
        -------
        dict
            Every attribute; the tables as lists of records, dates as ISO text.
        """

        def records(table: pd.DataFrame, key: str) -> list[dict[str, Any]]:
            return json_records(table.rename_axis(key).reset_index())

        return {
            "horizon_days": self.horizon_days,
            "train_cutoffs": [c.isoformat() for c in self.train_cutoffs],
            "test_cutoff": self.test_cutoff.isoformat(),
            "n_train": self.n_train,
            "n_test": self.n_test,
            "base_rate": json_value(self.base_rate),
            "metrics": records(self.metrics, "scorer"),
            "calibration": records(self.calibration, "bin"),
            "importance": records(self.importance, "feature"),
        }
