"""Gamma-Gamma model of spend per purchase (Fader, Hardie & Lee 2005, "RFM and CLV")."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd
from scipy.special import digamma, gammaln

from segmentkit._common._params import Interval
from segmentkit._frame import is_native
from segmentkit.errors import check_is_fitted
from segmentkit.models._base import ProbabilityModel
from segmentkit.models._fit import Objective, _dot
from segmentkit.models._summary import Summary, _summary, distinct_values

__all__ = ["GammaGammaModel"]


class GammaGammaModel(ProbabilityModel):
    """Gamma-Gamma model of the mean spend per purchase.

    A customer's purchase values are gamma(``p``, ``nu``) around their own mean
    ``p / nu``; ``nu`` is gamma(``q``, ``v``) across customers. Spend is assumed
    independent of purchase frequency (check it: ``fit`` does not).

    Parameters
    ----------
    min_repeaters : int, default=30
        Fewer repeat buyers than this make ``fit`` warn that the estimates are
        unreliable.

    Attributes
    ----------
    params_ : dict of str to float
        ``p``, ``q``, ``v`` (``v`` in money).
    log_likelihood_, covariance_, standard_errors_, confidence_intervals_
        As for :class:`BetaGeoModel`.
    n_customers_ : int
        Customers fitted: those with a repeat purchase and a positive mean spend.
    n_excluded_ : dict of str to int
        ``no_purchase`` and ``no_repeat_or_spend`` (one purchase day only, or a
        mean spend <= 0).

    Notes
    -----
    Input: :class:`~segmentkit.CustomerFeatures` with ``purchase_days`` and
    ``monetary`` (the mean spend is ``monetary / purchase_days``, all purchase days),
    or a BTYD frame with ``frequency`` and ``monetary_value`` (e.g. the mean of the
    repeat purchases, as in ``lifetimes``).

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> btyd = pd.DataFrame({"frequency": [0, 2, 6], "recency": [0.0, 20.0, 30.0],
    ...                      "T": [38.0, 35.0, 36.0], "monetary_value": [0.0, 30.0, 55.0]})
    >>> gg = sk.GammaGammaModel.from_params({"p": 6.25, "q": 3.74, "v": 15.44})
    >>> gg.expected_spend(btyd).round(2).tolist()
    [35.22, 30.94, 53.65]
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "min_repeaters": [Interval(int, 0, None)],
    }
    _param_names: ClassVar[tuple[str, ...]] = ("p", "q", "v")
    _scaled_params: ClassVar[tuple[str, ...]] = ("v",)
    _extra_exclusion: ClassVar[str] = "no_repeat_or_spend"

    def __init__(self, *, min_repeaters: int = 30) -> None:
        self.min_repeaters = min_repeaters

    def _summary(self, data: Any) -> Summary:
        return _summary(data, "D")

    def _fit_columns(self, summary: Summary) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        with np.errstate(invalid="ignore"):
            used = summary.buyers & (summary.frequency > 0) & (summary.spend > 0)
        return used, (summary.frequency[used], summary.spend[used])

    def _empty_reason(self) -> str:
        return "no customer has both a repeat purchase and a positive spend"

    def _scale_of(self, columns: tuple[np.ndarray, ...]) -> tuple[float, tuple[np.ndarray, ...]]:
        x, m = columns
        scale = float(np.median(m))
        return scale, (x, m / scale)

    def _diagnose(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> list[str]:
        _, m = columns
        n = int(weights.sum())
        problems = []
        if n < self.min_repeaters:
            problems.append(
                f"only {n} customers bought again with a positive spend (min_repeaters="
                f"{self.min_repeaters})"
            )
        if np.ptp(m) == 0:
            problems.append("every customer spends the same, so spend does not vary to model")
        return problems

    @staticmethod
    def _loglik(theta: np.ndarray, x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        p, q, v = theta
        px = p * x
        total = x * m + v
        ll = (
            gammaln(px + q)
            - gammaln(px)
            - gammaln(q)
            + q * np.log(v)
            + (px - 1) * np.log(m)
            + px * np.log(x)
            - (px + q) * np.log(total)
        )
        grad = np.empty((3, x.size))
        grad[0] = x * (digamma(px + q) - digamma(px) + np.log(m) + np.log(x) - np.log(total))
        grad[1] = digamma(px + q) - digamma(q) + np.log(v) - np.log(total)
        grad[2] = q / v - (px + q) / total
        return ll, grad

    def _objective(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> Objective:
        # The same sum as ``weights @ _loglik(...)`` with one logarithm per row and
        # evaluation: mean spends are nearly all distinct, so rows do not group, but the
        # gamma-function terms depend on x only (few distinct values) and log(m), log(x)
        # do not move with theta, so their weighted sums are taken here once.
        x, m = columns
        total = float(weights.sum())
        values, at = distinct_values(x)
        per_x = np.bincount(at, weights=weights, minlength=values.size)
        wx_per_x = per_x * values
        log_mx = np.log(m) + np.log(x)
        sum_w_log_m = _dot(weights, np.log(m))
        sum_wx_log_mx = _dot(weights * x, log_mx)
        wx = weights * x

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            p, q, v = theta
            pv = p * values
            log_v = np.log(v)
            log_total = np.log(x * m + v)
            w_log_total = _dot(weights, log_total)
            wx_log_total = _dot(wx, log_total)
            value = (
                _dot(per_x, gammaln(pv + q) - gammaln(pv))
                - total * gammaln(q)
                + total * q * log_v
                + p * sum_wx_log_mx
                - sum_w_log_m
                - p * wx_log_total
                - q * w_log_total
            )
            dg = digamma(pv + q)
            grad = np.empty(3)
            grad[0] = _dot(wx_per_x, dg - digamma(pv)) + sum_wx_log_mx - wx_log_total
            grad[1] = _dot(per_x, dg) - total * digamma(q) + total * log_v - w_log_total
            over = 1.0 / (x * m + v)
            grad[2] = total * q / v - p * _dot(wx, over) - q * _dot(weights, over)
            return value, grad

        return objective

    def _start(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> np.ndarray:
        return np.array([1.0, 2.0, 1.0])

    def expected_spend(self, data: Any) -> pd.Series:
        """Expected mean spend per future purchase of each customer.

        Customers without a repeat purchase get the population mean ``p v / (q - 1)``.

        Parameters
        ----------
        data : CustomerFeatures, pandas.DataFrame or native features
            Customers (native features: one row of five numbers per customer reaches
            memory).

        Returns
        -------
        pandas.Series
            Named ``expected_spend``, indexed by customer id; NaN for customers
            without a purchase (or when ``q <= 1``: the mean spend is then infinite).
        """
        p, q, v = self._theta
        summary = self._summary(data)
        x = np.where(summary.buyers, summary.frequency, np.nan)
        m = np.where(x > 0, summary.spend, 0.0)
        mean = p * v / (q - 1) if q > 1 else np.nan
        weight = p * x / (p * x + q - 1)
        values = (1 - weight) * mean + weight * m
        index = summary.index if summary.index.name else summary.index.rename("customer_id")
        return pd.Series(values, index=index, name="expected_spend")

    def transform(self, data: Any) -> pd.DataFrame:
        """The input's columns plus ``expected_spend``.

        Parameters
        ----------
        data : CustomerFeatures, pandas.DataFrame or native features
            Customers.

        Returns
        -------
        pandas.DataFrame or native frame
            One row per customer, indexed by customer id; for features kept in polars,
            pyarrow, DuckDB, Spark or Dask, a frame of that library (as
            :meth:`BetaGeoModel.transform <segmentkit.BetaGeoModel.transform>`).
        """
        if is_native(data):
            from segmentkit.models._native import transform_native

            check_is_fitted(self)  # before any query

            def predict(inputs: Any) -> dict[str, np.ndarray]:
                return {"expected_spend": self.expected_spend(inputs).to_numpy()}

            return transform_native(data, predict, ["expected_spend"], type(self).__name__)
        frame = getattr(data, "frame", data).copy()
        spend = self.expected_spend(data)
        frame.index = spend.index
        frame["expected_spend"] = spend.to_numpy()
        return frame
