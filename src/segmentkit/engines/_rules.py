"""Rule-based segments: ordered, named conditions; the first that matches wins."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from typing_extensions import Self

from segmentkit._common._documents import exceeds_depth
from segmentkit._common._params import InstanceOf, Interval, Satisfies, validated
from segmentkit.engines._base import Segmenter
from segmentkit.engines._expr import Call, Expr, check_names, parse
from segmentkit.engines._plan import FitInput, RulePlan
from segmentkit.errors import RuleSyntaxError
from segmentkit.features._catalog import column_definition
from segmentkit.features._extract import CustomerFeatures
from segmentkit.results._segmentation import Segment

__all__ = [
    "Rule",
    "RuleSegmenter",
    "abandoner_rules",
    "lifecycle_rules",
    "load_rules",
    "offer_rules",
]

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

    def _save_refusal(self, owner: str) -> str | None:
        """Why a model holding this rule cannot be saved (read by the model file)."""
        if isinstance(self.when, str):
            return None
        return (
            f"Cannot save {owner}: rule {self.name!r} has a Python function as its "
            f"condition ({self.text}), and functions are code, not data. Write the "
            "condition as text in the rule language (e.g. "
            f"Rule({self.name!r}, 'monetary > 500')) to save the model, or pickle it "
            "yourself."
        )


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
    feature names and literals, and the interest functions ``share``, ``item_share``,
    ``spend``, ``bought``, ``viewed``, ``carted`` and ``abandoned`` that read the
    features' affinity table, e.g. ``share("category", "Tents") >= 0.5 and
    bought("brand", "Acme", within="90d")``). Text is parsed, never evaluated as Python.
    Unknown feature names, unknown attributes and syntax errors are reported with their
    position at ``fit``.

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
    offer_rules : Ready-made rules for how customers respond to discounts.
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
        for rule, parsed in zip(self.rules_, self._parsed, strict=True):
            if parsed is not None and _calls(parsed):
                _check_calls(rule, parsed, features)
        self.segments_ = [
            Segment(i, r.name, r.description, r.text) for i, r in enumerate(self.rules_)
        ]
        self.segments_.append(
            Segment(len(self.rules_), self.default, "Customers no rule matched.", "otherwise")
        )

    def _fit_input(self, columns: list[str]) -> FitInput:
        # Rules learn nothing from rows: the schema is enough to check the names.
        return FitInput(rows="none")

    def _scoring_plan(self, columns: list[str]) -> RulePlan:
        # Each rule is a condition in the rule language; the first match wins.
        rules = []
        for position, (rule, parsed) in enumerate(zip(self.rules_, self._parsed, strict=True)):
            if parsed is None:
                msg = (
                    f"Rule {rule.name!r} is a Python function, which cannot run inside a "
                    "dataframe engine; write it in the rule language to score lazy frames, "
                    "or score pandas features."
                )
                raise NotImplementedError(msg)
            rules.append((position, rule.text))
        return RulePlan(rules, default=len(self.rules_))

    def _assign(self, features: CustomerFeatures) -> tuple[np.ndarray, dict[str, Any]]:
        frame = features.frame
        labels = np.full(len(frame), len(self.rules_), dtype=np.int64)
        undecided = np.ones(len(frame), dtype=bool)
        for index, (rule, expr) in enumerate(zip(self.rules_, self._parsed, strict=True)):
            if expr is not None:
                check_names(expr, frame.columns, text=rule.text)
                if _calls(expr):
                    _check_calls(rule, expr, features)
                hit = np.array(
                    expr.evaluate(frame, affinity=lambda: features.affinity, as_of=features.as_of),
                    dtype=bool,
                )
            else:
                hit = _call(rule, frame)
            hit = hit & undecided
            labels[hit] = index
            undecided &= ~hit
        return labels, {}


def _calls(expr: Expr) -> list[Call]:
    return sorted((n for n in expr._walk() if isinstance(n, Call)), key=lambda n: n.position)


def _check_calls(rule: Rule, expr: Expr, features: CustomerFeatures) -> None:
    """Refuse, naming the rule, interest functions the features cannot answer."""
    try:
        # Evaluated on no customer: checks the affinity table's attributes and columns
        # (computing the table once; it is kept for the assignment).
        expr.evaluate(
            features.frame.iloc[:0],
            affinity=(lambda: features.affinity) if features.has_affinity else None,
            as_of=features.as_of,
        )
    except RuleSyntaxError as error:
        message = f"Rule {rule.name!r}: {error.message}"
        raise RuleSyntaxError(message, text=error.text, position=error.position) from None


def _needs_events(name: str) -> bool:
    definition = column_definition(name)
    return definition is not None and definition.source == "events"


def _parse_rule(rule: Rule, columns: list[str]) -> Expr:
    """Parse a text rule and check its names, saying which rule failed and how to fix it."""
    text = str(rule.when)
    try:
        expr = parse(text)
        check_names(expr, columns, text=text)
    except RuleSyntaxError as error:
        message = f"Rule {rule.name!r}: {error.message}"
        unknown = [n for n in _names_in(text) if n not in columns]
        if any(_needs_events(n) for n in unknown):
            message += (
                " Browsing features need events: extract_features(transactions, events=...),"
                " or use lifecycle_rules(browsing=False)."
            )
        raise RuleSyntaxError(message, text=error.text, position=error.position) from None
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


#: Largest rules file read, in bytes: a real one is a few kilobytes.
MAX_RULES_FILE_BYTES = 1_000_000
#: Most values a YAML rules file may expand to through anchors and aliases.
MAX_YAML_VALUES = 100_000
#: Deepest nesting of lists and tables in a rules file.
MAX_RULES_FILE_DEPTH = 64


def load_rules(path: str | Path) -> tuple[list[Rule], str]:
    """Read segment rules from a TOML, JSON or YAML file.

    The file holds an optional ``default`` segment name and a list ``rules`` of tables
    with ``name``, ``when`` and an optional ``description``, in priority order::

        default = "Occasional"

        [[rules]]
        name = "New customers"
        when = "tenure_days <= 30"
        description = "First order in the last 30 days."

    Rules files often come from outside the code, so reading one is bounded: at most
    :data:`MAX_RULES_FILE_BYTES` bytes, :data:`MAX_RULES_FILE_DEPTH` levels of nesting
    and, for YAML, :data:`MAX_YAML_VALUES` values once anchors and aliases are
    expanded (counted without expanding them).

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
    RuleSyntaxError
        If the file cannot be read, is too large or too deeply nested, or its structure
        is not as above (a ``ValueError``); the message names the rule and the field.

    Examples
    --------
    >>> import pathlib, tempfile
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (folder / "rules.json").write_text('{"rules": [{"name": "VIP", "when": 3}]}')
    >>> load_rules(folder / "rules.json")
    Traceback (most recent call last):
    ...
    segmentkit.errors.RuleSyntaxError: ...rule 1 ('VIP'): 'when' must be text ... got a number.
    """
    path = Path(path)
    try:
        document = _read_document(path)
    except RuleSyntaxError:
        raise
    except RecursionError:
        raise _file_error(path, _too_deep_message()) from None
    except (ValueError, TypeError) as error:  # JSON, TOML and YAML parse errors
        raise _file_error(path, f"cannot read the rules file: {error}") from error
    if not isinstance(document, Mapping) or not isinstance(document.get("rules"), list):
        raise _file_error(path, "expected a top-level 'rules' list (and optionally 'default').")
    rules = []
    for position, entry in enumerate(document["rules"], start=1):
        if not isinstance(entry, Mapping):
            msg = f"rule {position} must be a table with 'name' and 'when', got {_kind(entry)}."
            raise _file_error(path, msg)
        name = entry.get("name")
        label = f"rule {position}" + (f" ({name!r})" if isinstance(name, str) else "")
        missing = [key for key in ("name", "when") if key not in entry]
        if missing:
            keys = sorted(str(k) for k in entry)
            msg = f"{label} needs 'name' and 'when' keys; {missing} missing (it has {keys})."
            raise _file_error(path, msg)
        unknown = set(entry) - {"name", "when", "description"}
        if unknown:
            raise _file_error(path, f"{label} has unknown keys {sorted(map(str, unknown))}.")
        fields = {
            "name": "the segment name",
            "when": 'a condition such as "frequency >= 4"',
            "description": "who the segment is, in words",
        }
        for key, what in fields.items():
            if key in entry and not isinstance(entry[key], str):
                msg = f"{label}: {key!r} must be text ({what}), got {_kind(entry[key])}."
                raise _file_error(path, msg)
        if not entry["name"].strip():
            raise _file_error(path, f"{label}: 'name' is empty; give the segment a name.")
        rules.append(Rule(entry["name"], entry["when"], entry.get("description", "")))
    default = document.get("default", "Other")
    if not isinstance(default, str) or not default.strip():
        msg = (
            "'default' must be non-empty text (the segment of customers no rule matches), "
            f"got {_kind(default)}."
        )
        raise _file_error(path, msg)
    return rules, default


def _file_error(path: Path, message: str) -> RuleSyntaxError:
    return RuleSyntaxError(f"{path}: {message}", text="", position=0)


def _too_deep_message() -> str:
    return (
        f"the rules file is nested more than {MAX_RULES_FILE_DEPTH} levels deep; a rules "
        "file is a list of rules, each a table of text."
    )


def _kind(value: object) -> str:
    """What a value from a file is, in words, without echoing it (it may be huge)."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"


def _read_document(path: Path) -> Any:
    suffix = path.suffix.lower()
    if suffix not in {".toml", ".json", ".yaml", ".yml"}:
        msg = f"unsupported rules file type {suffix!r}; use .toml, .json, .yaml or .yml."
        raise _file_error(path, msg)
    with open(path, "rb") as stream:
        # Read one byte past the limit rather than trust the size on disk (a pipe or
        # device has none).
        data = stream.read(MAX_RULES_FILE_BYTES + 1)
    if len(data) > MAX_RULES_FILE_BYTES:
        msg = (
            f"the file is larger than {MAX_RULES_FILE_BYTES:,} bytes, the limit for a rules "
            "file (a real one is a few kilobytes); check that this is the rules file."
        )
        raise _file_error(path, msg)
    text = data.decode("utf-8")
    if suffix == ".toml":
        if sys.version_info >= (3, 11):
            import tomllib
        else:  # Python 3.10: the same parser from PyPI
            import tomli as tomllib
        document = tomllib.loads(text)
    elif suffix == ".json":
        document = json.loads(text)
    else:
        return _read_yaml(path, text)
    _check_depth(path, document)
    return document


def _check_depth(path: Path, document: Any) -> None:
    if exceeds_depth(document, MAX_RULES_FILE_DEPTH):
        raise _file_error(path, _too_deep_message())


def _read_yaml(path: Path, text: str) -> Any:
    try:
        import yaml
    except ImportError as error:
        msg = "Reading YAML rules needs pyyaml: pip install 'segmentkit[yaml]'."
        raise ImportError(msg) from error
    loader = yaml.SafeLoader(text)
    try:
        # Compose the node graph first: an alias is one shared node there, so its size
        # can be counted before anything is expanded ("billion laughs").
        node = loader.get_single_node()
        if node is None:
            return None
        _check_yaml_size(path, node)
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        raise ValueError(str(error)) from error
    finally:
        loader.dispose()


def _check_yaml_size(path: Path, root: Any) -> None:
    """Refuse a YAML graph that expands to too many values, is too deep, or is cyclic."""
    import yaml

    expanded: dict[int, int] = {}  # node id -> values it expands to
    on_path: set[int] = set()
    stack: list[tuple[Any, int, bool]] = [(root, 1, False)]
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        children: list[Any] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [item for pair in node.value for item in pair]
        if done:
            on_path.discard(key)
            expanded[key] = 1 + sum(expanded[id(child)] for child in children)
            if expanded[key] > MAX_YAML_VALUES:
                msg = (
                    f"the YAML expands to more than {MAX_YAML_VALUES:,} values through "
                    "anchors and aliases (&name and *name); write the rules out without "
                    "aliases."
                )
                raise _file_error(path, msg)
            continue
        if key in expanded:
            continue
        if key in on_path:
            msg = (
                "the YAML refers to itself through an alias (a *name inside the &name it "
                "points to); write the rules out without aliases."
            )
            raise _file_error(path, msg)
        if depth > MAX_RULES_FILE_DEPTH:
            raise _file_error(path, _too_deep_message())
        on_path.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in children)


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
    only lines are returns or cancellations), browsed but didn't buy (browsing only:
    viewed in the abandon window without a purchase in it, never-buyers included),
    prospects (browsing only: known but never bought), inactive, new, loyal regulars,
    category fans; use with ``RuleSegmenter(rules=lifecycle_rules(), default="Occasional")``.

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
        Window of the ``abandoned_carts_<n>d`` and ``views_<n>d`` features used; must be
        one of the ``windows`` given to :func:`extract_features`.
    browsing : bool, default=True
        Include the three rules that need browsing events.
    categories : bool, default=True
        Include the category-fan rule, which needs a ``category`` column in the
        transactions.

    Returns
    -------
    list of Rule
        The rules, in priority order.

    Examples
    --------
    >>> [rule.name for rule in lifecycle_rules()]  # doctest: +NORMALIZE_WHITESPACE
    ['Cart abandoners', 'Returns only', "Browsed, didn't buy", 'Prospects', 'Inactive',
     'New customers', 'Loyal regulars', 'Category fans']
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
            # Before prospects: a never-buyer who is browsing now is the warmer lead.
            # recency_days >= w: the last purchase is at or before as_of - w days, outside
            # the window of views_<w>d (times after as_of - w days).
            Rule(
                "Browsed, didn't buy",
                f"views_{abandon_window_days}d >= 1 and "
                f"(frequency == 0 or recency_days >= {abandon_window_days})",
                f"Viewed in the last {abandon_window_days} days without buying in them.",
            ),
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


def abandoner_rules(
    values: Sequence[str],
    *,
    attribute: str = "category",
    within_days: int = 30,
    exclude_buyers: bool = True,
) -> list[Rule]:
    """Ready-made rules for cart abandoners of given categories (or brands, or products).

    One rule per value, in the order given: customers with an abandoned cart (a visit
    whose add-to-cart saw no purchase within ``abandon_hours``, as for the
    ``abandoned_carts_<n>d`` features) holding that value in the last ``within_days``
    days. They read the features' affinity table, so they need features from
    :func:`extract_features` with browsing events. Put them before broader rules (a
    customer goes to the first rule they match), e.g.
    ``abandoner_rules(["Tents"]) + lifecycle_rules()``.

    Parameters
    ----------
    values : sequence of str
        The attribute values, e.g. ``["Tents", "Sleeping bags"]``.
    attribute : str, default='category'
        The product attribute the values belong to (``'brand'``, a mapped attribute...).
    within_days : int, default=30
        Look-back window of the abandoned cart (and of the purchases below).
    exclude_buyers : bool, default=True
        Leave out customers who bought the value in the same window: the cart was
        recovered, or the need met.

    Returns
    -------
    list of Rule
        Named ``'<value> cart abandoners'``.

    Raises
    ------
    ValueError
        If ``values`` is empty, repeats a value or holds something other than text, or
        ``within_days`` is not a positive whole number.

    Examples
    --------
    >>> rules = abandoner_rules(["Tents"], within_days=7)
    >>> rules[0].name
    'Tents cart abandoners'
    >>> print(rules[0].when)
    abandoned('category', 'Tents', within='7d') and not bought('category', 'Tents', within='7d')
    """
    from segmentkit.engines._expr import Literal

    if isinstance(values, str) or not isinstance(values, Sequence) or not values:
        msg = f"values must be a non-empty list of {attribute} values (text), got {values!r}."
        raise ValueError(msg)
    wrong = [v for v in values if not isinstance(v, str)]
    if wrong:
        msg = f"values must be text; got {wrong[:3]!r}. Write them as they appear in the data."
        raise ValueError(msg)
    repeated = sorted({v for v in values if list(values).count(v) > 1})
    if repeated:
        raise ValueError(f"values repeat {repeated}; list each once.")
    if not isinstance(attribute, str) or not attribute:
        raise ValueError(f"attribute must be a column name such as 'category', got {attribute!r}.")
    if isinstance(within_days, bool) or not isinstance(within_days, int | np.integer):
        raise ValueError(f"within_days must be a whole number of days, got {within_days!r}.")
    if within_days <= 0:
        raise ValueError(f"within_days must be positive, got {within_days}.")
    window = str(Literal(f"{int(within_days)}d"))
    rules = []
    for value in values:
        args = f"{Literal(attribute)}, {Literal(value)}, within={window}"
        when = f"abandoned({args})"
        description = f"Left a cart holding {attribute} {value!r} in the last {within_days} days"
        if exclude_buyers:
            when += f" and not bought({args})"
            description += " and bought none in that time"
        rules.append(Rule(f"{value} cart abandoners", when, description + "."))
    return rules


_SHARE = [Interval(float, 0, 1)]
_ORDERS = [Interval(int, 1, None)]


@validated(
    deal_min_share=_SHARE,
    deal_min_orders=_ORDERS,
    full_price_min_share=_SHARE,
    full_price_min_orders=_ORDERS,
)
def offer_rules(
    *,
    deal_min_share: float = 0.5,
    deal_min_orders: int = 2,
    full_price_min_share: float = 0.9,
    full_price_min_orders: int = 3,
) -> list[Rule]:
    """Ready-made rules for how customers respond to offers: deal seekers, full-price loyalists.

    In priority order: *Deal seekers* (most of their orders had a discount) and
    *Full-price loyalists* (nearly all their spend at full price, over several orders).
    Both need a mapped ``discount`` column (the features ``discounted_order_share`` and
    ``full_price_spend_share``). Use them alone, with a default segment for everyone
    else, or put them in front of :func:`lifecycle_rules`.

    Parameters
    ----------
    deal_min_share : float, default=0.5
        Share of orders with a discounted line that makes a deal seeker...
    deal_min_orders : int, default=2
        ...with at least this many orders.
    full_price_min_share : float, default=0.9
        Share of spend on lines without a discount that makes a full-price loyalist...
    full_price_min_orders : int, default=3
        ...with at least this many orders.

    Returns
    -------
    list of Rule
        The rules, in priority order.

    Examples
    --------
    >>> import segmentkit as sk
    >>> [(rule.name, rule.when) for rule in sk.offer_rules()]
    [('Deal seekers', 'discounted_order_share >= 0.5 and frequency >= 2'), \
('Full-price loyalists', 'full_price_spend_share >= 0.9 and frequency >= 3')]
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> engine = sk.RuleSegmenter(rules=sk.offer_rules(), default="Mixed")
    >>> engine.fit_predict(features).summary()["customers"].to_dict()
    {'Deal seekers': 576, 'Mixed': 210, 'Full-price loyalists': 14}
    """
    return [
        Rule(
            "Deal seekers",
            f"discounted_order_share >= {deal_min_share} and frequency >= {deal_min_orders}",
            f"At least {deal_min_share:.0%} of their {deal_min_orders}+ orders had a "
            "discounted line.",
        ),
        Rule(
            "Full-price loyalists",
            f"full_price_spend_share >= {full_price_min_share} and "
            f"frequency >= {full_price_min_orders}",
            f"{full_price_min_orders}+ orders, at least {full_price_min_share:.0%} of spend "
            "at full price.",
        ),
    ]
