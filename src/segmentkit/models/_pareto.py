"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987), likelihood in log space."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import expit, gammaln, hyp2f1

from segmentkit.models._purchases import PurchaseModel

__all__ = ["ParetoNBDModel"]

#: Gauss-Legendre rule on [0, 1] for the probability of a purchase in a coming period:
#: fixed nodes, so the result is deterministic; the integrand is smooth and bounded.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)
_NODES = (_NODES + 1.0) / 2.0
_WEIGHTS = _WEIGHTS / 2.0


def _log_tail(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """log of the integral of (alpha+tau)^-(r+x) (beta+tau)^-(s+1) over tau > y, times (r+s+x).

    That is ``log 2F1(a, b; a+1; z) - a log(M + y)`` with ``a = r+s+x`` and, as in
    Fader & Hardie's note, ``M = max(alpha, beta)``, ``b = s+1`` when alpha >= beta
    and ``b = r+x`` otherwise, ``z = |alpha-beta| / (M+y)``. Euler's transformation
    ``2F1(a, b; a+1; z) = (1-z)^(1-b) 2F1(1, a+1-b; a+1; z)`` leaves a series with
    ratio below ``z`` (no overflow however large ``x``), and the power of ``1-z``
    is added as a logarithm.
    """
    r, alpha, s, beta = theta
    a = r + s + x
    big = max(alpha, beta)
    b = s + 1.0 if alpha >= beta else r + x
    z = abs(alpha - beta) / (big + y)
    return (
        (1.0 - b) * np.log1p(-z)
        + np.log(hyp2f1(1.0, a + 1.0 - b, a + 1.0, z))
        - a * np.log(big + y)
    )


class ParetoNBDModel(PurchaseModel):
    """Pareto/NBD model of repeat purchasing (Schmittlein, Morrison & Colombo, 1987).

    While active, a customer buys at a Poisson rate ``lambda`` (gamma ``r``,
    ``alpha`` across customers) and leaves at an exponentially distributed time with
    rate ``mu`` (gamma ``s``, ``beta``) — unlike BG/NBD, customers can leave at any
    time, not only right after a purchase. A *purchase* is a distinct purchase day.

    Parameters
    ----------
    time_unit : {'W', 'D', 'M'}, default='W'
        Unit of ``alpha``, ``beta``, ``horizon`` and the BTYD columns (see
        :class:`BetaGeoModel`).
    min_repeaters : int, default=30
        Fewer repeat buyers than this make ``fit`` warn.

    Attributes
    ----------
    params_ : dict of str to float
        ``r``, ``alpha``, ``s``, ``beta`` (``alpha`` and ``beta`` in ``time_unit``).
    log_likelihood_, covariance_, standard_errors_, confidence_intervals_ : see BetaGeoModel
        Fit statistics; also ``n_customers_``, ``n_excluded_``, ``converged_``.

    Notes
    -----
    The likelihood's Gaussian hypergeometric term is evaluated in log space (see
    ``docs/predicting.md``); its gradient with respect to ``r`` and ``s`` has no
    closed form, so the optimiser uses central differences of the exact
    log-likelihood (4 parameters: 8 extra evaluations per step, over distinct rows).

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> btyd = pd.DataFrame({"frequency": [0, 2, 5], "recency": [0.0, 20.0, 30.0],
    ...                      "T": [38.0, 35.0, 36.0]}, index=["a", "b", "c"])
    >>> pnbd = sk.ParetoNBDModel.from_params({"r": 0.55, "alpha": 10.58, "s": 0.61, "beta": 11.67})
    >>> pnbd.p_alive(btyd).round(3).tolist()
    [0.299, 0.679, 0.886]
    """

    _param_names: ClassVar[tuple[str, ...]] = ("r", "alpha", "s", "beta")
    _scaled_params: ClassVar[tuple[str, ...]] = ("alpha", "beta")

    @staticmethod
    def _parts(
        theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """log of the three pieces: the constant, "alive at T" and "left in (t_x, T]"."""
        r, alpha, s, beta = theta
        head = gammaln(r + x) - gammaln(r) + r * np.log(alpha) + s * np.log(beta)
        alive = -(r + x) * np.log(alpha + T) - s * np.log(beta + T)
        near = _log_tail(theta, x, t_x)
        gap = np.minimum(_log_tail(theta, x, T) - near, 0.0)
        log_a0 = near + np.log(-np.expm1(gap))
        dead = np.log(s) - np.log(r + s + x) + log_a0
        return head, alive, dead

    @staticmethod
    def _loglik(
        theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> tuple[np.ndarray, None]:
        head, alive, dead = ParetoNBDModel._parts(theta, x, t_x, T)
        return head + np.logaddexp(alive, dead), None

    def _start(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> np.ndarray:
        return np.ones(4)

    def _p_alive(
        self, theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        _, alive, dead = self._parts(theta, x, t_x, T)
        return expit(alive - dead)

    def _expected(
        self, theta: np.ndarray, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        r, alpha, s, beta = theta
        log_ratio = np.log((beta + T) / (beta + T + t))
        # (1 - ratio^(s-1)) / (s-1), whose limit at s = 1 is -log(ratio).
        if abs(s - 1.0) < 1e-10:
            growth = -log_ratio
        else:
            growth = -np.expm1((s - 1.0) * log_ratio) / (s - 1.0)
        rate = (r + x) * (beta + T) / (alpha + T)
        return self._p_alive(theta, x, t_x, T) * rate * growth

    def _unconditional(self, theta: np.ndarray, t: np.ndarray) -> np.ndarray:
        # Schmittlein, Morrison & Colombo (1987):
        # r beta / (alpha (s-1)) [1 - (beta/(beta+t))^(s-1)].
        r, alpha, s, beta = theta
        log_ratio = -np.log1p(t / beta)
        if abs(s - 1.0) < 1e-10:
            growth = -log_ratio
        else:
            growth = -np.expm1((s - 1.0) * log_ratio) / (s - 1.0)
        return r * beta / alpha * growth

    def _p_purchase(
        self, theta: np.ndarray, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        # Alive at T, lambda ~ gamma(r+x, alpha+T) and mu ~ gamma(s, beta+T), independent.
        # The first purchase after T comes at u, before the drop-out, with density
        # lambda exp(-(lambda+mu) u); averaged over both rates, P(a purchase by t) is
        #   int_0^t (r+x)/A (A/(A+u))^(r+x+1) (B/(B+u))^s du,  A = alpha+T, B = beta+T.
        # With v = log(1 + u/A) it is int_0^V (r+x) exp(-(r+x) v) (1 + u/B)^-s dv, smooth
        # in v; past v = 40/(r+x) the integrand is below exp(-40) of its start, so the
        # range stops there (heavy buyers' integrands are steep near 0).
        r, alpha, s, beta = theta
        shape = (r + x)[:, None]
        big_a = (alpha + T)[:, None]
        big_b = (beta + T)[:, None]
        upper = np.minimum(np.log1p(t / big_a), 40.0 / shape)
        v = upper * _NODES[None, :]
        u = big_a * np.expm1(v)
        integrand = shape * np.exp(-shape * v - s * np.log1p(u / big_b))
        inside = upper[:, 0] * (integrand @ _WEIGHTS)
        return self._p_alive(theta, x, t_x, T) * np.minimum(inside, 1.0)
