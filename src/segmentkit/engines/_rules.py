"""Rule-based segments: ordered, named conditions; the first that matches wins."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._features import CustomerFeatures
from segmentkit._params import InstanceOf, Satisfies
from segmentkit._segmentation import Segment
from segmentkit.engines._base import Segmenter
from segmentkit.engines._expr import Expr, check_names, parse
from segmentkit.errors import RuleSyntaxError

__all__ = ["Rule", "RuleSegmenter", "lifecycle_rules", "load_rules"]

Condition = str | Callable[[pd.DataFrame], Any]


@dataclass(frozen=True)
class Rule:
    """A named segment condition.

    Parameters
    ----------
    name : str
        Segment name.
    when : str or callable
        Condition as text in the rule language (``"frequency >= 4 and
        recency_days <= 90"``) or a function taking the features frame and returning
        one boolean per customer.
    description : str, default=''
        Who the segment is, in words.

    Examples
    --------
    >>> Rule("Big spenders", "monetary >= 500").when
    'monetary >= 500'
    """

    name: str
    when: Condition
    description: str = ""

    @property
    def text(self) -> str:
        """The condition as text (a function's name for callables)."""
        if isinstance(self.when, str):
            return self.when
        return f"<function {getattr(self.when, '__name__', repr(self.when))}>"


RuleLike = Rule | tuple[str, Condition] | tuple[str, Condition, str]


def _is_rule_list(value: Any) -> bool:
    if isinstance(value, Mapping):
        return len(value) > 0
    if isinstance(value, str | bytes) or not isinstance(value, Sequence):
        return False
    return len(value) > 0 and all(
        isinstance(r, Rule) or (isinstance(r, tuple) and len(r) in (2, 3)) for r in value
    )


class RuleSegmenter(Segmenter):
    """Segments from ordered, named rules: the first rule a customer matches wins.

    Rules written as text use a small, whitelisted language (comparisons, ``and``,
    ``or``, ``not``, ``in (...)``, ``between ... and ...``, ``is null``, arithmetic on
    feature names and literals). Text is parsed, never evaluated as Python. Unknown
    feature names and syntax errors are reported with their position at ``fit``.

    Parameters
    ----------
    rules : list of Rule or (name, condition[, description]) tuples, or dict
        Rules in priority order; a dict maps names to conditions.
    default : str, default='Other'
        Segment of customers no rule matches.

    Attributes
    ----------
    rules_ : list of Rule
        The normalised rules.
    segments_ : list of Segment
        One per rule, then the default segment.
    segment_names_ : dict of int to str
        Segment id to name.
    n_segments_ : int
        Number of segments.
    feature_names_in_ : numpy.ndarray
        Features seen in ``fit``.
    n_features_in_ : int
        Number of features seen in ``fit``.

    See Also
    --------
    lifecycle_rules : Ready-made rules for classic e-commerce segments.
    load_rules : Read rules from a TOML, JSON or YAML file.
    RFMSegmenter : Quantile scores and the classic RFM grid.

    Examples
    --------
    >>> import pandas as pd
    >>> import segmentkit as sk
    >>> features = pd.DataFrame({"customer_id": ["a", "b", "c"],
    ...                          "frequency": [1, 6, 2], "monetary": [20.0, 900.0, 80.0]})
    >>> seg = sk.RuleSegmenter(rules=[
    ...     ("VIP", "frequency >= 5 and monetary > 500"),
    ...     ("One-off", "frequency == 1"),
    ... ]).fit_predict(features)
    >>> seg.assignments[["customer_id", "segment"]]
      customer_id  segment
    0           a  One-off
    1           b      VIP
    2           c    Other
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        "rules": [
            Satisfies(
                _is_rule_list,
                "a non-empty list of Rule or (name, condition) tuples, or a dict",
            )
        ],
        "default": [InstanceOf((str,), "a str")],
    }
    engine_name: ClassVar[str] = "rules"
    _state_types: ClassVar[dict[str, Any]] = {"rules_": list, "_parsed": list}

    def __init__(
        self, *, rules: Sequence[RuleLike] | Mapping[str, Condition] = (), default: str = "Other"
    ) -> None:
        self.rules = rules
        self.default = default

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        """Build a segmenter from a rules file (see :func:`load_rules`).

        Parameters
        ----------
        path : str or pathlib.Path
            A ``.toml``, ``.json``, ``.yaml`` or ``.yml`` file.

        Returns
        -------
        RuleSegmenter
            Unfitted, with the file's rules and default segment.
        """
        rules, default = load_rules(path)
        return cls(rules=rules, default=default)

    def _check_params_vs_input(self, features: CustomerFeatures) -> None:
        rules = _normalise(self.rules)
        names = [r.name for r in rules] + [self.default]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            msg = f"Segment names must be unique; repeated: {repeated}."
            raise ValueError(msg)

    def _fit(self, features: CustomerFeatures) -> None:
        self.rules_ = _normalise(self.rules)
        self._parsed: list[Expr | None] = []
        for rule in self.rules_:
            if isinstance(rule.when, str):
                self._parsed.append(_parse_rule(rule, features.columns))
            else:
                self._parsed.append(None)
        self.segments_ = [
            Segment(i, r.name, r.description, r.text) for i, r in enumerate(self.rules_)
        ]
        self.segments_.append(
            Segment(len(self.rules_), self.default, "Customers no rule matched.", "otherwise")
        )

    def _native_fit_frame(self, frame: Any) -> pd.DataFrame:
        # Rules learn nothing from rows: the schema is enough to check the names.
        from segmentkit.engines._native import rules_fit_frame

        return rules_fit_frame(self, frame)

    def _native_assign(self, frame: Any) -> tuple[Any, Any, dict[str, Any]]:
        from segmentkit.engines._native import rules_assign

        return rules_assign(self, frame)

    def _assign(self, features: CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        frame = features.frame
        labels = np.full(len(frame), len(self.rules_), dtype=np.int64)
        undecided = np.ones(len(frame), dtype=bool)
        for index, (rule, expr) in enumerate(zip(self.rules_, self._parsed, strict=True)):
            if expr is not None:
                check_names(expr, frame.columns, text=rule.text)
                hit = np.array(expr.evaluate(frame), dtype=bool)
            else:
                hit = _call(rule, frame)
            hit = hit & undecided
            labels[hit] = index
            undecided &= ~hit
        return labels, {}


_BROWSING_PREFIXES = (
    "views_",
    "add_to_carts_",
    "sessions_",
    "time_on_site_",
    "abandoned_carts_",
    "days_since_last_visit",
)


def _parse_rule(rule: Rule, columns: list[str]) -> Expr:
    """Parse a text rule and check its names, saying which rule failed and how to fix it."""
    text = str(rule.when)
    try:
        expr = parse(text)
        check_names(expr, columns, text=text)
    except RuleSyntaxError as error:
        message = f"Rule {rule.name!r}: {error.message}"
        unknown = [n for n in _names_in(text) if n not in columns]
        if any(n.startswith(_BROWSING_PREFIXES) for n in unknown):
            message += (
                " Browsing features need events: extract_features(transactions, events=...),"
                " or use lifecycle_rules(browsing=False)."
            )
        raise RuleSyntaxError(message, text=text, position=error.position) from None
    return expr


def _names_in(text: str) -> frozenset[str]:
    try:
        return parse(text).names
    except RuleSyntaxError:
        return frozenset()


def _call(rule: Rule, frame: pd.DataFrame) -> np.ndarray:
    result = rule.when(frame)  # type: ignore[operator]
    values = np.asarray(result)
    if values.shape != (len(frame),):
        msg = (
            f"Rule {rule.name!r} returned shape {values.shape}; it must return one value per "
            f"customer ({len(frame)})."
        )
        raise ValueError(msg)
    if values.dtype != bool:
        try:
            values = pd.array(values, dtype="boolean").fillna(False).to_numpy(dtype=bool)
        except (TypeError, ValueError) as error:
            msg = f"Rule {rule.name!r} must return booleans, got dtype {values.dtype}."
            raise ValueError(msg) from error
    return values


def _normalise(rules: Sequence[RuleLike] | Mapping[str, Condition]) -> list[Rule]:
    if isinstance(rules, Mapping):
        return [Rule(str(name), when) for name, when in rules.items()]
    out = []
    for rule in rules:
        out.append(rule if isinstance(rule, Rule) else Rule(*rule))
    for rule in out:
        if not isinstance(rule.when, str) and not callable(rule.when):
            msg = f"Rule {rule.name!r}: the condition must be text or a function."
            raise TypeError(msg)
    return out


def load_rules(path: str | Path) -> tuple[list[Rule], str]:
    """Read segment rules from a TOML, JSON or YAML file.

    The file holds an optional ``default`` segment name and a list ``rules`` of tables
    with ``name``, ``when`` and an optional ``description``, in priority order::

        default = "Occasional"

        [[rules]]
        name = "New customers"
        when = "tenure_days <= 30"
        description = "First order in the last 30 days."

    Parameters
    ----------
    path : str or pathlib.Path
        ``.toml``, ``.json``, ``.yaml`` or ``.yml`` file. YAML needs ``pyyaml``.

    Returns
    -------
    rules : list of Rule
        The rules, in file order.
    default : str
        The default segment name (``'Other'`` when the file has none).

    Raises
    ------
    ValueError
        If the file's structure is not as above; the message says what is wrong.
    """
    path = Path(path)
    try:
        document = _read_document(path)
    except (ValueError, TypeError) as error:  # JSON, TOML and YAML parse errors
        if "unsupported rules file type" in str(error):
            raise
        msg = f"{path}: cannot read the rules file: {error}"
        raise ValueError(msg) from error
    if not isinstance(document, Mapping) or not isinstance(document.get("rules"), list):
        msg = f"{path}: expected a top-level 'rules' list (and optionally 'default')."
        raise ValueError(msg)
    rules = []
    for position, entry in enumerate(document["rules"], start=1):
        if not isinstance(entry, Mapping) or not {"name", "when"} <= set(entry):
            msg = f"{path}: rule {position} needs 'name' and 'when' keys, got {entry!r}."
            raise ValueError(msg)
        unknown = set(entry) - {"name", "when", "description"}
        if unknown:
            msg = f"{path}: rule {position} has unknown keys {sorted(unknown)}."
            raise ValueError(msg)
        rules.append(
            Rule(str(entry["name"]), str(entry["when"]), str(entry.get("description", "")))
        )
    return rules, str(document.get("default", "Other"))


def _read_document(path: Path) -> Any:
    suffix = path.suffix.lower()
    text = path.read_text(encoding="utf-8")
    if suffix == ".toml":
        try:
            import tomllib
        except ModuleNotFoundError:  # Python 3.10
            import tomli as tomllib  # type: ignore[no-redef]
        return tomllib.loads(text)
    if suffix == ".json":
        return json.loads(text)
    if suffix in {".yaml", ".yml"}:
        try:
            import yaml
        except ImportError as error:
            msg = "Reading YAML rules needs pyyaml: pip install 'segmentkit[yaml]'."
            raise ImportError(msg) from error
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ValueError(str(error)) from error
    msg = f"{path}: unsupported rules file type {suffix!r}; use .toml, .json, .yaml or .yml."
    raise ValueError(msg)


def lifecycle_rules(
    *,
    new_days: int = 30,
    inactive_days: int = 180,
    loyal_min_orders: int = 4,
    loyal_max_recency_days: int = 90,
    fan_min_share: float = 0.6,
    fan_min_orders: int = 2,
    abandon_window_days: int = 30,
    browsing: bool = True,
    categories: bool = True,
) -> list[Rule]:
    """Ready-made rules for the classic e-commerce lifecycle segments.

    In priority order: cart abandoners (browsing only), returns only (customers whose
    only lines are returns or cancellations), prospects (browsing only: known but never
    bought), inactive, new, loyal regulars, category fans; use with
    ``RuleSegmenter(rules=lifecycle_rules(), default="Occasional")``.

    Parameters
    ----------
    new_days : int, default=30
        First purchase at most this many days before ``as_of``.
    inactive_days : int, default=180
        No purchase for more than this many days.
    loyal_min_orders : int, default=4
        Orders needed to be a loyal regular...
    loyal_max_recency_days : int, default=90
        ...with a purchase in this many days.
    fan_min_share : float, default=0.6
        Share of spend in one category that makes a category fan...
    fan_min_orders : int, default=2
        ...with at least this many orders.
    abandon_window_days : int, default=30
        Window of the ``abandoned_carts_<n>d`` feature used; must be one of the
        ``windows`` given to :func:`extract_features`.
    browsing : bool, default=True
        Include the two rules that need browsing events.
    categories : bool, default=True
        Include the category-fan rule, which needs a ``category`` column in the
        transactions.

    Returns
    -------
    list of Rule
        The rules, in priority order.

    Examples
    --------
    >>> [rule.name for rule in lifecycle_rules(browsing=False)]
    ['Returns only', 'Inactive', 'New customers', 'Loyal regulars', 'Category fans']
    """
    # Customers whose only lines are returns have a negative net spend and no order:
    # without this rule they would read as prospects or fall to the default.
    returns_only = Rule(
        "Returns only",
        "frequency == 0 and monetary < 0",
        "Only returns or cancellations, no purchase (net spend below 0).",
    )
    rules = []
    if browsing:
        rules += [
            Rule(
                "Cart abandoners",
                f"abandoned_carts_{abandon_window_days}d >= 1",
                f"Left a cart without buying in the last {abandon_window_days} days.",
            ),
            returns_only,
            Rule("Prospects", "frequency == 0", "Known to the store, never bought."),
        ]
    else:
        rules.append(returns_only)
    rules += [
        Rule(
            "Inactive",
            f"recency_days > {inactive_days}",
            f"No purchase for more than {inactive_days} days.",
        ),
        Rule(
            "New customers",
            f"tenure_days <= {new_days}",
            f"First order in the last {new_days} days.",
        ),
        Rule(
            "Loyal regulars",
            f"frequency >= {loyal_min_orders} and recency_days <= {loyal_max_recency_days}",
            f"{loyal_min_orders}+ orders and bought in the last {loyal_max_recency_days} days.",
        ),
    ]
    if categories:
        rules.append(
            Rule(
                "Category fans",
                f"top_category_share >= {fan_min_share} and frequency >= {fan_min_orders}",
                f"At least {fan_min_share:.0%} of spend in one category.",
            )
        )
    return rules
