"""Tests for the rule-expression language in ``segmentkit.engines._expr``."""

from __future__ import annotations

import ast
import builtins
import inspect
import math
import operator

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segmentkit.engines import _expr
from segmentkit.engines._expr import (
    Arithmetic,
    Between,
    BoolOp,
    Comparison,
    InList,
    IsNull,
    Literal,
    Name,
    Negate,
    Not,
    check_names,
    parse,
)
from segmentkit.errors import RuleSyntaxError

a, b, c = Name("a"), Name("b"), Name("c")


def lit(value):
    return Literal(value)


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "frequency": [1.0, 2.0, np.nan, 1.0, 5.0],
            "tenure_days": [10, 40, 5, 31, 30],
            "city": ["Paris", "Lyon", None, "paris", "Nice"],
            "tier": pd.Categorical(["gold", "silver", "gold", None, "bronze"]),
            "orders": pd.array([3, None, 0, 1, 2], dtype="Int64"),
            "vip": [True, False, True, False, False],
        },
        index=[50, 40, 30, 20, 10],
    )


# ------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a == 1", Comparison("==", a, lit(1))),
        ("a = 1", Comparison("==", a, lit(1))),
        ("a != 1.5", Comparison("!=", a, lit(1.5))),
        ("a <= 1e3", Comparison("<=", a, lit(1000.0))),
        ("a > 1_000", Comparison(">", a, lit(1000))),
        ("a >= -2", Comparison(">=", a, lit(-2))),
        ("a < .5", Comparison("<", a, lit(0.5))),
        ("a == 'x'", Comparison("==", a, lit("x"))),
        ('a == "it\\"s"', Comparison("==", a, lit('it"s'))),
        ("a == 'it\\'s'", Comparison("==", a, lit("it's"))),
        ("a == 'back\\\\slash'", Comparison("==", a, lit("back\\slash"))),
        ("a == '\\d'", Comparison("==", a, lit("\\d"))),
        ("`my col` == TRUE", Comparison("==", Name("my col"), lit(True))),
        ("`and` == false", Comparison("==", Name("and"), lit(False))),
        ("a in (1, 'x', true)", InList(a, (lit(1), lit("x"), lit(True)))),
        ("a IN [1, -2,]", InList(a, (lit(1), lit(-2)))),
        ("a not in (1)", InList(a, (lit(1),), negated=True)),
        ("a between 1 and b + 1", Between(a, lit(1), Arithmetic("+", b, lit(1)))),
        ("a NOT BETWEEN 1 AND 2", Between(a, lit(1), lit(2), negated=True)),
        ("a is null", IsNull(a)),
        ("a Is Not Null", IsNull(a, negated=True)),
        ("not a", Not(a)),
        ("a", a),
        ("true", lit(True)),
        ("(a)", a),
    ],
)
def test_parse_constructs(text, expected):
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a or b and c", BoolOp("or", (a, BoolOp("and", (b, c))))),
        ("(a or b) and c", BoolOp("and", (BoolOp("or", (a, b)), c))),
        ("a and b or c", BoolOp("or", (BoolOp("and", (a, b)), c))),
        ("not a and b", BoolOp("and", (Not(a), b))),
        ("not not a", Not(Not(a))),
        ("not a == 1", Not(Comparison("==", a, lit(1)))),
        ("a or b or c", BoolOp("or", (a, b, c))),
        ("a + b * c", Arithmetic("+", a, Arithmetic("*", b, c))),
        ("(a + b) * c", Arithmetic("*", Arithmetic("+", a, b), c)),
        ("a - b - c", Arithmetic("-", Arithmetic("-", a, b), c)),
        ("a / b % c", Arithmetic("%", Arithmetic("/", a, b), c)),
        ("-a * b", Arithmetic("*", Negate(a), b)),
        ("--a", Negate(Negate(a))),
        ("-(1)", Negate(lit(1))),
        ("a - -1", Arithmetic("-", a, lit(-1))),
        ("a + 1 > b * 2", Comparison(">", Arithmetic("+", a, lit(1)), Arithmetic("*", b, lit(2)))),
        (
            "a between 1 and 2 and b",
            BoolOp("and", (Between(a, lit(1), lit(2)), b)),
        ),
    ],
)
def test_precedence(text, expected):
    assert parse(text) == expected


def test_literal_equality_is_type_strict():
    assert parse("1") != parse("1.0")
    assert parse("1") != parse("true")
    assert len({parse("1"), parse("1.0"), parse("true")}) == 3


def test_positions_and_names():
    expr = parse("frequency == 1 and  `tenure days` > x")
    assert expr.names == frozenset({"frequency", "tenure days", "x"})
    positions = {n.name: n.position for n in expr._walk() if isinstance(n, Name)}
    assert positions == {"frequency": 0, "tenure days": 20, "x": 36}


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("A  =  1 AND NOT b", "A == 1 and not b"),
        ("a in [1, 2,]", "a in (1, 2)"),
        ("(a or b) and c", "(a or b) and c"),
        ("a or (b and c)", "a or b and c"),
        ("(a + 1) * -(2)", "(a + 1) * -(2)"),
        ("a - (b - c)", "a - (b - c)"),
        ('`x y` == "it\'s"', "`x y` == 'it\\'s'"),
        ("(a < 1) == true", "(a < 1) == true"),
        ("1e3 > a", "1000.0 > a"),
    ],
)
def test_canonical_text(text, canonical):
    assert str(parse(text)) == canonical
    assert parse(str(parse(text))) == parse(text)


# ---------------------------------------------------------------------- evaluation


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frequency == 1 and tenure_days <= 30", [True, False, False, False, False]),
        ("frequency != 1", [False, True, False, False, True]),
        ("not frequency == 1", [False, True, True, False, True]),
        ("frequency in (1, 5)", [True, False, False, True, True]),
        ("frequency not in (1, 5)", [False, True, False, False, False]),
        ("not frequency in (1, 5)", [False, True, True, False, False]),
        ("frequency between 1 and 2", [True, True, False, True, False]),
        ("frequency not between 1 and 2", [False, False, False, False, True]),
        ("tenure_days between frequency and 30", [True, False, False, False, True]),
        ("frequency is null", [False, False, True, False, False]),
        ("frequency is not null", [True, True, False, True, True]),
        ("city == 'Paris' or city is null", [True, False, True, False, False]),
        ("city in ['Lyon', 'Nice']", [False, True, False, False, True]),
        ("city != 'Paris'", [False, True, False, True, True]),
        ("city > 'M'", [True, False, False, True, True]),
        ("tier == 'gold'", [True, False, True, False, False]),
        ("tier in ('silver', 'bronze')", [False, True, False, False, True]),
        ("tier is null", [False, False, False, True, False]),
        ("orders >= 1", [True, False, False, True, True]),
        ("orders + frequency > 3", [True, False, False, False, True]),
        ("tenure_days / orders > 20", [False, False, False, True, False]),
        ("tenure_days / (orders - orders) is null", [True, True, True, True, True]),
        ("tenure_days % 3 == 1", [True, True, False, True, False]),
        ("-tenure_days < -30", [False, True, False, True, False]),
        ("tenure_days - 2 * 5 == 0", [True, False, False, False, False]),
        ("vip", [True, False, True, False, False]),
        ("not vip and tenure_days > 30", [False, True, False, True, False]),
        ("vip == false", [False, True, False, True, True]),
        ("true", [True] * 5),
        ("false or 1 < 2", [True] * 5),
        ("1 / 0 is null", [True] * 5),
        ("`frequency` = 1", [True, False, False, True, False]),
    ],
)
def test_evaluate(frame, text, expected):
    result = parse(text).evaluate(frame)
    assert result.dtype == bool
    assert result.index.equals(frame.index)
    assert result.tolist() == expected


def test_evaluate_empty_frame(frame):
    result = parse("frequency > 1 or true").evaluate(frame.iloc[:0])
    assert result.dtype == bool
    assert len(result) == 0


def test_evaluate_string_dtype_and_nullable_boolean():
    frame = pd.DataFrame(
        {
            "s": pd.array(["a", None, "b"], dtype="string"),
            "flag": pd.array([True, None, False], dtype="boolean"),
        }
    )
    assert parse("s == 'a'").evaluate(frame).tolist() == [True, False, False]
    assert parse("flag").evaluate(frame).tolist() == [True, False, False]
    assert parse("not flag").evaluate(frame).tolist() == [False, True, True]


# -------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "match", "position"),
    [
        ("", r"^Empty rule: expected a condition at position 0\.", 0),
        ("   ", r"^Empty rule", 0),
        ("frequency == and", r"^Expected a value at position 13, found 'and'\.", 13),
        ("a ==", r"^Expected a value at position 4, found the end of the rule\.", 4),
        ("a == null", r"found 'null'; use 'is null' to test for missing values\.", 5),
        ("city == 'Paris", r"^Unterminated string starting at position 8\.", 8),
        ("`my col == 1", r"^Unterminated backquoted name starting at position 0\.", 0),
        ("`` == 1", r"^Empty feature name at position 0\.", 0),
        ("a $ 1", r"^Unexpected character '\$' at position 2\.", 2),
        ("a == 1 x", r"^Unexpected 'x' at position 7 after a complete expression\.", 7),
        ("a == 1)", r"^Unexpected '\)' at position 6 after a complete expression\.", 6),
        ("(a == 1", r"^Expected '\)' at position 7, found the end of the rule\.", 7),
        ("1 < x < 5", r"Chained comparisons are not supported.*position 6.*between", 6),
        ("a in 1", r"^Expected '\(' or '\[' after 'in' at position 5, found '1'\.", 5),
        ("a in ()", r"^Expected a number, string, true or false in the list at position 6", 6),
        ("a in (b)", r"in the list at position 6, found 'b'\.", 6),
        ("a in (1 2)", r"^Expected ',' or '\)' at position 8, found '2'\.", 8),
        ("a in [1)", r"^Expected ',' or '\]' at position 7, found '\)'\.", 7),
        ("a not 1", r"^Expected 'in' or 'between' after 'not' at position 6, found '1'\.", 6),
        ("a between 1 or 2", r"^Expected 'and' .* at position 12, found 'or'\.", 12),
        ("a is 1", r"^Expected 'null' after 'is' at position 5, found '1'\.", 5),
        ("a is not 1", r"^Expected 'null' after 'is not' at position 9", 9),
        ("a == 1abc", r"^Invalid number '1abc' at position 5\.", 5),
        ("a == 1.2.3", r"^Invalid number '1\.2\.3' at position 5\.", 5),
        ("a == 1__0", r"^Invalid number '1__0' at position 5\.", 5),
        ("a == 1e999", r"^Invalid number '1e999' at position 5\.", 5),
        ("a == +1", r"^Expected a value at position 5, found '\+'\.", 5),
        ("a and", r"^Expected a value at position 5, found the end of the rule\.", 5),
        ("(" * 5000, r"nested more than 50 levels deep at position 50", 50),
        (" + ".join(["x"] * 1000) + " > 0", r"nested more than 50 levels deep at position", 3804),
        ("not " * 60 + "x", r"nested more than 50 levels deep at position 200", 200),
    ],
)
def test_syntax_errors(text, match, position):
    with pytest.raises(RuleSyntaxError, match=match) as info:
        parse(text)
    assert info.value.position == position
    assert info.value.text == text
    message = str(info.value).splitlines()[0]
    assert "position" in message
    assert message.endswith(".")


def test_error_has_caret_under_position():
    with pytest.raises(RuleSyntaxError, match="position 2") as info:
        parse("a $ 1")
    assert str(info.value).splitlines()[1:] == ["    a $ 1", "      ^"]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (
            "frequency + 1",
            r"^Expected a condition at position 0, found 'frequency \+ 1' \(float64\)",
        ),
        ("frequency", r"^Expected a condition at position 0, found feature 'frequency'"),
        ("1", r"^Expected a condition at position 0, found 1 \(int\)"),
        ("'yes'", r"^Expected a condition at position 0, found 'yes' \(str\)"),
        (
            "city < 1",
            r"^Cannot compare feature 'city' \(\w+\) with 1 \(int\) using '<' at position 5",
        ),
        (
            "tier < 'gold'",
            r"feature 'tier' \(category\) with 'gold' \(str\) using '<' at position 5",
        ),
        ("'a' < 1", r"^Cannot compare 'a' \(str\) with 1 \(int\) using '<' at position 4"),
        ("city between 1 and 2", r"^Cannot compare feature 'city' .* using '>=' at position 5"),
        (
            "frequency and vip",
            r"condition on each side of 'and' at position 0, found feature 'freq",
        ),
        ("vip or 2", r"^Expected a condition on each side of 'or' at position 7, found 2 \(int\)"),
        ("not tenure_days", r"^Expected a condition after 'not' at position 4, found feature"),
        ("city + 1 > 0", r"^Expected a number for '\+' at position 5, found feature 'city'"),
        ("-'x' > 0", r"^Expected a number for '-' at position 0, found 'x' \(str\)"),
        (
            "frequncy > 1",
            r"^Unknown feature 'frequncy' at position 0\. Did you mean 'frequency'\?",
        ),
    ],
)
def test_evaluation_errors(frame, text, match):
    with pytest.raises(RuleSyntaxError, match=match) as info:
        parse(text).evaluate(frame)
    assert "position" in str(info.value).splitlines()[0]


def test_unknown_feature_message():
    text = "tenure_days > 3 or frequncy == 1"
    with pytest.raises(RuleSyntaxError, match="Unknown feature 'frequncy'") as info:
        check_names(parse(text), ["frequency", "tenure_days", "monetary"], text=text)
    assert str(info.value).splitlines()[0] == (
        "Unknown feature 'frequncy' at position 19. Did you mean 'frequency'? "
        "Available features: ['frequency', 'monetary', 'tenure_days']."
    )
    assert info.value.position == 19


def test_unknown_feature_without_close_match_and_first_in_text_order():
    text = "zzz == 1 and `q r` > 2"
    with pytest.raises(RuleSyntaxError, match=r"^Unknown feature 'zzz' at position 0\. Avail"):
        check_names(text, ["frequency"], text=text)
    check_names("frequency > 1", ["frequency"], text="frequency > 1")


def test_duplicate_column_is_an_error():
    frame = pd.DataFrame([[1, 2]], columns=["a", "a"])
    with pytest.raises(RuleSyntaxError, match=r"Feature 'a' at position 0 matches 2 columns"):
        parse("a > 0").evaluate(frame)


# ------------------------------------------------------------------------- safety


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("__import__('os').system('x')", r"Unexpected character '\.' at position 16"),
        ("exec('import os')", r"Unknown function 'exec' at position 0\. Functions: share, "),
        ("share(__import__('os'), 'b')", r"Argument 1 of share\(\) at position 6 must be text"),
        ("a.__class__", r"Unexpected character '\.' at position 1"),
        ("lambda: 1", r"Unexpected character ':' at position 6"),
        ("a == 1; import os", r"Unexpected character ';' at position 6"),
        ("[x for x in a]", r"Expected a value at position 0, found '\['"),
        ("a ** 2 > 1", r"Expected a value at position 3, found '\*'"),
        ("@a", r"Unexpected character '@' at position 0"),
    ],
)
def test_python_code_is_rejected(text, match):
    with pytest.raises(RuleSyntaxError, match=match):
        parse(text)


def test_module_never_calls_eval_like_functions():
    bare, attributes = set(), set()
    for node in ast.walk(ast.parse(inspect.getsource(_expr))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            bare.add(node.func.id)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            attributes.add(node.func.attr)
    assert not bare & {"eval", "exec", "compile", "__import__"}
    assert not attributes & {"eval", "exec", "query"}


def test_evaluate_does_not_use_eval_or_query(monkeypatch, frame):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval-like function called")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(pd, "eval", forbidden)
    monkeypatch.setattr(pd.DataFrame, "eval", forbidden)
    monkeypatch.setattr(pd.DataFrame, "query", forbidden)
    text = "frequency * 2 > 1 and city in ('Paris') or tier is null"
    assert parse(text).evaluate(frame).tolist() == [True, False, False, True, False]


# ---------------------------------------------------------------- property tests

COLUMNS = ["a", "b", "c"]
_ops = {**{k: getattr(operator, v) for k, v in [("+", "add"), ("-", "sub"), ("*", "mul")]}}
_ops |= {"/": operator.truediv, "%": operator.mod}
_cmp = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _trees(names, numbers, extra_literals):
    leaves = st.one_of(names.map(Name), numbers.map(Literal), extra_literals.map(Literal))
    arith = st.recursive(
        leaves,
        lambda inner: st.one_of(
            inner.map(Negate), st.builds(Arithmetic, st.sampled_from(sorted(_ops)), inner, inner)
        ),
        max_leaves=5,
    )
    values = st.lists(st.one_of(numbers, extra_literals).map(Literal), min_size=1, max_size=3)
    predicate = st.one_of(
        st.builds(Comparison, st.sampled_from(sorted(_cmp)), arith, arith),
        st.builds(InList, arith, values.map(tuple), st.booleans()),
        st.builds(Between, arith, arith, arith, st.booleans()),
        st.builds(IsNull, arith, st.booleans()),
        st.booleans().map(Literal),
    )
    return st.recursive(
        predicate,
        lambda inner: st.one_of(
            inner.map(Not),
            st.builds(
                BoolOp,
                st.sampled_from(["and", "or"]),
                st.lists(inner, min_size=2, max_size=3).map(tuple),
            ),
        ),
        max_leaves=5,
    )


_any_name = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,6}", fullmatch=True),
    st.sampled_from(["and", "NULL", "True", "in"]),
    st.text(st.characters(blacklist_characters="`", blacklist_categories=["Cs"]), min_size=1),
)
_any_number = st.one_of(
    st.integers(-(10**15), 10**15), st.floats(allow_nan=False, allow_infinity=False)
)
_any_literal = st.one_of(st.text(st.characters(blacklist_categories=["Cs"])), st.booleans())


@settings(max_examples=300, deadline=None)
@given(_trees(_any_name, _any_number, _any_literal))
def test_round_trip_of_random_trees(tree):
    text = str(tree)
    assert parse(text) == tree
    assert str(parse(text)) == text


def _ref(node, row):
    """Row-by-row reference semantics; ``None`` stands for a missing number."""
    if isinstance(node, Literal):
        return node.value if isinstance(node.value, bool) else float(node.value)
    if isinstance(node, Name):
        value = row[node.name]
        return None if pd.isna(value) else float(value)
    if isinstance(node, Negate):
        value = _ref(node.operand, row)
        return None if value is None else -value
    if isinstance(node, Arithmetic):
        left, right = _ref(node.left, row), _ref(node.right, row)
        if left is None or right is None or (node.op in "/%" and right == 0):
            return None
        result = _ops[node.op](left, right)
        return None if math.isnan(result) else result
    if isinstance(node, Comparison):
        left, right = _ref(node.left, row), _ref(node.right, row)
        return left is not None and right is not None and _cmp[node.op](left, right)
    if isinstance(node, InList):
        value = _ref(node.operand, row)
        return value is not None and (value in [v.value for v in node.values]) != node.negated
    if isinstance(node, Between):
        value, low, high = (_ref(n, row) for n in (node.operand, node.low, node.high))
        if None in (value, low, high):
            return False
        return (low <= value <= high) != node.negated
    if isinstance(node, IsNull):
        return (_ref(node.operand, row) is None) != node.negated
    if isinstance(node, Not):
        return not _ref(node.operand, row)
    results = [_ref(operand, row) for operand in node.operands]
    return all(results) if node.op == "and" else any(results)


_int_cell = st.sampled_from([-2, -1, 0, 1, 2, None])
_cell = st.one_of(_int_cell, st.just(0.5))
_rows = st.lists(st.tuples(_cell, _cell, _int_cell), max_size=8)
_small_numbers = st.one_of(st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.25]))


@settings(max_examples=200, deadline=None)
@given(_trees(st.sampled_from(COLUMNS), _small_numbers, st.nothing()), _rows)
def test_evaluate_matches_row_by_row_reference(tree, rows):
    frame = pd.DataFrame(
        {
            "a": pd.Series([r[0] for r in rows], dtype="float64"),
            "b": pd.Series([r[1] for r in rows], dtype="float64"),
            "c": pd.array([r[2] for r in rows], dtype="Int64"),  # nullable integers
        }
    )
    frame.index = pd.Index(range(100, 100 - len(rows), -1))
    expected = [bool(_ref(tree, row)) for _, row in frame.iterrows()]
    result = tree.evaluate(frame)
    assert result.dtype == bool
    assert result.index.equals(frame.index)
    assert result.tolist() == expected


def test_long_or_chain_is_flat_and_evaluates():
    text = " or ".join(f"x == {i}" for i in range(1000))
    expr = parse(text)
    assert isinstance(expr, BoolOp)
    assert len(expr.operands) == 1000
    frame = pd.DataFrame({"x": [5, 2000, np.nan]})
    assert expr.evaluate(frame).tolist() == [True, False, False]


def test_too_deep_tree_is_a_rule_error():
    deep = Name("x")
    for _ in range(5000):
        deep = Negate(deep)
    with pytest.raises(RuleSyntaxError, match="nested too deeply, starting at position 0"):
        Comparison(">", deep, lit(0)).evaluate(pd.DataFrame({"x": [1.0]}))


def test_bool_op_needs_two_operands():
    with pytest.raises(ValueError, match="'and' needs at least two operands"):
        BoolOp("and", (a,))
    assert str(BoolOp("or", (BoolOp("or", (a, b)), c))) == "(a or b) or c"
