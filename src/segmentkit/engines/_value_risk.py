"""Value × risk: predicted value crossed with the probability of still being a customer.

The columns come from :func:`segmentkit.add_predictions` (``p_alive`` and a value such
as ``predicted_clv_12m``); this module only reads them, so it stays below the models.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from segmentkit._common._params import NONE, InstanceOf, Satisfies
from segmentkit.engines._expr import check_names, evaluate_numbers, parse
from segmentkit.engines._plan import FitInput
from segmentkit.engines._rules import Rule, RuleSegmenter, _parse_rule
from segmentkit.errors import InvalidParameterError, RuleSyntaxError
from segmentkit.features._catalog import column_definition
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import Segment

__all__ = ["VALUE_RISK_DEFAULT", "ValueRiskSegmenter", "value_risk_rules"]

#: The segment of customers no value × risk rule matches: low value, neither active
#: nor lost. Pass it as ``default`` to :class:`RuleSegmenter`.
VALUE_RISK_DEFAULT = "Low value · fading"

_HINT = (
    "Add the predictions first: features = sk.add_predictions(features) (on the command "
    "line, 'segmentkit segment ... --engine value-risk' does it)."
)


def _pair(value: Any) -> tuple[float, float] | None:
    """Two finite real numbers, as floats; ``None`` for anything else."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence) or len(value) != 2:
        return None
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in value):
        return None
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return low, high


def _is_quantiles(value: Any) -> bool:
    pair = _pair(value)
    return pair is not None and 0 < pair[0] < pair[1] < 1


def _is_thresholds(value: Any) -> bool:
    pair = _pair(value)
    return pair is not None and pair[0] < pair[1]


def _is_p_alive(value: Any) -> bool:
    pair = _pair(value)
    return pair is not None and 0 <= pair[0] <= pair[1] <= 1


_PARAMETERS: dict[str, list[Any]] = {
    "value": [InstanceOf((str,), "a column name or an expression in the rule language"), NONE],
    "value_quantiles": [
        Satisfies(_is_quantiles, "two quantiles (mid, high) with 0 < mid < high < 1")
    ],
    "value_thresholds": [
        Satisfies(_is_thresholds, "two amounts (mid, high) with mid < high"),
        NONE,
    ],
    "p_alive_thresholds": [
        Satisfies(_is_p_alive, "two probabilities (lost, active) with 0 <= lost <= active <= 1")
    ],
}


@dataclass(frozen=True)
class _Split:
    """Where value × risk cuts, and where the value cuts came from."""

    value: str
    mid: float
    high: float
    lost: float
    active: float
    mid_quantile: float | None
    high_quantile: float | None
    n_predicted: int | None


def _rounded(value: float) -> float:
    # Four significant digits: readable in the rule text, and independent of the last
    # bits of the predictions (which may differ between CPUs).
    return float(f"{value:.4g}")


def _value_of(columns: Sequence[str], value: str | None) -> str:
    if value is not None:
        try:
            check_names(parse(value), columns, text=value)
        except RuleSyntaxError as error:
            msg = f"value={value!r}: {error.message} {_HINT}"
            raise InvalidParameterError(msg) from None
        return value
    clv = sorted(c for c in columns if c.startswith("predicted_clv_"))
    if len(clv) == 1:
        return clv[0]
    if len(clv) > 1:
        msg = f"The features have several predicted CLV columns {clv}; choose one: value=..."
        raise InvalidParameterError(msg)
    expected = sorted(c for c in columns if c.startswith("expected_purchases_"))
    if len(expected) == 1 and "expected_spend" in columns:
        return f"{expected[0]} * expected_spend"
    msg = (
        "Value × risk needs a predicted value: a 'predicted_clv_<h>' column, or "
        f"'expected_purchases_<h>' and 'expected_spend' (or value=...). {_HINT}"
    )
    raise InvalidParameterError(msg)


def _split(
    frame: pd.DataFrame | None,
    value: str | None,
    value_quantiles: Sequence[float],
    value_thresholds: Sequence[float] | None,
    p_alive_thresholds: Sequence[float],
) -> _Split:
    lost, active = (float(v) for v in p_alive_thresholds)
    if value_thresholds is not None:
        mid, high = (float(v) for v in value_thresholds)
        if frame is None:
            chosen = value if value is not None else "predicted_clv_12m"
        else:
            chosen = _value_of(list(frame.columns), value)
        return _Split(chosen, mid, high, lost, active, None, None, None)
    if frame is None:
        msg = (
            "The value thresholds are quantiles of the data: pass the features "
            "(value_risk_rules(features)), or amounts: value_thresholds=(mid, high)."
        )
        raise InvalidParameterError(msg)
    chosen = _value_of(list(frame.columns), value)
    if "p_alive" not in frame.columns:
        msg = f"Value × risk needs the 'p_alive' column. {_HINT}"
        raise InvalidParameterError(msg)
    values = evaluate_numbers(chosen, frame)
    alive = pd.to_numeric(frame["p_alive"], errors="coerce").to_numpy(float)
    predicted = values[np.isfinite(values) & np.isfinite(alive)]
    if predicted.size == 0:
        msg = (
            f"No customer has both a predicted value ({chosen}) and p_alive, so there is "
            "nothing to take quantiles of: check that the customers bought before as_of, "
            "or give value_thresholds=(mid, high)."
        )
        raise InvalidParameterError(msg)
    q_mid, q_high = (float(v) for v in value_quantiles)
    # Observed values (no interpolation), rounded: the same data give the same cuts.
    cuts = np.quantile(predicted, [q_mid, q_high], method="inverted_cdf")
    mid, high = _rounded(float(cuts[0])), _rounded(float(cuts[1]))
    return _Split(chosen, mid, high, lost, active, q_mid, q_high, int(predicted.size))


def _number(value: float) -> str:
    return repr(float(value))


def _amount(value: float) -> str:
    return f"{value:,.2f}"


def _phrase(value: str) -> str:
    """The value in words, to use inside a sentence: 'predicted CLV (next 12 months)'."""
    definition = column_definition(value)
    if definition is None or not definition.label:
        return value
    label = definition.label.replace(", next ", " (next ")
    label = label + ")" if "(next " in label else label
    return label[0].lower() + label[1:]


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def _rules(split: _Split) -> list[Rule]:
    v = split.value
    term = f"({v})" if not v.isidentifier() else v
    high, mid = _number(split.high), _number(split.mid)
    lost, active = _number(split.lost), _number(split.active)
    label = _phrase(v)
    h, m = _amount(split.high), _amount(split.mid)
    a, lo = f"{split.active:g}", f"{split.lost:g}"
    origin = ""
    if split.high_quantile is not None and split.mid_quantile is not None:
        origin = (
            f" ({h} and {m} are the {split.high_quantile:.0%} and {split.mid_quantile:.0%} "
            f"quantiles of the {split.n_predicted} customers with a prediction)"
        )
    return [
        Rule(
            "No prediction",
            f"p_alive is null or {term} is null",
            "No purchase before as_of, so the models make no prediction: reach them with "
            "welcome or first-purchase campaigns.",
        ),
        Rule(
            "High value · slipping away",
            f"{term} >= {high} and p_alive < {active}",
            f"{_sentence(label)} of {h} or more, but a probability of still being a customer "
            f"below {a}: valuable customers drifting away; win them back first.",
        ),
        Rule(
            "High value · loyal core",
            f"{term} >= {high} and p_alive >= {active}",
            f"{_sentence(label)} of {h} or more and likely active (p_alive {a} or more): the most "
            f"valuable customers; reward and retain them{origin}.",
        ),
        Rule(
            "Unlikely to return",
            f"{term} < {high} and p_alive < {lost}",
            f"Probably gone (p_alive below {lo}) and {label} below {h}: a low-cost "
            "win-back at most; leave them out of paid audiences.",
        ),
        Rule(
            "Rising",
            f"{term} >= {mid} and {term} < {high} and p_alive >= {active}",
            f"{_sentence(label)} from {m} to below {h} and likely active (p_alive {a} or more): "
            "grow them into the loyal core.",
        ),
        Rule(
            "Mid value · cooling",
            f"{term} >= {mid} and {term} < {high} and p_alive >= {lost} and p_alive < {active}",
            f"{_sentence(label)} from {m} to below {h}, p_alive from {lo} to below {a}: "
            "re-engage them before they slip away.",
        ),
        Rule(
            "Low value · active",
            f"{term} < {mid} and p_alive >= {active}",
            f"{_sentence(label)} below {m} and likely active (p_alive {a} or more): nurture them "
            "with low-cost campaigns.",
        ),
    ]


def _default_segment(split: _Split, segment_id: int) -> Segment:
    v = split.value
    term = f"({v})" if not v.isidentifier() else v
    return Segment(
        segment_id,
        VALUE_RISK_DEFAULT,
        f"{_sentence(_phrase(v))} below {_amount(split.mid)} and p_alive from "
        f"{split.lost:g} to below {split.active:g}: low value and cooling; automated "
        "campaigns only.",
        f"{term} < {_number(split.mid)} and p_alive >= {_number(split.lost)} "
        f"and p_alive < {_number(split.active)}",
    )


def value_risk_rules(
    features: CustomerFeatures | pd.DataFrame | None = None,
    *,
    value: str | None = None,
    value_quantiles: Sequence[float] = (0.5, 0.8),
    value_thresholds: Sequence[float] | None = None,
    p_alive_thresholds: Sequence[float] = (0.3, 0.7),
) -> list[Rule]:
    """Rules crossing predicted value with churn risk into segments a marketer acts on.

    Value is cut in three (high, mid, low) at two amounts: quantiles of the customers
    with a prediction (by default the median and the 80% quantile: the top 20% are
    "high value"), or amounts given in ``value_thresholds``. The probability of still
    being a customer (``p_alive``) is cut in three: active (``p_alive >= active``),
    cooling, and lost (``p_alive < lost``). In priority order: *No prediction* (no
    purchase before ``as_of``), *High value · slipping away*, *High value · loyal
    core*, *Unlikely to return*, *Rising*, *Mid value · cooling*, *Low value ·
    active*; the rest is :data:`VALUE_RISK_DEFAULT` (*Low value · fading*). Each
    rule's text holds its cuts as numbers and its description says them in words, so
    the segments can be read and reproduced; :class:`ValueRiskSegmenter` does the
    same in one engine and keeps the cuts in ``cuts_``.

    Quantiles are taken without interpolation (an observed value) and rounded to 4
    significant digits: the same data give the same cuts on every machine.

    Parameters
    ----------
    features : CustomerFeatures or pandas.DataFrame, optional
        Features with predictions (:func:`segmentkit.add_predictions`); needed for
        quantile cuts, not with ``value_thresholds``.
    value : str, optional
        The predicted value: a column or an expression in the rule language (e.g.
        ``'expected_purchases_52w * expected_spend'``). By default the one
        ``predicted_clv_<h>`` column, else expected purchases × expected spend.
    value_quantiles : (float, float), default=(0.5, 0.8)
        Quantiles of the mid and high value cuts, ``0 < mid < high < 1``.
    value_thresholds : (float, float), optional
        Amounts of the mid and high value cuts (``mid < high``), instead of quantiles.
    p_alive_thresholds : (float, float), default=(0.3, 0.7)
        ``(lost, active)``: below ``lost`` a customer is probably gone; from ``active``
        on, probably still buying.

    Returns
    -------
    list of Rule
        Use with ``RuleSegmenter(rules=..., default=VALUE_RISK_DEFAULT)``.

    Raises
    ------
    InvalidParameterError
        On a bad parameter, missing predicted columns, or quantile cuts without
        features.

    Examples
    --------
    >>> import segmentkit as sk
    >>> rules = sk.value_risk_rules(value_thresholds=(50, 200))
    >>> [(rule.name, rule.when) for rule in rules[1:3]]  # doctest: +NORMALIZE_WHITESPACE
    [('High value · slipping away', 'predicted_clv_12m >= 200.0 and p_alive < 0.7'),
     ('High value · loyal core', 'predicted_clv_12m >= 200.0 and p_alive >= 0.7')]
    """
    from segmentkit._common._params import validate_params

    params = {
        "value": value,
        "value_quantiles": value_quantiles,
        "value_thresholds": value_thresholds,
        "p_alive_thresholds": p_alive_thresholds,
    }
    validate_params("value_risk_rules", params, _PARAMETERS)
    frame = getattr(features, "frame", features)
    if frame is not None and not isinstance(frame, pd.DataFrame):
        msg = f"features must be CustomerFeatures or a DataFrame; got {type(features).__name__}."
        raise TypeError(msg)
    split = _split(frame, value, value_quantiles, value_thresholds, p_alive_thresholds)
    return _rules(split)


class ValueRiskSegmenter(RuleSegmenter):
    """Segments from predicted value × churn risk (see :func:`value_risk_rules`).

    ``fit`` takes the value cuts from the data (quantiles) or the parameters, writes
    the rules and keeps the cuts in ``cuts_``; ``predict`` applies the same
    rules to any customers, so a saved model scores new features with the same cuts.

    Parameters
    ----------
    value : str, optional
        The predicted value: a column or an expression (default: the
        ``predicted_clv_<h>`` column, else expected purchases × expected spend).
    value_quantiles : (float, float), default=(0.5, 0.8)
        Quantiles of the mid and high value cuts among customers with a prediction.
    value_thresholds : (float, float), optional
        Amounts of the mid and high value cuts, instead of quantiles.
    p_alive_thresholds : (float, float), default=(0.3, 0.7)
        ``(lost, active)`` cuts of ``p_alive``.

    Attributes
    ----------
    cuts_ : dict
        ``value`` (the column or expression), ``mid``, ``high`` (amounts), ``lost``,
        ``active`` (p_alive), ``mid_quantile``, ``high_quantile`` and
        ``n_predicted`` (customers the quantiles were taken over; ``None`` with
        ``value_thresholds``).
    rules_, segments_, segment_names_, n_segments_
        As for :class:`RuleSegmenter`.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> frame = pd.DataFrame({"customer_id": ["a", "b", "c", "d"],
    ...                       "p_alive": [0.9, 0.2, 0.95, None],
    ...                       "predicted_clv_12m": [400.0, 30.0, 120.0, None]})
    >>> seg = sk.ValueRiskSegmenter(value_thresholds=(100, 300)).fit_predict(frame)
    >>> seg.assignments["segment"].tolist()
    ['High value · loyal core', 'Unlikely to return', 'Rising', 'No prediction']
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = _PARAMETERS
    engine_name: ClassVar[str] = "value-risk"
    _state_types: ClassVar[dict[str, Any]] = {**RuleSegmenter._state_types, "cuts_": dict}

    def __init__(
        self,
        *,
        value: str | None = None,
        value_quantiles: Sequence[float] = (0.5, 0.8),
        value_thresholds: Sequence[float] | None = None,
        p_alive_thresholds: Sequence[float] = (0.3, 0.7),
    ) -> None:
        self.value = value
        self.value_quantiles = value_quantiles
        self.value_thresholds = value_thresholds
        self.p_alive_thresholds = p_alive_thresholds

    def _check_params_vs_input(self, features: CustomerFeatures) -> None:
        if "p_alive" not in features.frame.columns:
            msg = f"ValueRiskSegmenter needs the 'p_alive' column. {_HINT}"
            raise InvalidParameterError(msg)

    def _fit(self, features: CustomerFeatures) -> None:
        split = _split(
            features.frame,
            self.value,
            self.value_quantiles,
            self.value_thresholds,
            self.p_alive_thresholds,
        )
        self.cuts_ = asdict(split)
        self.rules_ = _rules(split)
        self._parsed = [_parse_rule(rule, features.columns) for rule in self.rules_]
        self.segments_ = [
            Segment(i, r.name, r.description, r.text) for i, r in enumerate(self.rules_)
        ]
        self.segments_.append(_default_segment(split, len(self.rules_)))

    def _fit_input(self, columns: list[str]) -> FitInput:
        if self.value_thresholds is not None:
            return FitInput(rows="none")
        # Quantile cuts need the value and p_alive of every customer, nothing else.
        try:
            needed = sorted(parse(_value_of(columns, self.value)).names | {"p_alive"})
        except RuleSyntaxError:
            needed = ["p_alive"]
        return FitInput(columns=["customer_id", *[c for c in needed if c in columns]])
