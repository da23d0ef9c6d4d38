"""Pareto/NBD (Schmittlein, Morrison & Colombo 1987), likelihood in log space."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
from scipy.special import digamma, expit, gammaln, hyp2f1

from segmentkit.models._fit import Objective, _dot
from segmentkit.models._purchases import PurchaseModel
from segmentkit.models._summary import distinct_values, group_rows

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
    is added as a logarithm. Rows whose series would not finish within
    ``_MAX_TERMS`` terms (``z`` near 1) take :func:`_split_tail` instead, as in
    :func:`_tail_grad`.
    """
    r, alpha, s, beta = theta
    a = r + s + x
    big = max(alpha, beta)
    b = s + 1.0 if alpha >= beta else r + x
    z = abs(alpha - beta) / (big + y)
    b = np.broadcast_to(b, z.shape)
    value = np.empty(z.shape)
    fast = _series_finishes(a, b, z)
    at = np.flatnonzero(fast)
    a_f, b_f, z_f = a[at], b[at], z[at]
    series = np.asarray(hyp2f1(1.0, a_f + 1.0 - b_f, a_f + 1.0, z_f), dtype=float)
    failed = ~(series >= 1.0)  # every term is positive and the first is 1
    if failed.any():
        # scipy's hyp2f1 returns NaN on some of these (e.g. 2F1(1, 2; 202; 0.94)); the
        # plain series converges there (these rows were chosen so that it finishes).
        series = series.copy()
        series[failed], *_, slow = _series(a_f[failed], b_f[failed], z_f[failed])
        fast[at[failed][slow]] = False  # never met so far: _series_finishes has a margin
    value[at] = (1.0 - b_f) * np.log1p(-z_f) + np.log(series) - a_f * np.log(big + y[at])
    if not fast.all():
        value[~fast] = _split_tail(theta, x[~fast], y[~fast])[0]
    return value


#: Terms of the series a row may take; rows that would need more take _split_tail.
_MAX_TERMS = 1000
#: Terms allowed for the series at z = 1/2 in _split_tail (it needs about 60).
_HALF_TERMS = 200


def _series_finishes(a: np.ndarray, b: np.ndarray, z: np.ndarray) -> np.ndarray:
    """Whether :func:`_series` stops within ``_MAX_TERMS`` terms, decided before running it.

    Term ``n`` is ``Gamma(a+1-b+n) Gamma(a+1) / (Gamma(a+1-b) Gamma(a+1+n)) z^n`` in
    closed form; the stopping test of :func:`_series` compares it (times ``n+1``)
    with ``1e-17 (1-z)`` times the running sums, which are at least 1 (the series)
    and ``(a+1-b)/(a+1)`` (its ``z`` derivative). A row passes when the term at
    ``_MAX_TERMS`` is below those lower bounds, with a factor 4 to spare. Rows with
    ``z <= 1/2`` always pass: their terms fall at least as fast as ``2^-n``.
    """
    n = float(_MAX_TERMS)
    low = a + 1.0 - b
    high = a + 1.0
    with np.errstate(divide="ignore", invalid="ignore"):  # z = 0: log 0
        log_term = (
            gammaln(low + n) - gammaln(low) + gammaln(high) - gammaln(high + n) + n * np.log(z)
        )
        log_slack = np.log(0.25e-17) + np.log1p(-z)
        quick = (np.log(n + 1.0) + log_term <= log_slack) & (
            np.log(n) + log_term - np.log(z) <= log_slack + np.log(low / high)
        )
    return quick | (z <= 0.5)


def _series(
    a: np.ndarray, b: np.ndarray, z: np.ndarray, max_terms: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``S = 2F1(1, a+1-b; a+1; z)`` and ``dS/da, dS/db, dS/dz`` divided by ``S``.

    Term by term: ``t_n = prod_{k<n} (a+1-b+k) / (a+1+k) * z^n``, so
    ``d log t_n / da = sum_{k<n} 1/(a+1-b+k) - 1/(a+1+k)``,
    ``d log t_n / db = -sum_{k<n} 1/(a+1-b+k)`` and ``dt_n/dz = n t_n / z``. Every
    term is positive (a+1-b > 0) and the ratio of two terms is below ``z``, so there is
    no cancellation and no overflow, however many purchases. The last array marks the
    rows whose series had not converged after ``max_terms`` (default ``_MAX_TERMS``)
    terms; callers route such rows elsewhere beforehand (:func:`_series_finishes`).
    """
    max_terms = _MAX_TERMS if max_terms is None else max_terms
    n_rows = a.size
    total = np.ones(n_rows)
    by_a = np.zeros(n_rows)
    by_b = np.zeros(n_rows)
    by_z = np.zeros(n_rows)
    done = np.zeros(n_rows, dtype=bool)
    rows = np.arange(n_rows)
    low = a + 1.0 - b
    high = a + 1.0
    zz = z.copy()
    term = np.ones(n_rows)
    d_a = np.zeros(n_rows)
    d_b = np.zeros(n_rows)
    slack = 1e-17 * (1.0 - z)
    for n in range(max_terms):
        inv_low = 1.0 / (low + n)
        ratio = (low + n) / (high + n)
        slope = (n + 1.0) * term * ratio  # d t_{n+1} / dz
        term = term * ratio * zz
        d_a += inv_low - 1.0 / (high + n)
        d_b -= inv_low
        total[rows] += term
        by_a[rows] += term * d_a
        by_b[rows] += term * d_b
        by_z[rows] += slope
        small = ((n + 2.0) * term <= slack * total[rows]) & (slope <= slack * by_z[rows])
        n_small = int(small.sum())
        # Converged rows may run on (their terms only shrink further): dropping them
        # costs a copy of every array, so it is done when it pays (and at the end).
        if n_small and (8 * n_small >= rows.size or n % 16 == 15 or n == max_terms - 1):
            done[rows[small]] = True
            keep = ~small
            rows, low, high, zz, term, d_a, d_b, slack = (
                v[keep] for v in (rows, low, high, zz, term, d_a, d_b, slack)
            )
            if not rows.size:
                break
    return total, by_a / total, by_b / total, by_z / total, ~done


def _tail_grad(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_log_tail` and its gradient in (r, alpha, s, beta), shaped (4, rows).

    Rows whose series finishes within ``_MAX_TERMS`` terms (:func:`_series_finishes`)
    take :func:`_series_tail`; the others (``z`` near 1 with terms that shrink no
    faster than ``z^n``) take :func:`_split_tail`. Both are exact and analytic.
    """
    r, alpha, s, beta = theta
    a = r + s + x
    b = np.broadcast_to(s + 1.0 if alpha >= beta else r + x, a.shape)
    z = abs(alpha - beta) / (max(alpha, beta) + y)
    fast = _series_finishes(a, b, z)
    value = np.empty(x.size)
    grad = np.empty((4, x.size))
    at = np.flatnonzero(fast)
    value[at], grad[:, at], slow = _series_tail(theta, x[at], y[at])
    fast[at[slow]] = False  # never met so far: the test above has a margin
    if not fast.all():
        value[~fast], grad[:, ~fast] = _split_tail(theta, x[~fast], y[~fast])
    return value, grad


def _series_tail(
    theta: np.ndarray, x: np.ndarray, y: np.ndarray, max_terms: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_log_tail`, its gradient and the rows whose series did not finish.

    ``_log_tail = (1-b) log(1-z) + log S - a log(M+y)`` with ``S`` the series of
    :func:`_series`; the chain rule through ``a = r+s+x``, ``b`` (``s+1`` or ``r+x``)
    and ``z = |alpha-beta| / (M+y)`` gives the gradient (at fixed ``y``).
    """
    r, alpha, s, beta = theta
    a = r + s + x
    big = max(alpha, beta)
    b = s + 1.0 if alpha >= beta else r + x
    z = abs(alpha - beta) / (big + y)
    series, log_by_a, log_by_b, log_by_z, slow = _series(
        a, np.broadcast_to(b, a.shape), z, max_terms
    )
    value = (1.0 - b) * np.log1p(-z) + np.log(series) - a * np.log(big + y)
    by_a = log_by_a - np.log(big + y)
    by_b = log_by_b - np.log1p(-z)
    by_z = log_by_z - (1.0 - b) / (1.0 - z)
    by_big = -a / (big + y)
    # z = (big - small) / (big + y): its derivatives in the larger and the smaller rate.
    z_big = (min(alpha, beta) + y) / (big + y) ** 2
    z_small = -1.0 / (big + y)
    grad = np.empty((4, x.size))
    grad[0] = by_a + (by_b if alpha < beta else 0.0)
    grad[2] = by_a + (by_b if alpha >= beta else 0.0)
    i_big, i_small = (1, 3) if alpha >= beta else (3, 1)
    grad[i_big] = by_big + by_z * z_big
    grad[i_small] = by_z * z_small
    return value, grad, slow


#: 16-point Gauss-Legendre rule on [-1, 1], used panel by panel in _split_tail.
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(16)


def _split_tail(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_log_tail` and its gradient for rows with ``z > 1/2``, without a long series.

    With ``u = min(alpha, beta) + tau`` the integral is that of ``u^-q (u+d)^-p`` over
    ``u > S``: ``d = |alpha-beta|``, ``S = min(alpha, beta) + y``, ``q`` the exponent on
    the smaller rate and ``p`` the other one. It splits at ``u = d``:

    - beyond, the series at ``z = 1/2`` (:func:`_series_tail` at ``Y = d - min``,
      about 60 terms);
    - between, ``u = S e^t`` gives
      ``S^(1-q) d^-p * integral over 0 < t < log(d/S) of e^((1-q) t) (1+e^(t-log(d/S)))^-p``,
      a log-concave integrand whose second factor stays within the unit disc on the
      strip ``|Im t| < pi/2`` however large ``p``; Gauss-Legendre panels at most 1.5
      wide and ``8/|1-q|`` wide resolve it to rounding. Past the point where
      ``e^((1-q) t)`` has fallen by ``e^-40`` (``q > 1``) nothing counts.

    The split point moves with the parameters, but ``f(Y) dY`` leaves one part and
    enters the other, so the gradient is that of each part at fixed ``Y``: for the
    finite part, the mean over the integrand of ``d log f / d theta`` on the ``tau``
    scale (``-log(alpha+tau)``, ``-(r+x)/(alpha+tau)``, ``-log(beta+tau)``,
    ``-(s+1)/(beta+tau)``).
    """
    r, alpha, s, beta = theta
    small_alpha = alpha < beta
    d = abs(alpha - beta)
    small = min(alpha, beta)
    q = r + x if small_alpha else np.full(x.shape, s + 1.0)
    p = np.full(x.shape, s + 1.0) if small_alpha else r + x
    a = r + s + x
    low_edge = small + y
    lam = np.log(d / low_edge)
    far_value, far_grad, slow = _series_tail(
        theta, x, np.full(x.shape, d - small), max_terms=_HALF_TERMS
    )
    if slow.any():  # cannot happen at z = 1/2; never return a cut series silently
        msg = "Pareto/NBD: the hypergeometric series at z = 1/2 did not converge."
        raise FloatingPointError(msg)
    # Where the integrand has fallen by e^-40 (a tangent bound, since log f is concave),
    # with room for the slowest possible decay further on.
    rising = q - 1.0
    steepest = q - 1.0 + p / 2.0  # the largest |d log f / dt|, at t = log(d/S)
    with np.errstate(divide="ignore", invalid="ignore"):
        reach = np.where(rising > 0, (40.0 + np.log(steepest / rising)) / rising, np.inf)
    upper = np.minimum(lam, reach)
    panels = np.maximum(upper / 1.5, np.abs(1.0 - q) * upper / 8.0)
    panels = 2 ** np.ceil(np.log2(np.maximum(panels, 8.0))).astype(int)
    log_part = np.empty(x.size)
    mean = np.empty((4, x.size))
    for count in np.unique(panels):
        rows = panels == count
        width = upper[rows] / count
        centres = (np.arange(count) + 0.5)[None, :] * width[:, None]
        t = (centres[:, :, None] + 0.5 * width[:, None, None] * _GL_NODES).reshape(rows.sum(), -1)
        log_w = np.log(0.5 * width)[:, None] + np.log(np.tile(_GL_WEIGHTS, count))[None, :]
        lam_r = lam[rows][:, None]
        soft = np.logaddexp(0.0, t - lam_r)  # log(1 + e^(t-lam))
        log_f = (1.0 - q[rows])[:, None] * t - p[rows][:, None] * soft + log_w
        top = log_f.max(axis=1, keepdims=True)
        share = np.exp(log_f - top)
        total = share.sum(axis=1)
        share /= total[:, None]
        log_part[rows] = top[:, 0] + np.log(total)
        # On the tau scale: log(small + tau) = log S + t, log(big + tau) = log d + soft.
        log_s = np.log(low_edge[rows])
        mean_log_small = log_s + (share * t).sum(1)
        mean_inv_small = (share * np.exp(-t)).sum(1) / low_edge[rows]
        mean_log_big = np.log(d) + (share * soft).sum(1)
        mean_inv_big = (share * np.exp(-soft)).sum(1) / d
        i_small, i_big = (0, 2) if small_alpha else (2, 0)
        mean[i_small, rows] = -mean_log_small
        mean[i_big, rows] = -mean_log_big
        mean[i_small + 1, rows] = -q[rows] * mean_inv_small
        mean[i_big + 1, rows] = -p[rows] * mean_inv_big
    near_value = np.log(a) + (1.0 - q) * np.log(low_edge) - p * np.log(d) + log_part
    value = np.logaddexp(near_value, far_value)
    w_near = np.exp(near_value - value)
    w_far = np.exp(far_value - value)
    near_grad = mean
    near_grad[0] += 1.0 / a
    near_grad[2] += 1.0 / a
    return value, w_near * near_grad + w_far * far_grad


def _rows_loglik(
    theta: np.ndarray,
    x: np.ndarray,
    T: np.ndarray,
    near: tuple[np.ndarray, np.ndarray],
    far: tuple[np.ndarray, np.ndarray],
    gamma_terms: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-row log-likelihood and gradient from the two tails (at t_x and at T).

    ``gamma_terms``: ``gammaln(r+x) - gammaln(r)`` and ``digamma(r+x) - digamma(r)``
    per row, when the caller has them cheaper (once per distinct x).
    """
    r, alpha, s, beta = theta
    if gamma_terms is None:
        gamma_terms = gammaln(r + x) - gammaln(r), digamma(r + x) - digamma(r)
    log_gamma, psi = gamma_terms
    near_value, near_grad = near
    far_value, far_grad = far
    log_t_alpha = np.log(alpha + T)
    log_t_beta = np.log(beta + T)
    head = log_gamma + r * np.log(alpha) + s * np.log(beta)
    alive = -(r + x) * log_t_alpha - s * log_t_beta
    # dead = log(s) + log(I(t_x) - I(T)), with I = exp(tail) / (r+s+x).
    gap = np.minimum(far_value - near_value, 0.0)
    share = np.exp(gap)
    dead = np.log(s) - np.log(r + s + x) + near_value + np.log(-np.expm1(gap))
    both = np.logaddexp(alive, dead)
    w_dead = np.exp(dead - both)
    w_alive = 1.0 - w_dead
    with np.errstate(all="ignore"):
        # d log(I_near - I_far) = (g_near - share * g_far) / (1 - share); rows with
        # t_x = T have no "dead" term (w_dead = 0).
        spread = np.where(share < 1.0, 1.0 / -np.expm1(gap), 0.0)
        d_dead = (near_grad - share * far_grad) * spread
    d_dead = np.where(w_dead > 0, d_dead, 0.0)
    d_log_a = 1.0 / (r + s + x)
    grad = np.empty((4, x.size))
    grad[0] = (
        psi + np.log(alpha)
        - w_alive * log_t_alpha + w_dead * (d_dead[0] - d_log_a)
    )  # fmt: skip
    grad[1] = r / alpha - w_alive * (r + x) / (alpha + T) + w_dead * d_dead[1]
    grad[2] = np.log(beta) - w_alive * log_t_beta + w_dead * (1.0 / s - d_log_a + d_dead[2])
    grad[3] = s / beta - w_alive * s / (beta + T) + w_dead * d_dead[3]
    return head + both, grad


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
    ``docs/predicting.md``). Its gradient is analytic: in ``r`` and ``s`` through the
    term-by-term derivative of the hypergeometric series (positive terms, ratio below
    ``z``). Rows whose series would need more than 1000 terms (``z`` near 1) split the
    integral where ``z = 1/2``: the series beyond, Gauss-Legendre panels before.

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
    ) -> tuple[np.ndarray, np.ndarray]:
        near = _tail_grad(theta, x, t_x)
        far = _tail_grad(theta, x, T)
        return _rows_loglik(theta, x, T, near, far)

    def _objective(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> Objective:
        # The tails depend on (x, t_x) and on (x, T) only: far fewer distinct pairs than
        # rows, so the series run once per pair.
        x, t_x, age = columns
        near_pairs, near_at, _ = group_rows(x, t_x)
        far_pairs, far_at, _ = group_rows(x, age)
        values, at = distinct_values(x)

        def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
            r = theta[0]
            near_value, near_grad = _tail_grad(theta, near_pairs[:, 0], near_pairs[:, 1])
            far_value, far_grad = _tail_grad(theta, far_pairs[:, 0], far_pairs[:, 1])
            near = near_value[near_at], near_grad[:, near_at]
            far = far_value[far_at], far_grad[:, far_at]
            gamma_terms = (
                (gammaln(r + values) - gammaln(r))[at],
                (digamma(r + values) - digamma(r))[at],
            )
            ll, grad = _rows_loglik(theta, x, age, near, far, gamma_terms)
            return _dot(weights, ll), np.array([_dot(weights, g) for g in grad])

        return objective

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
