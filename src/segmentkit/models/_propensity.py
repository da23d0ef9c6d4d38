"""Machine-learned purchase propensity: who buys in the next ``horizon_days``.

For stores where the BTYD models' assumptions fail (seasonality, wholesalers,
subscriptions), a classifier learns from the store's own history: features at several
past cut-off dates, labels = bought in the following horizon. scikit-learn loads only
when a propensity is fitted or used (``import segmentkit.models`` stays light on it).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._common._params import NONE, Interval, OneOf, validate_params
from segmentkit.contracts._transactions import Transactions
from segmentkit.errors import (
    ContractError,
    ContractFailure,
    Reason,
    SegmentkitWarning,
    check_is_fitted,
)
from segmentkit.features._base import CustomerFeatures, as_utc_timestamp
from segmentkit.features._extract import extract_features
from segmentkit.models._params import ModelParameters
from segmentkit.models._propensity_eval import (
    FREQUENCY_ONLY,
    MODEL,
    RECENCY_ONLY,
    PropensityEvaluation,
    _as_probability,
    _auc,
    _calibration_table,
    _score_metrics,
)

_DAY = pd.Timedelta(days=1)
#: Fewest buyers and fewest non-buyers a training set needs: the calibration splits the
#: examples in three stratified folds, each of which needs both classes to learn from.
_MIN_PER_CLASS = 10
#: Categories kept per categorical feature (the most frequent); the rest share one code.
_MAX_CATEGORIES = 50
_CALIBRATION_FOLDS = 3
#: Evaluated customers the permutation importance scores (a seeded sample above it): the
#: drops in AUC are paired on the same customers, so a sample ranks features as well
#: and costs a fraction (on CDNOW: 23,570 customers, about 30 s less on one core).
_IMPORTANCE_ROWS = 5_000
#: Dates whose age at as_of is already a feature: as ages they would be exact copies,
#: which split the permutation importance between two names.
_AGE_IS = {"first_purchase": "tenure_days", "last_purchase": "recency_days"}


@dataclass(frozen=True)
class _Design:
    """How a features frame becomes the model's numeric matrix (learned at fit)."""

    columns: tuple[str, ...]
    kinds: tuple[str, ...]  # "numeric", "date" (age in days at as_of) or "categorical"
    categories: dict[str, tuple[str, ...]]

    @property
    def categorical_mask(self) -> np.ndarray:
        return np.array([k == "categorical" for k in self.kinds], dtype=bool)


def _kind(values: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype):
        return "numeric"
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return "date"
    return "categorical"


#: Fewest customers with a value for a feature to enter the model.
_MIN_VALUED_CUSTOMERS = 30


def _customers_with_a_value(frames: list[pd.DataFrame], column: Any) -> int:
    valued = [f.index[f[column].notna()] for f in frames]
    return len(valued[0].append(valued[1:]).unique()) if valued else 0


def _learn_design(frames: list[pd.DataFrame], min_valued: int = _MIN_VALUED_CUSTOMERS) -> _Design:
    present = {str(c) for c in frames[0].columns}
    columns = tuple(
        str(c)
        for c in frames[0].columns
        if _AGE_IS.get(str(c), "<none>") not in present
        # A column valued for a handful of customers teaches nothing, and a calibration
        # fold may lack it entirely, which scikit-learn's binning refuses (e.g. a spend
        # trend over a window longer than most histories); features_left_out_ reports it.
        and _customers_with_a_value(frames, c) >= min_valued
    )
    kinds = tuple(_kind(frames[0][c]) for c in columns)
    categories: dict[str, tuple[str, ...]] = {}
    for column, kind in zip(columns, kinds, strict=True):
        if kind != "categorical":
            continue
        values = pd.concat([f[column] for f in frames], ignore_index=True).dropna().astype(str)
        counts = values.value_counts()
        # Most frequent first, ties by name: the same vocabulary on every run.
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        categories[column] = tuple(name for name, _ in ranked[:_MAX_CATEGORIES])
    return _Design(columns, kinds, categories)


def _matrix(design: _Design, features: CustomerFeatures) -> np.ndarray:
    """The features as floats: dates as ages in days at ``as_of``, categories as codes."""
    frame = features.frame
    missing = [c for c in design.columns if c not in frame.columns]
    if missing:
        failure = ContractFailure(
            column=missing[0],
            check="propensity_features",
            reason=Reason.MISSING_COLUMN,
            message=(
                f"The features lack {missing}, which the propensity was trained on. Compute "
                "them with sk.extract_features from the same kind of transactions as in fit."
            ),
        )
        raise ContractError([failure], table="features")
    out = np.empty((len(frame), len(design.columns)), dtype=float)
    for j, (column, kind) in enumerate(zip(design.columns, design.kinds, strict=True)):
        values = frame[column]
        if kind == "date":
            stamps = pd.to_datetime(values, utc=True)
            out[:, j] = ((features.as_of - stamps) / _DAY).to_numpy(dtype=float, na_value=np.nan)
        elif kind == "categorical":
            known = design.categories[column]
            text = values.astype("string")
            codes = pd.Index(known, dtype="string").get_indexer(text).astype(float)
            # Unknown or rare categories share the code after the known ones; missing
            # stays missing (the trees send it down its own branch).
            codes[codes < 0] = len(known)
            codes[text.isna().to_numpy()] = np.nan
            out[:, j] = codes
        else:
            try:
                out[:, j] = pd.to_numeric(values).to_numpy(dtype=float, na_value=np.nan)
            except (TypeError, ValueError):
                failure = ContractFailure(
                    column=column,
                    check="propensity_features",
                    reason=Reason.WRONG_DTYPE,
                    message=f"The feature {column!r} is not numeric, as it was in fit.",
                )
                raise ContractError([failure], table="features") from None
    return out


@dataclass(frozen=True)
class _Snapshot:
    cutoff: pd.Timestamp
    features: CustomerFeatures
    bought: np.ndarray  # per row of features: a purchase line in (cutoff, cutoff + horizon]


def _frequency_score(frame: pd.DataFrame, horizon: int) -> np.ndarray:
    """Past purchase rate: orders per day of tenure, tenure counted as one horizon at least."""
    orders = frame["frequency"].to_numpy(dtype=float, na_value=0.0)
    tenure = frame["tenure_days"].to_numpy(dtype=float, na_value=0.0)
    return orders / np.maximum(np.nan_to_num(tenure), float(horizon))


def _recency_score(frame: pd.DataFrame) -> np.ndarray:
    """Minus the days since the last purchase; never bought ranks below everyone."""
    days = frame["recency_days"].to_numpy(dtype=float, na_value=np.nan)
    return np.where(np.isnan(days), -np.inf, -days)


def _bought_within(
    purchases: pd.DataFrame, index: pd.Index, cutoff: pd.Timestamp, horizon: int
) -> np.ndarray:
    """Which customers of ``index`` have a purchase line in (cutoff, cutoff + horizon days]."""
    stamps = purchases["timestamp"]
    window = (stamps > cutoff) & (stamps <= cutoff + pd.Timedelta(days=horizon))
    buyers = pd.Index(purchases.loc[window, "customer_id"].astype(str).unique())
    return np.asarray(index.isin(buyers), dtype=bool)


def _snapshot(
    transactions: Transactions, purchases: pd.DataFrame, cutoff: pd.Timestamp, horizon: int
) -> _Snapshot:
    features = extract_features(transactions, as_of=cutoff)
    bought = _bought_within(purchases, features.frame.index, cutoff, horizon)
    return _Snapshot(cutoff, features, bought)


def _customer_folds(
    ids: np.ndarray, y: np.ndarray, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Calibration folds that keep each customer's examples together.

    Examples are stacked cut-off by cut-off, so scikit-learn's default (unshuffled)
    folds would be cut-offs: the trees would learn on later cut-offs and the
    calibration on an earlier one, whose customers are younger than any the trees saw,
    which miscalibrates badly (on CDNOW the Brier score rose from 0.089 to 0.105).
    Folds by customer also keep one customer's other cut-offs out of the data that
    calibrates their score. Customers are dealt to folds in order of how often they
    bought (so each fold gets buyers), ties broken by a seeded shuffle.
    """
    codes, first = pd.factorize(pd.Index(ids))
    buys = np.bincount(codes, weights=y, minlength=len(first))
    shuffle = np.random.default_rng(seed).permutation(len(first))
    order = np.lexsort((shuffle, -buys))
    fold_of_customer = np.empty(len(first), dtype=np.int64)
    fold_of_customer[order] = np.arange(len(first)) % _CALIBRATION_FOLDS
    fold = fold_of_customer[codes]
    rows = np.arange(len(ids))
    return [(rows[fold != k], rows[fold == k]) for k in range(_CALIBRATION_FOLDS)]


def _permutation_importance(
    model: Any, x: np.ndarray, y: np.ndarray, reference: float, repeats: int, seed: int
) -> np.ndarray:
    """Drop in AUC when each feature's values are shuffled among customers, per repeat.

    On at most ``_IMPORTANCE_ROWS`` customers (a seeded sample of the evaluated ones).

    One prediction per feature on all its shuffled copies at once (the per-call cost of
    a calibrated ensemble dominates on small stores); shuffles come from one seeded
    generator, feature by feature, so results repeat exactly.
    """
    rng = np.random.default_rng(seed)
    if len(y) > _IMPORTANCE_ROWS:
        rows = np.sort(rng.choice(len(y), _IMPORTANCE_ROWS, replace=False))
        x, y = x[rows], y[rows]
        if np.unique(y).size < 2:
            return np.full((x.shape[1], repeats), np.nan)
        reference = _auc(y, model.predict_proba(x)[:, 1])
    n, width = x.shape
    drops = np.empty((width, repeats))
    for j in range(width):
        stacked = np.tile(x, (repeats, 1))
        for r in range(repeats):
            stacked[r * n : (r + 1) * n, j] = x[rng.permutation(n), j]
        shuffled = model.predict_proba(stacked)[:, 1].reshape(repeats, n)
        drops[j] = [reference - _auc(y, p) for p in shuffled]
    return drops


def _contract_error(check: str, reason: Reason, message: str) -> ContractError:
    failure = ContractFailure(column="<table>", check=check, reason=reason, message=message)
    return ContractError([failure], table="transactions")


class PurchasePropensity(ModelParameters):
    """Probability that each customer buys within the next ``horizon_days``, learned from history.

    For stores where the BTYD models (:class:`BetaGeoModel`...) do not fit: seasonal
    trade, wholesalers, subscriptions. ``fit`` builds examples at ``n_snapshots`` past
    cut-off dates, ``step_days`` apart, the last at ``as_of − horizon_days``: the
    features of every customer known at the cut-off (:func:`extract_features` on the
    lines up to and including it) and whether they bought (a purchase line, not a
    return) in the ``horizon_days`` after it. A gradient-boosted tree classifier
    (scikit-learn's ``HistGradientBoostingClassifier``) learns from them, with its
    probabilities calibrated (``CalibratedClassifierCV``, ``calibration`` method, 3
    folds). ``fit`` also evaluates the method honestly: a model trained on the earlier
    cut-offs only predicts the last one, whose outcome is known by ``as_of``
    (:attr:`evaluation_`); the model kept for prediction then learns from every cut-off.

    Parameters
    ----------
    horizon_days : int, default=90
        Days after the observation end in which a purchase counts.
    n_snapshots : int, default=4
        Cut-off dates to learn from (at least 2: the last is held out to evaluate).
    step_days : int, optional
        Days between cut-offs; ``horizon_days`` by default, so the outcome windows do
        not overlap. Cut-offs whose outcome window reaches past the evaluation cut-off
        are left out of the evaluated model's training (no leakage).
    calibration : {'sigmoid', 'isotonic'}, default='sigmoid'
        How the trees' scores become probabilities. Sigmoid (Platt) fits two numbers,
        stays smooth and keeps the ranking; isotonic is more flexible but needs many
        examples (thousands per fold) and turns scores into steps with ties.
    max_iter : int, default=100
        Boosting iterations (trees).
    learning_rate : float, default=0.1
        Shrinkage of each tree.
    n_repeats : int, default=5
        Shuffles per feature for the permutation importance (on at most 5,000 of the
        evaluated customers, a seeded sample).
    random_state : int, default=0
        Seed of the trees and of the permutation importance: results repeat exactly.

    Attributes
    ----------
    as_of_ : pandas.Timestamp
        End of the history used (UTC).
    cutoffs_ : list of pandas.Timestamp
        The cut-off dates, oldest first.
    snapshots_ : pandas.DataFrame
        Per cut-off: ``customers`` (examples), ``buyers``, ``buyer_rate``,
        ``later_customers`` (first seen after the cut-off, by ``as_of``: not examples
        at that cut-off, counted here) and ``role`` in the evaluation.
    feature_names_ : list of str
        Feature columns the model reads (dates enter as ages in days at the features'
        ``as_of``, categories as codes).
    features_left_out_ : list of str
        Feature columns with a value for fewer than 30 customers over all cut-offs (e.g.
        days between orders when nobody ordered twice, a 365-day spend trend on a year of
        history); left out, with a warning when any customer had a value (a column empty
        for everyone is only listed here).
    evaluation_ : PropensityEvaluation
        AUC, Brier score, top-decile lift and calibration on the held-out cut-off, next
        to the frequency-only and recency-only baselines, and the most important features.
    n_examples_ : int
        Examples (customer × cut-off) the kept model learned from.

    Notes
    -----
    The fitted model is not saved: a tree ensemble has no JSON form, and loading a
    pickled one runs code from the file. Refit from the transactions instead (seconds).

    Examples
    --------
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> model = sk.PurchasePropensity(horizon_days=30, n_snapshots=3).fit(tx, as_of="2018-01-01")
    >>> [c.strftime("%Y-%m-%d") for c in model.cutoffs_]
    ['2017-10-03', '2017-11-02', '2017-12-02']
    >>> model.evaluation_.metrics["auc"].round(2)
    scorer
    model             0.82
    frequency-only    0.81
    recency-only      0.73
    Name: auc, dtype: float64
    >>> p = model.predict_proba(sk.extract_features(tx, as_of="2018-01-01"))
    >>> p.name, round(float(p.loc["1566"]), 1)
    ('purchase_probability_30d', 1.0)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "horizon_days": [Interval(int, 1, None)],
        "n_snapshots": [Interval(int, 2, None)],
        "step_days": [Interval(int, 1, None), NONE],
        "calibration": [OneOf("sigmoid", "isotonic")],
        "max_iter": [Interval(int, 1, None)],
        "learning_rate": [Interval(float, 0, None, closed="neither")],
        "n_repeats": [Interval(int, 1, None)],
        "random_state": [Interval(int, 0, 2**32 - 1)],
    }

    def __init__(
        self,
        horizon_days: int = 90,
        *,
        n_snapshots: int = 4,
        step_days: int | None = None,
        calibration: str = "sigmoid",
        max_iter: int = 100,
        learning_rate: float = 0.1,
        n_repeats: int = 5,
        random_state: int = 0,
    ) -> None:
        self.horizon_days = horizon_days
        self.n_snapshots = n_snapshots
        self.step_days = step_days
        self.calibration = calibration
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.n_repeats = n_repeats
        self.random_state = random_state

    @property
    def column_name(self) -> str:
        """Name of the predicted column: ``purchase_probability_<horizon_days>d``."""
        return f"purchase_probability_{self.horizon_days}d"

    # -- fitting ----------------------------------------------------------------------
    def _cutoffs(self, as_of: pd.Timestamp) -> list[pd.Timestamp]:
        step = self.step_days or self.horizon_days
        last = as_of - pd.Timedelta(days=self.horizon_days)
        return [last - pd.Timedelta(days=step * k) for k in range(self.n_snapshots - 1, -1, -1)]

    def _check_history(self, first: pd.Timestamp, as_of: pd.Timestamp) -> None:
        step = self.step_days or self.horizon_days
        earliest = self._cutoffs(as_of)[0]
        if earliest >= first:
            return
        needed = self.horizon_days + step * (self.n_snapshots - 1)
        covered = (as_of - first) / _DAY
        room = (as_of - pd.Timedelta(days=self.horizon_days) - first) / _DAY
        fitting = math.floor(room / step) + 1 if room >= 0 else 0
        day = "%Y-%m-%d"
        message = (
            f"PurchasePropensity(horizon_days={self.horizon_days}, n_snapshots="
            f"{self.n_snapshots}, step_days={step}) needs {needed} days of history before "
            f"as_of {as_of.strftime(day)} (horizon_days + (n_snapshots - 1) × step_days: "
            f"the earliest cut-off is {earliest.strftime(day)}), but the transactions start "
            f"{first.strftime(day)}, {covered:.0f} days before as_of. "
        )
        if fitting >= 2:
            message += f"Pass n_snapshots={fitting} or less, or a smaller step_days."
        else:
            message += (
                "Not even two cut-offs fit (one to learn from, one to evaluate): pass a "
                "smaller horizon_days or step_days, or a later as_of."
            )
        raise _contract_error("propensity_history", Reason.OUT_OF_RANGE, message)

    def _classifier(self, design: _Design, folds: list[tuple[np.ndarray, np.ndarray]]) -> Any:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.ensemble import HistGradientBoostingClassifier

        trees = HistGradientBoostingClassifier(
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            max_leaf_nodes=15,
            min_samples_leaf=20,
            l2_regularization=1.0,
            categorical_features=design.categorical_mask if design.categories else None,
            # A fixed number of trees: early stopping would draw a random validation
            # split and make the model depend on the size of the data in a hidden way.
            early_stopping=False,
            random_state=self.random_state,
        )
        return CalibratedClassifierCV(trees, method=self.calibration, cv=folds)

    def _train(self, snapshots: list[_Snapshot], purpose: str) -> tuple[Any, _Design]:
        design = _learn_design([s.features.frame for s in snapshots])
        x = np.vstack([_matrix(design, s.features) for s in snapshots])
        y = np.concatenate([s.bought for s in snapshots]).astype(int)
        buyers = int(y.sum())
        others = int(y.size - buyers)
        if min(buyers, others) < _MIN_PER_CLASS:
            day = "%Y-%m-%d"
            dates = ", ".join(s.cutoff.strftime(day) for s in snapshots)
            message = (
                f"The {purpose} has {buyers} example(s) of a customer who bought within "
                f"{self.horizon_days} days of a cut-off and {others} who did not "
                f"(cut-offs {dates}); it needs at least {_MIN_PER_CLASS} of each to learn "
                "who buys. "
                + (
                    "Nobody bought: choose a longer horizon_days."
                    if buyers < _MIN_PER_CLASS
                    else "Almost everybody bought: choose a shorter horizon_days."
                )
            )
            raise _contract_error("propensity_labels", Reason.EMPTY, message)
        ids = np.concatenate([s.features.frame.index.to_numpy(dtype=str) for s in snapshots])
        folds = _customer_folds(ids, y, self.random_state)
        if any(np.unique(y[part]).size < 2 for fold in folds for part in fold):
            message = (
                f"The {purpose} has {buyers} buying example(s) from only "
                f"{np.unique(ids[y == 1]).size} customer(s): the calibration needs buyers and "
                f"non-buyers among the customers of each of its {_CALIBRATION_FOLDS} folds. "
                "Choose a longer horizon_days or use more customers."
            )
            raise _contract_error("propensity_labels", Reason.EMPTY, message)
        model = self._classifier(design, folds)
        try:
            model.fit(x, y)
        except ValueError as error:
            sparse = [
                c
                for j, c in enumerate(design.columns)
                if np.unique(ids[~np.isnan(x[:, j])]).size < 30
            ]
            message = (
                f"The {purpose} could not be learned ({error}). Features with values for "
                f"fewer than 30 customers, which a calibration fold may lack entirely: "
                f"{sparse}. Use more customers or history."
            )
            raise _contract_error("propensity_features", Reason.EMPTY, message) from None
        return model, design

    def fit(self, transactions: Transactions, y: None = None, *, as_of: Any = None) -> Self:
        """Learn who buys within ``horizon_days`` from the store's history up to ``as_of``.

        Parameters
        ----------
        transactions : Transactions
            Validated order lines (pandas).
        y : None
            Ignored; present for scikit-learn compatibility.
        as_of : str or datetime-like, optional
            End of the history used (inclusive); the last transaction by default. Lines
            after it are not read. It may lie at most one day after the last line.

        Returns
        -------
        Self
            The fitted model.

        Raises
        ------
        ContractError
            If the history is too short for the cut-offs, or the outcomes hold too few
            buyers or non-buyers to learn from.
        """
        validate_params("PurchasePropensity", self.get_params(), self._parameter_constraints)
        if not isinstance(transactions, Transactions) or hasattr(type(transactions), "native"):
            msg = (
                "PurchasePropensity.fit takes sk.Transactions validated from a pandas frame; "
                f"got {type(transactions).__name__}. Convert other frames to pandas first."
            )
            raise TypeError(msg)
        lines = transactions.data
        if lines.empty:
            raise _contract_error(
                "propensity_history", Reason.EMPTY, "The transactions hold no line to learn from."
            )
        first, last = lines["timestamp"].min(), lines["timestamp"].max()
        stamp = last if as_of is None else as_utc_timestamp(as_of)
        latest = last.normalize() + _DAY
        day = "%Y-%m-%d %H:%M"
        if stamp < first or stamp > latest:
            message = (
                f"as_of {stamp.strftime(day)} is outside the transactions "
                f"({first.strftime(day)} to {last.strftime(day)} UTC); purchases after the "
                f"data end would look like customers who did not buy. Pass an as_of between "
                f"them (at most {latest.strftime(day)})."
            )
            raise _contract_error("propensity_as_of", Reason.OUT_OF_RANGE, message)
        self._check_history(first, stamp)
        known = lines[lines["timestamp"] <= stamp]
        purchases = known.loc[~known["is_return"].to_numpy(), ["customer_id", "timestamp"]]
        n_known = int(known["customer_id"].astype(str).nunique())
        cutoffs = self._cutoffs(stamp)
        snapshots = [_snapshot(transactions, purchases, c, self.horizon_days) for c in cutoffs]

        test = snapshots[-1]
        earlier = [
            s
            for s in snapshots[:-1]
            if s.cutoff + pd.Timedelta(days=self.horizon_days) <= test.cutoff
        ]
        if not earlier:
            step = self.step_days or self.horizon_days
            message = (
                f"No cut-off's outcome window ends by the evaluation cut-off "
                f"{test.cutoff.strftime('%Y-%m-%d')}: with step_days={step} shorter than "
                f"horizon_days={self.horizon_days}, pass n_snapshots >= "
                f"{math.ceil(self.horizon_days / step) + 1}, so that the evaluated model "
                "learns only from outcomes known before it."
            )
            raise _contract_error("propensity_history", Reason.OUT_OF_RANGE, message)
        evaluated, eval_design = self._train(earlier, "training set of the evaluation")
        self.evaluation_ = self._evaluate(evaluated, eval_design, earlier, test)
        self._model, self._design = self._train(snapshots, "training set")

        roles = {s.cutoff: "train" for s in earlier} | {test.cutoff: "test"}
        self.as_of_ = stamp
        self.cutoffs_ = [s.cutoff for s in snapshots]
        self.snapshots_ = pd.DataFrame(
            {
                "customers": [len(s.features) for s in snapshots],
                "buyers": [int(s.bought.sum()) for s in snapshots],
                "buyer_rate": [float(s.bought.mean()) for s in snapshots],
                "later_customers": [n_known - len(s.features) for s in snapshots],
                "role": [roles.get(s.cutoff, "unused") for s in snapshots],
            },
            index=pd.DatetimeIndex(self.cutoffs_, name="cutoff"),
        )
        self.feature_names_ = list(self._design.columns)
        self.features_left_out_ = [
            str(c)
            for c in snapshots[0].features.frame.columns
            if c not in self._design.columns and str(c) not in _AGE_IS
        ]
        # A column empty for everyone (a 365-day trend on a year of history) has nothing
        # to lose by leaving out, and warning on every default fit would train users to
        # ignore the warning; one with a few values is a judgement call they should see.
        frames = [s.features.frame for s in snapshots]
        sparse = [c for c in self.features_left_out_ if _customers_with_a_value(frames, c) > 0]
        if sparse:
            warnings.warn(
                f"PurchasePropensity left out {sparse}: fewer than "
                f"{_MIN_VALUED_CUSTOMERS} customers have a value for them at the cut-offs.",
                SegmentkitWarning,
                stacklevel=2,
            )
        self.n_examples_ = int(self.snapshots_["customers"].sum())
        return self

    def _evaluate(
        self, model: Any, design: _Design, earlier: list[_Snapshot], test: _Snapshot
    ) -> PropensityEvaluation:
        x = _matrix(design, test.features)
        y = test.bought.astype(int)
        probability = model.predict_proba(x)[:, 1]
        train_y = np.concatenate([s.bought for s in earlier])
        frame = test.features.frame
        scores = {
            FREQUENCY_ONLY: (
                np.concatenate(
                    [_frequency_score(s.features.frame, self.horizon_days) for s in earlier]
                ),
                _frequency_score(frame, self.horizon_days),
            ),
            RECENCY_ONLY: (
                np.concatenate([_recency_score(s.features.frame) for s in earlier]),
                _recency_score(frame),
            ),
        }
        rows = {MODEL: _score_metrics(y, probability, probability)}
        for name, (train_score, score) in scores.items():
            finite_train = np.where(np.isfinite(train_score), train_score, -1e18)
            finite = np.where(np.isfinite(score), score, -1e18)
            as_probability = _as_probability(finite_train, train_y, finite)
            rows[name] = _score_metrics(y, finite, as_probability)
        metrics = pd.DataFrame.from_dict(rows, orient="index")
        metrics.index.name = "scorer"

        if np.unique(y).size < 2:
            warnings.warn(
                f"PurchasePropensity: at the evaluation cut-off {test.cutoff:%Y-%m-%d} "
                f"{'every' if y.all() else 'no'} customer bought within {self.horizon_days} "
                "days, so AUC, lift and feature importance are undefined (NaN).",
                SegmentkitWarning,
                stacklevel=3,
            )
            importance = pd.DataFrame(
                {"importance": np.nan, "std": np.nan},
                index=pd.Index(design.columns, name="feature"),
            )
        else:
            drops = _permutation_importance(
                model, x, y, _auc(y, probability), self.n_repeats, self.random_state
            )
            importance = pd.DataFrame(
                {"importance": drops.mean(axis=1), "std": drops.std(axis=1)},
                index=pd.Index(design.columns, name="feature"),
            )
            importance = importance.sort_values("importance", ascending=False, kind="stable")
        return PropensityEvaluation(
            horizon_days=self.horizon_days,
            train_cutoffs=tuple(s.cutoff for s in earlier),
            test_cutoff=test.cutoff,
            n_train=int(sum(len(s.features) for s in earlier)),
            n_test=int(y.size),
            base_rate=float(y.mean()),
            metrics=metrics,
            calibration=_calibration_table(y, probability),
            importance=importance,
        )

    # -- prediction -------------------------------------------------------------------
    def predict_proba(self, features: CustomerFeatures) -> pd.Series:
        """Probability that each customer buys within ``horizon_days`` after ``features.as_of``.

        Parameters
        ----------
        features : CustomerFeatures
            From :func:`extract_features` on the same kind of transactions as in
            ``fit`` (usually at the fit's ``as_of``).

        Returns
        -------
        pandas.Series
            Named ``purchase_probability_<horizon_days>d``, indexed by customer id.
        """
        check_is_fitted(self)
        if not isinstance(features, CustomerFeatures):
            msg = (
                "PurchasePropensity.predict_proba takes CustomerFeatures (from "
                f"sk.extract_features); got {type(features).__name__}."
            )
            raise TypeError(msg)
        x = _matrix(self._design, features)
        values = self._model.predict_proba(x)[:, 1] if len(x) else np.empty(0)
        index = features.frame.index
        index = index.rename("customer_id") if index.name is None else index
        return pd.Series(values, index=index, name=self.column_name)

    def transform(self, features: CustomerFeatures) -> pd.DataFrame:
        """The features plus the column ``purchase_probability_<horizon_days>d``.

        Parameters
        ----------
        features : CustomerFeatures
            As for :meth:`predict_proba`.

        Returns
        -------
        pandas.DataFrame
            One row per customer, indexed by customer id.
        """
        probability = self.predict_proba(features)
        frame = features.frame.copy()
        frame.index = probability.index
        frame[probability.name] = probability.to_numpy()
        return frame
