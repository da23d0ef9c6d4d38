"""Customer lifetime value: expected purchases per period × expected spend, discounted."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from segmentkit.errors import InvalidParameterError
from segmentkit.models._base import horizon_label
from segmentkit.models._gammagamma import GammaGammaModel
from segmentkit.models._purchases import PurchaseModel, _check_horizon
from segmentkit.models._summary import TIME_UNITS, local_inputs

__all__ = ["customer_lifetime_value"]


def customer_lifetime_value(
    purchases: PurchaseModel,
    spend: GammaGammaModel,
    data: Any,
    *,
    horizon: int = 12,
    discount_rate: float = 0.01,
    time_unit: str = "M",
) -> pd.Series:
    """Discounted value of each customer's expected purchases over ``horizon`` periods.

    ``sum over k = 1..horizon of spend × (E[purchases by k] − E[purchases by k−1])
    / (1 + discount_rate) ** k``, where a period is one ``time_unit`` and purchases
    come from ``purchases`` (BG/NBD or Pareto/NBD), spend from ``spend``.

    Parameters
    ----------
    purchases : BetaGeoModel or ParetoNBDModel
        Fitted transaction model.
    spend : GammaGammaModel
        Fitted spend model.
    data : CustomerFeatures, pandas.DataFrame or native features
        Customers, readable by both models (with ``time_unit`` of ``purchases``).
        Native features are collected once (five numbers per customer).
    horizon : int, default=12
        Number of periods.
    discount_rate : float, default=0.01
        Discount rate per period (0.01 a month is about 12.7% a year).
    time_unit : {'M', 'W', 'D'}, default='M'
        Length of a period, independent of the unit the purchase model was fitted in.

    Returns
    -------
    pandas.Series
        Named ``predicted_clv_<horizon><unit>`` (e.g. ``predicted_clv_12m``), indexed
        by customer id; NaN for customers without a purchase.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> btyd = pd.DataFrame({"frequency": [0, 2, 6], "recency": [0.0, 20.0, 30.0],
    ...                      "T": [38.0, 35.0, 36.0], "monetary_value": [0.0, 30.0, 55.0]},
    ...                     index=["a", "b", "c"])
    >>> bg = sk.BetaGeoModel.from_params({"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426})
    >>> gg = sk.GammaGammaModel.from_params({"p": 6.25, "q": 3.74, "v": 15.44})
    >>> sk.customer_lifetime_value(bg, gg, btyd, horizon=12).round(1).tolist()
    [8.5, 40.3, 235.1]
    """
    if not isinstance(purchases, PurchaseModel):
        msg = (
            f"purchases must be a BetaGeoModel or ParetoNBDModel; got {type(purchases).__name__}."
        )
        raise InvalidParameterError(msg)
    if not isinstance(spend, GammaGammaModel):
        msg = f"spend must be a GammaGammaModel; got {type(spend).__name__}."
        raise InvalidParameterError(msg)
    if time_unit not in TIME_UNITS:
        msg = f"time_unit must be one of {sorted(TIME_UNITS)}; got {time_unit!r}."
        raise InvalidParameterError(msg)
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        msg = f"horizon must be a whole number of periods >= 1; got {horizon!r}."
        raise InvalidParameterError(msg)
    rate = _check_horizon(discount_rate)
    period = TIME_UNITS[time_unit] / TIME_UNITS[purchases.time_unit]
    # Each period's prediction reads the data: a native frame is queried once.
    data = local_inputs(data)
    value = spend.expected_spend(data).to_numpy()
    clv = np.zeros(len(value))
    previous = np.zeros(len(value))
    for k in range(1, int(horizon) + 1):
        # A loop over periods (few), each vectorised over customers.
        cumulative = purchases.expected_purchases(data, k * period).to_numpy()
        clv += value * (cumulative - previous) / (1 + rate) ** k
        previous = cumulative
    index = spend.expected_spend(data).index
    name = f"predicted_clv_{horizon_label(horizon, time_unit)}"
    return pd.Series(clv, index=index, name=name)
