"""Every public function and method of the result, timeline, report, quality and dataset
modules declares its parameters once (``@validated``) and refuses a wrong-typed argument
with one error, in one wording, naming the parameter."""

from __future__ import annotations

import importlib
import inspect
import re
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest

import segmentkit as sk
from segmentkit._common._params import (
    PATH,
    InstanceOf,
    Interval,
    ListLike,
    OneOf,
    _shown,
    validate_params,
    validated,
)
from segmentkit.errors import InvalidParameterError
from segmentkit.timeline._abtest import ExperimentAnalysis
from segmentkit.timeline._snapshots import Snapshots

MODULES = [
    "segmentkit.timeline._snapshots",
    "segmentkit.timeline._migration",
    "segmentkit.timeline._diff",
    "segmentkit.timeline._groups",
    "segmentkit.timeline._abtest",
    "segmentkit.report._html",
    "segmentkit.report.plots",
    "segmentkit.results._segmentation",
    "segmentkit.engines._quality",
    "segmentkit.datasets._events",
    "segmentkit.datasets._sample",
]


class _Wrong:
    """A value of a type no parameter accepts."""

    def __repr__(self) -> str:
        return "<wrong>"


def _named(function: Callable[..., Any]) -> list[str]:
    return [
        p.name
        for p in inspect.signature(function).parameters.values()
        if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("self", "cls")
    ]


def _public_callables() -> Iterator[tuple[str, type | None, str]]:
    """(module, class or None, name) of every public function and method."""
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isfunction(value):
                yield module_name, None, name
            elif inspect.isclass(value):
                for attribute, member in vars(value).items():
                    if attribute.startswith("_"):
                        continue
                    if isinstance(member, classmethod | staticmethod):
                        member = member.__func__
                    if inspect.isfunction(member):
                        yield module_name, value, attribute


CALLABLES = sorted(_public_callables(), key=lambda c: (c[0], c[1].__name__ if c[1] else "", c[2]))
# One case per (callable, parameter): the parametrised table the walk runs over.
CASES = [
    pytest.param(cls, name, parameter, id=f"{cls.__name__ + '.' if cls else ''}{name}-{parameter}")
    for module_name, cls, name in CALLABLES
    for parameter in _named(getattr(cls or importlib.import_module(module_name), name))
]


@pytest.fixture(scope="module")
def world(sample_tx, sample_features, tmp_path_factory) -> dict[str, Any]:
    """Valid values of every required parameter, and an instance of every class."""
    seg = sk.RFMSegmenter().fit_predict(sample_features)
    moved = sk.migration(seg, seg)
    groups = sk.assign_groups(seg, salt="s")
    folder = tmp_path_factory.mktemp("parameters")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        backtest = sk.backtest(
            sk.BetaGeoModel(), sample_tx, calibration_end="2017-09-01", holdout_end="2017-12-01"
        )
    values = {
        "transactions": sample_tx,
        "engine": "rfm",
        "as_of": ["2017-07-01"],
        "folder": folder,
        "path": folder / "x.csv",
        "before": seg,
        "after": seg,
        "segment": "Champions",
        "current": seg,
        "segmentation": seg,
        "customer_ids": [],
        "arm": "control",
        "source": groups.to_frame(),
        "salt": "s",
        "groups": groups,
        "outcomes": pd.DataFrame({"customer_id": ["1"], "converted": [True]}),
        "features": sample_features,
        "segmenter": sk.RFMSegmenter(),
        "assignments": seg.assignments,
        "backtest": backtest,
        "migration": moved,
    }
    instances = {
        sk.Segmentation: seg,
        sk.Migration: moved,
        sk.SegmentChanges: moved.changes(),
        sk.GroupAssignment: groups,
        Snapshots: Snapshots([seg], [sk.RFMSegmenter()], "first"),
        ExperimentAnalysis: ExperimentAnalysis(
            pd.DataFrame(),
            control="control",
            confidence=0.95,
            revenue_test="welch",
            missing_outcomes=0,
            unknown_customers=pd.Index([]),
            min_customers=100,
            min_conversions=5,
        ),
    }
    return {"values": values, "instances": instances}


def _target(world: dict[str, Any], cls: type | None, name: str) -> Callable[..., Any]:
    if cls is None:
        for module_name in MODULES:
            module = importlib.import_module(module_name)
            if name in getattr(module, "__all__", ()) and inspect.isfunction(
                getattr(module, name)
            ):
                return getattr(module, name)
        raise AssertionError(name)
    member = inspect.getattr_static(cls, name)
    if isinstance(member, classmethod | staticmethod):
        return getattr(cls, name)
    return getattr(world["instances"][cls], name)


@pytest.mark.parametrize(("cls", "name", "parameter"), CASES)
def test_a_wrong_typed_argument_is_refused_naming_the_parameter(world, cls, name, parameter):
    function = _target(world, cls, name)
    signature = inspect.signature(function)
    kwargs = {
        p.name: world["values"][p.name]
        for p in signature.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    }
    kwargs[parameter] = _Wrong()
    owner = f"{cls.__name__ + '.' if cls else ''}{name}()"
    expected = rf"^The '{parameter}' parameter of {re.escape(owner)} must be .+\. Got <wrong> "
    with pytest.raises(InvalidParameterError, match=expected):
        function(**kwargs)


@pytest.mark.parametrize(
    ("module_name", "cls", "name"),
    [pytest.param(*c, id=f"{c[1].__name__ + '.' if c[1] else ''}{c[2]}") for c in CALLABLES],
)
def test_every_public_callable_declares_its_parameters(module_name, cls, name):
    function = getattr(cls or importlib.import_module(module_name), name)
    if not _named(function):
        return
    declared = getattr(function, "__parameter_constraints__", None)
    assert declared is not None, f"{name} has parameters but no @validated declaration"
    # Every default is acceptable to its own declaration.
    for parameter in inspect.signature(function).parameters.values():
        if parameter.name in declared and parameter.default is not parameter.empty:
            allowed = declared[parameter.name]
            assert any(c.is_satisfied_by(parameter.default) for c in allowed), parameter.name


def test_the_walk_covers_the_area():
    names = {f"{c.__name__ + '.' if c else ''}{n}" for _, c, n in CALLABLES}
    assert {
        "snapshots",
        "Snapshots.to_dir",
        "migration",
        "SegmentChanges.apply",
        "membership_changes",
        "assign_groups",
        "GroupAssignment.read",
        "analyze_test",
        "write_report",
        "projection",
        "Segmentation.to_json",
        "Segmentation.report",
        "evaluate",
        "stability",
        "generate_events",
    } <= names
    assert len(CASES) > 80


# --- the validator itself ---------------------------------------------------------------


def test_a_declaration_must_name_every_parameter():
    with pytest.raises(TypeError, match=r"parameters \['a', 'b'\] but constraints declared"):

        @validated(a=[PATH])
        def f(a: str, b: int) -> None: ...


def test_the_wrapper_keeps_signature_docstring_and_python_arity_errors():
    @validated(n=[Interval(int, 1, None)], how=[OneOf("x", "y")])
    def f(n: int, *, how: str = "x") -> tuple[int, str]:
        """Doc."""
        return n, how

    assert f(2) == (2, "x")
    assert f.__doc__ == "Doc."
    assert list(inspect.signature(f).parameters) == ["n", "how"]
    with pytest.raises(TypeError, match="missing 1 required positional argument"):
        f()  # type: ignore[call-arg]
    with pytest.raises(InvalidParameterError, match=r"'how' parameter of .*f\(\) .* \['x', 'y'\]"):
        f(1, how="z")


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (3, "3"),
        ("abc", "'abc'"),
        (None, "None"),
        (pd.DataFrame({"email": ["a@example.com"]}), "DataFrame object"),
        (pd.Index(["a@example.com"]), "Index object"),
        ("x" * 200, "str object"),
        (list(range(100)), "list object"),
    ],
)
def test_values_that_may_hold_data_are_named_by_type(value, shown):
    assert _shown(value) == shown


def test_a_list_parameter_names_its_wrong_item():
    constraint = ListLike("a sequence of str", item=InstanceOf((str,), "a str"), min_length=1)
    with pytest.raises(InvalidParameterError, match=r"Got \['a', 2\] instead: item 1 is 2, not"):
        validate_params("g()", {"p": ["a", 2]}, {"p": [constraint]})
    with pytest.raises(InvalidParameterError, match=r"Got \[\] instead: it has 0 items\.$"):
        validate_params("g()", {"p": []}, {"p": [constraint]})
    assert constraint.is_satisfied_by(x for x in "ab")  # a generator is not consumed
    assert not constraint.is_satisfied_by("ab")
