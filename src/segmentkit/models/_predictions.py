"""Predictions as features: one call adds a model's columns to ``CustomerFeatures``."""

from __future__ import annotations

from typing import Any

import pandas as pd

from segmentkit.errors import InvalidParameterError
from segmentkit.features._base import CustomerFeatures
from segmentkit.features._catalog import column_definition
from segmentkit.models._betageo import BetaGeoModel
from segmentkit.models._clv import customer_lifetime_value
from segmentkit.models._gammagamma import GammaGammaModel
from segmentkit.models._pareto import ParetoNBDModel
from segmentkit.models._purchases import _YEAR, PurchaseModel

__all__ = ["PURCHASE_MODELS", "add_predictions"]

#: Purchase models by the short name the command line and ``add_predictions`` take.
PURCHASE_MODELS: dict[str, type[PurchaseModel]] = {
    "bgnbd": BetaGeoModel,
    "pareto": ParetoNBDModel,
}


def add_predictions(
    features: CustomerFeatures,
    purchases: PurchaseModel | str = "bgnbd",
    spend: GammaGammaModel | str | None = "gamma-gamma",
    *,
    horizon: float | None = None,
    clv_horizon: int = 12,
    clv_time_unit: str = "M",
    discount_rate: float = 0.01,
) -> CustomerFeatures:
    """The features plus each customer's predictions, as features like any other.

    Adds ``p_alive`` (probability the customer is still a customer at ``as_of``),
    ``churn_risk`` (= 1 − ``p_alive``) and ``expected_purchases_<h><unit>`` from the
    purchase model; with a spend model also ``expected_spend`` and
    ``predicted_clv_<h><unit>`` (see :func:`customer_lifetime_value`). Customers
    without a purchase get missing values. A model not fitted yet is fitted on
    ``features`` first (in place, so its ``params_`` can be read afterwards); a fitted
    one only predicts. Columns of the same name are replaced.

    The result keeps ``as_of``, the excluded-row counts and the catalog; the new
    columns have catalog entries (label, unit, description, direction), so rules,
    engines and the report treat them as features.

    Parameters
    ----------
    features : CustomerFeatures
        From :func:`extract_features`, with ``first_purchase``, ``last_purchase``,
        ``purchase_days`` (and ``monetary`` for the spend model).
    purchases : BetaGeoModel, ParetoNBDModel, or {'bgnbd', 'pareto'}, default='bgnbd'
        The purchase model, or the name of a new one (weekly time unit).
    spend : GammaGammaModel, 'gamma-gamma' or None, default='gamma-gamma'
        The spend model, or the name of a new one; ``None`` adds no value columns.
    horizon : float, optional
        Horizon of ``expected_purchases``, in the purchase model's ``time_unit``
        (one year by default: 52 weeks, 365 days or 12 months).
    clv_horizon : int, default=12
        Periods of ``predicted_clv``.
    clv_time_unit : {'M', 'W', 'D'}, default='M'
        Length of a CLV period.
    discount_rate : float, default=0.01
        Discount rate per CLV period.

    Returns
    -------
    CustomerFeatures
        A new object; ``features`` is not changed.

    Raises
    ------
    InvalidParameterError
        On an unknown model name or a bad horizon or rate.
    ContractError
        If the features lack a column the models read, or nobody bought.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> frame = pd.DataFrame({
    ...     "customer_id": ["a", "b", "c"],
    ...     "first_purchase": pd.to_datetime(["2024-01-05", "2024-02-01", None], utc=True),
    ...     "last_purchase": pd.to_datetime(["2024-06-01", "2024-02-01", None], utc=True),
    ...     "purchase_days": [6, 1, 0], "monetary": [300.0, 40.0, 0.0]})
    >>> features = sk.CustomerFeatures.from_frame(frame, as_of="2024-07-01")
    >>> bg = sk.BetaGeoModel.from_params({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    >>> gg = sk.GammaGammaModel.from_params({"p": 6.25, "q": 3.74, "v": 15.44})
    >>> out = sk.add_predictions(features, bg, gg)
    >>> out.frame[["p_alive", "churn_risk", "predicted_clv_12m"]].round(2)
                 p_alive  churn_risk  predicted_clv_12m
    customer_id
    a               0.78        0.22             230.60
    b               1.00        0.00              12.98
    c                NaN         NaN                NaN
    >>> out.catalog.set_index("name").loc["churn_risk", "unit"]
    'probability'
    """
    if not isinstance(features, CustomerFeatures):
        msg = (
            "add_predictions takes CustomerFeatures (from sk.extract_features, or "
            f"sk.CustomerFeatures.from_frame); got {type(features).__name__}."
        )
        raise TypeError(msg)
    purchase_model = _purchase_model(purchases)
    spend_model = _spend_model(spend)
    if not hasattr(purchase_model, "params_"):
        purchase_model.fit(features)
    year = _YEAR[purchase_model.time_unit]
    columns: dict[str, pd.Series] = {}
    alive = purchase_model.p_alive(features)
    columns["p_alive"] = alive
    columns["churn_risk"] = (1.0 - alive).rename("churn_risk")
    expected = purchase_model.expected_purchases(features, year if horizon is None else horizon)
    columns[str(expected.name)] = expected
    if spend_model is not None:
        if not hasattr(spend_model, "params_"):
            spend_model.fit(features)
        columns["expected_spend"] = spend_model.expected_spend(features)
        clv = customer_lifetime_value(
            purchase_model,
            spend_model,
            features,
            horizon=clv_horizon,
            discount_rate=discount_rate,
            time_unit=clv_time_unit,
        )
        columns[str(clv.name)] = clv
    return _with_columns(features, columns)


def _purchase_model(value: Any) -> PurchaseModel:
    if isinstance(value, PurchaseModel):
        return value
    if isinstance(value, str) and value in PURCHASE_MODELS:
        return PURCHASE_MODELS[value]()
    msg = (
        f"purchases must be a BetaGeoModel, a ParetoNBDModel or one of "
        f"{sorted(PURCHASE_MODELS)}; got {value!r}."
    )
    raise InvalidParameterError(msg)


def _spend_model(value: Any) -> GammaGammaModel | None:
    if value is None or isinstance(value, GammaGammaModel):
        return value
    if value == "gamma-gamma":
        return GammaGammaModel()
    msg = f"spend must be a GammaGammaModel, 'gamma-gamma' or None; got {value!r}."
    raise InvalidParameterError(msg)


def _with_columns(features: CustomerFeatures, columns: dict[str, pd.Series]) -> CustomerFeatures:
    frame = features.frame.drop(columns=[c for c in columns if c in features.frame.columns])
    frame = frame.assign(**{name: values.to_numpy() for name, values in columns.items()})
    definitions = {c: d for c in columns if (d := column_definition(c)) is not None}
    out = CustomerFeatures(frame, features.as_of, definitions, features.excluded)
    out._keep_affinity(features)
    # The input's own catalog rows (user-supplied columns included) stay as they were.
    own = features.catalog.drop_duplicates("name").set_index("name")
    kept = [c for c in frame.columns if c in own.index and c not in columns]
    fresh = out.catalog.set_index("name")
    fresh.loc[kept] = own.loc[kept, fresh.columns].to_numpy()
    out.catalog = fresh.reset_index()
    return out
