"""Probability models of customer behaviour: who buys again, how often, for how much.

Stage "models": reads customer features (the propensity also reads transactions, to
build its training cut-offs; associations and next-best items read which items each
customer bought; segment items read a segmentation's assignments), never engines.
scipy loads with this package, scikit-learn when a propensity is fitted, so
``segmentkit`` imports this package only when a model is asked for.
"""

from __future__ import annotations

from segmentkit.models._associations import associations
from segmentkit.models._backtest import Backtest, backtest
from segmentkit.models._betageo import BetaGeoModel
from segmentkit.models._clv import customer_lifetime_value
from segmentkit.models._gammagamma import GammaGammaModel
from segmentkit.models._next_best import NextBestItems, evaluate_next_best, next_best_items
from segmentkit.models._pareto import ParetoNBDModel
from segmentkit.models._predictions import add_predictions
from segmentkit.models._propensity import PurchasePropensity
from segmentkit.models._propensity_eval import PropensityEvaluation
from segmentkit.models._segment_items import segment_items

__all__ = [
    "Backtest",
    "BetaGeoModel",
    "GammaGammaModel",
    "NextBestItems",
    "ParetoNBDModel",
    "PropensityEvaluation",
    "PurchasePropensity",
    "add_predictions",
    "associations",
    "backtest",
    "customer_lifetime_value",
    "evaluate_next_best",
    "next_best_items",
    "segment_items",
]
