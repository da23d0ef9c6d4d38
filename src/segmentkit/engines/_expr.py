"""A small, safe rule language evaluated column-wise over a DataFrame.

Rules such as ``"frequency == 1 and tenure_days <= 30"`` come from config files, so
they are never handed to ``eval``, ``exec``, ``DataFrame.query`` or ``pandas.eval``:
a tokenizer and recursive-descent parser build an immutable AST that only knows the
grammar below (keywords are case-insensitive)::

    expr      := or_expr
    or_expr   := and_expr ("or" and_expr)*
    and_expr  := not_expr ("and" not_expr)*
    not_expr  := "not" not_expr | predicate
    predicate := arith ( compop arith
                       | ["not"] "in" ( "(" literal ("," literal)* [","] ")" | "[" ... "]" )
                       | ["not"] "between" arith "and" arith
                       | "is" ["not"] "null" )?
    compop    := "==" | "=" | "!=" | "<" | "<=" | ">" | ">="
    arith     := term (("+" | "-") term)*
    term      := unary (("*" | "/" | "%") unary)*
    unary     := "-" unary | atom
    atom      := NUMBER | STRING | "true" | "false" | NAME | `quoted name` | "(" expr ")"
               | call
    call      := FUNCTION "(" STRING "," STRING ["," "within" "=" STRING] ")"
    FUNCTION  := "share" | "item_share" | "spend"            (numbers; no within)
               | "bought" | "viewed" | "carted" | "abandoned" (conditions; within allowed)

Semantics
---------
* A comparison, ``in``, ``not in``, ``between`` or ``not between`` with a missing
  operand (NaN, None, NaT, NA) is False: SQL-like, but two-valued. ``not`` negates
  that result, so where ``x`` is missing ``x != 1`` is False but ``not x == 1`` is True.
  ``is null`` and ``is not null`` test missingness.
* Arithmetic needs numbers (booleans count as 0/1), runs in float64, propagates
  missing values and gives NaN for division or modulo by zero.
* ``and``, ``or``, ``not`` and the whole rule take conditions: predicates, boolean
  columns (a nullable boolean's NA counts as False) or ``true``/``false``.
* Comparisons behave as in pandas (``category == 'a'`` works, ``int == 'a'`` is
  False); where pandas refuses (``str < int``) a :class:`RuleSyntaxError` names the
  operands and their types.

Interest functions
------------------
A function call tests one value of one product attribute without declaring it first:
``share("category", "Running") >= 0.5 and bought("brand", "Acme", within="90d")``.
Its arguments are text in quotes (the attribute, such as ``category`` or ``brand``,
then the value); nothing else is accepted. Each reads the customers' affinity table
(:attr:`CustomerFeatures.affinity <segmentkit.CustomerFeatures.affinity>`, see
:func:`segmentkit.affinity`):

* ``share(attr, value)``: share of the customer's spend on lines whose ``attr`` is
  known that went to ``value`` (0 to 1); ``item_share`` the same for items;
  ``spend`` the amount. All three are 0 for customers without such a purchase.
* ``bought(attr, value)``: a purchase line of ``value`` on or before ``as_of``;
  ``viewed``, ``carted`` and ``abandoned`` a view, an add-to-cart, or an add-to-cart in a
  visit counted as an abandoned cart (these three need browsing events). With
  ``within="90d"`` (days, ``"<n>d"``, or weeks, ``"<n>w"``) the last such event must be
  in the window before ``as_of``.

A value that never occurs in the data gives 0 and False; an attribute the table does
not hold is an error naming the attributes it has. Function names are
case-insensitive; a backquoted name followed by ``(`` is never a call.
"""

from __future__ import annotations

import difflib
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, NamedTuple

import numpy as np
import pandas as pd

from segmentkit.errors import RuleSyntaxError

__all__ = [
    "FUNCTIONS",
    "Arithmetic",
    "Between",
    "BoolOp",
    "Call",
    "Comparison",
    "Expr",
    "InList",
    "IsNull",
    "Literal",
    "Name",
    "Negate",
    "Not",
    "check_names",
    "parse",
]

_KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "null", "true", "false"})
_COMPARE = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
_ARITHMETIC = {"+": np.add, "-": np.subtract, "*": np.multiply, "/": np.divide, "%": np.mod}
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_TOKEN = re.compile(
    r"(?P<number>(?:\d[\d_]*(?:\.[\d_]*)?|\.\d[\d_]*)(?:[eE][+-]?\d[\d_]*)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op><=|>=|==|!=|[-+*/%()\[\],<>=])"
)
_NUMBER_TAIL = re.compile(r"[\w.]*")
#: Interest functions of the rule language: name to (what it returns, takes ``within``).
FUNCTIONS: dict[str, tuple[str, bool]] = {
    "share": ("number", False),
    "item_share": ("number", False),
    "spend": ("number", False),
    "bought": ("condition", True),
    "viewed": ("condition", True),
    "carted": ("condition", True),
    "abandoned": ("condition", True),
}
#: The affinity column each function reads.
_FUNCTION_COLUMNS = {
    "share": "spend_share",
    "item_share": "item_share",
    "spend": "spend",
    "bought": "last_bought",
    "viewed": "last_viewed",
    "carted": "last_carted",
    "abandoned": "last_abandoned",
}
_WINDOW = re.compile(r"\s*([0-9]+)\s*([dDwW])\s*\Z")
_TOO_DEEP = "Rule is nested too deeply, starting at position 0; split it into simpler rules."
#: Longest rule text parsed, in characters.
MAX_RULE_LENGTH = 100_000
#: Deepest nesting of a rule: parentheses, ``not``, ``-`` and chained arithmetic
#: (``a + b + c`` nests two levels). Deeper trees would exhaust Python's stack.
MAX_RULE_DEPTH = 50


# --------------------------------------------------------------------------- AST


@dataclass(frozen=True)
class Expr:
    """Base of the AST nodes; ``position`` is the node's offset in the parsed text."""

    position: int = field(default=0, compare=False, repr=False, kw_only=True)
    _prec: ClassVar[int] = 8  # binding strength, used to print only the needed parentheses

    @property
    def names(self) -> frozenset[str]:
        """Feature names referenced anywhere in the expression."""
        return frozenset(node.name for node in self._walk() if isinstance(node, Name))

    def _walk(self) -> Iterator[Expr]:
        # Iterative, pre-order: a deep tree built in Python must not exhaust the stack.
        stack: list[Expr] = [self]
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node._children()))

    def _children(self) -> list[Expr]:
        children: list[Expr] = []
        for f in fields(self):
            value = getattr(self, f.name)
            for child in value if isinstance(value, tuple) else (value,):
                if isinstance(child, Expr):
                    children.append(child)
        return children

    def __str__(self) -> str:
        return self._render()

    def _render(self) -> str:
        raise NotImplementedError

    def _value(self, ctx: _Context) -> Any:
        raise NotImplementedError

    def evaluate(
        self,
        frame: pd.DataFrame,
        *,
        affinity: Callable[[], pd.DataFrame] | None = None,
        as_of: pd.Timestamp | None = None,
    ) -> pd.Series:
        """Evaluate the rule on every row of ``frame`` at once.

        Parameters
        ----------
        frame : pandas.DataFrame
            One column per feature the rule names, indexed by customer id.
        affinity : callable, optional
            Returns the customers' affinity table (see :func:`segmentkit.affinity`);
            needed by the interest functions (``share``, ``bought``...), called once
            when the rule has one.
        as_of : pandas.Timestamp, optional
            End of observation, for ``within`` windows.

        Returns
        -------
        pandas.Series
            Boolean, no missing values, aligned to ``frame.index``.

        Raises
        ------
        RuleSyntaxError
            If a feature is unknown, the rule is not a condition or operand types clash.
            Positions refer to ``str(self)``.
        """
        try:
            # Positions must match the text shown in errors, so work on the canonical text.
            text = str(self)
            tree = parse(text)
            check_names(tree, [c for c in frame.columns if isinstance(c, str)], text=text)
            ctx = _Context(frame, text, _once(affinity), as_of)
            value = tree._value(ctx)
        except RecursionError:
            raise RuleSyntaxError(_TOO_DEEP, text="", position=0) from None
        if not _is_condition(value):
            raise ctx.error(
                f"Expected a condition at position 0, found {_describe(tree, value)}; "
                "a rule must be true or false for each row.",
                0,
            )
        return pd.Series(_as_mask(value, ctx.n), index=frame.index, dtype=bool)


def _once(source: Callable[[], pd.DataFrame] | None) -> Callable[[], pd.DataFrame] | None:
    """``source``, asked at most once however many functions a rule holds."""
    if source is None:
        return None
    kept: list[pd.DataFrame] = []

    def table() -> pd.DataFrame:
        if not kept:
            kept.append(source())
        return kept[0]

    return table


def _wrap(node: Expr, min_prec: int) -> str:
    return f"({node})" if node._prec < min_prec else str(node)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, eq=False)
class Literal(Expr):
    value: bool | int | float | str

    # 1 == 1.0 == True in Python, but they print differently, so they are different ASTs.
    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Literal)
            and type(self.value) is type(other.value)
            and self.value == other.value
        )

    def __hash__(self) -> int:
        return hash((type(self.value), self.value))

    def _render(self) -> str:
        if isinstance(self.value, bool):
            return "true" if self.value else "false"
        if isinstance(self.value, str):
            return "'" + self.value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return repr(self.value)

    def _value(self, ctx: _Context) -> Any:
        return self.value


@dataclass(frozen=True)
class Name(Expr):
    name: str

    def _render(self) -> str:
        if _IDENTIFIER.match(self.name) and self.name.lower() not in _KEYWORDS:
            return self.name
        return f"`{self.name}`"

    def _value(self, ctx: _Context) -> Any:
        column = ctx.frame[self.name]
        if isinstance(column, pd.DataFrame):
            raise ctx.error(
                f"Feature '{self.name}' at position {self.position} matches "
                f"{column.shape[1]} columns.",
                self.position,
            )
        # A fresh RangeIndex lets intermediate results line up by position.
        return column.reset_index(drop=True)


def window_days(text: str) -> int | None:
    """Days in a ``within`` window (``'90d'``, ``'12w'``), or ``None`` if it is not one."""
    match = _WINDOW.match(text)
    if match is None or int(match.group(1)) <= 0:
        return None
    return int(match.group(1)) * (7 if match.group(2).lower() == "w" else 1)


@dataclass(frozen=True)
class Call(Expr):
    """An interest function: ``share('category', 'Tents')``, ``bought(..., within='90d')``."""

    function: str
    attribute: str
    value: str
    within: str | None = None

    def _render(self) -> str:
        args = [Literal(self.attribute), Literal(self.value)]
        text = f"{self.function}({args[0]}, {args[1]}"
        if self.within is not None:
            text += f", within={Literal(self.within)}"
        return text + ")"

    def _value(self, ctx: _Context) -> Any:
        table = _affinity_of(ctx, self)
        column = _FUNCTION_COLUMNS[self.function]
        if column not in table.columns:
            raise ctx.error(
                f"{self.function}() at position {self.position} needs browsing events: "
                "extract_features(transactions, events=...) adds views, carts and "
                "abandoned carts to the affinity table.",
                self.position,
            )
        rows = table[
            (table["attribute"].to_numpy() == self.attribute)
            & (table["value"].to_numpy() == self.value)
        ]
        ids = ctx.frame.index.astype(str)
        values = pd.Series(rows[column].array, index=pd.Index(rows["customer_id"].to_numpy()))
        values = values.reindex(ids)
        if FUNCTIONS[self.function][0] == "number":
            numbers = values.to_numpy(dtype=float, na_value=np.nan)
            return pd.Series(np.nan_to_num(numbers, nan=0.0))
        present = values.notna().to_numpy(dtype=bool)
        if self.within is not None:
            # As the windowed features: after as_of minus the window (up to as_of).
            start = ctx.as_of - pd.Timedelta(days=window_days(self.within) or 0)
            recent = np.asarray(pd.DatetimeIndex(values) > start, dtype=bool)
            present = present & recent
        return pd.Series(present)


def _affinity_of(ctx: _Context, call: Call) -> pd.DataFrame:
    if ctx.affinity is None or ctx.as_of is None:
        raise ctx.error(
            f"{call.function}() at position {call.position} reads the customers' affinity "
            "table, which only features from extract_features carry: features built with "
            "CustomerFeatures.from_frame, from a plain frame or from a frame of another "
            "library (polars, DuckDB, Spark, Dask) have none. Compute them with "
            "sk.extract_features(transactions, events, output='pandas') and segment those.",
            call.position,
        )
    table = ctx.affinity()
    known = list(table.attrs.get("attributes", pd.unique(table["attribute"])))
    if call.attribute not in known:
        close = difflib.get_close_matches(call.attribute, [str(k) for k in known], n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ctx.error(
            f"Unknown product attribute '{call.attribute}' in {call.function}() at position "
            f"{call.position}.{hint} The affinity table has the attributes {known}; map "
            "other product columns when validating the transactions.",
            call.position,
        )
    return table


@dataclass(frozen=True)
class Negate(Expr):
    operand: Expr
    _prec = 7

    def _render(self) -> str:
        # The parser folds "-<number>" into a negative literal; parentheses keep the node.
        if isinstance(self.operand, Literal) and _is_number(self.operand.value):
            return f"-({self.operand})"
        return "-" + _wrap(self.operand, 7)

    def _value(self, ctx: _Context) -> Any:
        value = _numbers(ctx, self, "-", self.operand, self.operand._value(ctx))
        return _series_or_float(-value)


@dataclass(frozen=True)
class Arithmetic(Expr):
    op: str
    left: Expr
    right: Expr

    @property
    def _prec(self) -> int:  # type: ignore[override]
        return 5 if self.op in "+-" else 6

    def _render(self) -> str:
        return f"{_wrap(self.left, self._prec)} {self.op} {_wrap(self.right, self._prec + 1)}"

    def _value(self, ctx: _Context) -> Any:
        left = _numbers(ctx, self, self.op, self.left, self.left._value(ctx))
        right = _numbers(ctx, self, self.op, self.right, self.right._value(ctx))
        with np.errstate(all="ignore"):
            result = _ARITHMETIC[self.op](left, right)
            if self.op in "/%":
                result = np.where(np.equal(right, 0), np.nan, result)
        return _series_or_float(result)


@dataclass(frozen=True)
class Comparison(Expr):
    op: str
    left: Expr
    right: Expr
    _prec = 4

    def _render(self) -> str:
        return f"{_wrap(self.left, 5)} {self.op} {_wrap(self.right, 5)}"

    def _value(self, ctx: _Context) -> Any:
        left, right = self.left._value(ctx), self.right._value(ctx)
        return pd.Series(_compare(ctx, self, self.op, (self.left, left), (self.right, right)))


@dataclass(frozen=True)
class InList(Expr):
    operand: Expr
    values: tuple[Literal, ...]
    negated: bool = False
    _prec = 4

    def _render(self) -> str:
        keyword = "not in" if self.negated else "in"
        return f"{_wrap(self.operand, 5)} {keyword} ({', '.join(map(str, self.values))})"

    def _value(self, ctx: _Context) -> Any:
        value = self.operand._value(ctx)
        values = [literal.value for literal in self.values]
        valid = ~_missing(value, ctx.n)
        hit = np.zeros(ctx.n, dtype=bool)
        try:
            if isinstance(value, pd.Series):
                hit[valid] = value[valid].isin(values).to_numpy(dtype=bool)
            else:
                hit[valid] = value in values
        except (TypeError, ValueError) as exc:
            raise ctx.error(
                f"Cannot test {_describe(self.operand, value)} against the list at "
                f"position {self.position}.",
                self.position,
            ) from exc
        return pd.Series((hit != self.negated) & valid)


@dataclass(frozen=True)
class Between(Expr):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False
    _prec = 4

    def _render(self) -> str:
        keyword = "not between" if self.negated else "between"
        return f"{_wrap(self.operand, 5)} {keyword} {_wrap(self.low, 5)} and {_wrap(self.high, 5)}"

    def _value(self, ctx: _Context) -> Any:
        operand = (self.operand, self.operand._value(ctx))
        low, high = (self.low, self.low._value(ctx)), (self.high, self.high._value(ctx))
        inside = _compare(ctx, self, ">=", operand, low) & _compare(ctx, self, "<=", operand, high)
        if not self.negated:
            return pd.Series(inside)
        valid = ~(_missing(operand[1], ctx.n) | _missing(low[1], ctx.n) | _missing(high[1], ctx.n))
        return pd.Series(~inside & valid)


@dataclass(frozen=True)
class IsNull(Expr):
    operand: Expr
    negated: bool = False
    _prec = 4

    def _render(self) -> str:
        return f"{_wrap(self.operand, 5)} is {'not null' if self.negated else 'null'}"

    def _value(self, ctx: _Context) -> Any:
        return pd.Series(_missing(self.operand._value(ctx), ctx.n) != self.negated)


@dataclass(frozen=True)
class Not(Expr):
    operand: Expr
    _prec = 3

    def _render(self) -> str:
        return "not " + _wrap(self.operand, 3)

    def _value(self, ctx: _Context) -> Any:
        return pd.Series(~_condition(ctx, self.operand, "after 'not'"))


@dataclass(frozen=True)
class BoolOp(Expr):
    op: str  # "and" | "or"
    operands: tuple[Expr, ...]  # n-ary, so long "or" chains do not nest deeply

    def __post_init__(self) -> None:
        if len(self.operands) < 2:
            raise ValueError(f"'{self.op}' needs at least two operands.")

    @property
    def _prec(self) -> int:  # type: ignore[override]
        return 1 if self.op == "or" else 2

    def _render(self) -> str:
        return f" {self.op} ".join(_wrap(operand, self._prec + 1) for operand in self.operands)

    def _value(self, ctx: _Context) -> Any:
        where = f"on each side of '{self.op}'"
        masks = [_condition(ctx, operand, where) for operand in self.operands]
        combine = np.logical_and if self.op == "and" else np.logical_or
        return pd.Series(combine.reduce(masks))


# --------------------------------------------------------------------- evaluation


class _Context(NamedTuple):
    frame: pd.DataFrame
    text: str
    #: Gives the affinity table (computed on first use), for interest functions.
    affinity: Callable[[], pd.DataFrame] | None = None
    as_of: pd.Timestamp | None = None

    @property
    def n(self) -> int:
        return len(self.frame)

    def error(self, message: str, position: int) -> RuleSyntaxError:
        return RuleSyntaxError(message, text=self.text, position=position)


def _series_or_float(result: Any) -> Any:
    return pd.Series(result) if np.ndim(result) else float(result)


def _missing(value: Any, n: int) -> np.ndarray:
    if isinstance(value, pd.Series):
        return value.isna().to_numpy(dtype=bool)
    return np.full(n, bool(pd.isna(value)))  # e.g. the literal arithmetic 1 / 0


def _describe(node: Expr, value: Any) -> str:
    kind = str(value.dtype) if isinstance(value, pd.Series) else type(value).__name__
    if isinstance(node, Name):
        return f"feature '{node.name}' ({kind})"
    return f"{node} ({kind})" if isinstance(node, Literal) else f"'{node}' ({kind})"


def _is_condition(value: Any) -> bool:
    if isinstance(value, pd.Series):
        dtype = value.dtype
        return pd.api.types.is_bool_dtype(dtype) and not isinstance(dtype, pd.CategoricalDtype)
    return isinstance(value, bool)


def _as_mask(value: Any, n: int) -> np.ndarray:
    if isinstance(value, pd.Series):
        return value.to_numpy(dtype=bool, na_value=False)
    return np.full(n, value, dtype=bool)


def _condition(ctx: _Context, node: Expr, where: str) -> np.ndarray:
    value = node._value(ctx)
    if not _is_condition(value):
        raise ctx.error(
            f"Expected a condition {where} at position {node.position}, "
            f"found {_describe(node, value)}.",
            node.position,
        )
    return _as_mask(value, ctx.n)


def _numbers(ctx: _Context, node: Expr, op: str, operand: Expr, value: Any) -> Any:
    if isinstance(value, pd.Series) and pd.api.types.is_numeric_dtype(value.dtype):
        return value.to_numpy(dtype="float64", na_value=np.nan)
    if isinstance(value, (int, float)):
        return float(value)
    raise ctx.error(
        f"Expected a number for '{op}' at position {node.position}, "
        f"found {_describe(operand, value)}.",
        node.position,
    )


def _compare(
    ctx: _Context, node: Expr, op: str, left: tuple[Expr, Any], right: tuple[Expr, Any]
) -> np.ndarray:
    (left_node, lhs), (right_node, rhs) = left, right
    valid = ~(_missing(lhs, ctx.n) | _missing(rhs, ctx.n))
    out = np.zeros(ctx.n, dtype=bool)
    try:
        if isinstance(lhs, pd.Series) or isinstance(rhs, pd.Series):
            # Comparing only present values keeps NA out of pandas' object comparisons.
            lhs = lhs[valid] if isinstance(lhs, pd.Series) else lhs
            rhs = rhs[valid] if isinstance(rhs, pd.Series) else rhs
            out[valid] = _COMPARE[op](lhs, rhs).to_numpy(dtype=bool, na_value=False)
        else:
            out[valid] = bool(_COMPARE[op](lhs, rhs))
    except (TypeError, ValueError) as exc:
        raise ctx.error(
            f"Cannot compare {_describe(left_node, left[1])} with "
            f"{_describe(right_node, right[1])} using '{op}' at position {node.position}.",
            node.position,
        ) from exc
    return out


# ------------------------------------------------------------------------ parsing


class _Token(NamedTuple):
    kind: str  # number, string, name, keyword, op, end
    value: Any
    position: int
    text: str


def _scan_quoted(text: str, start: int) -> tuple[str, int]:
    quote, pos = text[start], start + 1
    chars: list[str] = []
    while pos < len(text):
        char = text[pos]
        if char == quote:
            return "".join(chars), pos + 1
        if char == "\\" and quote != "`" and pos + 1 < len(text):
            escaped = text[pos + 1]
            # Other backslashes stay literal, so regex-like strings need no doubling.
            chars.append(escaped if escaped in "\\'\"" else char + escaped)
            pos += 2
        else:
            chars.append(char)
            pos += 1
    what = "backquoted name" if quote == "`" else "string"
    raise RuleSyntaxError(
        f"Unterminated {what} starting at position {start}.", text=text, position=start
    )


def _scan_number(text: str, start: int, end: int) -> tuple[int | float, int]:
    # Swallow trailing letters/dots so "1abc" or "1.2.3" is reported as one bad number.
    tail = _NUMBER_TAIL.match(text, end)
    assert tail is not None  # the pattern matches the empty string
    stop = tail.end()
    raw = text[start:stop]
    try:
        value = float(raw) if re.search(r"[.eE]", raw) else int(raw)
        finite = math.isfinite(float(value))
    except (ValueError, OverflowError):
        finite = False
    if stop != end or not finite:
        raise RuleSyntaxError(
            f"Invalid number {raw!r} at position {start}.", text=text, position=start
        )
    return value, stop


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
            continue
        value: str | int | float
        if char in "'\"`":
            value, end = _scan_quoted(text, pos)
            kind = "name" if char == "`" else "string"
            if kind == "name" and not value:
                raise RuleSyntaxError(
                    f"Empty feature name at position {pos}.", text=text, position=pos
                )
        else:
            match = _TOKEN.match(text, pos)
            if match is None:
                raise RuleSyntaxError(
                    f"Unexpected character {char!r} at position {pos}.", text=text, position=pos
                )
            kind, value, end = match.lastgroup or "", match.group(), match.end()
            if kind == "number":
                value, end = _scan_number(text, pos, end)
            elif kind == "name" and value.lower() in _KEYWORDS:
                kind, value = "keyword", value.lower()
            elif value == "=":
                value = "=="
        tokens.append(_Token(kind, value, pos, text[pos:end]))
        pos = end
    tokens.append(_Token("end", None, len(text), ""))
    return tokens


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = _tokenize(text)
        self.index = 0
        self.depth = 0  # open parentheses, 'not' and '-' around the current token

    def nested(self, token: _Token, parse: Callable[[], Expr]) -> Expr:
        """Parse one more level of nesting, refusing rules nested too deeply."""
        if self.depth >= MAX_RULE_DEPTH:
            raise self.error(_too_deep(token.position), token.position)
        self.depth += 1
        try:
            return parse()
        finally:
            self.depth -= 1

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def advance(self) -> _Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    def at(self, kind: str, *values: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == kind and (not values or token.value in values)

    def accept(self, kind: str, *values: str) -> _Token | None:
        return self.advance() if self.at(kind, *values) else None

    def expect(self, kind: str, value: str, what: str) -> _Token:
        token = self.accept(kind, value)
        if token is None:
            raise self.expected(what)
        return token

    def error(self, message: str, position: int) -> RuleSyntaxError:
        return RuleSyntaxError(message, text=self.text, position=position)

    def expected(self, what: str) -> RuleSyntaxError:
        token = self.peek()
        found = "the end of the rule" if token.kind == "end" else repr(token.text)
        return self.error(
            f"Expected {what} at position {token.position}, found {found}.", token.position
        )

    def rule(self) -> Expr:
        if not self.text.strip():
            raise self.error("Empty rule: expected a condition at position 0.", 0)
        expr = self.or_expr()
        token = self.peek()
        if token.kind != "end":
            raise self.error(
                f"Unexpected {token.text!r} at position {token.position} after a complete "
                "expression.",
                token.position,
            )
        return expr

    def chain(self, operand: Callable[[], Expr], ops: tuple[str, ...]) -> Expr:
        """Parse a left-associative run ``operand (op operand)*`` of arithmetic."""
        left = operand()
        while token := self.accept("op", *ops):
            left = Arithmetic(token.value, left, operand(), position=token.position)
        return left

    def logical(self, op: str, operand: Callable[[], Expr]) -> Expr:
        operands, first_op = [operand()], self.peek()
        while self.accept("keyword", op):
            operands.append(operand())
        if len(operands) == 1:
            return operands[0]
        return BoolOp(op, tuple(operands), position=first_op.position)

    def or_expr(self) -> Expr:
        return self.logical("or", self.and_expr)

    def and_expr(self) -> Expr:
        return self.logical("and", self.not_expr)

    def not_expr(self) -> Expr:
        if token := self.accept("keyword", "not"):
            return Not(self.nested(token, self.not_expr), position=token.position)
        return self.predicate()

    def predicate(self) -> Expr:
        left = self.arith()
        token = self.peek()
        if self.accept("op", *_COMPARE):
            node = Comparison(token.value, left, self.arith(), position=token.position)
            if self.at("op", *_COMPARE):
                extra = self.peek()
                raise self.error(
                    f"Chained comparisons are not supported: found a second {extra.text!r} "
                    f"at position {extra.position}; write 'x between 1 and 5' or "
                    "'1 < x and x < 5' instead.",
                    extra.position,
                )
            return node
        negated = self.accept("keyword", "not") is not None
        if negated and not self.at("keyword", "in", "between"):
            raise self.expected("'in' or 'between' after 'not'")
        if self.accept("keyword", "in"):
            return InList(left, self.literal_list(), negated, position=token.position)
        if self.accept("keyword", "between"):
            low = self.arith()
            self.expect("keyword", "and", "'and' between the bounds of 'between'")
            return Between(left, low, self.arith(), negated, position=token.position)
        if self.accept("keyword", "is"):
            is_not = self.accept("keyword", "not") is not None
            self.expect(
                "keyword", "null", "'null' after 'is not'" if is_not else "'null' after 'is'"
            )
            return IsNull(left, is_not, position=token.position)
        return left

    def literal_list(self) -> tuple[Literal, ...]:
        opening = self.accept("op", "(", "[")
        if opening is None:
            raise self.expected("'(' or '[' after 'in'")
        close = ")" if opening.value == "(" else "]"
        values = [self.literal()]
        while self.accept("op", ",") and not self.at("op", close):
            values.append(self.literal())
        self.expect("op", close, f"',' or '{close}'")
        return tuple(values)

    def literal(self) -> Literal:
        token = self.peek()
        if self.at("op", "-") and self.at("number", ahead=1):
            self.advance()
            return Literal(-self.advance().value, position=token.position)
        if token.kind in ("number", "string"):
            return Literal(self.advance().value, position=token.position)
        if self.accept("keyword", "true", "false"):
            return Literal(token.value == "true", position=token.position)
        raise self.expected("a number, string, true or false in the list")

    def call(self) -> Call:
        token = self.advance()
        function = str(token.value).lower()
        if function not in FUNCTIONS:
            close = difflib.get_close_matches(function, list(FUNCTIONS), n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise self.error(
                f"Unknown function '{token.value}' at position {token.position}.{hint} "
                f"Functions: {', '.join(FUNCTIONS)}.",
                token.position,
            )
        self.advance()  # the "(" seen by atom()
        _, takes_within = FUNCTIONS[function]
        usage = f"{function}('attribute', 'value'" + (", within='90d')" if takes_within else ")")
        args: list[str] = []
        within: str | None = None
        while not self.at("op", ")"):
            if args or within is not None:
                self.expect("op", ",", f"',' or ')' in {function}()")
                if self.at("op", ")"):  # a trailing comma
                    break
            arg = self.peek()
            keyword = arg.kind == "name" and str(arg.value).lower() == "within"
            if keyword and self.peek(1).kind == "op" and self.peek(1).text == "==":
                raise self.error(
                    f"Write within= with one '=' at position {self.peek(1).position}, "
                    f"as in {usage}.",
                    self.peek(1).position,
                )
            if keyword and self.peek(1).kind == "op" and self.peek(1).text == "=":
                if not takes_within:
                    raise self.error(
                        f"{function}() at position {token.position} takes no 'within' "
                        f"(position {arg.position}); write {usage}.",
                        arg.position,
                    )
                if within is not None:
                    raise self.error(
                        f"'within' is given twice in {function}() at position {arg.position}.",
                        arg.position,
                    )
                self.advance()
                self.advance()
                within = self.window(function, usage)
                continue
            if within is not None:
                raise self.error(
                    f"Argument at position {arg.position} comes after 'within' in "
                    f"{function}(); write {usage}.",
                    arg.position,
                )
            if arg.kind != "string":
                found = "the end of the rule" if arg.kind == "end" else repr(arg.text)
                raise self.error(
                    f"Argument {len(args) + 1} of {function}() at position {arg.position} must "
                    f"be text in quotes, found {found}; write {usage}.",
                    arg.position,
                )
            args.append(self.advance().value)
        self.expect("op", ")", f"')' closing {function}()")
        if len(args) != 2:
            raise self.error(
                f"{function}() at position {token.position} takes 2 arguments (the attribute "
                f"and the value), got {len(args)}; write {usage}.",
                token.position,
            )
        return Call(function, args[0], args[1], within, position=token.position)

    def window(self, function: str, usage: str) -> str:
        arg = self.peek()
        if arg.kind != "string":
            found = "the end of the rule" if arg.kind == "end" else repr(arg.text)
            raise self.error(
                f"'within' of {function}() at position {arg.position} must be text such as "
                f"'90d' or '12w', found {found}; write {usage}.",
                arg.position,
            )
        self.advance()
        if window_days(arg.value) is None:
            raise self.error(
                f"Invalid window {arg.text} at position {arg.position}: write a positive "
                "number of days or weeks, e.g. '90d' or '12w'.",
                arg.position,
            )
        match = _WINDOW.match(arg.value)
        assert match is not None
        return f"{int(match.group(1))}{match.group(2).lower()}"

    def arith(self) -> Expr:
        return self.chain(self.term, ("+", "-"))

    def term(self) -> Expr:
        return self.chain(self.unary, ("*", "/", "%"))

    def unary(self) -> Expr:
        token = self.accept("op", "-")
        if token is None:
            return self.atom()
        if number := self.accept("number"):
            # Fold "-3" into one literal so negative numbers print and round-trip as such.
            return Literal(-number.value, position=token.position)
        return Negate(self.nested(token, self.unary), position=token.position)

    def atom(self) -> Expr:
        token = self.peek()
        if self.accept("number") or self.accept("string"):
            return Literal(token.value, position=token.position)
        if token.kind == "name" and self.at("op", "(", ahead=1) and token.text[:1] != "`":
            return self.call()
        if self.accept("name"):
            return Name(token.value, position=token.position)
        if self.accept("keyword", "true", "false"):
            return Literal(token.value == "true", position=token.position)
        if self.accept("op", "("):
            inner = self.nested(token, self.or_expr)
            self.expect("op", ")", "')'")
            return inner
        if self.at("keyword", "null"):
            raise self.error(
                f"Expected a value at position {token.position}, found {token.text!r}; "
                "use 'is null' to test for missing values.",
                token.position,
            )
        raise self.expected("a value")


def parse(text: str) -> Expr:
    """Parse rule text into an immutable expression tree.

    Parameters
    ----------
    text : str
        The rule, e.g. ``"frequency == 1 and tenure_days <= 30"``.

    Returns
    -------
    Expr
        The root node; ``parse(str(node)) == node``.

    Raises
    ------
    RuleSyntaxError
        If ``text`` does not follow the grammar in the module docstring.
    """
    if len(text) > MAX_RULE_LENGTH:
        shown = text[:60] + "..."
        msg = (
            f"Rule is {len(text):,} characters long; rules are limited to "
            f"{MAX_RULE_LENGTH:,}. Split it into simpler rules."
        )
        raise RuleSyntaxError(msg, text=shown, position=0)
    try:
        tree = _Parser(text).rule()
    except RecursionError:
        raise RuleSyntaxError(_TOO_DEEP, text=text, position=0) from None
    _check_depth(tree, text)
    return tree


def _too_deep(position: int) -> str:
    return (
        f"Rule is nested more than {MAX_RULE_DEPTH} levels deep at position {position} "
        "(parentheses, 'not', '-' or a long chain of arithmetic); split it into simpler "
        "rules, or add a feature that holds the computed value."
    )


def _check_depth(tree: Expr, text: str) -> None:
    # A chain such as "a + b + ... + z" parses without recursion but nests one level
    # per operator, and every later pass over the tree recurses.
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_RULE_DEPTH:
            raise RuleSyntaxError(_too_deep(node.position), text=text, position=node.position)
        stack.extend((child, depth + 1) for child in node._children())


def check_names(expr_or_text: Expr | str, available: Iterable[str], *, text: str) -> None:
    """Check that every feature a rule names is available.

    Parameters
    ----------
    expr_or_text : Expr or str
        A parsed rule, or rule text to parse.
    available : iterable of str
        The feature names that exist.
    text : str
        The rule text shown in the error; positions of ``expr_or_text`` refer to it.

    Raises
    ------
    RuleSyntaxError
        Naming the first unknown feature (in text order), its position and the closest
        available name.
    """
    expr = parse(expr_or_text) if isinstance(expr_or_text, str) else expr_or_text
    known = sorted({str(name) for name in available})
    known_set = set(known)
    nodes = sorted((n for n in expr._walk() if isinstance(n, Name)), key=lambda n: n.position)
    for node in nodes:
        if node.name in known_set:
            continue
        close = difflib.get_close_matches(node.name, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise RuleSyntaxError(
            f"Unknown feature '{node.name}' at position {node.position}.{hint} "
            f"Available features: {known}.",
            text=text,
            position=node.position,
        )


def evaluate_numbers(text: str, frame: pd.DataFrame) -> np.ndarray:
    """The number an arithmetic expression gives for each row (NaN where missing).

    For engines that cut a computed value (e.g. ``expected_purchases_52w *
    expected_spend``) at thresholds taken from the data.

    Parameters
    ----------
    text : str
        A feature name or arithmetic in the rule language.
    frame : pandas.DataFrame
        One column per feature it names.

    Returns
    -------
    numpy.ndarray
        float64, one value per row.

    Raises
    ------
    RuleSyntaxError
        If the text does not parse, names an unknown feature, or is not a number.
    """
    tree = parse(text)
    canonical = str(tree)
    tree = parse(canonical)
    check_names(tree, [c for c in frame.columns if isinstance(c, str)], text=canonical)
    ctx = _Context(frame, canonical)
    value = tree._value(ctx)
    if isinstance(value, pd.Series):
        try:
            return pd.to_numeric(value).to_numpy(dtype=float, na_value=np.nan)
        except (TypeError, ValueError):
            pass
    elif _is_number(value):
        return np.full(len(frame), float(value))
    raise ctx.error(f"Expected a number, found {_describe(tree, value)}.", 0)
