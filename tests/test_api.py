"""The public surface: exports, lazy imports, registry, docstrings."""

from __future__ import annotations

import enum
import importlib
import inspect
import subprocess
import sys
from importlib.metadata import EntryPoint

import numpy as np
import pytest

import segmentkit as sk
from segmentkit.engines import _registry
from segmentkit.errors import UnknownEngineError

PUBLIC_MODULES = [
    "segmentkit",
    "segmentkit.engines",
    "segmentkit.datasets",
    "segmentkit.errors",
    "segmentkit.testing",
    "segmentkit.plots",
    "segmentkit.exporters",
]


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_name_in_all_resolves_and_all_is_sorted(module_name):
    module = importlib.import_module(module_name)
    for name in module.__all__:
        assert getattr(module, name) is not None, name
    # Order is checked by ruff (RUF022); duplicates would hide drift.
    assert len(set(module.__all__)) == len(module.__all__)


def test_import_does_not_load_scikit_learn_or_hdbscan():
    code = (
        "import sys, segmentkit; "
        "heavy = [m for m in ('sklearn', 'hdbscan', 'polars', 'scipy') if m in sys.modules]; "
        "print(heavy)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_py_typed_is_shipped():
    from importlib.resources import files

    assert files("segmentkit").joinpath("py.typed").is_file()


def test_version():
    assert sk.__version__.count(".") == 2


def test_get_engine_builds_built_ins():
    assert isinstance(sk.get_engine("rfm", n_bins=5), sk.RFMSegmenter)
    assert isinstance(sk.get_engine("rules", rules=[("A", "frequency > 1")]), sk.RuleSegmenter)


def test_unknown_engine_lists_the_available_ones():
    with pytest.raises(
        UnknownEngineError,
        match=r"Unknown engine 'rfn'. Did you mean 'rfm'\? Available engines: \[",
    ) as caught:
        sk.get_engine("rfn")
    assert isinstance(caught.value, KeyError)


def test_register_engine_refuses_to_overwrite_silently():
    class Mine(sk.RuleSegmenter):
        pass

    sk.register_engine("test_mine", Mine)
    try:
        assert "test_mine" in sk.available_engines()
        with pytest.raises(ValueError, match="already registered"):
            sk.register_engine("test_mine", Mine)
        sk.register_engine("test_mine", sk.RuleSegmenter, overwrite=True)
        assert (
            sk.get_engine("test_mine", rules={"A": "frequency > 1"}).__class__ is sk.RuleSegmenter
        )
    finally:
        _registry._REGISTERED.pop("test_mine", None)


def test_plugins_are_found_through_entry_points_and_loaded_only_on_request(monkeypatch):
    loaded = []

    class FakeEntryPoint(EntryPoint):
        def load(self):
            loaded.append(self.name)
            return sk.RFMSegmenter

    fake = FakeEntryPoint(name="third_party", value="pkg.mod:Engine", group="segmentkit.engines")
    monkeypatch.setattr(
        _registry, "entry_points", lambda group: [fake] if group == "segmentkit.engines" else []
    )
    _registry._entry_points.cache_clear()
    try:
        assert "third_party" in sk.available_engines()
        assert loaded == []
        assert isinstance(sk.get_engine("third_party"), sk.RFMSegmenter)
        assert loaded == ["third_party"]
    finally:
        _registry._entry_points.cache_clear()


def issubclass_safe(obj, parent) -> bool:
    return inspect.isclass(obj) and issubclass(obj, parent)


def _public_callables():
    seen = {}
    for module_name in PUBLIC_MODULES:
        module = importlib.import_module(module_name)
        for name in module.__all__:
            obj = getattr(module, name)
            if issubclass_safe(obj, enum.Enum):
                continue
            if inspect.isclass(obj) or inspect.isfunction(obj):
                seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
                if inspect.isclass(obj):
                    for attr, member in vars(obj).items():
                        if not attr.startswith("_") and (
                            inspect.isfunction(member)
                            or isinstance(member, classmethod | staticmethod)
                        ):
                            seen[f"{obj.__module__}.{obj.__qualname__}.{attr}"] = member
    return seen


# numpydoc checks we hold every public callable to: summary, parameters, returns.
_CHECKS = {"GL08", "SS01", "SS03", "PR01", "PR02", "RT01", "SS06"}


@pytest.mark.parametrize("qualname", sorted(_public_callables()))
def test_public_docstrings_follow_numpydoc(qualname):
    from numpydoc.validate import validate

    result = validate(qualname)
    errors = [f"{code}: {message}" for code, message in result["errors"] if code in _CHECKS]
    assert not errors, "\n".join(errors)


def test_unknown_engine_parameters_list_the_valid_ones():
    with pytest.raises(
        sk.errors.InvalidParameterError,
        match=r"no parameters \['n_bin'\]. Did you mean 'n_bins'\?",
    ):
        sk.get_engine("rfm", n_bin=4)


class _BrokenEngine(sk.Segmenter):
    def __init__(self, *, mode="ok"):
        self.mode = mode

    def _fit(self, features):
        if self.mode == "no_segments":
            return
        names = ["A", "A"] if self.mode == "repeated" else ["A", "B"]
        self.segments_ = [sk.Segment(i, n) for i, n in enumerate(names)]

    def _assign(self, features):
        n = len(features)
        if self.mode == "unknown_label":
            return np.full(n, 7), {}
        if self.mode == "reserved":
            return np.zeros(n, dtype=int), {"customer_id": np.arange(n)}
        return np.zeros(n, dtype=int), {}


@pytest.mark.parametrize(
    ("mode", "match"),
    [
        ("no_segments", r"_fit must set 'segments_'"),
        ("repeated", r"repeats segment names \['A'\]"),
        ("unknown_label", r"labels \[7\] that are not ids of segments_ \[0, 1\]"),
        ("reserved", r"score columns \['customer_id'\], which are reserved"),
    ],
)
def test_custom_engines_that_break_the_contract_get_a_clear_error(mode, match):
    import pandas as pd

    frame = pd.DataFrame({"customer_id": ["a", "b"], "monetary": [1.0, 2.0]})
    with pytest.raises((TypeError, ValueError), match=match):
        _BrokenEngine(mode=mode).fit_predict(frame)
