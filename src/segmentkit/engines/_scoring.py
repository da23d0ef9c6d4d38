"""Scoring where the data lives: runs a fitted engine's :mod:`plan <._plan>` on any backend.

``predict`` on a frame that is not pandas asks the engine for its scoring plan (rule
conditions, RFM cut points, centroids with their preprocessing, or a pandas function
for batches) and compiles it here to narwhals expressions, returning a frame of
assignments in the caller's library, lazily when the input is lazy: nothing is
collected to Python. ``fit`` on such a frame collects only what the engine's
``_fit_input`` asks for: the schema, a few columns, or a reproducible sample.

Engines never see the frame, and nothing here reads an engine's private state: the
plan (:mod:`segmentkit.engines._plan`) is the whole interface. Reached through
``Segmenter.fit``/``predict``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import narwhals as nw
import numpy as np
import pandas as pd

from segmentkit._frame._batches import from_pandas, map_batches
from segmentkit._frame._sample import hash_sample, to_pandas
from segmentkit.engines._expr import Expr, check_names, parse
from segmentkit.engines._plan import (
    BatchPlan,
    CentroidPlan,
    FitInput,
    NonBuyers,
    Preprocessing,
    RulePlan,
    ScoringPlan,
    ThresholdPlan,
    cut_reach,
)
from segmentkit.errors import RuleSyntaxError

__all__ = ["compile_condition", "fit_native", "predict_native"]

ID = "customer_id"
#: Prefix of the helper columns added while scoring; dropped from the result.
TMP = "__segmentkit_"
#: Names a rule of a threshold plan may use besides the features.
SCORE_NAMES = ("r_score", "f_score", "m_score", "fm_score")


class _Engine(Protocol):
    """What the executor asks of an engine (``Segmenter`` has all of it)."""

    segment_names_: dict[int, str]
    feature_names_in_: Any
    n_features_in_: int

    def fit(self, X: Any, y: None = None) -> Any: ...
    def predict(self, X: Any) -> Any: ...
    def _fit_input(self, columns: list[str]) -> FitInput | None: ...
    def _scoring_plan(self, columns: list[str]) -> ScoringPlan | None: ...


# ----------------------------------------------------------------- entry points


def fit_native(engine: _Engine, X: Any) -> None:
    """Fit ``engine`` on a native frame through the small frame its plan asks for.

    Parameters
    ----------
    engine : Segmenter
        The engine to fit; its parameters are already validated.
    X : native frame
        One row per customer: ``customer_id`` and the features.

    Raises
    ------
    TypeError
        If the engine declares no fit input (it fits on pandas features only).
    """
    owner = type(engine).__name__
    frame = nw.from_native(X)
    names = column_names(frame)
    require(names, [ID], owner)
    wanted = engine._fit_input(names)
    if wanted is None:
        msg = (
            f"{owner} cannot fit on a {frame.implementation} frame; "
            "fit it on pandas features (e.g. frame.to_pandas())."
        )
        raise TypeError(msg)
    columns = list(wanted.columns) if wanted.columns is not None else names
    require(names, columns, owner)
    if wanted.rows == "none":
        local = pd.DataFrame({name: [] for name in columns})
    elif wanted.rows == "sample":
        local = hash_sample(frame.select(*columns), int(wanted.sample_size or 0))
    else:
        local = to_pandas(frame.select(*columns))
    engine.fit(local)
    features = [name for name in names if name != ID]
    engine.feature_names_in_ = np.asarray(features, dtype=object)
    engine.n_features_in_ = len(features)


def predict_native(engine: _Engine, X: Any) -> Any:
    """Assign every customer of a native frame, as a frame of the same library.

    Parameters
    ----------
    engine : Segmenter
        A fitted engine.
    X : native frame
        One row per customer: ``customer_id`` and the features used in ``fit``.

    Returns
    -------
    native frame
        ``customer_id, segment_id, segment`` and the engine's score columns; lazy
        (not computed) when ``X`` is lazy.
    """
    owner = type(engine).__name__
    frame = nw.from_native(X)
    names = column_names(frame)
    require(names, [ID], owner)
    eager = isinstance(frame, nw.DataFrame)
    try:
        plan = engine._scoring_plan(names)
        if plan is None:
            msg = (
                f"{owner} does not compile to dataframe expressions; score "
                "pandas features instead (e.g. predict(frame.to_pandas()))."
            )
            raise NotImplementedError(msg)
        if isinstance(plan, BatchPlan) and eager:
            raise NotImplementedError("eager frames are scored in memory")
        staged, label, scores = run_plan(plan, frame, owner)
    except NotImplementedError as error:
        if not eager:
            raise
        # An eager frame is in memory already: score it on the pandas path and hand the
        # result back in the caller's library.
        return _via_pandas(engine, frame, error)
    label_column = TMP + "label"
    staged = staged.with_columns(label.cast(nw.Int64).alias(label_column))
    label_expr = nw.col(label_column)
    out = staged.select(
        nw.col(ID),
        label_expr.alias("segment_id"),
        _lookup(label_expr, engine.segment_names_, nw.String).alias("segment"),
        *(expr.alias(name) for name, expr in scores.items()),
    )
    return out.to_native()


def run_plan(plan: ScoringPlan, frame: Any, owner: str) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """Compile ``plan`` on ``frame``: the frame with helper columns, the label, the scores.

    Parameters
    ----------
    plan : RulePlan, ThresholdPlan, CentroidPlan or BatchPlan
        What the engine computes.
    frame : narwhals DataFrame or LazyFrame
        Customers.
    owner : str
        Engine name for messages.

    Returns
    -------
    tuple
        The frame to select from, the segment id expression and the score expressions.
    """
    if isinstance(plan, RulePlan):
        return _run_rules(plan, frame)
    if isinstance(plan, ThresholdPlan):
        return _run_thresholds(plan, frame, owner)
    if isinstance(plan, CentroidPlan):
        return _run_centroids(plan, frame, owner)
    if isinstance(plan, BatchPlan):
        return _run_batches(plan, frame, owner)
    msg = (
        f"{owner}._scoring_plan returned a {type(plan).__name__}; expected a RulePlan, "
        "ThresholdPlan, CentroidPlan or BatchPlan (segmentkit.engines._plan), or None."
    )
    raise TypeError(msg)


def _via_pandas(engine: _Engine, frame: nw.DataFrame[Any], error: Exception) -> Any:
    assignments = engine.predict(frame.to_pandas()).assignments
    try:
        return from_pandas(assignments, frame, text=(ID, "segment"))
    except Exception as failure:  # a library narwhals cannot build frames in
        raise error from failure


# ------------------------------------------------------------------ helpers


def column_names(frame: Any) -> list[str]:
    """Column names from the schema alone (no job runs on lazy engines)."""
    return list(frame.collect_schema().names())


def require(names: Sequence[str], needed: Sequence[str], owner: str) -> None:
    """Raise a ``ValueError`` naming the columns ``needed`` that ``names`` lacks.

    Parameters
    ----------
    names : sequence of str
        Columns of the input frame.
    needed : sequence of str
        Columns the engine needs.
    owner : str
        Engine name for the message.

    Raises
    ------
    ValueError
        If any of ``needed`` is missing, with close matches.
    """
    from segmentkit.contracts._schema import suggest

    missing = [name for name in needed if name not in names]
    if missing:
        hints = "".join(suggest(name, list(names)) for name in missing)
        what = "a customer_id column" if missing == [ID] else f"the columns {missing}"
        msg = f"{owner} needs {what}, which the input frame lacks.{hints} Columns: {list(names)}."
        raise ValueError(msg)


def _lookup(key: nw.Expr, table: Mapping[int, Any], dtype: Any) -> nw.Expr:
    """``table[key]`` as one ``when/then`` chain (null where the key is not in it)."""

    items = list(table.items())
    if not items:
        return nw.lit(None, dtype=dtype)
    (first, value), rest = items[0], items[1:]
    chain: Any = nw.when(key == first).then(nw.lit(value, dtype=dtype))
    for k, v in rest:
        chain = chain.when(key == k).then(nw.lit(v, dtype=dtype))
    return chain.otherwise(nw.lit(None, dtype=dtype))


def first_match(conditions: Sequence[nw.Expr], ids: Sequence[int], default: int) -> nw.Expr:
    """Id of the first true condition, else ``default``; conditions must not be null."""

    if not conditions:
        return nw.lit(default, dtype=nw.Int64)
    chain: Any = nw.when(conditions[0]).then(nw.lit(ids[0], dtype=nw.Int64))
    for condition, value in zip(conditions[1:], ids[1:], strict=True):
        chain = chain.when(condition).then(nw.lit(value, dtype=nw.Int64))
    return chain.otherwise(nw.lit(default, dtype=nw.Int64))


def as_float(expr: nw.Expr) -> nw.Expr:
    """A float column with NaN turned into null: missing has one spelling in every engine.

    Spark and polars order NaN above every number (``NaN > 5`` is true there, false in
    pandas), so comparisons on NaN would disagree across engines.
    """

    value = expr.cast(nw.Float64)
    return nw.when(~value.is_nan()).then(value)


def finite(expr: nw.Expr) -> nw.Expr:
    """True where a float value is present and finite (never null)."""
    present = (~expr.is_null()) & (~expr.is_nan()) & (expr < math.inf) & (expr > -math.inf)
    return present.fill_null(False)


# ------------------------------------------------------------ rule language


@dataclass(frozen=True)
class Value:
    """A compiled rule value: an expression, what it holds, and its constant if any.

    ``kind`` is ``'number'``, ``'bool'``, ``'string'``, ``'temporal'`` or ``'other'``;
    missing values are null (never NaN) in every expression built here.
    """

    expr: Any
    kind: str
    dtype: Any = None
    constant: Any = None
    is_constant: bool = False


Resolver = Callable[[str], Value]


def kind_of(dtype: Any) -> str:
    """The rule-language kind of a narwhals dtype."""

    if dtype == nw.Boolean:
        return "bool"
    if dtype.is_numeric():
        return "number"
    if dtype in (nw.String, nw.Categorical, nw.Enum):
        return "string"
    if dtype.is_temporal():
        return "temporal"
    return "other"


def column_value(name: str, dtype: Any) -> Value:
    """A feature column as a rule value (NaN read as missing, categories as text)."""

    kind = kind_of(dtype)
    expr = nw.col(name)
    if kind == "number":
        expr = as_float(expr) if dtype.is_float() else expr
    elif kind == "string" and dtype != nw.String:
        expr = expr.cast(nw.String)
    return Value(expr, kind, dtype)


def schema_resolver(schema: Mapping[str, Any]) -> Resolver:
    """Resolve rule names to the columns of a frame with this schema."""

    def resolve(name: str) -> Value:
        return column_value(name, schema[name])

    return resolve


def compile_condition(expr: Expr, resolve: Resolver, names: Sequence[str]) -> nw.Expr:
    """Compile a parsed rule to a boolean narwhals expression that is never null.

    Semantics are the pandas evaluator's (see :mod:`segmentkit.engines._expr`):
    comparisons with a missing operand are false, ``not`` negates that, arithmetic runs
    in float64 and gives missing for division or modulo by zero, and constant parts are
    evaluated by the pandas evaluator itself.

    Parameters
    ----------
    expr : Expr
        The parsed rule.
    resolve : callable
        Maps a feature name to its :class:`Value`.
    names : sequence of str
        Names the rule may use (checked first, as the pandas path does).

    Returns
    -------
    narwhals.Expr
        One boolean per row.

    Raises
    ------
    RuleSyntaxError
        For unknown names, operand types that clash, non-conditions, and comparisons of
        timestamps (which do not compile; use the day-count features).
    """
    from segmentkit.engines._expr import check_names, parse

    # Positions in messages refer to the canonical text, as in Expr.evaluate.
    text = str(expr)
    tree = parse(text)
    _refuse_calls(tree, text)
    check_names(tree, names, text=text)
    compiler = _Compiler(text, resolve)
    value = compiler.value(tree)
    return compiler.condition(tree, value, None)


def _refuse_calls(tree: Expr, text: str) -> None:
    """Interest functions read the affinity table, which a frame of features lacks."""
    from segmentkit.engines._expr import Call

    calls = sorted((n for n in tree._walk() if isinstance(n, Call)), key=lambda n: n.position)
    if calls:
        call = calls[0]
        msg = (
            f"{call.function}() at position {call.position} reads the customers' affinity "
            "table (spend and purchases per category, brand...), which a frame of features "
            "in polars, DuckDB, Spark or Dask does not carry. Extract the features with "
            "sk.extract_features(transactions, events, output='pandas') and segment that "
            "CustomerFeatures object; its affinity table is computed in your engine."
        )
        raise RuleSyntaxError(msg, text=text, position=call.position)


class _Compiler:
    def __init__(self, text: str, resolve: Resolver) -> None:
        self.text = text
        self.resolve = resolve

    def error(self, message: str, position: int) -> RuleSyntaxError:
        return RuleSyntaxError(message, text=self.text, position=position)

    def describe(self, node: Expr, value: Value) -> str:
        from segmentkit.engines._expr import Literal, Name

        kind = type(value.constant).__name__ if value.is_constant else str(value.dtype)
        if isinstance(node, Name):
            return f"feature '{node.name}' ({kind})"
        return f"{node} ({kind})" if isinstance(node, Literal) else f"'{node}' ({kind})"

    # ---- values

    def value(self, node: Expr) -> Value:

        from segmentkit.engines import _expr as ast

        if not node.names:
            return self.constant(node)
        if isinstance(node, ast.Name):
            return self.resolve(node.name)
        if isinstance(node, ast.Negate):
            operand = self.number(node, "-", node.operand, self.value(node.operand))
            return Value(-operand, "number", nw.Float64)
        if isinstance(node, ast.Arithmetic):
            return self.arithmetic(node)
        if isinstance(node, ast.Comparison):
            left, right = self.value(node.left), self.value(node.right)
            sides = (node.left, left), (node.right, right)
            return self.boolean(self.compare(node, node.op, *sides))
        if isinstance(node, ast.InList):
            return self.boolean(self.in_list(node))
        if isinstance(node, ast.Between):
            return self.boolean(self.between(node))
        if isinstance(node, ast.IsNull):
            missing = self.value(node.operand).expr.is_null()
            return self.boolean(~missing if node.negated else missing)
        if isinstance(node, ast.Not):
            return self.boolean(~self.condition(node.operand, None, "after 'not'"))
        if isinstance(node, ast.BoolOp):
            where = f"on each side of '{node.op}'"
            masks = [self.condition(operand, None, where) for operand in node.operands]
            combined = masks[0]
            for mask in masks[1:]:
                combined = (combined & mask) if node.op == "and" else (combined | mask)
            return self.boolean(combined)
        msg = f"Rule node {type(node).__name__} does not compile to a dataframe expression."
        raise self.error(msg, node.position)

    def constant(self, node: Expr) -> Value:
        """A subtree without feature names, evaluated by the pandas evaluator."""

        from segmentkit.engines._expr import _Context

        result = node._value(_Context(pd.DataFrame(index=pd.RangeIndex(1)), self.text))
        if isinstance(result, pd.Series):
            result = result.iloc[0]
        if isinstance(result, bool | np.bool_):
            return Value(nw.lit(bool(result)), "bool", nw.Boolean, bool(result), True)
        if isinstance(result, str):
            return Value(nw.lit(result, dtype=nw.String), "string", nw.String, result, True)
        number = float(result)
        if math.isnan(number):
            return Value(nw.lit(None, dtype=nw.Float64), "number", nw.Float64, number, True)
        if isinstance(result, int | np.integer):
            value = int(result)
            return Value(nw.lit(value, dtype=nw.Int64), "number", nw.Int64, value, True)
        return Value(nw.lit(number, dtype=nw.Float64), "number", nw.Float64, number, True)

    @staticmethod
    def boolean(expr: nw.Expr) -> Value:

        return Value(expr, "bool", nw.Boolean)

    def number(self, node: Expr, op: str, operand: Expr, value: Value) -> nw.Expr:

        if value.kind not in ("number", "bool"):
            raise self.error(
                f"Expected a number for '{op}' at position {node.position}, "
                f"found {self.describe(operand, value)}.",
                node.position,
            )
        return value.expr.cast(nw.Float64)

    def arithmetic(self, node: Any) -> Value:

        left_value, right_value = self.value(node.left), self.value(node.right)
        left = self.number(node, node.op, node.left, left_value)
        right = self.number(node, node.op, node.right, right_value)
        if node.op == "+":
            result = left + right
        elif node.op == "-":
            result = left - right
        elif node.op == "*":
            result = left * right
        elif node.op == "/":
            # Division by zero is missing, as in pandas (Spark's ANSI mode would raise).
            result = left / nw.when(right != 0).then(right)
        else:
            result = self.modulo(left, right, (left_value, right_value))
        # inf - inf and 0 * inf give NaN: missing, like NaN features.
        return Value(nw.when(~result.is_nan()).then(result), "number", nw.Float64)

    @staticmethod
    def modulo(left: nw.Expr, right: nw.Expr, operands: tuple[Value, Value]) -> nw.Expr:
        """numpy's ``mod`` (sign of the divisor, missing for a zero divisor)."""

        def integer(value: Value) -> bool:
            dtype = value.dtype
            return value.kind == "bool" or (
                dtype is not None and not isinstance(dtype, str) and dtype.is_integer()
            )

        usable = (~left.is_null()) & (~right.is_null()) & (right != 0)
        # Placeholders where the result is missing anyway: no engine sees a zero divisor
        # (Spark's ANSI mode raises) nor casts a missing value to an integer (pandas raises).
        safe_left = nw.when(usable).then(left).otherwise(nw.lit(0.0))
        safe_right = nw.when(usable).then(right).otherwise(nw.lit(1.0))
        if all(integer(value) for value in operands):
            # Exact in every engine; the engines' float modulo differs from numpy's in
            # the last bits (floored by ((a % b) + b) % b or a - b * floor(a / b)).
            remainder = (safe_left.cast(nw.Int64) % safe_right.cast(nw.Int64)).cast(nw.Float64)
        else:
            remainder = safe_left % safe_right
        # Engines disagree on the sign (Spark and DuckDB truncate, polars floors):
        # move it to the divisor's sign, as numpy does.
        signed = (
            nw.when((remainder != 0) & ((remainder < 0) != (safe_right < 0)))
            .then(remainder + safe_right)
            .otherwise(remainder)
        )
        return nw.when(usable.fill_null(False)).then(signed)

    # ---- conditions

    def condition(self, node: Expr, value: Value | None, where: str | None) -> nw.Expr:
        value = self.value(node) if value is None else value
        if value.kind != "bool":
            if where is None:
                message = (
                    f"Expected a condition at position 0, found {self.describe(node, value)}; "
                    "a rule must be true or false for each row."
                )
                raise self.error(message, 0)
            raise self.error(
                f"Expected a condition {where} at position {node.position}, "
                f"found {self.describe(node, value)}.",
                node.position,
            )
        return value.expr.fill_null(False)

    def comparable(
        self, node: Expr, op: str, left: tuple[Expr, Value], right: tuple[Expr, Value]
    ) -> tuple[Any, Any] | bool:
        """The two sides ready to compare, or the constant result where types differ."""

        (left_node, lhs), (right_node, rhs) = left, right
        kinds = {lhs.kind, rhs.kind}

        def clash() -> RuleSyntaxError:
            return self.error(
                f"Cannot compare {self.describe(left_node, lhs)} with "
                f"{self.describe(right_node, rhs)} using '{op}' at position {node.position}.",
                node.position,
            )

        if "temporal" in kinds and kinds != {"temporal"}:
            raise self.error(
                f"Comparing timestamps with other values does not compile to dataframe "
                f"expressions ('{node}' at position {node.position}); use the day-count "
                "features (recency_days, tenure_days) instead.",
                node.position,
            )
        if "other" in kinds:
            raise clash()
        if kinds <= {"number", "bool"} and kinds != {"bool"}:
            return lhs.expr.cast(nw.Float64), rhs.expr.cast(nw.Float64)
        if len(kinds) == 1:
            if kinds == {"bool"} and op not in ("==", "!="):
                return lhs.expr.cast(nw.Int64), rhs.expr.cast(nw.Int64)
            return lhs.expr, rhs.expr
        # Text against a number: pandas says "not equal" and refuses to order them.
        if op in ("==", "!="):
            return op == "!="
        raise clash()

    def compare(
        self, node: Expr, op: str, left: tuple[Expr, Value], right: tuple[Expr, Value]
    ) -> nw.Expr:

        sides = self.comparable(node, op, left, right)
        if isinstance(sides, bool):
            valid = ~(left[1].expr.is_null() | right[1].expr.is_null())
            return (valid & nw.lit(sides)).fill_null(False)
        lhs, rhs = sides
        operators = {
            "==": lambda a, b: a == b,
            "!=": lambda a, b: a != b,
            "<": lambda a, b: a < b,
            "<=": lambda a, b: a <= b,
            ">": lambda a, b: a > b,
            ">=": lambda a, b: a >= b,
        }
        # Null makes the comparison null (then false) in most engines, but numpy-backed
        # pandas (Dask) says NaN != 3 is true: test presence explicitly.
        present = ~(left[1].expr.is_null() | right[1].expr.is_null())
        return (present & operators[op](lhs, rhs)).fill_null(False)

    def in_list(self, node: Any) -> nw.Expr:

        operand = self.value(node.operand)
        values = [literal.value for literal in node.values]
        wanted: list[float] | list[str]
        if operand.kind in ("number", "bool"):
            wanted = sorted({float(v) for v in values if not isinstance(v, str)})
            expr = operand.expr.cast(nw.Float64)
        elif operand.kind == "string":
            wanted = sorted({v for v in values if isinstance(v, str)})
            expr = operand.expr
        else:
            raise self.error(
                f"Cannot test {self.describe(node.operand, operand)} against the list at "
                f"position {node.position} in a dataframe expression.",
                node.position,
            )
        present = ~operand.expr.is_null()
        hit = expr.is_in(wanted).fill_null(False) if wanted else nw.lit(False)
        return (present & (~hit if node.negated else hit)).fill_null(False)

    def between(self, node: Any) -> nw.Expr:
        operand = (node.operand, self.value(node.operand))
        low, high = (node.low, self.value(node.low)), (node.high, self.value(node.high))
        inside = self.compare(node, ">=", operand, low) & self.compare(node, "<=", operand, high)
        if not node.negated:
            return inside
        valid = ~(operand[1].expr.is_null() | low[1].expr.is_null() | high[1].expr.is_null())
        return (~inside & valid).fill_null(False)


# ------------------------------------------------------------ preprocessing


def preprocess(frame: Any, pre: Preprocessing, prefix: str) -> tuple[Any, list[str]]:
    """Add the preprocessed matrix's columns (imputed, scaled, one-hot) to ``frame``.

    Parameters
    ----------
    frame : narwhals DataFrame or LazyFrame
        Customers with the model's input features.
    pre : Preprocessing
        The learned transform.
    prefix : str
        Prefix of the added columns' names.

    Returns
    -------
    tuple
        The frame with the columns added, and their names in ``pre.output_names`` order.
    """

    schema = dict(frame.collect_schema())
    raw = [f"{prefix}v{j}" for j in range(len(pre.numeric))]
    # Two stages: the logged value is read by name below instead of being rebuilt in
    # every branch, which keeps the plan (and Spark's plan-building time) small.
    staged = frame.with_columns(
        *(logged_value(pre, name).alias(r) for name, r in zip(pre.numeric, raw, strict=True))
    )
    names: list[str] = []
    columns = []
    for position, r in enumerate(raw):
        value = nw.col(r)
        filled = nw.when(finite(value)).then(value).otherwise(nw.lit(pre.fill[position]))
        columns.append((filled - pre.center[position]) / pre.scale[position])
    for name, levels in pre.categorical.items():
        text = category_text(name, schema[name])
        for level in levels:
            columns.append(
                nw.when((text == level).fill_null(False)).then(nw.lit(1.0)).otherwise(nw.lit(0.0))
            )
    names = [f"{prefix}x{j}" for j in range(len(columns))]
    staged = staged.with_columns(
        *(expr.alias(name) for expr, name in zip(columns, names, strict=True))
    )
    return staged, names


def logged_value(pre: Preprocessing, name: str) -> nw.Expr:
    """A numeric feature as float, through ``sign(x)·log1p(|x|)`` when the model logs it."""

    value = nw.col(name).cast(nw.Float64)
    if name not in pre.logged:
        return value
    # log(1 + |x|) instead of log1p (no such expression): equal to float tolerance.
    magnitude = (value.abs() + 1).log()
    return nw.when(value < 0).then(-magnitude).otherwise(magnitude)


def category_text(name: str, dtype: Any) -> nw.Expr:
    """A categorical feature as the text pandas' ``astype('string')`` gives."""

    kind = kind_of(dtype)
    if kind == "bool":
        return nw.when(nw.col(name)).then(nw.lit("True")).otherwise(nw.lit("False"))
    if kind == "string":
        return nw.col(name).cast(nw.String)
    msg = (
        f"Feature '{name}' ({dtype}) is one-hot encoded by the model, which only compiles "
        "for text, categorical and boolean columns."
    )
    raise TypeError(msg)


def check_missing(frame: Any, pre: Preprocessing, owner: str) -> None:
    """Refuse missing values like the pandas path, with one small aggregate query.

    Only runs for ``missing='raise'``; it reads one row of counts, never the features.
    """

    if pre.missing != "raise" or not pre.numeric:
        return
    counts = frame.select(
        *(
            (~finite(logged_value(pre, name))).cast(nw.Int64).sum().alias(f"c{i}")
            for i, name in enumerate(pre.numeric)
        )
    )
    row = to_pandas(counts).iloc[0]
    bad = {name: int(row[f"c{i}"]) for i, name in enumerate(pre.numeric) if row[f"c{i}"]}
    if bad:
        why = " Customers who never bought have no recency_days." if "recency_days" in bad else ""
        from segmentkit.engines._preprocess import MISSING_HINT

        msg = f"{owner} cannot place customers with missing feature values: {bad}.{why} "
        msg += MISSING_HINT
        raise ValueError(msg)


def nearest_centroid(
    frame: Any, pre: Preprocessing, centers: np.ndarray, owner: str, *, checked: bool = False
) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """Nearest-centroid assignment (ties to the lowest id) and the distance to it.

    Parameters
    ----------
    frame : narwhals DataFrame or LazyFrame
        Customers.
    pre : Preprocessing
        The learned transform.
    centers : numpy.ndarray
        Centroids in the preprocessed space, in id order.
    owner : str
        Engine name for messages.
    checked : bool, default=False
        Whether missing values were already checked (on the customers that count).

    Returns
    -------
    tuple
        The frame with helper columns, the label expression and ``{"distance": ...}``.
    """

    names = column_names(frame)
    require(names, pre.input_names, owner)
    if not checked:
        check_missing(frame, pre, owner)
    staged, x = preprocess(frame, pre, TMP)
    d = [f"{TMP}d{k}" for k in range(centers.shape[0])]
    staged = staged.with_columns(
        *(
            _total(
                [(nw.col(name) - float(c)) ** 2 for name, c in zip(x, center, strict=True)]
            ).alias(d[k])
            for k, center in enumerate(centers)
        )
    )
    best = TMP + "best"
    staged = staged.with_columns(nw.min_horizontal(*(nw.col(name) for name in d)).alias(best))
    # First centroid at the minimum distance: ties go to the lowest id, as argmin.
    label = first_match(
        [nw.col(name) <= nw.col(best) for name in d], list(range(len(d))), len(d) - 1
    )
    distance = nw.when(nw.col(best) > 0).then(nw.col(best)).otherwise(nw.lit(0.0)).sqrt()
    return staged, label, {"distance": distance}


def _total(terms: Sequence[nw.Expr]) -> nw.Expr:
    # Plain additions: sum_horizontal wraps each term in a null check these never need.
    total = terms[0]
    for term in terms[1:]:
        total = total + term
    return total


# ------------------------------------------------------------------ plans


def _run_rules(plan: RulePlan, frame: Any) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """First matching rule, compiled to one ``when/then`` chain."""
    schema = dict(frame.collect_schema())
    # The id is the index on the pandas path, not a feature a rule may name.
    names = [name for name in schema if name != ID]
    resolve = schema_resolver(schema)
    conditions = []
    for _, text in plan.rules:
        tree = parse(text)
        check_names(tree, names, text=text)
        conditions.append(compile_condition(tree, resolve, names))
    label = first_match(conditions, [segment for segment, _ in plan.rules], plan.default)
    return frame, label, {}


def _buyer_kind(non_buyers: NonBuyers) -> nw.Expr:
    """-1 buyer, 0 no purchase, 1 returns only (as ``non_buyer_kinds`` in pandas)."""
    buyer: Any = nw.lit(True)
    if non_buyers.recency is not None:
        buyer = buyer & finite(nw.col(non_buyers.recency).cast(nw.Float64))
    if non_buyers.frequency is not None:
        frequency = nw.col(non_buyers.frequency).cast(nw.Float64)
        buyer = buyer & ((~frequency.is_nan()) & (frequency > 0)).fill_null(False)
    returned: Any = nw.lit(False)
    if non_buyers.monetary is not None:
        returned = (nw.col(non_buyers.monetary).cast(nw.Float64) < 0).fill_null(False)
    return (
        nw.when(buyer)
        .then(nw.lit(-1, dtype=nw.Int64))
        .when(returned)
        .then(nw.lit(1, dtype=nw.Int64))
        .otherwise(nw.lit(0, dtype=nw.Int64))
    )


def _non_buyer_label(kind: nw.Expr, non_buyers: NonBuyers, label: nw.Expr) -> nw.Expr:
    return (
        nw.when(kind == 0)
        .then(nw.lit(non_buyers.no_purchase, dtype=nw.Int64))
        .when(kind == 1)
        .then(nw.lit(non_buyers.returns_only, dtype=nw.Int64))
        .otherwise(label)
    )


def _run_thresholds(
    plan: ThresholdPlan, frame: Any, owner: str
) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """R, F, M scores from the cut points, then the grid or the rules, as expressions."""
    schema = dict(frame.collect_schema())
    names = [name for name in schema if name != ID]
    require(names, [plan.recency, plan.frequency, plan.monetary], owner)
    oriented = {
        "recency": -nw.col(plan.recency).cast(nw.Float64),
        "frequency": nw.col(plan.frequency).cast(nw.Float64),
        "monetary": nw.col(plan.monetary).cast(nw.Float64),
    }
    cuts = dict(plan.cuts, recency=-np.asarray(plan.cuts["recency"], dtype=float))
    kind, r, f, m = (TMP + name for name in ("kind", "r", "f", "m"))
    values = {key: f"{TMP}value_{key}" for key in oriented}
    # Stage by stage, so that each expression reads the previous ones by name: the
    # plans stay small (Spark builds them through one Java call per node).
    staged = frame.with_columns(
        _buyer_kind(plan.non_buyers).alias(kind),
        # Values that are not finite score 1, as in the pandas path: null here.
        *(
            nw.when(finite(value)).then(value).alias(values[key])
            for key, value in oriented.items()
        ),
    )
    scores = {}
    for key in oriented:
        # Score = 1 + the number of cut points at or below the value (searchsorted
        # 'right'); a null value meets none.
        score: Any = nw.lit(1, dtype=nw.Int64)
        for cut in np.asarray(cuts[key], dtype=float):
            if np.isfinite(cut):
                step = nw.when(nw.col(values[key]) >= cut_reach(cut)).then(1).otherwise(0)
                score = score + step.cast(nw.Int64)
        scores[key] = score.cast(nw.Int64)
    staged = staged.with_columns(
        scores["recency"].alias(r), scores["frequency"].alias(f), scores["monetary"].alias(m)
    )
    fm_name = TMP + "fm"
    staged = staged.with_columns(
        ((nw.col(f) + nw.col(m) + 1) / 2).floor().cast(nw.Int64).alias(fm_name)
    )
    fm = nw.col(fm_name)
    if plan.cells is not None:
        conditions, ids = [], []
        for segment, cells in plan.cells:
            covered = [(nw.col(r) == row) & (fm == column) for row, column in cells]
            combined = covered[0]
            for cell in covered[1:]:
                combined = combined | cell
            conditions.append(combined)
            ids.append(segment)
        label = first_match(conditions, ids, plan.default)
    else:
        score_values = {
            "r_score": Value(nw.col(r), "number", nw.Int64),
            "f_score": Value(nw.col(f), "number", nw.Int64),
            "m_score": Value(nw.col(m), "number", nw.Int64),
            "fm_score": Value(fm, "number", nw.Int64),
        }

        def resolve(name: str) -> Value:
            if name in score_values:
                return score_values[name]
            return column_value(name, schema[name])

        available = [*SCORE_NAMES, *names]
        rules = plan.rules or ()
        conditions = [compile_condition(parse(text), resolve, available) for _, text in rules]
        label = first_match(conditions, [segment for segment, _ in rules], plan.default)
    buyer = nw.col(kind) == -1
    label = _non_buyer_label(nw.col(kind), plan.non_buyers, label)
    zero = nw.lit(0, dtype=nw.Int64)
    text = nw.concat_str([nw.col(c).cast(nw.String) for c in (r, f, m)])
    return (
        staged,
        label,
        {
            "r_score": nw.when(buyer).then(nw.col(r)).otherwise(zero),
            "f_score": nw.when(buyer).then(nw.col(f)).otherwise(zero),
            "m_score": nw.when(buyer).then(nw.col(m)).otherwise(zero),
            "rfm_score": nw.when(buyer).then(text).otherwise(nw.lit("", dtype=nw.String)),
        },
    )


def _run_centroids(
    plan: CentroidPlan, frame: Any, owner: str
) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """Nearest centroid; non-buyers set apart first when the plan says so."""
    pre, centers = plan.preprocessing, np.asarray(plan.centers, dtype=float)
    if plan.non_buyers is None:
        return nearest_centroid(frame, pre, centers, owner)
    kind_name = TMP + "kind"
    staged = frame.with_columns(_buyer_kind(plan.non_buyers).alias(kind_name))
    buyers = nw.col(kind_name) == -1
    require(column_names(frame), pre.input_names, owner)
    check_missing(staged.filter(buyers), pre, owner)
    staged, label, scores = nearest_centroid(staged, pre, centers, owner, checked=True)
    label = _non_buyer_label(nw.col(kind_name), plan.non_buyers, label)
    distance = nw.when(buyers).then(scores["distance"])
    return staged, label, {"distance": distance}


def _run_batches(
    plan: BatchPlan, frame: Any, owner: str
) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """The plan's pandas function on each batch, in the frame's engine (lazy frames)."""
    require(column_names(frame), list(plan.columns), owner)
    outputs = {"segment_id": "int64", **plan.outputs}
    mapped = map_batches(frame.select(*plan.columns), plan.score, ID, outputs, owner)
    return mapped, nw.col("segment_id"), {name: nw.col(name) for name in plan.outputs}
