"""The part of BG/NBD and Pareto/NBD that does not depend on the model: inputs, outputs."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from segmentkit._common._params import Interval, OneOf
from segmentkit._frame import is_native
from segmentkit.errors import InvalidParameterError, check_is_fitted
from segmentkit.models._base import ProbabilityModel, horizon_label
from segmentkit.models._summary import TIME_UNITS, Summary, _summary, group_rows

#: The default horizon of ``transform``: one year in each time unit.
_YEAR = {"D": 365.0, "W": 52.0, "M": 12.0}


class PurchaseModel(ProbabilityModel):
    """Base of the models of how often customers buy and when they leave."""

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "time_unit": [OneOf(*TIME_UNITS)],
        "min_repeaters": [Interval(int, 0, None)],
    }
    _scaled_params: ClassVar[tuple[str, ...]] = ("alpha",)

    def __init__(self, *, time_unit: str = "W", min_repeaters: int = 30) -> None:
        self.time_unit = time_unit
        self.min_repeaters = min_repeaters

    def _summary(self, data: Any) -> Summary:
        return _summary(data, self.time_unit)

    def _fit_columns(self, summary: Summary) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        used = summary.buyers
        return used, (summary.frequency[used], summary.recency[used], summary.T[used])

    def _scale_of(self, columns: tuple[np.ndarray, ...]) -> tuple[float, tuple[np.ndarray, ...]]:
        x, t_x, age = columns
        # Times near 1..10 keep the optimiser's steps of comparable size in every unit.
        scale = max(float(age.max()) / 10.0, 1e-12)
        return scale, (x, t_x / scale, age / scale)

    def _diagnose(self, columns: tuple[np.ndarray, ...], weights: np.ndarray) -> list[str]:
        x, t_x, age = columns
        n = int(weights.sum())
        repeaters = int(weights[x > 0].sum())
        problems = []
        if repeaters == 0:
            problems.append(
                f"none of the {n} customers bought again after the first purchase day, so "
                "nothing separates how often customers buy from how soon they leave"
            )
        elif repeaters < self.min_repeaters:
            problems.append(
                f"only {repeaters} of {n} customers bought again (min_repeaters="
                f"{self.min_repeaters}); the estimates rest on too few repeat buyers"
            )
        if np.all(age - t_x <= 0):
            problems.append(
                "every customer bought on the last day of the observation window, so "
                "nothing in the data shows customers leaving"
            )
        return problems

    # -- model formulas (per row, natural parameters) --------------------------------
    def _p_alive(
        self, theta: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def _expected(
        self, theta: np.ndarray, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def _unconditional(self, theta: np.ndarray, t: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _p_purchase(
        self, theta: np.ndarray, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray
    ) -> np.ndarray:
        raise NotImplementedError

    def _predict(self, data: Any, formula: Any, name: str, *extra: float) -> pd.Series:
        theta = self._theta
        summary = self._summary(data)
        out = np.full(len(summary.index), np.nan)
        rows = summary.buyers
        if rows.any():
            # Many customers share (x, t_x, T): compute once per distinct row.
            distinct, inverse, _ = group_rows(
                summary.frequency[rows], summary.recency[rows], summary.T[rows]
            )
            with np.errstate(all="ignore"):
                values = formula(theta, *extra, distinct[:, 0], distinct[:, 1], distinct[:, 2])
            out[rows] = values[inverse]
        return pd.Series(out, index=_customer_index(summary.index), name=name)

    def p_alive(self, data: Any) -> pd.Series:
        """Probability that each customer is still active at the end of observation.

        Parameters
        ----------
        data : CustomerFeatures, pandas.DataFrame or native features
            Customers (see the class documentation). Features kept in polars, pyarrow,
            DuckDB, Spark or Dask bring one row of five numbers per customer into memory.

        Returns
        -------
        pandas.Series
            Named ``p_alive``, indexed by customer id (sorted for native features); NaN
            for customers without a purchase.
        """
        return self._predict(data, self._p_alive, "p_alive")

    def expected_purchases(self, data: Any, horizon: float) -> pd.Series:
        """Expected number of purchases (purchase days) of each customer in the next ``horizon``.

        Parameters
        ----------
        data : CustomerFeatures, pandas.DataFrame or native features
            Customers (see the class documentation and :meth:`p_alive`).
        horizon : float
            Length of the future period, in ``time_unit``.

        Returns
        -------
        pandas.Series
            Named ``expected_purchases_<horizon><unit>``, indexed by customer id (sorted
            for native features); NaN for customers without a purchase.
        """
        horizon = _check_horizon(horizon)
        name = f"expected_purchases_{horizon_label(horizon, self.time_unit)}"
        return self._predict(data, self._expected, name, horizon)

    def purchase_probability(self, data: Any, horizon: float) -> pd.Series:
        """Probability that each customer buys at least once in the next ``horizon``.

        ``P(alive at T) × P(a purchase in (T, T + horizon] | alive)``, given each
        customer's history (x, t_x, T).

        Parameters
        ----------
        data : CustomerFeatures or pandas.DataFrame
            Customers (see the class documentation).
        horizon : float
            Length of the future period, in ``time_unit``.

        Returns
        -------
        pandas.Series
            Named ``purchase_probability_<horizon><unit>``, indexed by customer id;
            NaN for customers without a purchase.
        """
        horizon = _check_horizon(horizon)
        name = f"purchase_probability_{horizon_label(horizon, self.time_unit)}"
        return self._predict(data, self._p_purchase, name, horizon)

    def expected_repeat_purchases(self, age: Any) -> np.ndarray:
        """Expected repeat purchases of a customer ``age`` time units after their first.

        The unconditional ``E[X(t)]`` of the model: what a customer drawn at random from
        the population is expected to buy again (purchase days after the first) in the
        ``t`` time units that follow their first purchase. Summed over a cohort, it is
        the model's curve of cumulative repeat purchases (the BTYD *tracking* plot, see
        :func:`segmentkit.backtest`).

        Parameters
        ----------
        age : float or array-like of float
            Time since the first purchase, in ``time_unit`` (>= 0).

        Returns
        -------
        numpy.ndarray
            One value per age, of the shape of ``age``.
        """
        values = np.asarray(age, dtype=float)
        if not np.all(np.isfinite(values) & (values >= 0)):
            msg = f"age must hold numbers of time units >= 0; got {age!r}."
            raise InvalidParameterError(msg)
        with np.errstate(all="ignore"):
            return np.asarray(self._unconditional(self._theta, values), dtype=float)

    def transform(self, data: Any, horizon: float | None = None) -> pd.DataFrame:
        """The input's columns plus ``p_alive`` and ``expected_purchases_<h>``.

        Parameters
        ----------
        data : CustomerFeatures, pandas.DataFrame or native features
            Customers (see the class documentation).
        horizon : float, optional
            In ``time_unit``; one year (365 days, 52 weeks or 12 months) by default.

        Returns
        -------
        pandas.DataFrame or native frame
            One row per customer, indexed by customer id. For features kept in polars,
            pyarrow, DuckDB, Spark or Dask: a frame of that library with every column of
            ``data`` and the two predicted ones (null for customers without a purchase),
            eager for an eager input; a lazy input gets a lazy frame that scores the
            customers batch by batch where they live when it is collected.
        """
        horizon = _YEAR[self.time_unit] if horizon is None else horizon
        if is_native(data):
            check_is_fitted(self)  # before any query
            horizon = _check_horizon(horizon)
            name = f"expected_purchases_{horizon_label(horizon, self.time_unit)}"
            return _transform_native(self, data, horizon, name)
        frame = _frame_of(data).copy()
        frame.index = _customer_index(frame.index)
        frame["p_alive"] = self.p_alive(data).to_numpy()
        expected = self.expected_purchases(data, horizon)
        frame[expected.name] = expected.to_numpy()
        return frame


def _transform_native(model: PurchaseModel, data: Any, horizon: float, name: str) -> Any:
    from segmentkit.models._native import transform_native

    def predict(inputs: Any) -> dict[str, np.ndarray]:
        return {
            "p_alive": model.p_alive(inputs).to_numpy(),
            name: model.expected_purchases(inputs, horizon).to_numpy(),
        }

    return transform_native(data, predict, ["p_alive", name], type(model).__name__)


def _check_horizon(horizon: Any) -> float:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, float, np.integer, np.floating)):
        msg = f"horizon must be a number of time units >= 0; got {horizon!r}."
        raise InvalidParameterError(msg)
    value = float(horizon)
    if not (np.isfinite(value) and value >= 0):
        msg = f"horizon must be a number of time units >= 0; got {horizon!r}."
        raise InvalidParameterError(msg)
    return value


def _frame_of(data: Any) -> pd.DataFrame:
    frame = getattr(data, "frame", data)
    if not isinstance(frame, pd.DataFrame):
        msg = f"Expected CustomerFeatures or a pandas DataFrame; got {type(data).__name__}."
        raise TypeError(msg)
    return frame


def _customer_index(index: pd.Index) -> pd.Index:
    return index.rename("customer_id") if index.name is None else index
