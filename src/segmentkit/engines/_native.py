"""Scoring where the data lives: engines on polars, DuckDB, PySpark and Dask frames.

``predict`` on a frame that is not pandas compiles the fitted engine to narwhals
expressions (rule conditions, RFM cut points, nearest-centroid k-means with its
preprocessing) and returns a frame of assignments in the caller's engine, lazily when
the input is lazy: nothing is collected to Python. HDBSCAN, which has no expression
form, runs its pandas scoring batch by batch in the engine's Python workers. ``fit`` on
such a frame pulls only what the engine learns from: the schema for rules, the three
R/F/M columns for RFM, and a reproducible sample of customers for k-means and HDBSCAN
(see :func:`hash_sample`).

The functions here are reached through ``Segmenter.fit``/``predict``; engines
implement ``_native_fit_frame`` and ``_native_assign`` (see ``engines/_base.py``).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from segmentkit._common._params import validate_params
from segmentkit.errors import RuleSyntaxError, check_is_fitted
from segmentkit.features._extract import CustomerFeatures

if TYPE_CHECKING:
    import narwhals as nw

    from segmentkit.engines._base import Segmenter
    from segmentkit.engines._expr import Expr
    from segmentkit.engines._preprocess import Preprocessor

__all__ = [
    "compile_condition",
    "fit_native",
    "hash_sample",
    "is_native",
    "predict_native",
]

ID = "customer_id"
#: Prefix of the helper columns added while scoring; dropped from the result.
TMP = "__segmentkit_"
_HASH = TMP + "md5"
_HEX_DIGITS = 12  # 48 bits of the md5: collisions are negligible for sampling


# ----------------------------------------------------------------- entry points


def is_native(X: Any) -> bool:
    """Whether ``X`` is a dataframe segmentkit scores in its own engine (not pandas).

    Parameters
    ----------
    X : object
        Anything passed to ``fit`` or ``predict``.

    Returns
    -------
    bool
        True for polars, DuckDB, PySpark, Dask, pyarrow and other frames narwhals
        supports; False for pandas frames, ``CustomerFeatures`` and arrays.
    """
    if isinstance(X, CustomerFeatures | pd.DataFrame | np.ndarray | list | tuple | dict):
        return False
    import narwhals as nw

    try:
        nw.from_native(X)
    except TypeError:
        return False
    return True


def fit_native(engine: Segmenter, X: Any) -> Segmenter:
    """Fit ``engine`` on a native frame through the small frame its engine learns from.

    Parameters
    ----------
    engine : Segmenter
        The engine to fit.
    X : native frame
        One row per customer: ``customer_id`` and the features.

    Returns
    -------
    Segmenter
        ``engine``, fitted; ``feature_names_in_`` lists every feature of ``X``.
    """
    import narwhals as nw

    owner = type(engine).__name__
    validate_params(owner, engine.get_params(deep=False), engine._parameter_constraints)
    frame = nw.from_native(X)
    names = column_names(frame)
    require(names, [ID], owner)
    local = engine._native_fit_frame(frame)
    engine.fit(local)
    features = [name for name in names if name != ID]
    engine.feature_names_in_ = np.asarray(features, dtype=object)
    engine.n_features_in_ = len(features)
    return engine


def predict_native(engine: Segmenter, X: Any) -> Any:
    """Assign every customer of a native frame, as a frame of the same engine.

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
    import narwhals as nw

    check_is_fitted(engine)
    owner = type(engine).__name__
    frame = nw.from_native(X)
    require(column_names(frame), [ID], owner)
    try:
        staged, label, scores = engine._native_assign(frame)
    except NotImplementedError as error:
        if not isinstance(frame, nw.DataFrame):
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


def _via_pandas(engine: Segmenter, frame: nw.DataFrame[Any], error: Exception) -> Any:
    import narwhals as nw

    segmentation = engine.predict(frame.to_pandas())
    assignments = segmentation.assignments
    data = {
        column: assignments[column].tolist() if column in (ID, "segment") else assignments[column]
        for column in assignments.columns
    }
    try:
        return nw.from_dict(data, backend=frame.implementation).to_native()
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


def to_pandas(frame: Any) -> pd.DataFrame:
    """Collect a (small) narwhals frame to pandas."""
    import narwhals as nw

    if isinstance(frame, nw.LazyFrame):
        frame = frame.collect()
    return frame.to_pandas()


def _lookup(key: nw.Expr, table: Mapping[int, Any], dtype: Any) -> nw.Expr:
    """``table[key]`` as one ``when/then`` chain (null where the key is not in it)."""
    import narwhals as nw

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
    import narwhals as nw

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
    import narwhals as nw

    value = expr.cast(nw.Float64)
    return nw.when(~value.is_nan()).then(value)


def finite(expr: nw.Expr) -> nw.Expr:
    """True where a float value is present and finite (never null)."""
    present = (~expr.is_null()) & (~expr.is_nan()) & (expr < math.inf) & (expr > -math.inf)
    return present.fill_null(False)


# --------------------------------------------------------------- fit sample


def hash_sample(frame: Any, size: int) -> pd.DataFrame:
    """The ``size`` customers with the smallest md5 of their id, collected to pandas.

    The sample depends only on the customer ids, so every engine (pandas, polars,
    DuckDB, Spark, Dask) picks the same customers, in any row order or partitioning.
    The engine keeps the customers whose hash falls under a threshold set to give a
    little more than ``size`` rows; those are collected and the exact ``size`` with the
    smallest ``(md5, customer_id)`` kept, in that order. In SQL the sample is
    ``ORDER BY md5(CAST(customer_id AS VARCHAR)), customer_id LIMIT size``.

    Parameters
    ----------
    frame : narwhals DataFrame or LazyFrame
        One row per customer, with ``customer_id``.
    size : int
        Customers to keep.

    Returns
    -------
    pandas.DataFrame
        All columns of the sampled customers, sorted by hash.
    """
    import narwhals as nw

    total = len(frame) if isinstance(frame, nw.DataFrame) else _count(frame)
    hashed = with_md5(frame, ID, _HASH)
    if total <= size:
        local = to_pandas(hashed)
    else:
        # Binomial spread of the kept count is about sqrt(size): 5% + 100 rows of
        # margin almost never falls short, and a short draw retries with a wider net.
        fraction = (size * 1.05 + 100) / total
        while True:
            cut = min(int(fraction * 16**_HEX_DIGITS), 16**_HEX_DIGITS)
            kept = hashed.filter(nw.col(_HASH).str.slice(0, _HEX_DIGITS) < f"{cut:012x}")
            local = to_pandas(kept)
            if len(local) >= size or fraction >= 1:
                break
            fraction = min(1.0, fraction * 2)
    local[ID + "_text"] = local[ID].astype(str)
    local = local.sort_values([_HASH, ID + "_text"], kind="stable").head(size)
    return local.drop(columns=[_HASH, ID + "_text"]).reset_index(drop=True)


def _count(frame: Any) -> int:
    import narwhals as nw

    return int(to_pandas(frame.select(nw.len().alias("n")))["n"].iloc[0])


def md5_hex(values: Any) -> list[str]:
    """Lower-case hex md5 of each value's text (UTF-8), as SQL's ``md5`` gives it."""
    # Sampling, not security: md5 because Spark and DuckDB have it built in.
    return [hashlib.md5(str(v).encode("utf-8"), usedforsecurity=False).hexdigest() for v in values]


def with_md5(frame: Any, column: str, name: str) -> Any:
    """``frame`` with the md5 hex of ``column`` as text in a new column ``name``.

    narwhals has no hash function that agrees across engines, so this is the one
    place with engine-specific code: Spark and DuckDB use their SQL ``md5``, the
    in-process libraries Python's ``hashlib``.
    """
    import narwhals as nw

    impl = frame.implementation
    native = frame.to_native()
    if impl.is_spark_like() and impl is not nw.Implementation.SQLFRAME:
        from pyspark.sql import functions as F  # noqa: N812

        return nw.from_native(native.withColumn(name, F.md5(F.col(column).cast("string"))))
    if impl is nw.Implementation.DUCKDB:
        quoted = column.replace('"', '""')
        return nw.from_native(native.project(f'*, md5(CAST("{quoted}" AS VARCHAR)) AS "{name}"'))
    if impl is nw.Implementation.POLARS:
        import polars as pl

        def _hash(series: pl.Series) -> pl.Series:
            return pl.Series(md5_hex(series.to_list()), dtype=pl.String)

        expr = pl.col(column).cast(pl.String).map_batches(_hash, return_dtype=pl.String)
        return nw.from_native(native.with_columns(expr.alias(name)))
    if impl is nw.Implementation.DASK:
        series = native[column].map_partitions(
            lambda part: pd.Series(md5_hex(part.tolist()), index=part.index, dtype="string"),
            # A text dtype in the meta: with object, dask infers the sliced text as float.
            meta=(column, "string"),
        )
        return nw.from_native(native.assign(**{name: series}))
    if isinstance(frame, nw.DataFrame):
        values = md5_hex(frame[column].to_list())
        return frame.with_columns(nw.new_series(name, values, nw.String, backend=impl))
    msg = (
        f"Cannot draw a reproducible fit sample from a {impl} frame; pass a pandas, "
        "polars, DuckDB, PySpark or Dask frame, or fit on pandas features."
    )
    raise TypeError(msg)


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
    import narwhals as nw

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
    import narwhals as nw

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
    check_names(tree, names, text=text)
    compiler = _Compiler(text, resolve)
    value = compiler.value(tree)
    return compiler.condition(tree, value, None)


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
        import narwhals as nw

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
        import narwhals as nw

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
        import narwhals as nw

        return Value(expr, "bool", nw.Boolean)

    def number(self, node: Expr, op: str, operand: Expr, value: Value) -> nw.Expr:
        import narwhals as nw

        if value.kind not in ("number", "bool"):
            raise self.error(
                f"Expected a number for '{op}' at position {node.position}, "
                f"found {self.describe(operand, value)}.",
                node.position,
            )
        return value.expr.cast(nw.Float64)

    def arithmetic(self, node: Any) -> Value:
        import narwhals as nw

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
        import narwhals as nw

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
        import narwhals as nw

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
        import narwhals as nw

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
        import narwhals as nw

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


def preprocess(frame: Any, pre: Preprocessor, prefix: str) -> tuple[Any, list[str]]:
    """Add the preprocessed matrix's columns (imputed, scaled, one-hot) to ``frame``.

    Parameters
    ----------
    frame : narwhals DataFrame or LazyFrame
        Customers with the model's input features.
    pre : Preprocessor
        The learned transform.
    prefix : str
        Prefix of the added columns' names.

    Returns
    -------
    tuple
        The frame with the columns added, and their names in ``pre.output_names`` order.
    """
    import narwhals as nw

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


def logged_value(pre: Preprocessor, name: str) -> nw.Expr:
    """A numeric feature as float, through ``sign(x)·log1p(|x|)`` when the model logs it."""
    import narwhals as nw

    value = nw.col(name).cast(nw.Float64)
    if name not in pre.logged:
        return value
    # log(1 + |x|) instead of log1p (no such expression): equal to float tolerance.
    magnitude = (value.abs() + 1).log()
    return nw.when(value < 0).then(-magnitude).otherwise(magnitude)


def category_text(name: str, dtype: Any) -> nw.Expr:
    """A categorical feature as the text pandas' ``astype('string')`` gives."""
    import narwhals as nw

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


def check_missing(frame: Any, pre: Preprocessor, owner: str) -> None:
    """Refuse missing values like the pandas path, with one small aggregate query.

    Only runs for ``missing='raise'``; it reads one row of counts, never the features.
    """
    import narwhals as nw

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
    frame: Any, pre: Preprocessor, centers: np.ndarray, owner: str, *, checked: bool = False
) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """Nearest-centroid assignment (ties to the lowest id) and the distance to it.

    Parameters
    ----------
    frame : narwhals DataFrame or LazyFrame
        Customers.
    pre : Preprocessor
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
    import narwhals as nw

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


# ------------------------------------------------------------------ engines


def rules_fit_frame(engine: Any, frame: Any) -> pd.DataFrame:
    """Rules learn nothing from the data: an empty frame with the input's columns."""
    return pd.DataFrame({name: [] for name in column_names(frame)})


def rules_assign(engine: Any, frame: Any) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """First matching rule, compiled to one ``when/then`` chain."""
    from segmentkit.engines._expr import check_names

    schema = dict(frame.collect_schema())
    # The id is the index on the pandas path, not a feature a rule may name.
    names = [name for name in schema if name != ID]
    resolve = schema_resolver(schema)
    conditions = []
    for rule, expr in zip(engine.rules_, engine._parsed, strict=True):
        if expr is None:
            msg = (
                f"Rule {rule.name!r} is a Python function, which cannot run inside a "
                "dataframe engine; write it in the rule language to score lazy frames, "
                "or score pandas features."
            )
            raise NotImplementedError(msg)
        check_names(expr, names, text=rule.text)
        conditions.append(compile_condition(expr, resolve, names))
    label = first_match(conditions, list(range(len(conditions))), len(engine.rules_))
    return frame, label, {}


def rfm_fit_frame(engine: Any, frame: Any) -> pd.DataFrame:
    """The R, F and M columns of every customer, and any feature a custom rule names."""
    from segmentkit.engines._expr import parse

    names = column_names(frame)
    needed = [engine.recency, engine.frequency, engine.monetary]
    require(names, needed, type(engine).__name__)
    extra: list[str] = []
    if engine.segment_map != "classic":
        for text in engine.segment_map.values():
            try:
                extra += sorted(parse(text).names)
            except RuleSyntaxError:
                continue  # fit reports it, with the segment's name
    wanted = list(dict.fromkeys([ID, *needed, *(n for n in extra if n in names)]))
    return to_pandas(frame.select(*wanted))


def rfm_assign(engine: Any, frame: Any) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """R, F, M scores from the learned cut points, the grid or custom rules, as expressions."""
    import narwhals as nw

    from segmentkit.engines._rfm import _SCORE_NAMES, CLASSIC_GRID

    schema = dict(frame.collect_schema())
    names = [name for name in schema if name != ID]
    require(names, [engine.recency, engine.frequency, engine.monetary], type(engine).__name__)
    recency = nw.col(engine.recency).cast(nw.Float64)
    frequency = nw.col(engine.frequency).cast(nw.Float64)
    # As the pandas path: a buyer has a finite recency and a frequency above 0 (NaN is not).
    buyers = finite(recency) & ((~frequency.is_nan()) & (frequency > 0)).fill_null(False)
    oriented = {
        "recency": -recency,
        "frequency": frequency,
        "monetary": nw.col(engine.monetary).cast(nw.Float64),
    }
    cuts = dict(engine.thresholds_, recency=-np.asarray(engine.thresholds_["recency"]))
    buy, r, f, m = (TMP + name for name in ("buy", "r", "f", "m"))
    values = {key: f"{TMP}value_{key}" for key in oriented}
    # Stage by stage, so that each expression reads the previous ones by name: the
    # plans stay small (Spark builds them through one Java call per node).
    staged = frame.with_columns(
        buyers.alias(buy),
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
                step = nw.when(nw.col(values[key]) >= float(cut)).then(1).otherwise(0)
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
    default_id, no_purchase, returns_only = engine._non_buyer_ids()
    non_buyer_ids = {no_purchase, returns_only}
    if engine._rules is None:
        conditions, ids = [], []
        for segment in engine.segments_:
            if segment.id in non_buyer_ids:
                continue
            cells = [
                (nw.col(r) == 5 - row) & (fm == column + 1)
                for row, cells_row in enumerate(CLASSIC_GRID)
                for column, name in enumerate(cells_row)
                if name == segment.name
            ]
            combined = cells[0]
            for cell in cells[1:]:
                combined = combined | cell
            conditions.append(combined)
            ids.append(segment.id)
        label = first_match(conditions, ids, no_purchase)
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

        available = [*_SCORE_NAMES, *names]
        conditions = [
            compile_condition(expr, resolve, available) for expr in engine._rules.values()
        ]
        ids = [segment.id for segment in engine.segments_[: len(conditions)]]
        label = first_match(conditions, ids, default_id)
    spent = nw.col(engine.monetary).cast(nw.Float64)
    non_buyer = (
        nw.when((spent < 0).fill_null(False))
        .then(nw.lit(returns_only, dtype=nw.Int64))
        .otherwise(nw.lit(no_purchase, dtype=nw.Int64))
    )
    label = nw.when(nw.col(buy)).then(label).otherwise(non_buyer)
    zero = nw.lit(0, dtype=nw.Int64)
    text = nw.concat_str([nw.col(c).cast(nw.String) for c in (r, f, m)])
    return (
        staged,
        label,
        {
            "r_score": nw.when(nw.col(buy)).then(nw.col(r)).otherwise(zero),
            "f_score": nw.when(nw.col(buy)).then(nw.col(f)).otherwise(zero),
            "m_score": nw.when(nw.col(buy)).then(nw.col(m)).otherwise(zero),
            "rfm_score": nw.when(nw.col(buy)).then(text).otherwise(nw.lit("", dtype=nw.String)),
        },
    )


def kmeans_assign(engine: Any, frame: Any) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """Nearest centroid for buyers; non-buyers set apart as on the pandas path."""
    import narwhals as nw

    names = column_names(frame)
    owner = type(engine).__name__
    if not engine._sets_apart(fitted=True) or not (
        "frequency" in names or "recency_days" in names
    ):
        return _kmeans_assign_all(engine, frame)
    kind = _non_buyer_kind(names)
    kind_name = TMP + "kind"
    staged = frame.with_columns(kind.alias(kind_name))
    buyers = nw.col(kind_name) == -1
    check_missing(staged.filter(buyers), engine._pre, owner)
    staged, label, scores = nearest_centroid(
        staged, engine._pre, engine.cluster_centers_, owner, checked=True
    )
    no_purchase, returns_only = engine._non_buyer_ids()
    label = (
        nw.when(nw.col(kind_name) == 0)
        .then(nw.lit(no_purchase, dtype=nw.Int64))
        .when(nw.col(kind_name) == 1)
        .then(nw.lit(returns_only, dtype=nw.Int64))
        .otherwise(label)
    )
    distance = nw.when(buyers).then(scores["distance"])
    return staged, label, {"distance": distance}


def _non_buyer_kind(names: Sequence[str]) -> nw.Expr:
    """-1 buyer, 0 no purchase, 1 returns only (as ``non_buyer_kinds`` in pandas)."""
    import narwhals as nw

    if "frequency" in names:
        frequency = nw.col("frequency").cast(nw.Float64)
        non_buyer = ~((~frequency.is_nan()) & (frequency > 0)).fill_null(False)
    else:
        non_buyer = ~finite(nw.col("recency_days").cast(nw.Float64))
    returned = nw.lit(False)
    if "monetary" in names:
        returned = (nw.col("monetary").cast(nw.Float64) < 0).fill_null(False)
    return (
        nw.when(non_buyer & returned)
        .then(nw.lit(1, dtype=nw.Int64))
        .when(non_buyer)
        .then(nw.lit(0, dtype=nw.Int64))
        .otherwise(nw.lit(-1, dtype=nw.Int64))
    )


def _kmeans_assign_all(engine: Any, frame: Any) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """Nearest centroid of the preprocessed features, as expressions."""
    return nearest_centroid(frame, engine._pre, engine.cluster_centers_, type(engine).__name__)


def hdbscan_assign(engine: Any, frame: Any) -> tuple[Any, nw.Expr, dict[str, nw.Expr]]:
    """HDBSCAN in the engine's Python workers, batch by batch (no expression form).

    Approximate prediction walks the fitted cluster tree in Python, so it cannot
    compile to expressions; but each customer's result depends on that customer alone,
    so it can run on batches where the data is: Spark's ``mapInPandas`` (executors need
    ``hdbscan``), Dask's ``map_partitions``, DuckDB's ``map`` and polars' lazy
    ``map_batches``. Eager frames are scored on the pandas path.
    """
    import narwhals as nw

    if isinstance(frame, nw.DataFrame):
        raise NotImplementedError("eager frames are scored in memory")
    owner = type(engine).__name__
    require(column_names(frame), engine._pre.input_names, owner)

    def score(batch: pd.DataFrame) -> pd.DataFrame:
        if not len(batch):
            return pd.DataFrame(
                {
                    ID: batch[ID],
                    "segment_id": pd.Series(dtype="int64"),
                    "membership": pd.Series(dtype="float64"),
                }
            )
        labels, scores = engine._assign(CustomerFeatures.from_frame(batch.copy()))
        return pd.DataFrame(
            {
                ID: batch[ID].to_numpy(),
                "segment_id": np.asarray(labels, dtype=np.int64),
                "membership": np.asarray(scores["membership"], dtype=float),
            }
        )

    columns = [ID, *engine._pre.input_names]
    mapped = map_batches(frame.select(*columns), score, owner)
    return mapped, nw.col("segment_id"), {"membership": nw.col("membership")}


def map_batches(frame: Any, score: Callable[[pd.DataFrame], pd.DataFrame], owner: str) -> Any:
    """Run ``score`` (pandas in, ``customer_id, segment_id, membership`` out) lazily on
    each batch of ``frame``, in the frame's engine.

    Parameters
    ----------
    frame : narwhals LazyFrame
        Customers.
    score : callable
        Maps a pandas batch to its assignments.
    owner : str
        Engine name for messages.

    Returns
    -------
    narwhals LazyFrame
        The assignments, not computed yet.
    """
    import narwhals as nw

    impl = frame.implementation
    native = frame.to_native()
    if impl.is_spark_like() and impl is not nw.Implementation.SQLFRAME:
        from pyspark.sql import types as T  # noqa: N812

        struct = T.StructType(
            [
                native.schema[ID],
                T.StructField("segment_id", T.LongType(), False),
                T.StructField("membership", T.DoubleType(), False),
            ]
        )
        return nw.from_native(
            native.mapInPandas(lambda batches: (score(batch) for batch in batches), struct)
        )
    if impl is nw.Implementation.DASK:
        meta = score(native._meta)
        return nw.from_native(native.map_partitions(score, meta=meta))
    if impl is nw.Implementation.DUCKDB:
        import duckdb

        types = dict(zip(native.columns, native.types, strict=True))
        schema = {
            ID: types[ID],
            "segment_id": duckdb.sqltype("BIGINT"),
            "membership": duckdb.sqltype("DOUBLE"),
        }
        return nw.from_native(native.map(score, schema=schema))
    if impl is nw.Implementation.POLARS:
        import polars as pl

        def score_polars(batch: pl.DataFrame) -> pl.DataFrame:
            out = score(batch.to_pandas())
            return pl.DataFrame(
                {
                    ID: pl.Series(out[ID].tolist(), dtype=batch.schema[ID]),
                    "segment_id": pl.Series(out["segment_id"].to_numpy(), dtype=pl.Int64),
                    "membership": pl.Series(out["membership"].to_numpy(), dtype=pl.Float64),
                }
            )

        schema = {
            ID: native.collect_schema()[ID],
            "segment_id": pl.Int64,
            "membership": pl.Float64,
        }
        return nw.from_native(native.map_batches(score_polars, schema=schema))
    msg = (
        f"{owner} cannot score a {impl} frame where it lives; score pandas features "
        "instead (bring the frame to pandas chunk by chunk)."
    )
    raise NotImplementedError(msg)
