"""BG/NBD: the beta-geometric / negative binomial model (Fader, Hardie & Lee 2005)."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from segmentkit.models._fit import Objective, _dot
from segmentkit.models._purchases import PurchaseModel
from segmentkit.models._summary import distinct_values

__all__ = ["BetaGeoModel"]


class _Spread:
    """A column whose functions are computed once per distinct value when values repeat."""

    def __init__(self, column: np.ndarray) -> None:
        values, at = np.unique(column, return_inverse=True)
        self.few = 4 * values.size <= column.size
        self.values = values if self.few else column
        self.at = at.reshape(-1) if self.few else None

    def log_and_inverse(self, shift: float) -> tuple[np.ndarray, np.ndarray]:
        """``log(shift + column)`` and ``1 / (shift + column)``."""
        moved = shift + self.values
        if self.at is None:
            return np.log(moved), 1.0 / moved
        return np.log(moved)[self.at], (1.0 / moved)[self.at]


class BetaGeoModel(PurchaseModel):
    """BG/NBD model of repeat purchasing (Fader, Hardie & Lee, 2005).

    While active, a customer buys at a Poisson rate ``lambda`` (gamma-distributed
    across customers with shape ``r`` and rate ``alpha``); after each purchase the
    customer drops out for good with probability ``p`` (beta-distributed with
    ``a``, ``b``). A *purchase* is a distinct purchase day.

    Parameters
    ----------
    time_unit : {'W', 'D', 'M'}, default='W'
        Unit of time of ``alpha``, of ``horizon`` and of the BTYD columns: a day, a
        week (7 days) or a month (30.4375 days, a twelfth of 365.25).
    min_repeaters : int, default=30
        Fewer customers with a repeat purchase than this make ``fit`` warn that the
        estimates are unreliable (the fit still runs).

    Attributes
    ----------
    params_ : dict of str to float
        ``r``, ``alpha`` (in ``time_unit``), ``a``, ``b``.
    log_likelihood_ : float
        Log-likelihood of the fitted customers at ``params_``.
    covariance_ : pandas.DataFrame
        Inverse observed information (NaN when the Hessian is singular).
    standard_errors_ : dict of str to float
        From ``covariance_``.
    confidence_intervals_ : pandas.DataFrame
        95% intervals (log-scale Wald), columns ``lower``, ``upper``.
    n_customers_ : int
        Customers fitted.
    n_excluded_ : dict of str to int
        Customers left out, by reason (``no_purchase``).
    converged_ : bool
        Whether the optimiser ended with a near-zero gradient.

    Notes
    -----
    Input: :class:`~segmentkit.CustomerFeatures` with ``first_purchase``,
    ``last_purchase`` and ``purchase_days`` (distinct purchase days); ``x`` is
    ``purchase_days - 1``, ``t_x`` the time between the first and last purchase day
    and ``T`` the time from the first purchase day to ``as_of``. Or a pandas
    DataFrame in the BTYD convention: ``frequency`` (= x), ``recency`` (= t_x), ``T``
    in ``time_unit``, indexed by customer id. Customers without a purchase are left
    out of the fit (counted in ``n_excluded_``, with a warning) and get NaN.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> btyd = pd.DataFrame({"frequency": [0, 2, 5, 1], "recency": [0.0, 20.0, 30.0, 3.0],
    ...                      "T": [38.0, 35.0, 36.0, 30.0]}, index=["a", "b", "c", "d"])
    >>> bg = sk.BetaGeoModel.from_params({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    >>> bg.p_alive(btyd).round(3).tolist()
    [1.0, 0.596, 0.777, 0.312]
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "a", "b")

    @staticmethod
    def _loglik(
        theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        r, alpha, a, b = theta
        repeat = x > 0
        xm1 = np.maximum(x - 1.0, 0.0)
        # The special functions depend on x only, and x takes few values: evaluate them
        # once per value (the rows arrive sorted by x from the grouping).
        values, at = distinct_values(x)
        a1 = (gammaln(r + values) - gammaln(r))[at] + r * np.log(alpha)
        a2 = (gammaln(a + b) + gammaln(b + values) - gammaln(b) - gammaln(a + b + values))[at]
        log_alpha_t = np.log(alpha + T)
        log_alpha_tx = np.log(alpha + t_x)
        a3 = -(r + x) * log_alpha_t
        a4 = np.where(repeat, np.log(a) - np.log(b + xm1) - (r + x) * log_alpha_tx, -np.inf)
        tail = np.logaddexp(a3, a4)
        w3 = np.exp(a3 - tail)
        w4 = 1.0 - w3
        grad = np.empty((4, x.size))
        grad[0] = (
            (digamma(r + values) - digamma(r))[at]
            + np.log(alpha)
            - w3 * log_alpha_t
            - w4 * log_alpha_tx
        )
        grad[1] = r / alpha - w3 * (r + x) / (alpha + T) - w4 * (r + x) / (alpha + t_x)
        grad[2] = (digamma(a + b) - digamma(a + b + values))[at] + w4 / a
        grad[3] = (digamma(a + b) + digamma(b + values) - digamma(b) - digamma(a + b + values))[
            at
        ] - w4 / (b + xm1)
        return a1 + a2 + tail, grad

    def _objective(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> Objective:
        # The same sum as ``weights @ _loglik(...)`` in fewer passes over the rows: the
        # gamma-function terms depend on x only (summed once per distinct x with the
        # weights of its rows), customers without a repeat purchase need one logarithm
        # each, logarithms of alpha + T and alpha + t_x are taken once per distinct time
        # (purchase times in whole days take few values), and what does not move with
        # theta is computed here once.
        x, t_x, age = columns
        total = float(weights.sum())
        values, at = distinct_values(x)
        per_x = np.bincount(at, weights=weights, minlength=values.size)
        xm1 = np.maximum(values - 1.0, 0.0)
        zero = x == 0
        w0 = weights[zero]
        age0 = _Spread(age[zero])
        rep = ~zero
        w1, x1 = weights[rep], x[rep]
        wx1 = w1 * x1
        at1 = at[rep]
        age1, t1 = _Spread(age[rep]), _Spread(t_x[rep])

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            r, alpha, a, b = theta
            log_alpha = np.log(alpha)
            ab = a + b
            head = (
                gammaln(r + values)
                - gammaln(r)
                + gammaln(ab)
                + gammaln(b + values)
                - gammaln(b)
                - gammaln(ab + values)
            )
            value = _dot(per_x, head) + total * r * log_alpha
            grad = np.empty(4)
            grad[0] = _dot(per_x, digamma(r + values) - digamma(r)) + total * log_alpha
            grad[1] = total * r / alpha
            dg_ab = digamma(ab) - digamma(ab + values)
            grad[2] = _dot(per_x, dg_ab)
            grad[3] = _dot(per_x, dg_ab + digamma(b + values) - digamma(b))
            # No repeat purchase: the tail is -r log(alpha + T).
            log_t0, inv_t0 = age0.log_and_inverse(alpha)
            value -= r * _dot(w0, log_t0)
            grad[0] -= _dot(w0, log_t0)
            grad[1] -= r * _dot(w0, inv_t0)
            # Repeat buyers: log(e^a3 + e^a4) with a3 = -(r+x) log(alpha+T) and
            # a4 = log(a / (b+x-1)) - (r+x) log(alpha+t_x); w4 is the share of e^a4.
            log_t, inv_t = age1.log_and_inverse(alpha)
            log_tx, inv_tx = t1.log_and_inverse(alpha)
            rx = r + x1
            drop = log_t - log_tx
            gap = (np.log(a) - np.log(b + xm1))[at1] + rx * drop
            # exp(-40) is below the rounding of log1p's result; the clip keeps exp
            # away from its slow underflow path.
            small = np.exp(-np.minimum(np.abs(gap), 40.0))
            value += _dot(w1, np.maximum(gap, 0.0) + np.log1p(small)) - _dot(r * w1 + wx1, log_t)
            share = small / (1.0 + small)
            w4 = np.where(gap > 0, 1.0 - share, share)
            ww4 = w1 * w4
            grad[0] -= _dot(w1, log_t) - _dot(ww4, drop)
            grad[1] -= _dot(r * w1 + wx1, inv_t + w4 * (inv_tx - inv_t))
            grad[2] += ww4.sum() / a
            grad[3] -= _dot(np.bincount(at1, weights=ww4, minlength=values.size), 1.0 / (b + xm1))
            return float(value), grad

        return objective

    def _p_alive(
        self, theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        r, alpha, a, b = theta
        odds = (r + x) * np.log((alpha + T) / (alpha + t_x)) + np.log(
            a / (b + np.maximum(x, 1) - 1)
        )
        return np.where(x == 0, 1.0, expit(-odds))

    def _expected(
        self, theta: np.ndarray, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        r, alpha, a, b = theta
        z = t / (alpha + T + t)
        hyper = hyp2f1(r + x, b + x, a + b + x - 1, z)
        share = 1.0 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyper
        return (a + b + x - 1) / (a - 1) * share * self._p_alive(theta, x, t_x, T)

    def _unconditional(self, theta: np.ndarray, t: np.ndarray) -> np.ndarray:
        # Fader, Hardie & Lee (2005), eq. 9.
        r, alpha, a, b = theta
        hyper = hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1.0 - (alpha / (alpha + t)) ** r * hyper)

    def _p_purchase(
        self, theta: np.ndarray, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        # Alive at T, a customer can only leave right after a purchase: no purchase in
        # (T, T+t] has probability E[exp(-lambda t)] under lambda's posterior, gamma with
        # shape r + x and rate alpha + T.
        r, alpha, _, _ = theta
        none = np.exp(-(r + x) * np.log1p(t / (alpha + T)))
        return self._p_alive(theta, x, t_x, T) * (1.0 - none)
