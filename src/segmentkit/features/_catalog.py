"""The feature catalog: every feature's definition as a table.

Besides the features :func:`extract_features` computes, the catalog knows the columns
the prediction models add (``p_alive``, ``predicted_clv_12m``...): they are features
like any other for rules, engines and the report, named with their horizon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from segmentkit.features._definitions import (
    PURCHASE_WINDOWS,
    Direction,
    FeatureDef,
    Kernel,
    definition_of,
    definitions,
)

__all__ = [
    "FeatureDef",
    "column_definition",
    "definitions_by_name",
    "feature_catalog",
    "predicted_definition",
]


def feature_catalog(
    windows: tuple[int, ...] = (7, 30, 90),
    *,
    predicted: bool = False,
    purchase_windows: tuple[int, ...] = PURCHASE_WINDOWS,
) -> pd.DataFrame:
    """Every feature segmentkit can compute, with its definition.

    Parameters
    ----------
    windows : tuple of int, default=(7, 30, 90)
        Browsing windows in days, as passed to :func:`extract_features`.
    purchase_windows : tuple of int, default=(30, 90, 365)
        Purchase windows in days, as passed to :func:`extract_features`.
    predicted : bool, default=False
        Also list the columns the prediction models add (:func:`add_predictions`,
        ``PurchasePropensity``), their horizon written as a pattern
        (``predicted_clv_<h><unit>``: ``predicted_clv_12m`` is 12 months).

    Returns
    -------
    pandas.DataFrame
        Columns ``name, description, unit, source, kind, label, dtype, direction,
        skewed, needs``, one row per feature. ``direction`` says whether more is better
        (``higher_is_better``, ``lower_is_better`` or ``neutral``); ``skewed`` features
        are log-transformed before clustering; ``needs`` names the optional input
        columns the feature needs (for profile features: any one of them).

    Examples
    --------
    >>> import segmentkit as sk
    >>> catalog = sk.feature_catalog()
    >>> catalog.set_index("name").loc["frequency", "description"]
    'Distinct orders with at least one purchase line.'
    >>> catalog.set_index("name").loc["recency_days", "direction"]
    'lower_is_better'
    >>> sk.feature_catalog(predicted=True).set_index("name").loc["churn_risk", "direction"]
    'lower_is_better'
    """
    every = definitions(tuple(windows), purchase_windows=tuple(purchase_windows))
    if predicted:
        every = every + [p.definition(p.shown) for p in _PREDICTED]
    return pd.DataFrame(
        [
            d.catalog_row()
            | {
                "label": d.label,
                "dtype": d.dtype,
                "direction": d.direction,
                "skewed": d.skewed,
                "needs": ", ".join(d.needs),
            }
            for d in every
        ]
    )


def definitions_by_name(windows: tuple[int, ...]) -> dict[str, FeatureDef]:
    return {d.name: d for d in definitions(tuple(windows))}


# --- predicted columns -------------------------------------------------------------

_UNITS = {"d": ("day", "days"), "w": ("week", "weeks"), "m": ("month", "months")}
#: A horizon as written in column names by ``horizon_label``: ``13w``, ``0_5m``, ``90d``.
_HORIZON = r"(?P<h>\d+(?:_\d+)?)(?P<u>[dwm])"
#: Predictions are computed from the purchase history (through a model): the table
#: they come from is the transactions, and no compiler computes them.
_MODEL = Kernel("prediction_model")


@dataclass(frozen=True)
class _Predicted:
    """A column a prediction model adds; ``{h}`` in texts is the horizon in words."""

    pattern: str
    shown: str
    label: str
    description: str
    unit: str
    direction: Direction
    words: tuple[str, str]
    skewed: bool = False

    def definition(self, name: str, horizon: str = "<h>") -> FeatureDef:
        return FeatureDef(
            name,
            self.description.replace("{h}", horizon),
            self.unit,
            "transactions",
            _MODEL,
            label=self.label.replace("{h}", horizon),
            direction=self.direction,
            skewed=self.skewed,
            words=self.words,
        )


_PREDICTED = (
    _Predicted(
        "p_alive",
        "p_alive",
        "Probability still active",
        "Probability that the customer is still a customer at as_of, from a purchase "
        "model (BG/NBD or Pareto/NBD); missing without a purchase.",
        "probability",
        "higher_is_better",
        ("Likely active", "Likely lapsed"),
    ),
    _Predicted(
        "churn_risk",
        "churn_risk",
        "Churn risk",
        "1 - p_alive: probability that the customer has stopped buying; missing "
        "without a purchase.",
        "probability",
        "lower_is_better",
        ("At risk", "Safe"),
    ),
    _Predicted(
        f"expected_purchases_{_HORIZON}",
        "expected_purchases_<h><unit>",
        "Expected purchases, next {h}",
        "Expected purchase days in the {h} after as_of, from a purchase model; missing "
        "without a purchase.",
        "purchase days",
        "higher_is_better",
        ("More purchases expected", "Fewer purchases expected"),
        skewed=True,
    ),
    _Predicted(
        "expected_spend",
        "expected_spend",
        "Expected spend per purchase",
        "Expected mean spend of a future purchase, from the Gamma-Gamma model; missing "
        "without a purchase.",
        "currency",
        "higher_is_better",
        ("High expected basket", "Low expected basket"),
        skewed=True,
    ),
    _Predicted(
        f"predicted_clv_{_HORIZON}",
        "predicted_clv_<h><unit>",
        "Predicted CLV, next {h}",
        "Discounted expected spend in the {h} after as_of (customer_lifetime_value); "
        "missing without a purchase.",
        "currency",
        "higher_is_better",
        ("High predicted value", "Low predicted value"),
        skewed=True,
    ),
    _Predicted(
        r"purchase_probability_(?P<h>\d+)(?P<u>d)",
        "purchase_probability_<h>d",
        "Purchase probability, next {h}",
        "Probability of a purchase in the {h} after as_of, from PurchasePropensity.",
        "probability",
        "higher_is_better",
        ("Likely to buy", "Unlikely to buy"),
    ),
)
_MATCHERS = tuple((re.compile(p.pattern), p) for p in _PREDICTED)


def _horizon_words(number: str, unit: str) -> str:
    value = number.replace("_", ".")
    singular, plural = _UNITS[unit]
    return f"{value} {singular if value == '1' else plural}"


def predicted_definition(name: str) -> FeatureDef | None:
    """The definition of a column a prediction model adds, or ``None``.

    Parameters
    ----------
    name : str
        A column name such as ``p_alive`` or ``predicted_clv_12m``.

    Returns
    -------
    FeatureDef or None
        Its label, description, unit and direction, the horizon in words.

    Examples
    --------
    >>> predicted_definition("predicted_clv_12m").label
    'Predicted CLV, next 12 months'
    >>> predicted_definition("recency_days") is None
    True
    """
    for matcher, predicted in _MATCHERS:
        match = matcher.fullmatch(name)
        if match is None:
            continue
        groups = match.groupdict()
        horizon = _horizon_words(groups["h"], groups["u"]) if "h" in groups else "<h>"
        return predicted.definition(name, horizon)
    return None


def column_definition(name: str) -> FeatureDef | None:
    """The definition of any known column: a computed feature or a predicted one."""
    return definition_of(name) or predicted_definition(name)
