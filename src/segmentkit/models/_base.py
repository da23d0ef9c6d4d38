"""What every probability model shares: parameters, fitting, uncertainty, JSON form."""

from __future__ import annotations

import math
import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._common._params import validate_params
from segmentkit.errors import (
    ContractError,
    ContractFailure,
    InvalidParameterError,
    PersistenceError,
    Reason,
    SegmentkitWarning,
    check_is_fitted,
)
from segmentkit.models._fit import FitResult, LogLik, Objective, maximise, summed
from segmentkit.models._params import ModelParameters
from segmentkit.models._summary import Summary, group_rows

#: Two-sided 95% quantile of the standard normal distribution.
_Z95 = 1.959963984540054
_FORMAT = 1


def horizon_label(horizon: float, unit: str) -> str:
    """``39`` weeks → ``'39w'``; used in column names such as ``expected_purchases_39w``."""
    return f"{horizon:g}".replace(".", "_").replace("-", "m") + unit.lower()


class ProbabilityModel(ModelParameters):
    """Base of the models fitted by maximum likelihood (private; not a segmenter)."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}
    _param_names: ClassVar[tuple[str, ...]] = ()
    #: Parameters measured in the unit of the data (time or money); they are fitted on
    #: rescaled data so the optimiser sees numbers near 1 whatever the unit.
    _scaled_params: ClassVar[tuple[str, ...]] = ()

    # -- hooks ------------------------------------------------------------------------
    #: Per-row log-likelihood (and gradient in natural parameters, or None) at ``theta``.
    _loglik: ClassVar[LogLik]

    def _fit_columns(self, summary: Summary) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """Rows used by the fit (boolean mask) and their columns."""
        raise NotImplementedError

    def _scale_of(self, columns: tuple[np.ndarray, ...]) -> tuple[float, tuple[np.ndarray, ...]]:
        return 1.0, columns

    def _diagnose(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> list[str]:
        return []

    def _summary(self, data: Any) -> Summary:
        raise NotImplementedError

    # -- fitting ----------------------------------------------------------------------
    def fit(self, data: Any, y: None = None) -> Self:
        """Estimate the parameters by maximum likelihood.

        Parameters
        ----------
        data : CustomerFeatures or pandas.DataFrame
            See the class documentation for the columns read.
        y : None
            Ignored; present for scikit-learn compatibility.

        Returns
        -------
        Self
            The fitted model.
        """
        name = type(self).__name__
        validate_params(name, self.get_params(), self._parameter_constraints)
        summary = self._summary(data)
        used, columns = self._fit_columns(summary)
        self._warn_excluded(summary, used)
        if not used.any():
            failure = ContractFailure(
                column="<table>",
                check="fit",
                reason=Reason.EMPTY,
                message=(
                    f"{name} has no customer to learn from: {self._empty_reason()}. "
                    "Check as_of and the transactions."
                ),
            )
            raise ContractError([failure], table="features")
        distinct, _, weights = group_rows(*columns)
        grouped = tuple(distinct[:, j] for j in range(distinct.shape[1]))
        problems = self._diagnose(grouped, weights)
        scale, scaled = self._scale_of(grouped)
        loglik = type(self)._loglik
        weights = weights.astype(float)
        objective = self._objective(scaled, weights)
        result = maximise(objective, float(weights.sum()), self._start(scaled, weights))
        theta = result.theta.copy()
        for param in self._scaled_params:
            theta[self._param_names.index(param)] *= scale
        with np.errstate(all="ignore"):
            ll, _ = loglik(theta, *grouped)
        self._store(theta, float(weights @ ll), result)
        self.n_customers_ = int(used.sum())
        for j in result.at_bound:
            problems.append(
                f"parameter {self._param_names[j]!r} ran to the edge of its range "
                f"({theta[j]:.3g}): the data cannot pin it down"
            )
        if not result.at_bound and self.covariance_.isna().to_numpy().all():
            problems.append(
                "the likelihood is flat in some direction (singular information matrix), "
                "so some parameters are not identified and have no standard errors"
            )
        if not result.converged:
            problems.append(f"the optimiser did not converge ({result.message})")
        if problems:
            warnings.warn(
                f"{name}: the data do not suit this model well: " + "; ".join(problems) + ".",
                SegmentkitWarning,
                stacklevel=2,
            )
        return self

    def _objective(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> Objective:
        """Total log-likelihood of ``columns`` (distinct rows, ``weights`` customers each)."""
        return summed(type(self)._loglik, columns, weights)

    def _empty_reason(self) -> str:
        return "no customer has a purchase"

    def _start(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> np.ndarray:
        return np.ones(len(self._param_names))

    def _warn_excluded(self, summary: Summary, used: np.ndarray) -> None:
        self.n_excluded_ = {"no_purchase": summary.n_excluded}
        extra = int((summary.buyers & ~used).sum())
        if extra:
            self.n_excluded_[self._extra_exclusion] = extra
        parts = [f"{n} {reason.replace('_', ' ')}" for reason, n in self.n_excluded_.items() if n]
        if parts:
            warnings.warn(
                f"{type(self).__name__} left out of the fit: {', '.join(parts)} "
                "(they get NaN predictions where the model needs their data).",
                SegmentkitWarning,
                stacklevel=3,
            )

    _extra_exclusion: ClassVar[str] = "unused"

    def _store(self, theta: np.ndarray, log_likelihood: float, result: FitResult | None) -> None:
        self.params_ = {n: float(v) for n, v in zip(self._param_names, theta, strict=True)}
        self.log_likelihood_ = log_likelihood
        k = theta.size
        covariance = np.full((k, k), np.nan)
        if result is not None and np.all(np.isfinite(result.hessian_log)):
            try:
                inverse = np.linalg.inv(result.hessian_log)
            except np.linalg.LinAlgError:
                inverse = None
            if inverse is not None and np.all(np.diag(inverse) > 0):
                covariance = inverse * np.outer(theta, theta)
        self.covariance_ = pd.DataFrame(
            covariance, index=self._param_names, columns=self._param_names
        )
        self.converged_ = bool(result.converged) if result is not None else True

    @property
    def _theta(self) -> np.ndarray:
        check_is_fitted(self)
        return np.array([self.params_[n] for n in self._param_names])

    @property
    def standard_errors_(self) -> dict[str, float]:
        """Standard error of each parameter, from the observed information (NaN if singular)."""
        check_is_fitted(self)
        return {n: float(math.sqrt(self.covariance_.loc[n, n])) for n in self._param_names}

    @property
    def confidence_intervals_(self) -> pd.DataFrame:
        """95% intervals: Wald intervals on the log scale, so they stay positive.

        ``estimate × exp(±1.96 · se / estimate)``; columns ``lower``, ``upper``.
        """
        check_is_fitted(self)
        theta = self._theta
        se = np.array(list(self.standard_errors_.values()))
        spread = np.exp(_Z95 * se / theta)
        return pd.DataFrame(
            {"lower": theta / spread, "upper": theta * spread}, index=list(self._param_names)
        )

    def summary(self) -> pd.DataFrame:
        """Estimates, standard errors and 95% intervals, one row per parameter.

        Returns
        -------
        pandas.DataFrame
            Columns ``estimate, standard_error, lower, upper``.
        """
        intervals = self.confidence_intervals_
        return pd.DataFrame(
            {
                "estimate": self._theta,
                "standard_error": list(self.standard_errors_.values()),
                "lower": intervals["lower"].to_numpy(),
                "upper": intervals["upper"].to_numpy(),
            },
            index=pd.Index(self._param_names, name="parameter"),
        )

    # -- JSON -------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The model as plain JSON-ready data; :meth:`from_dict` reads it back.

        Returns
        -------
        dict
            ``model``, ``format``, ``params`` (constructor) and, once fitted,
            ``fitted`` (parameters, log-likelihood, covariance, counts).
        """
        document: dict[str, Any] = {
            "model": type(self).__name__,
            "format": _FORMAT,
            "params": self.get_params(),
        }
        if hasattr(self, "params_"):
            cov = self.covariance_.to_numpy()
            document["fitted"] = {
                "params_": dict(self.params_),
                "log_likelihood_": _json_float(self.log_likelihood_),
                "covariance_": [[_json_float(v) for v in row] for row in cov],
                "n_customers_": self.n_customers_,
                "n_excluded_": dict(self.n_excluded_),
                "converged_": self.converged_,
            }
        return document

    @classmethod
    def from_dict(cls, document: dict[str, Any]) -> Self:
        """Rebuild a model written by :meth:`to_dict`.

        Parameters
        ----------
        document : dict
            The output of :meth:`to_dict` (e.g. after a JSON round trip).

        Returns
        -------
        Self
            The model, fitted when the document holds fitted state.

        Raises
        ------
        PersistenceError
            If the document is not a model of this class or is damaged.
        """
        name = cls.__name__
        if not isinstance(document, dict) or document.get("model") != name:
            found = (
                document.get("model") if isinstance(document, dict) else type(document).__name__
            )
            msg = f"This is not a {name} document (it says {found!r})."
            raise PersistenceError(msg)
        if document.get("format") != _FORMAT:
            found = document.get("format")
            msg = f"{name} document format {found!r} is not {_FORMAT}; upgrade segmentkit."
            raise PersistenceError(msg)
        try:
            model = cls(**document["params"])
            validate_params(name, model.get_params(), cls._parameter_constraints)
        except (TypeError, KeyError, InvalidParameterError) as error:
            msg = f"The {name} document has unusable parameters: {error}"
            raise PersistenceError(msg) from None
        fitted = document.get("fitted")
        if fitted is None:
            return model
        try:
            theta = np.array([float(fitted["params_"][n]) for n in cls._param_names])
            cov = np.array(fitted["covariance_"], dtype=float).reshape(theta.size, theta.size)
            if not np.all(np.isfinite(theta) & (theta > 0)):
                raise ValueError("parameters must be positive numbers")
            model._store(theta, float(fitted["log_likelihood_"]), None)
            model.covariance_.iloc[:, :] = cov
            model.n_customers_ = int(fitted["n_customers_"])
            model.n_excluded_ = {str(k): int(v) for k, v in fitted["n_excluded_"].items()}
            model.converged_ = bool(fitted["converged_"])
        except (TypeError, KeyError, ValueError, AttributeError) as error:
            msg = f"The fitted state of the {name} document is damaged: {error}"
            raise PersistenceError(msg) from None
        return model

    @classmethod
    def from_params(cls, params: dict[str, float], **options: Any) -> Self:
        """A model with given parameters, e.g. from a paper or another library.

        Parameters
        ----------
        params : dict of str to float
            Every parameter of the model.
        **options
            Constructor parameters (e.g. ``time_unit``).

        Returns
        -------
        Self
            A model ready to predict (no standard errors, log-likelihood NaN).
        """
        model = cls(**options)
        validate_params(cls.__name__, model.get_params(), cls._parameter_constraints)
        missing = [n for n in cls._param_names if n not in params]
        if missing:
            msg = f"{cls.__name__}.from_params needs {list(cls._param_names)}; missing {missing}."
            raise InvalidParameterError(msg)
        theta = np.array([params[n] for n in cls._param_names], dtype=float)
        if not np.all(np.isfinite(theta) & (theta > 0)):
            msg = f"{cls.__name__} parameters must be positive numbers; got {params!r}."
            raise InvalidParameterError(msg)
        model._store(theta, math.nan, None)
        model.n_customers_ = 0
        model.n_excluded_ = {}
        return model


def _json_float(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)
