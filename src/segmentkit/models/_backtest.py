"""Backtesting: fit on a calibration period, compare with what customers did next.

A purchase model earns its place when, fitted on the data up to ``calibration_end``, it
predicts the holdout ``(calibration_end, holdout_end]`` better than simple rules. The
backtest fits a clone of the model on the calibration period only, then compares per
customer (purchases, spend, "bought at all?"), in aggregate (the BTYD tracking curve)
and by decile of the prediction, next to two baselines fitted on the same calibration
data: frequency-only and recency-only.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from segmentkit._common._files import PathLike
from segmentkit._common._hooks import writer
from segmentkit.contracts._transactions import Transactions
from segmentkit.errors import ContractError, ContractFailure, InvalidParameterError, Reason
from segmentkit.features._base import as_utc_timestamp
from segmentkit.features._extract import CustomerFeatures, extract_features
from segmentkit.models._gammagamma import GammaGammaModel
from segmentkit.models._propensity_eval import (
    _auc,
    _brier,
    _top_decile_lift,
    json_records,
)
from segmentkit.models._purchases import PurchaseModel
from segmentkit.models._summary import TIME_UNITS, Summary, _summary

__all__ = ["Backtest", "backtest"]

_FORMAT = 1
_DAY = pd.Timedelta(days=1)
_UNIT_WORDS = {"D": "days", "W": "weeks", "M": "months"}
_NAMES = {"BetaGeoModel": "BG/NBD", "ParetoNBDModel": "Pareto/NBD"}
_METRIC_COLUMNS = (
    "customers",
    "predicted_purchases",
    "actual_purchases",
    "mae_purchases",
    "rmse_purchases",
    "bias_purchases",
    "mae_spend",
    "rmse_spend",
    "bias_spend",
    "auc",
    "brier",
    "top_decile_lift",
)
#: The metrics of the summary, and their short names.
_SHOWN = {
    "mae_purchases": "MAE",
    "rmse_purchases": "RMSE",
    "bias_purchases": "bias",
    "auc": "AUC",
    "brier": "Brier",
    "top_decile_lift": "lift@10%",
}
FREQUENCY_ONLY = "frequency-only"
RECENCY_ONLY = "recency-only"
_BASELINES = {
    FREQUENCY_ONLY: (
        "the customer's calibration repeat-purchase rate x / T (the pooled rate of the "
        "cohort when T = 0) times the horizon; P(buy) = 1 - exp(-that); spend = purchases "
        "times the customer's mean calibration spend per purchase day"
    ),
    RECENCY_ONLY: (
        "P(buy) = the chance that a pause as long as the customer's current one ends within "
        "the horizon, from the Kaplan-Meier curve of the calibration's gaps between purchase "
        "days (the open gap at calibration_end censored); purchases = the cohort's pooled "
        "rate times the horizon, scaled by P(buy) / mean P(buy); spend as frequency-only"
    ),
}


# --- the result ----------------------------------------------------------------------


@dataclass(frozen=True)
class Backtest:
    """What :func:`backtest` found: predictions against the holdout, side by side.

    Built by :func:`backtest` (not by hand); each parameter is an attribute.

    Parameters
    ----------
    customers : pandas.DataFrame
        One row per customer of the calibration cohort (a purchase by
        ``calibration_end``), indexed by ``customer_id``: ``frequency``, ``recency``,
        ``T`` (calibration summary, in ``time_unit``), ``actual_purchases`` (distinct
        purchase days in the holdout), ``actual_spend`` (net spend in the holdout),
        ``bought`` and, per predictor ``<key>`` (see :attr:`keys`),
        ``<key>_purchases``, ``<key>_probability``, ``<key>_spend``.
    tracking : pandas.DataFrame
        The cohort's cumulative repeat purchases at the end of each time unit, counted
        back and forth from ``calibration_end`` (``period`` 0): ``period``, ``end``,
        ``phase`` (``'calibration'``/``'holdout'``), ``actual`` and one ``expected``
        column per purchase model (``expected_<key>``).
    deciles : pandas.DataFrame
        Per predictor with purchase predictions and decile of predicted purchases (1 =
        lowest): ``predictor, decile, customers, predicted, actual, probability,
        bought_share`` (means over the decile's customers).
    metrics : pandas.DataFrame
        One row per predictor (the model first, then ``compare``, then the baselines):
        ``customers``, total ``predicted_purchases`` / ``actual_purchases``, MAE, RMSE
        and bias (mean of predicted − actual) of purchases and spend, and the view
        "bought in the holdout?": ``auc``, ``brier``, ``top_decile_lift``.
    calibration_end, holdout_end : pandas.Timestamp
        The split (UTC).
    time_unit : str
        Unit of ``horizon``, of the tracking periods and of the BTYD columns.
    horizon : float
        Length of the holdout in ``time_unit``.
    model : str
        Name of the predictor under test (the first row of ``metrics``).
    counts : dict of str to int
        ``cohort`` (customers with a purchase by calibration_end: the per-customer
        rows), ``bought_in_holdout`` (of the cohort), ``no_purchase_by_calibration_end``
        (customers in the calibration features without a purchase line: only returns;
        left out), ``new_in_holdout`` (first purchase in the holdout; left out of the
        per-customer metrics and of the tracking curve, whose cohort is fixed at
        calibration_end), ``holdout_purchases_of_new`` (their purchase days).
    predictors : dict of str to str
        How each predictor predicts, in words.
    keys : dict of str to str
        Column prefix of each predictor in :attr:`customers`.
    models : dict of str to dict
        The fitted models (their ``to_dict()``), by predictor name.
    """

    customers: pd.DataFrame
    tracking: pd.DataFrame
    deciles: pd.DataFrame
    metrics: pd.DataFrame
    calibration_end: pd.Timestamp
    holdout_end: pd.Timestamp
    time_unit: str
    horizon: float
    model: str
    counts: dict[str, int]
    predictors: dict[str, str]
    keys: dict[str, str]
    models: dict[str, dict[str, Any]] = field(default_factory=dict)

    def summary(self) -> str:
        """The backtest in a few lines: the split, the counts and the metrics table.

        Returns
        -------
        str
            Plain text; the metrics rounded to 3 decimals.
        """
        unit = _UNIT_WORDS[self.time_unit]
        c = self.counts
        lines = [
            f"Backtest of {self.model}: calibration to {_day(self.calibration_end)}, "
            f"holdout to {_day(self.holdout_end)} ({self.horizon:.4g} {unit})",
            f"cohort: {c['cohort']:,} customers with a purchase by calibration end, "
            f"{c['bought_in_holdout']:,} bought in the holdout",
        ]
        if c["no_purchase_by_calibration_end"]:
            lines.append(
                f"left out: {c['no_purchase_by_calibration_end']:,} customers without a "
                "purchase by calibration end (returns only)"
            )
        if c["new_in_holdout"]:
            lines.append(
                f"left out: {c['new_in_holdout']:,} customers whose first purchase is in the "
                f"holdout ({c['holdout_purchases_of_new']:,} purchase days)"
            )
        shown = self.metrics[list(_SHOWN)].rename(columns=_SHOWN)
        lines.append(shown.round(3).to_string(na_rep="-"))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.summary()

    def to_dict(self) -> dict[str, Any]:
        """The backtest as plain JSON-ready data (no per-customer rows).

        Returns
        -------
        dict
            ``backtest`` (format), the split, ``counts``, ``predictors``,
            ``metrics`` / ``deciles`` / ``tracking`` as lists of records (dates as ISO
            8601 text, NaN as None) and the fitted ``models``.
        """
        tracking = self.tracking.assign(end=[t.isoformat() for t in self.tracking["end"]])
        return {
            "backtest": _FORMAT,
            "model": self.model,
            "calibration_end": self.calibration_end.isoformat(),
            "holdout_end": self.holdout_end.isoformat(),
            "time_unit": self.time_unit,
            "horizon": self.horizon,
            "counts": dict(self.counts),
            "predictors": dict(self.predictors),
            "keys": dict(self.keys),
            "metrics": json_records(self.metrics.reset_index()),
            "deciles": json_records(self.deciles),
            "tracking": json_records(tracking),
            "models": {k: dict(v) for k, v in self.models.items()},
        }

    def report(self, path: PathLike, *, title: str | None = None) -> Path:
        """Write the backtest as a self-contained HTML page (atomically).

        The page holds the metrics table with the baselines side by side, the
        tracking chart and the decile calibration as inline SVG; aggregates only, no
        customer id. To add the same section to a segmentation's report, pass
        ``backtest=`` to :meth:`Segmentation.report`.

        Parameters
        ----------
        path : str or os.PathLike
            Destination, usually ``*.html``; its folder must exist.
        title : str, optional
            Heading; defaults to ``'Backtest of <model>'``.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        return writer("backtest")(self, path, title=title)


# --- the function --------------------------------------------------------------------


def backtest(
    model: Any,
    tx: Transactions,
    *,
    calibration_end: Any,
    holdout_end: Any,
    spend_model: GammaGammaModel | None = None,
    compare: Sequence[Any] = (),
) -> Backtest:
    """Fit a model on a calibration period and measure it on the holdout that follows.

    The model (a clone: the object passed in is left as it is) is fitted on the
    features at ``calibration_end``, and its predictions for the holdout
    ``(calibration_end, holdout_end]`` are compared with what each customer of the
    calibration cohort did, next to two baselines fitted on the same calibration data:

    - **frequency-only**: the customer's calibration repeat-purchase rate ``x / T``
      (repeat purchase days per time unit; the cohort's pooled rate when ``T = 0``)
      times the horizon; P(a purchase) = ``1 − exp(−rate × horizon)``.
    - **recency-only**: P(a purchase) = the chance that a pause as long as the
      customer's current one (``T − t_x``) ends within the horizon, read from the
      Kaplan–Meier curve of the calibration's gaps between purchase days (the open gap
      at ``calibration_end`` right-censored); purchases = the cohort's pooled rate ×
      horizon × P / mean P.

    Both baselines' spend is their purchases × the customer's mean calibration spend
    per purchase day; so is the model's without ``spend_model``.

    Parameters
    ----------
    model : BetaGeoModel or ParetoNBDModel or propensity model
        The predictor under test. A purchase model predicts purchases, P(a purchase)
        and (with ``spend_model`` or the mean spend) spend. Any object with
        ``fit(tx, as_of=...)``, ``predict_proba(features) -> Series`` and
        ``horizon_days`` (e.g. ``sk.PurchasePropensity``) is fitted on the
        calibration lines and enters the probability metrics only; its
        ``horizon_days`` must equal the holdout's length in days.
    tx : Transactions
        Validated order lines (pandas), covering the calibration and the holdout.
    calibration_end : str or datetime-like
        End of the calibration period (inclusive), as ``as_of`` of
        :func:`extract_features`.
    holdout_end : str or datetime-like
        End of the holdout (inclusive); after ``calibration_end``, at most the last
        transaction's time (a holdout past the data would count unseen purchases as
        none).
    spend_model : GammaGammaModel, optional
        Spend model for the model's spend prediction (fitted as a clone on the same
        features).
    compare : sequence, default=()
        More predictors (purchase or propensity models) for the same table.

    Returns
    -------
    Backtest
        Per-customer predictions, tracking curve, deciles and metrics.

    Raises
    ------
    segmentkit.errors.InvalidParameterError
        If a model is of an unknown kind, the dates are not in order or outside the
        data, or a propensity model's horizon differs from the holdout.
    segmentkit.errors.ContractError
        If no customer has a purchase by ``calibration_end`` (or a date does not
        parse).

    Notes
    -----
    A *purchase* is a distinct purchase day (from purchase lines, not returns), as
    in the models; a day that straddles ``calibration_end`` counts once, in the
    calibration. Customers whose first purchase is in the holdout are not in the
    cohort the model speaks of: they are counted (``counts['new_in_holdout']``) but
    left out of the per-customer metrics and of the tracking curve, whose actual and
    expected totals both cover the calibration cohort only (as in the BTYD
    literature's tracking plots of a fixed cohort).

    Examples
    --------
    >>> import warnings
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> tx = sk.Transactions.from_frame(raw, **mapping)
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     bt = sk.backtest(sk.BetaGeoModel(time_unit="W"), tx,
    ...                      calibration_end="2017-09-01", holdout_end="2017-12-01")
    >>> bt.metrics.index.tolist()
    ['BG/NBD', 'frequency-only', 'recency-only']
    >>> bt.counts["cohort"], bt.counts["new_in_holdout"], round(bt.horizon, 2)
    (783, 14, 13.0)
    >>> bt.metrics["mae_purchases"].round(2).tolist()
    [2.25, 2.28, 3.75]
    """
    predictors = _predictors(model, compare)
    if spend_model is not None and not isinstance(spend_model, GammaGammaModel):
        msg = f"spend_model must be a GammaGammaModel (or None); got {type(spend_model).__name__}."
        raise InvalidParameterError(msg)
    if not isinstance(tx, Transactions) or hasattr(type(tx), "native"):
        msg = (
            "backtest takes pandas Transactions (sk.Transactions.from_frame(...)); got "
            f"{type(tx).__name__}. Collect the lines to pandas first."
        )
        raise InvalidParameterError(msg)
    cal_end, hold_end = _split(tx, calibration_end, holdout_end)
    units = sorted({p.time_unit for p in predictors if isinstance(p, PurchaseModel)})
    if len(units) > 1:
        msg = (
            f"The purchase models of a backtest must share one time_unit; got {units}. "
            "Set the same time_unit on each."
        )
        raise InvalidParameterError(msg)
    # Without a purchase model (a propensity model alone), the tracking curve is weekly.
    time_unit = units[0] if units else "W"
    for predictor in predictors:
        if not isinstance(predictor, PurchaseModel):
            _check_propensity_horizon(predictor, cal_end, hold_end)
    unit_days = TIME_UNITS[time_unit]
    horizon = (hold_end - cal_end) / _DAY / unit_days

    days = _purchase_days(tx, cal_end, hold_end)
    features = extract_features(tx, as_of=cal_end, output="pandas")
    summary = _summary(features, time_unit)
    cohort = summary.buyers
    if not cohort.any():  # pragma: no cover - _split refuses a calibration without purchases
        raise _no_cohort(cal_end)
    ids = features.frame.index[cohort]
    index = pd.Index(ids, name="customer_id")

    holdout = days[days["holdout"]]
    in_cohort = holdout["customer_id"].isin(ids).to_numpy()
    actual = holdout[in_cohort].groupby("customer_id", observed=True).size()
    lines = tx.data
    window = (lines["timestamp"] > cal_end) & (lines["timestamp"] <= hold_end)
    spent = lines[window].groupby("customer_id", observed=True)["amount"].sum()
    frame = pd.DataFrame(
        {
            "frequency": summary.frequency[cohort],
            "recency": summary.recency[cohort],
            "T": summary.T[cohort],
            "actual_purchases": actual.reindex(index, fill_value=0).to_numpy(dtype=float),
            "actual_spend": spent.reindex(index, fill_value=0.0).to_numpy(dtype=float),
        },
        index=index,
    )
    frame["bought"] = frame["actual_purchases"] > 0
    mean_spend = summary.spend[cohort]

    names, keys = _names(predictors)
    descriptions: dict[str, str] = {}
    fitted: dict[str, dict[str, Any]] = {}
    purchase_models: dict[str, PurchaseModel] = {}
    columns: dict[str, np.ndarray] = {}
    for predictor, name in zip(predictors, names, strict=True):
        key = keys[name]
        if isinstance(predictor, PurchaseModel):
            clone = _fit(type(predictor)(**predictor.get_params()), features)
            purchase_models[key] = clone
            fitted[name] = clone.to_dict()
            purchases = clone.expected_purchases(features, horizon).to_numpy()[cohort]
            probability = clone.purchase_probability(features, horizon).to_numpy()[cohort]
            if spend_model is not None and predictor is predictors[0]:
                gg = _fit(type(spend_model)(**spend_model.get_params()), features)
                fitted[f"{name} spend"] = gg.to_dict()
                spend = purchases * gg.expected_spend(features).to_numpy()[cohort]
                descriptions[name] = (
                    f"{type(predictor).__name__} fitted on the calibration features; spend = "
                    "expected purchases × Gamma-Gamma expected spend"
                )
            else:
                spend = purchases * mean_spend
                descriptions[name] = (
                    f"{type(predictor).__name__} fitted on the calibration features; spend = "
                    "expected purchases × the customer's mean calibration spend per purchase day"
                )
        else:
            probability = _propensity(predictor, tx, features, cal_end, index)
            purchases = np.full(len(index), np.nan)
            spend = np.full(len(index), np.nan)
            descriptions[name] = (
                f"{type(predictor).__name__}.predict_proba, fitted on the lines up to "
                "calibration_end; probabilities only"
            )
        columns[f"{key}_purchases"] = purchases
        columns[f"{key}_probability"] = probability
        columns[f"{key}_spend"] = spend

    gaps, censored = _gaps(days, ids, summary, cohort, unit_days)
    baselines = _baselines(frame, mean_spend, horizon, unit_days, gaps, censored)
    for name, (purchases, probability, spend) in baselines.items():
        key = name.replace("-", "_")
        keys[name] = key
        names.append(name)
        descriptions[name] = _BASELINES[name]
        columns[f"{key}_purchases"] = purchases
        columns[f"{key}_probability"] = probability
        columns[f"{key}_spend"] = spend
    frame = pd.concat([frame, pd.DataFrame(columns, index=index)], axis=1)

    metrics = pd.DataFrame(
        [_metrics(frame, keys[name]) for name in names],
        index=pd.Index(names, name="predictor"),
        columns=list(_METRIC_COLUMNS),
    )
    deciles = _deciles(frame, names, keys)
    tracking = _tracking(days, ids, cal_end, hold_end, unit_days, purchase_models)
    new = ~holdout["customer_id"].isin(ids).to_numpy()
    counts = {
        "cohort": len(index),
        "bought_in_holdout": int(frame["bought"].sum()),
        "no_purchase_by_calibration_end": int((~cohort).sum()),
        "new_in_holdout": int(holdout.loc[new, "customer_id"].nunique()),
        "holdout_purchases_of_new": int(new.sum()),
    }
    return Backtest(
        customers=frame,
        tracking=tracking,
        deciles=deciles,
        metrics=metrics,
        calibration_end=cal_end,
        holdout_end=hold_end,
        time_unit=time_unit,
        horizon=float(horizon),
        model=names[0],
        counts=counts,
        predictors=descriptions,
        keys=dict(keys),
        models=fitted,
    )


# --- arguments -----------------------------------------------------------------------


def _is_propensity(value: Any) -> bool:
    # Duck typing: the propensity model lives in another module and may not be loaded.
    return (
        callable(getattr(value, "fit", None))
        and callable(getattr(value, "predict_proba", None))
        and hasattr(value, "horizon_days")
    )


def _predictors(model: Any, compare: Any) -> list[Any]:
    if isinstance(compare, (str, bytes)) or not isinstance(compare, Sequence):
        msg = (
            "compare must be a list of models (BetaGeoModel, ParetoNBDModel or a propensity "
            f"model); got {type(compare).__name__}."
        )
        raise InvalidParameterError(msg)
    predictors = [model, *compare]
    for i, predictor in enumerate(predictors):
        if not (isinstance(predictor, PurchaseModel) or _is_propensity(predictor)):
            where = "model" if i == 0 else f"compare[{i - 1}]"
            msg = (
                f"{where} must be a BetaGeoModel or ParetoNBDModel, or a propensity model "
                "(with fit(tx, as_of=...), predict_proba(features) and horizon_days); got "
                f"{type(predictor).__name__}."
            )
            raise InvalidParameterError(msg)
    return predictors


def _names(predictors: list[Any]) -> tuple[list[str], dict[str, str]]:
    names: list[str] = []
    keys: dict[str, str] = {}
    for predictor in predictors:
        base = _NAMES.get(type(predictor).__name__, type(predictor).__name__)
        name, n = base, 1
        while name in names or name in _BASELINES:
            n += 1
            name = f"{base} ({n})"
        names.append(name)
        keys[name] = re.sub(r"[^0-9a-z]+", "_", name.lower()).strip("_")
    return names, keys


def _date(value: Any, parameter: str) -> pd.Timestamp:
    try:
        return as_utc_timestamp(value)
    except ContractError:
        msg = (
            f"{parameter}={value!r} is not a date or time. Use an ISO 8601 date or time, "
            "e.g. '1997-09-30'."
        )
        raise InvalidParameterError(msg) from None


def _split(tx: Transactions, calibration_end: Any, holdout_end: Any) -> tuple[Any, Any]:
    cal_end = _date(calibration_end, "calibration_end")
    hold_end = _date(holdout_end, "holdout_end")
    stamps = tx.data["timestamp"]
    if len(stamps) == 0:
        raise _no_cohort(cal_end)
    first, last = stamps.min(), stamps.max()
    if hold_end <= cal_end:
        msg = (
            f"holdout_end={_iso(hold_end)} must be after calibration_end={_iso(cal_end)}: "
            "the holdout is the period (calibration_end, holdout_end]."
        )
        raise InvalidParameterError(msg)
    if cal_end < first:
        msg = (
            f"calibration_end={_iso(cal_end)} is before the first transaction "
            f"({_iso(first)}); choose a date inside the data, e.g. halfway through."
        )
        raise InvalidParameterError(msg)
    if hold_end > last:
        msg = (
            f"holdout_end={_iso(hold_end)} is after the last transaction ({_iso(last)}): "
            "purchases not in the data would count as none. Choose holdout_end <= "
            f"{_iso(last)}."
        )
        raise InvalidParameterError(msg)
    purchases = stamps[~tx.data["is_return"].to_numpy(dtype=bool)]
    if not (purchases <= cal_end).any():
        raise _no_cohort(cal_end)
    return cal_end, hold_end


def _no_cohort(cal_end: pd.Timestamp) -> ContractError:
    failure = ContractFailure(
        column="timestamp",
        check="backtest",
        reason=Reason.EMPTY,
        message=(
            f"No purchase line is on or before calibration_end={_iso(cal_end)}: there is "
            "no customer to fit the model on. Choose a later calibration_end."
        ),
    )
    return ContractError([failure], table="transactions")


# --- data ----------------------------------------------------------------------------


def _purchase_days(tx: Transactions, cal_end: Any, hold_end: Any) -> pd.DataFrame:
    """Distinct purchase days per customer up to ``hold_end``, split at ``cal_end``.

    A day's first purchase line dates it: a day that straddles ``cal_end`` counts once,
    in the calibration. Columns ``customer_id``, ``day`` (UTC midnight), ``first``
    (first purchase time that day), ``holdout`` (bool).
    """
    lines = tx.data
    keep = ~lines["is_return"].to_numpy(dtype=bool) & (lines["timestamp"] <= hold_end).to_numpy()
    bought = lines.loc[keep, ["customer_id", "timestamp"]]
    bought = bought.assign(day=bought["timestamp"].dt.normalize())
    days = (
        bought.groupby(["customer_id", "day"], observed=True, sort=True)["timestamp"]
        .min()
        .rename("first")
        .reset_index()
    )
    days["holdout"] = (days["first"] > cal_end).to_numpy()
    return days


def _gaps(
    days: pd.DataFrame, ids: pd.Index, summary: Summary, cohort: np.ndarray, unit_days: float
) -> tuple[np.ndarray, np.ndarray]:
    """Calibration gaps between purchase days (events) and open gaps at its end (censored)."""
    calibration = days[~days["holdout"].to_numpy() & days["customer_id"].isin(ids).to_numpy()]
    customer = calibration["customer_id"].to_numpy()
    day = calibration["day"].to_numpy()
    same = customer[1:] == customer[:-1]
    # In days, rounded: the same pause must give the same answer whatever float noise
    # the unit conversion of T and t_x left (a step of the survival curve sits at
    # whole days).
    gaps = (day[1:] - day[:-1])[same] / np.timedelta64(1, "D")
    censored = np.round((summary.T[cohort] - summary.recency[cohort]) * unit_days, 6)
    return gaps.astype(float), censored


_M = TypeVar("_M", PurchaseModel, GammaGammaModel)


def _fit(model: _M, features: CustomerFeatures) -> _M:
    with warnings.catch_warnings():
        # The backtest counts the customers without a purchase itself (counts); the
        # model's other warnings (what in the data does not suit it) pass through.
        warnings.filterwarnings(
            "ignore", message=r".* left out of the fit: \d+ no purchase \(", category=Warning
        )
        return model.fit(features)


def _check_propensity_horizon(predictor: Any, cal_end: Any, hold_end: Any) -> None:
    name = type(predictor).__name__
    span = (hold_end - cal_end) / _DAY
    horizon = predictor.horizon_days
    if (
        isinstance(horizon, bool)
        or not isinstance(horizon, (int, float, np.integer, np.floating))
        or abs(float(horizon) - span) > 0.5
    ):
        msg = (
            f"{name}.horizon_days={horizon!r} differs from the holdout ({span:g} days from "
            "calibration_end to holdout_end): its probabilities would answer another "
            f"question. Use horizon_days={round(span)} or move holdout_end."
        )
        raise InvalidParameterError(msg)


def _propensity(
    predictor: Any,
    tx: Transactions,
    features: CustomerFeatures,
    cal_end: Any,
    index: pd.Index,
) -> np.ndarray:
    name = type(predictor).__name__
    # Only the calibration lines reach the model, whatever its own guarantees.
    early = tx.data["timestamp"] <= cal_end
    returns = tx.returns
    if "timestamp" in returns.columns:
        returns = returns[(returns["timestamp"] <= cal_end).to_numpy()]
    calibration = Transactions(tx.data[early.to_numpy()], tx.report, returns)
    predictor.fit(calibration, as_of=cal_end)
    predicted = predictor.predict_proba(features)
    if not isinstance(predicted, pd.Series):
        msg = f"{name}.predict_proba must return a pandas Series indexed by customer_id."
        raise InvalidParameterError(msg)
    return predicted.reindex(index).to_numpy(dtype=float)


# --- baselines -----------------------------------------------------------------------


def _baselines(
    frame: pd.DataFrame,
    mean_spend: np.ndarray,
    horizon: float,
    unit_days: float,
    gaps: np.ndarray,
    censored: np.ndarray,
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Purchases, P(a purchase) and spend of the two baselines (gaps in days)."""
    x = frame["frequency"].to_numpy()
    age = frame["T"].to_numpy()
    total_age = float(age.sum())
    pooled = float(x.sum()) / total_age if total_age > 0 else 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        rate = np.where(age > 0, x / age, pooled)
    frequency = rate * horizon
    p_frequency = -np.expm1(-frequency)

    survival = _kaplan_meier(gaps, censored)
    pause = censored
    now = survival(pause)
    later = survival(pause + np.round(horizon * unit_days, 6))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_recency = np.where(now > 0, (now - later) / now, 1.0)
    mean_p = float(p_recency.mean())
    scale = pooled * horizon / mean_p if mean_p > 0 else 0.0
    recency = p_recency * scale
    return {
        FREQUENCY_ONLY: (frequency, p_frequency, frequency * mean_spend),
        RECENCY_ONLY: (recency, p_recency, recency * mean_spend),
    }


def _kaplan_meier(events: np.ndarray, censored: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Kaplan-Meier survival of gap lengths; events happen before censoring at a tie."""
    times = np.unique(events)
    if times.size == 0:
        return lambda t: np.ones(np.shape(t))
    durations = np.sort(np.concatenate([events, censored]))
    at_risk = durations.size - np.searchsorted(durations, times, side="left")
    ordered = np.sort(events)
    died = np.searchsorted(ordered, times, side="right") - np.searchsorted(
        ordered, times, side="left"
    )
    curve = np.cumprod(1.0 - died / at_risk)

    def survival(t: np.ndarray) -> np.ndarray:
        at = np.searchsorted(times, t, side="right")
        return np.where(at > 0, curve[np.maximum(at - 1, 0)], 1.0)

    return survival


# --- measures ------------------------------------------------------------------------


def _metrics(frame: pd.DataFrame, key: str) -> dict[str, float]:
    actual = frame["actual_purchases"].to_numpy()
    spent = frame["actual_spend"].to_numpy()
    bought = frame["bought"].to_numpy()
    predicted = frame[f"{key}_purchases"].to_numpy()
    spend = frame[f"{key}_spend"].to_numpy()
    probability = frame[f"{key}_probability"].to_numpy()
    out: dict[str, float] = {"customers": float(len(frame))}
    out["predicted_purchases"] = _total(predicted)
    out["actual_purchases"] = float(actual.sum())
    for name, guess, truth in (("purchases", predicted, actual), ("spend", spend, spent)):
        rows = np.isfinite(guess)
        error = guess[rows] - truth[rows]
        empty = error.size == 0
        out[f"mae_{name}"] = math.nan if empty else float(np.abs(error).mean())
        out[f"rmse_{name}"] = math.nan if empty else float(np.sqrt((error**2).mean()))
        out[f"bias_{name}"] = math.nan if empty else float(error.mean())
    rows = np.isfinite(probability)
    out["auc"] = _auc(bought[rows], probability[rows])
    out["brier"] = _brier(bought[rows], probability[rows]) if rows.any() else math.nan
    out["top_decile_lift"] = _top_decile_lift(bought[rows], probability[rows])
    return out


def _total(values: np.ndarray) -> float:
    rows = np.isfinite(values)
    return float(values[rows].sum()) if rows.any() else math.nan


def _deciles(frame: pd.DataFrame, names: list[str], keys: dict[str, str]) -> pd.DataFrame:
    actual = frame["actual_purchases"].to_numpy()
    bought = frame["bought"].to_numpy(dtype=float)
    tables = []
    for name in names:
        key = keys[name]
        predicted = frame[f"{key}_purchases"].to_numpy()
        if not np.isfinite(predicted).any():
            continue
        probability = frame[f"{key}_probability"].to_numpy()
        order = np.argsort(predicted, kind="stable")
        decile = np.empty(len(order), dtype=np.int64)
        decile[order] = np.arange(len(order)) * 10 // max(len(order), 1) + 1
        table = (
            pd.DataFrame(
                {
                    "decile": decile,
                    "predicted": predicted,
                    "actual": actual,
                    "probability": probability,
                    "bought_share": bought,
                }
            )
            .groupby("decile")
            .agg(
                customers=("actual", "size"),
                predicted=("predicted", "mean"),
                actual=("actual", "mean"),
                probability=("probability", "mean"),
                bought_share=("bought_share", "mean"),
            )
            .reset_index()
        )
        table.insert(0, "predictor", name)
        tables.append(table)
    columns = ["predictor", "decile", "customers", "predicted", "actual", "probability"]
    if not tables:
        return pd.DataFrame(columns=[*columns, "bought_share"])
    return pd.concat(tables, ignore_index=True)


def _tracking(
    days: pd.DataFrame,
    ids: pd.Index,
    cal_end: pd.Timestamp,
    hold_end: pd.Timestamp,
    unit_days: float,
    models: dict[str, PurchaseModel],
) -> pd.DataFrame:
    cohort_days = days[days["customer_id"].isin(ids).to_numpy()]
    first_rows = ~cohort_days["customer_id"].duplicated().to_numpy()
    starts = cohort_days.loc[first_rows, "day"]
    repeat_times = np.sort(cohort_days.loc[~first_rows, "first"].to_numpy())
    origin = starts.min()
    unit = pd.Timedelta(days=unit_days)
    back = int((cal_end - origin) // unit)
    ahead = int((hold_end - cal_end) // unit)
    periods = np.arange(-back, ahead + 1)
    ends = [cal_end + int(k) * unit for k in periods]
    if ends[-1] < hold_end:
        periods = np.append(periods, ahead + 1)
        ends.append(hold_end)
    end_values = pd.DatetimeIndex(ends).as_unit("ns").to_numpy()
    actual = np.searchsorted(repeat_times, end_values, side="right")
    table = pd.DataFrame(
        {
            "period": periods.astype(np.int64),
            "end": ends,
            "phase": np.where(periods <= 0, "calibration", "holdout"),
            "actual": actual.astype(float),
        }
    )
    first_days, n_first = np.unique(starts.to_numpy(), return_counts=True)
    # Age (in time units) of each first-purchase day at each period end.
    ages = (end_values[None, :] - first_days[:, None]) / np.timedelta64(1, "D") / unit_days
    ages = np.maximum(ages, 0.0)
    for key, model in models.items():
        table[f"expected_{key}"] = n_first @ model.expected_repeat_purchases(ages)
    return table


# --- formatting ----------------------------------------------------------------------


def _iso(stamp: Any) -> str:
    return pd.Timestamp(stamp).isoformat()


def _day(stamp: Any) -> str:
    stamp = pd.Timestamp(stamp)
    return f"{stamp:%Y-%m-%d}" if stamp == stamp.normalize() else stamp.isoformat()
