"""Maximum likelihood on log-parameters, shared by every model.

Each model gives an *objective*: a function of the natural parameters returning the
weighted total log-likelihood over the distinct input rows and (when it has one) its
gradient. :func:`summed` builds one from a per-row log-likelihood; a model may instead
precompute what does not depend on the parameters once, and sum in fewer operations.
The optimiser works on ``log(theta)`` so positivity holds without constraints, and box
bounds on the logs keep it away from overflow when the data cannot identify a parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize

#: Bounds of every log-parameter: parameters stay in [3e-7, 3.3e6] (in scaled time).
LOG_BOUND = 15.0

LogLik = Callable[..., tuple[np.ndarray, np.ndarray | None]]


@dataclass(frozen=True)
class FitResult:
    theta: np.ndarray
    log_likelihood: float
    hessian_log: np.ndarray
    converged: bool
    message: str
    at_bound: tuple[int, ...]


#: theta -> (total log-likelihood, its gradient in theta or None).
Objective = Callable[[np.ndarray], tuple[float, np.ndarray | None]]


def _dot(left: np.ndarray, right: np.ndarray) -> float:
    """``left @ right`` without BLAS: a BLAS dot wakes its thread pool, which costs more
    than the sum itself on a busy machine, and numpy's pairwise sum is deterministic."""
    return float(np.sum(left * right))


def summed(loglik: LogLik, columns: Sequence[np.ndarray], weights: np.ndarray) -> Objective:
    """The objective ``sum(weights * loglik(theta, *columns))`` and its gradient."""

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray | None]:
        ll, grad = loglik(theta, *columns)
        total = _dot(weights, ll)
        return total, None if grad is None else np.sum(grad * weights, axis=1)

    return objective


def _negative(phi: np.ndarray, objective: Objective) -> tuple[float, np.ndarray | None]:
    theta = np.exp(phi)
    with np.errstate(all="ignore"):
        total, grad = objective(theta)
    if not np.isfinite(total):
        return np.inf, None
    if grad is None:
        return -total, None
    return -total, -grad * theta


def _numeric_gradient(phi: np.ndarray, objective: Objective) -> np.ndarray:
    step = 1e-6
    grad = np.empty_like(phi)
    for j in range(phi.size):
        shift = np.zeros_like(phi)
        shift[j] = step
        up = _negative(phi + shift, objective)[0]
        down = _negative(phi - shift, objective)[0]
        grad[j] = (up - down) / (2 * step)
    return grad


def _value_and_grad(phi: np.ndarray, objective: Objective) -> tuple[float, np.ndarray]:
    value, grad = _negative(phi, objective)
    if not np.isfinite(value):
        # L-BFGS-B backtracks on a huge value; inf would end the line search.
        return 1e300, np.zeros_like(phi)
    if grad is None or not np.all(np.isfinite(grad)):
        grad = _numeric_gradient(phi, objective)
    return value, grad


def maximise(objective: Objective, n_customers: float, start: np.ndarray) -> FitResult:
    """Maximise ``objective(theta)`` over ``theta > 0`` (``n_customers`` scales it)."""
    scale = float(n_customers)

    def fun(phi: np.ndarray) -> tuple[float, np.ndarray]:
        value, grad = _value_and_grad(phi, objective)
        return value / scale, grad / scale

    bounds = [(-LOG_BOUND, LOG_BOUND)] * start.size
    result = minimize(
        fun,
        np.log(start),
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 5000, "ftol": 1e-15, "gtol": 1e-11, "maxcor": 20},
    )
    phi = np.asarray(result.x, dtype=float)
    hessian = _hessian(phi, objective)
    value = _negative(phi, objective)[0]
    grad = _value_and_grad(phi, objective)[1] / scale
    at_bound = tuple(int(j) for j in np.flatnonzero(np.abs(np.abs(phi) - LOG_BOUND) < 1e-3))
    interior = np.setdiff1d(np.arange(phi.size), at_bound)
    small = bool(np.all(np.abs(grad[interior]) < 1e-5))
    converged = bool(np.isfinite(value)) and (bool(result.success) or small)
    return FitResult(np.exp(phi), -value, hessian, converged, str(result.message), at_bound)


def _hessian(phi: np.ndarray, objective: Objective) -> np.ndarray:
    """Observed information in log-parameters: central differences of the gradient."""
    step = 1e-4
    k = phi.size
    hessian = np.empty((k, k))
    for j in range(k):
        shift = np.zeros(k)
        shift[j] = step
        up = _value_and_grad(phi + shift, objective)[1]
        down = _value_and_grad(phi - shift, objective)[1]
        hessian[:, j] = (up - down) / (2 * step)
    return (hessian + hessian.T) / 2
