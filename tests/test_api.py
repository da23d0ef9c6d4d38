"""The public surface: exports, lazy imports, registry, docstrings."""

from __future__ import annotations

import enum
import importlib
import inspect
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

import segmentkit as sk
from segmentkit import _registry
from segmentkit.errors import UnknownEngineError

PUBLIC_MODULES = ["segmentkit", "segmentkit.engines", "segmentkit.datasets", "segmentkit.errors"]


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
