"""Probability models of customer behaviour: who buys again, how often, for how much.

Stage "models": reads customer features, never segmentations or engines. scipy loads
with this package, so ``segmentkit`` imports it only when a model is asked for.
"""

from __future__ import annotations

from segmentkit.models._backtest import Backtest, backtest
from segmentkit.models._betageo import BetaGeoModel
from segmentkit.models._clv import customer_lifetime_value
from segmentkit.models._gammagamma import GammaGammaModel
from segmentkit.models._pareto import ParetoNBDModel
from segmentkit.models._predictions import add_predictions

__all__ = [
    "Backtest",
    "BetaGeoModel",
    "GammaGammaModel",
    "ParetoNBDModel",
    "add_predictions",
    "backtest",
    "customer_lifetime_value",
]
