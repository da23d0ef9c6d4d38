"""Saving segmenters as readable JSON files, and loading them back with checks.

A model file is one JSON document::

    {
      "format": "segmentkit-model",
      "format_version": 1,
      "segmentkit_version": "0.1.0",
      "engine": "segmentkit.engines._rfm:RFMSegmenter",
      "fitted": true,
      "params": {"n_bins": 5, "recency": "recency_days", ...},
      "state": {
        "thresholds_": {"recency": {"__type__": "ndarray", "dtype": "float64",
                                    "shape": [4], "data": [119.6, 46.9, 17.8, 4.1]}, ...},
        "segments_": [{"__type__": "dataclass",
                       "class": "segmentkit.results._segmentation:Segment",
                       "fields": {"id": 0, "name": "Champions", ...}}, ...],
        ...
      }
    }

``params`` are the constructor arguments (``get_params(deep=False)``); ``state`` the
fitted attributes: the public ones ending in ``_`` and the private ones an engine's
``predict`` needs. Values JSON has no type for are tagged objects
``{"__type__": ...}``: arrays (dtype, shape, data), tuples, dicts with non-text keys,
non-finite floats, pandas indexes, series and frames, timestamps, dataclasses of
segmentkit (segments, rules, the preprocessor), parsed rules (stored as their text
and parsed again on load) and fitted scikit-learn estimators made of plain data.

State that is none of these (the fitted ``hdbscan.HDBSCAN`` object of
:class:`HDBSCANSegmenter`) is pickled into a ``"pickled"`` section, base64 with its
SHA-256. Unpickling runs code chosen by whoever wrote the file, so :func:`load`
refuses such files unless told ``trust_pickle=True``. The hash detects damage, not a
malicious author.

:func:`load` imports no module a file names unless it is part of segmentkit or
scikit-learn, or provides an engine registered with :func:`segmentkit.register_engine`
or installed as a plugin; modules already imported are looked up, not imported. The
engine must subclass :class:`Segmenter`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import hashlib
import importlib
import json
import math
import numbers
import pickle
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, cast

import numpy as np
import pandas as pd

from segmentkit._common._documents import exceeds_depth
from segmentkit._common._files import PathLike, write_atomic
from segmentkit._common._params import validate_params
from segmentkit._version import __version__
from segmentkit.engines._base import Segmenter
from segmentkit.engines._expr import Expr, parse
from segmentkit.errors import PersistenceError, RuleSyntaxError

__all__ = ["FORMAT", "FORMAT_VERSION", "load", "save"]

#: Marker of a segmentkit model file (the ``"format"`` field).
FORMAT = "segmentkit-model"
#: Newest format version this release writes and reads.
FORMAT_VERSION = 1
#: Deepest nesting of lists and objects :func:`load` reads; saved models use about 10.
MAX_DEPTH = 100

_TAG = "__type__"
_KEYS = ("format", "format_version", "segmentkit_version", "engine", "fitted", "params")
_OPTIONAL_KEYS = ("state", "pickled")
_CLASS_PATH = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}
_ARRAY_KINDS = frozenset("biufUMmO")
# Every engine sets these in fit (see Segmenter.fit); engines add theirs in _state_types.
_BASE_STATE: dict[str, Any] = {
    "segments_": list,
    "segment_names_": dict,
    "n_segments_": numbers.Integral,
    "feature_names_in_": np.ndarray,
    "n_features_in_": numbers.Integral,
}


# --------------------------------------------------------------------------- API


def save(segmenter: Segmenter, path: PathLike) -> Path:
    """Write ``segmenter`` to ``path`` as a JSON model file, atomically.

    Parameters
    ----------
    segmenter : Segmenter
        Fitted or not.
    path : str or os.PathLike
        Destination; its folder must exist.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    PersistenceError
        If a rule's condition is a Python function, a parameter is not plain data, or
        some state can neither be written as JSON nor pickled.
    """
    if not isinstance(segmenter, Segmenter):
        msg = f"save() takes a segmentkit Segmenter, got {type(segmenter).__name__}."
        raise TypeError(msg)
    text = _render(_to_document(segmenter)) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def load(path: PathLike, *, trust_pickle: bool = False) -> Segmenter:
    """Read a segmenter written by :meth:`Segmenter.save`.

    Parameters
    ----------
    path : str or os.PathLike
        A model file.
    trust_pickle : bool, default=False
        Allow files with pickled state (e.g. an :class:`HDBSCANSegmenter`). Unpickling
        runs code chosen by whoever wrote the file: pass ``True`` only for files you
        wrote yourself or trust as much as your own code.

    Returns
    -------
    Segmenter
        The segmenter, with the parameters and fitted state it was saved with.

    Raises
    ------
    PersistenceError
        If the file is not a model file, was written in a newer format, names an
        engine that is neither part of segmentkit nor registered or installed as a
        plugin, has missing or damaged content, or holds pickled state and
        ``trust_pickle`` is false.
    FileNotFoundError
        If there is no file at ``path``.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import segmentkit as sk
    >>> raw, mapping = sk.datasets.load_sample()
    >>> features = sk.extract_features(sk.Transactions.from_frame(raw, **mapping))
    >>> model = sk.KMeansSegmenter(n_clusters=3, random_state=0).fit(features)
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = model.save(Path(folder) / "kmeans.json")
    ...     restored = sk.load(path)
    >>> restored
    KMeansSegmenter(n_clusters=3, random_state=0)
    >>> (restored.predict(features).assignments["segment_id"]
    ...  == model.predict(features).assignments["segment_id"]).all()
    np.True_
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        msg = f"{source} is not a segmentkit model file: it is not UTF-8 text."
        raise PersistenceError(msg) from None
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except ValueError as error:
        msg = f"{source} is not a segmentkit model file: it is not valid JSON ({error})."
        raise PersistenceError(msg) from None
    except RecursionError:
        raise PersistenceError(_too_deep(source)) from None
    _check_depth(document, source)
    try:
        return _from_document(document, source=source, trust_pickle=trust_pickle)
    except RecursionError:
        raise PersistenceError(_too_deep(source)) from None


def _too_deep(source: str) -> str:
    return (
        f"{source} is not a segmentkit model file: its JSON is nested more than "
        f"{MAX_DEPTH} levels deep, which no saved model is."
    )


def _check_depth(document: Any, source: str) -> None:
    if exceeds_depth(document, MAX_DEPTH):
        raise PersistenceError(_too_deep(source))


# --------------------------------------------------------------------------- writing


def _to_document(segmenter: Segmenter) -> dict[str, Any]:
    cls = type(segmenter)
    engine = _class_path(cls)
    if "<locals>" in engine:
        msg = (
            f"Cannot save {cls.__name__}: the class is defined inside a function "
            f"({engine}), so no program could find it to load the file. Define it at "
            "module level."
        )
        raise PersistenceError(msg)
    codec = _Codec(owner=cls.__name__, engine_module=cls.__module__, source="")
    params = segmenter.get_params(deep=False)
    attributes = {
        name: value
        for name, value in vars(segmenter).items()
        if name not in params and not name.startswith("__")
    }
    # State first: a fitted RuleSegmenter names the rule a Python function is in.
    state: dict[str, Any] = {}
    pickled: dict[str, Any] = {}
    for name, value in attributes.items():
        try:
            state[name] = codec.encode(value, f"state[{name!r}]")
        except _UnencodableError as error:
            if name not in cls._pickled_state:
                msg = (
                    f"Cannot save {cls.__name__}: its attribute {name!r} is {error.what}, "
                    "which has no JSON form. Store plain data (numbers, text, lists, "
                    "arrays, pandas objects) in it, or, if it must be pickled, list it in "
                    f"{cls.__name__}._pickled_state (loading then needs trust_pickle=True)."
                )
                raise PersistenceError(msg) from None
            pickled[name] = _pickle_entry(cls.__name__, name, value)
    encoded_params = {}
    for name, value in params.items():
        try:
            encoded_params[name] = codec.encode(value, name)
        except _UnencodableError as error:
            hint = (
                " Rules must be written as text to be saved."
                if "function" in error.what
                else " Parameters must be plain data (numbers, text, lists, dicts) to be saved."
            )
            msg = f"Cannot save {cls.__name__}: parameter {error.where} is {error.what}.{hint}"
            raise PersistenceError(msg) from None
    document: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "segmentkit_version": __version__,
        "engine": engine,
        "fitted": any(_is_public_fitted(name) for name in attributes),
        "params": encoded_params,
        "state": state,
    }
    if pickled:
        document["pickled"] = pickled
    return document


def _pickle_entry(owner: str, name: str, value: Any) -> dict[str, Any]:
    try:
        blob = pickle.dumps(value, protocol=4)
    except Exception as error:
        msg = (
            f"Cannot save {owner}: its attribute {name!r} holds a "
            f"{_class_path(type(value))} object, which is neither plain data nor "
            f"picklable ({type(error).__name__}: {error})."
        )
        raise PersistenceError(msg) from error
    return {
        "python_type": _class_path(type(value)),
        "sha256": hashlib.sha256(blob).hexdigest(),
        "data": base64.b64encode(blob).decode("ascii"),
    }


def _render(value: Any, level: int = 0) -> str:
    """JSON with one key per line, but short values and lists of numbers on one line."""
    compact = json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(", ", ": "))
    is_flat_list = isinstance(value, list) and not any(isinstance(v, dict | list) for v in value)
    if is_flat_list or not isinstance(value, dict | list) or len(compact) + 2 * level <= 92:
        return compact
    pad = "  " * (level + 1)
    if isinstance(value, dict):
        items = [
            f"{pad}{json.dumps(k, ensure_ascii=False)}: {_render(v, level + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + "  " * level + "}"
    items = [pad + _render(v, level + 1) for v in value]
    return "[\n" + ",\n".join(items) + "\n" + "  " * level + "]"


# --------------------------------------------------------------------------- reading


def _from_document(document: Any, *, source: str, trust_pickle: bool) -> Segmenter:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        hint = ""
        if isinstance(document, dict) and {"assignments", "segments"} <= set(document):
            hint = (
                " It looks like a segmentation written by Segmentation.to_json, which holds"
                " results; a model is written by Segmenter.save."
            )
        msg = (
            f"{source} is not a segmentkit model file: it has no "
            f'"format": "{FORMAT}" marker.{hint}'
        )
        raise PersistenceError(msg)
    version = document.get("format_version")
    if type(version) is not int or version < 1:
        raise _damaged(
            source, "format_version", f"expected a positive int, got {_untrusted(version)}"
        )
    if version > FORMAT_VERSION:
        claimed = document.get("segmentkit_version")
        # Shown only when it looks like a version number: the text comes from the file.
        version_like = isinstance(claimed, str) and re.fullmatch(r"[\w.+-]{1,40}", claimed)
        written_by = claimed if version_like else "an unknown version"
        msg = (
            f"{source} was written by segmentkit {written_by} with format version "
            f"{version}; this version of segmentkit ({__version__}) reads up to "
            f"{FORMAT_VERSION}. Upgrade segmentkit (pip install --upgrade segmentkit)."
        )
        raise PersistenceError(msg)
    missing = [key for key in _KEYS if key not in document]
    if missing:
        raise _damaged(source, "the document", f"it lacks the fields {missing}")
    unknown = sorted(set(document) - set(_KEYS) - set(_OPTIONAL_KEYS))
    if unknown:
        raise _damaged(source, "the document", f"it has unknown fields {unknown}")
    engine = document["engine"]
    if not isinstance(engine, str) or not _CLASS_PATH.fullmatch(engine):
        raise _damaged(source, "engine", f"expected 'module:Class', got {_untrusted(engine)}")
    cls = _resolve_engine(engine, source)
    fitted, params = document["fitted"], document["params"]
    state, pickled = document.get("state", {}), document.get("pickled", {})
    for where, value, kind in (
        ("fitted", fitted, bool),
        ("params", params, dict),
        ("state", state, dict),
        ("pickled", pickled, dict),
    ):
        if not isinstance(value, kind):
            raise _damaged(source, where, f"expected {kind.__name__}, got {type(value).__name__}")
    _check_pickled_names(cls, pickled, source)
    unpickled = _unpickle(cls, pickled, source=source, trust=trust_pickle)

    codec = _Codec(owner=cls.__name__, engine_module=cls.__module__, source=source)
    decoded = {k: codec.decode(v, k) for k, v in params.items()}
    segmenter = _construct(cls, decoded, source, fitted=fitted)
    for name in [*state, *unpickled]:
        if not isinstance(name, str) or not _IDENTIFIER.fullmatch(name) or name.startswith("__"):
            raise _damaged(source, "state", f"{name!r} is not an attribute name")
        if name in params:
            raise _damaged(source, "state", f"{name!r} is a parameter, not fitted state")
        _check_state_name(cls, name, source)
    both = sorted(set(state) & set(unpickled))
    if both:
        raise _damaged(source, "pickled", f"{both} are also in 'state'")
    for name, node in state.items():
        setattr(segmenter, name, codec.decode(node, f"state[{name!r}]"))
    for name, value in unpickled.items():
        setattr(segmenter, name, value)
    if fitted:
        _check_state(segmenter, source)
    elif any(_is_public_fitted(name) for name in [*state, *unpickled]):
        raise _damaged(source, "fitted", "the file says unfitted but holds fitted state")
    return segmenter


def _check_pickled_names(cls: type[Segmenter], pickled: dict[str, Any], source: str) -> None:
    """Refuse pickled state the engine never writes, whatever the caller trusts."""
    declared = cls._pickled_state
    unexpected = [name for name in pickled if name not in declared]
    if not unexpected:
        return
    shown = ", ".join(_untrusted(name) for name in unexpected[:5])
    writes = f"it writes only {sorted(declared)} that way" if declared else "it never writes any"
    msg = (
        f"{source} holds pickled state {shown} for {cls.__name__}, but {writes}. The "
        "pickled section was not written by segmentkit; it is refused even with "
        "trust_pickle=True. Save the model again."
    )
    raise PersistenceError(msg)


def _unpickle(
    cls: type[Segmenter], pickled: dict[str, Any], *, source: str, trust: bool
) -> dict[str, Any]:
    blobs = {}
    for name, entry in pickled.items():
        where = f"pickled[{name!r}]"
        if not isinstance(entry, dict):
            raise _damaged(source, where, "expected an object")
        for key in ("python_type", "sha256", "data"):
            if not isinstance(entry.get(key), str):
                raise _damaged(source, where, f"{key!r} is missing or not text")
        try:
            blobs[name] = base64.b64decode(entry["data"], validate=True)
        except (binascii.Error, ValueError):
            raise _damaged(source, where, "'data' is not base64") from None
    if not blobs:
        return {}
    if not trust:
        # What the engine's own code says the attribute holds: the file's 'python_type'
        # is the author's claim and is not shown as if it were verified.
        listed = ", ".join(f"{n!r} ({cls._pickled_state[n]})" for n in pickled)
        msg = (
            f"{source} holds pickled Python objects for {cls.__name__}: {listed}. "
            "Unpickling runs code chosen "
            "by whoever wrote the file, so loading it is refused by default. If you wrote "
            "the file yourself or trust its origin as much as your own code, load it with "
            "load(path, trust_pickle=True)."
        )
        raise PersistenceError(msg)
    objects = {}
    for name, blob in blobs.items():
        expected = pickled[name]["sha256"]
        if hashlib.sha256(blob).hexdigest() != expected.lower():
            raise _damaged(
                source, f"pickled[{name!r}]", "the SHA-256 of the data does not match 'sha256'"
            )
        try:
            objects[name] = pickle.loads(blob)  # the caller said it trusts the file
        except Exception as error:
            msg = (
                f"{source}: cannot unpickle {name!r} ({cls._pickled_state[name]}): "
                f"{type(error).__name__}: {error}. It may need other library versions than "
                "the ones installed."
            )
            raise PersistenceError(msg) from error
    return objects


def _construct(
    cls: type[Segmenter], params: dict[str, Any], source: str, *, fitted: bool
) -> Segmenter:
    known = set(cls._get_param_names())
    unknown = sorted(set(params) - known)
    if unknown:
        raise _damaged(
            source,
            "params",
            f"{cls.__name__} has no parameters {unknown} (it has {sorted(known)})",
        )
    try:
        if fitted:  # fit validated them; an unfitted segmenter may hold anything yet
            validate_params(cls.__name__, params, cls._parameter_constraints)
        return cls(**params)
    except Exception as error:
        msg = f"{source}: cannot build {cls.__name__} from the saved parameters: {error}"
        raise PersistenceError(msg) from error


def _check_state_name(cls: type[Segmenter], name: str, source: str) -> None:
    declared = {**_BASE_STATE, **cls._state_types, **cls._pickled_state}
    if name in declared:
        return
    if hasattr(cls, name):
        # Data set over a method or class attribute would change what the engine runs.
        raise _damaged(source, "state", f"{name!r} is not fitted state of {cls.__name__}")
    builtin = cls.__module__.startswith("segmentkit.")
    if builtin and not _is_public_fitted(name):
        raise _damaged(source, "state", f"{cls.__name__} has no fitted attribute {name!r}")


def _check_values(segmenter: Segmenter, source: str) -> None:
    """Shapes and numbers of the state that predict uses: finite, consistent, 1-d names."""
    from segmentkit.engines._preprocess import Preprocessor

    cls = type(segmenter)
    names = segmenter.feature_names_in_
    if names.ndim != 1 or not all(isinstance(n, str) for n in names.tolist()):
        raise _damaged(source, "state['feature_names_in_']", "expected a list of names")
    if len(set(names.tolist())) != len(names):
        raise _damaged(source, "state['feature_names_in_']", "it repeats a feature name")
    for name in cls._state_types:
        value = getattr(segmenter, name)
        where = f"state[{name!r}]"
        if _has_nan(value):
            raise _damaged(source, where, "it holds NaN where numbers are needed")
        if isinstance(value, Preprocessor):
            _check_preprocessor(value, source, where)
    centers = getattr(segmenter, "cluster_centers_", None)
    if "cluster_centers_" in cls._state_types and isinstance(centers, np.ndarray):
        where = "state['cluster_centers_']"
        if centers.ndim != 2 or centers.dtype.kind != "f" or not np.isfinite(centers).all():
            raise _damaged(source, where, "expected a 2-d array of finite numbers")
        pre = getattr(segmenter, "_pre", None)
        if isinstance(pre, Preprocessor):
            width = len(pre.numeric) + sum(len(levels) for levels in pre.categorical.values())
            if centers.shape[1] != width:
                raise _damaged(source, where, f"{centers.shape[1]} columns for {width} features")
    thresholds = getattr(segmenter, "thresholds_", None)
    if "thresholds_" in cls._state_types and isinstance(thresholds, dict):
        for key, cuts in thresholds.items():
            if not (isinstance(cuts, np.ndarray) and cuts.ndim == 1 and cuts.dtype.kind == "f"):
                raise _damaged(source, f"state['thresholds_'][{key!r}]", "expected a 1-d array")
    parsed, rules = getattr(segmenter, "_parsed", None), getattr(segmenter, "rules_", None)
    if isinstance(parsed, list) and isinstance(rules, list) and len(parsed) != len(rules):
        raise _damaged(source, "state['_parsed']", "it does not match rules_")


def _check_preprocessor(pre: Any, source: str, where: str) -> None:
    n = len(pre.numeric)
    for field_name in ("fill", "center", "scale"):
        values = getattr(pre, field_name)
        if not isinstance(values, list) or len(values) != n:
            raise _damaged(source, f"{where}.{field_name}", f"expected {n} numbers")
        if not all(_is_real(v) and math.isfinite(v) for v in values):
            raise _damaged(source, f"{where}.{field_name}", "expected finite numbers")
    if not all(v > 0 for v in pre.scale):
        raise _damaged(source, f"{where}.scale", "scales must be positive")
    if not set(pre.logged) <= set(pre.numeric):
        raise _damaged(source, f"{where}.logged", "it names features that are not numeric")


def _is_real(value: Any) -> bool:
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool
    )


def _has_nan(value: Any) -> bool:
    # Bounded: the document's depth was checked on reading.
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    if isinstance(value, np.ndarray):
        return value.dtype.kind == "f" and bool(np.isnan(value).any())
    if isinstance(value, list | tuple):
        return any(_has_nan(v) for v in value)
    if isinstance(value, dict):
        return any(_has_nan(v) for v in value.values())
    return False


def _check_state(segmenter: Segmenter, source: str) -> None:
    cls = type(segmenter)
    required = {**_BASE_STATE, **getattr(cls, "_state_types", {})}
    for name, kind in required.items():
        where = f"state[{name!r}]"
        if not hasattr(segmenter, name):
            raise _damaged(source, "state", f"{cls.__name__} needs {name!r}, which is missing")
        value = getattr(segmenter, name)
        if isinstance(value, bool) and kind is numbers.Integral:
            raise _damaged(source, where, "expected an int, got a bool")
        if not isinstance(value, kind):
            expected = (
                " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
            )
            raise _damaged(source, where, f"expected {expected}, got {type(value).__name__}")
    try:
        segmenter._check_segments()
    except (TypeError, ValueError) as error:
        raise _damaged(source, "state['segments_']", str(error)) from None
    if segmenter.n_segments_ != len(segmenter.segments_):
        raise _damaged(source, "state['n_segments_']", "it does not match segments_")
    if segmenter.segment_names_ != {s.id: s.name for s in segmenter.segments_}:
        raise _damaged(source, "state['segment_names_']", "it does not match segments_")
    if segmenter.n_features_in_ != len(segmenter.feature_names_in_):
        raise _damaged(source, "state['n_features_in_']", "it does not match feature_names_in_")
    _check_values(segmenter, source)


def _resolve_engine(path: str, source: str) -> type[Segmenter]:
    module_name, _, qualname = path.partition(":")
    module_name = _current_module(module_name)
    if module_name == "segmentkit" or module_name.startswith("segmentkit."):
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
        found = _lookup(module, qualname) if module is not None else None
        if found is None:
            msg = (
                f"{source} names its engine {_untrusted(path)} (the file's claim), which "
                f"this version of segmentkit ({__version__}) does not have. Its engines: "
                f"{_builtin_engines()}."
            )
            raise PersistenceError(msg)
    else:
        found = _known_engine(path)
        if found is None:
            msg = (
                f"{source} names its engine {_untrusted(path)} (the file's claim), which is "
                "not part of segmentkit, not registered (segmentkit.register_engine) and not "
                "an installed plugin (entry point group 'segmentkit.engines'). If you trust "
                "the file, install or import the package that provides it, then load again."
            )
            raise PersistenceError(msg)
    if not (isinstance(found, type) and issubclass(found, Segmenter)):
        msg = (
            f"{source} names {_untrusted(path)} as its engine (the file's claim), which is "
            "not a segmentkit Segmenter."
        )
        raise PersistenceError(msg)
    return found


def _known_engine(path: str) -> Any:
    """A registered or plugin engine class at ``path``, or one already imported; or None."""
    from segmentkit.engines import _registry

    for factory in list(_registry._REGISTERED.values()):
        if isinstance(factory, type) and _class_path(factory) == path:
            return factory
    module_name, _, qualname = path.partition(":")
    package = module_name.split(".")[0]
    for entry in _registry._entry_points().values():
        # Only the plugin's own package is imported, as get_engine would do.
        if entry.value.replace(" ", "") != path and entry.module.split(".")[0] != package:
            continue
        try:
            loaded = entry.load()
        except Exception as error:
            msg = f"The plugin engine {entry.name!r} ({entry.value}) failed to import: {error}"
            raise PersistenceError(msg) from error
        if isinstance(loaded, type) and _class_path(loaded) == path:
            return loaded
    module = sys.modules.get(module_name)
    found = _lookup(module, qualname) if module is not None else None
    if isinstance(found, type) and issubclass(found, Segmenter):
        return found
    return None


# --------------------------------------------------------------------------- values


class _UnencodableError(Exception):
    """A value has no JSON form (it may still be pickled)."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where = where
        self.what = what


class _Codec:
    """Values to JSON-compatible data and back; ``where`` paths go into messages."""

    def __init__(self, *, owner: str, engine_module: str, source: str) -> None:
        self.owner = owner
        self.engine_module = engine_module
        self.source = source

    # ---------------------------------------------------------------- encode

    def encode(self, value: Any, where: str) -> Any:
        if value is None or type(value) in (bool, int, str):
            return value
        if type(value) is float:
            return value if math.isfinite(value) else {_TAG: "float", "value": str(value)}
        if isinstance(value, np.generic):
            if value.dtype.kind not in "biuf" or value.dtype.itemsize > 8:
                raise _UnencodableError(where, f"a numpy {value.dtype} scalar")
            return {_TAG: "numpy", "dtype": str(value.dtype), "value": _finite(value.item())}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {_TAG: "tuple", "items": self.encode(list(value), where)}
        if isinstance(value, set | frozenset):
            items = list(value)
            with contextlib.suppress(TypeError):  # mixed types keep their order
                items.sort()
            kind = "set" if isinstance(value, set) else "frozenset"
            return {_TAG: kind, "items": self.encode(items, where)}
        if isinstance(value, dict):
            if all(type(k) is str for k in value) and _TAG not in value:
                return {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}
            return {
                _TAG: "dict",
                "items": [
                    [self.encode(k, f"{where}.keys()"), self.encode(v, f"{where}[{k!r}]")]
                    for k, v in value.items()
                ],
            }
        if isinstance(value, np.ndarray):
            return self._encode_array(value, where)
        if isinstance(value, pd.RangeIndex):
            return {
                _TAG: "range_index",
                "start": value.start,
                "stop": value.stop,
                "step": value.step,
                "name": self.encode(value.name, f"{where}.name"),
            }
        if isinstance(value, pd.Index) and not isinstance(value, pd.MultiIndex):
            return {
                _TAG: "index",
                "dtype": str(value.dtype),
                "name": self.encode(value.name, f"{where}.name"),
                "values": self._encode_values(value, where),
            }
        if isinstance(value, pd.Series):
            return {
                _TAG: "series",
                "name": self.encode(value.name, f"{where}.name"),
                "dtype": str(value.dtype),
                "index": self.encode(value.index, f"{where}.index"),
                "values": self._encode_values(value, where),
            }
        if isinstance(value, pd.DataFrame):
            return self._encode_frame(value, where)
        if value is pd.NA or value is pd.NaT:
            return {_TAG: "na" if value is pd.NA else "nat"}
        if isinstance(value, pd.Timestamp):
            return {
                _TAG: "timestamp",
                "value": value.isoformat(),
                "tz": None if value.tz is None else str(value.tz),
            }
        if isinstance(value, Expr):
            return {_TAG: "rule_expr", "text": str(value)}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return self._encode_dataclass(value, where)
        if _is_sklearn_estimator(value):
            return self._encode_estimator(value, where)
        if callable(value):
            name = getattr(value, "__qualname__", None) or type(value).__name__
            raise _UnencodableError(where, f"a Python function ({name})")
        raise _UnencodableError(where, f"a {_class_path(type(value))} object")

    def _encode_array(self, array: np.ndarray, where: str) -> dict[str, Any]:
        kind = array.dtype.kind
        node: dict[str, Any] = {_TAG: "ndarray", "dtype": str(array.dtype)}
        node["shape"] = list(array.shape)
        if kind not in _ARRAY_KINDS or (kind in "biuf" and array.dtype.itemsize > 8):
            raise _UnencodableError(where, f"a numpy array of dtype {array.dtype}")
        if kind in "biuU":
            node["data"] = array.tolist()
        elif kind == "f":
            node["data"] = _finite(array.tolist())
        elif kind in "Mm":
            # Counts of the dtype's unit since the epoch; NaT is the smallest int64.
            node["data"] = array.view(np.int64).tolist()
        else:
            node["data"] = [
                self.encode(v, f"{where}[{i}]") for i, v in enumerate(array.ravel().tolist())
            ]
        return node

    def _encode_values(self, values: pd.Index | pd.Series, where: str) -> dict[str, Any]:
        if isinstance(values.dtype, pd.CategoricalDtype):
            # "category" alone would lose the categories and their order.
            raise _UnencodableError(where, "categorical pandas data")
        if isinstance(values.dtype, np.dtype):
            return self._encode_array(values.to_numpy(), where)
        # Extension dtypes (str, Int64, category, tz-aware times): elements one by one.
        return self._encode_array(values.to_numpy(dtype=object), where)

    def _encode_frame(self, frame: pd.DataFrame, where: str) -> dict[str, Any]:
        if isinstance(frame.columns, pd.MultiIndex) or not frame.columns.is_unique:
            raise _UnencodableError(where, "a DataFrame with MultiIndex or repeated columns")
        return {
            _TAG: "dataframe",
            "index": self.encode(frame.index, f"{where}.index"),
            "columns": [
                {
                    "name": self.encode(name, f"{where}.columns"),
                    "dtype": str(frame[name].dtype),
                    "values": self._encode_values(frame[name], f"{where}[{name!r}]"),
                }
                for name in frame.columns
            ],
        }

    def _encode_dataclass(self, value: Any, where: str) -> dict[str, Any]:
        from segmentkit.engines._rules import Rule

        if isinstance(value, Rule) and not isinstance(value.when, str):
            msg = (
                f"Cannot save {self.owner}: rule {value.name!r} has a Python function as its "
                f"condition ({value.text}), and functions are code, not data. Write the "
                "condition as text in the rule language (e.g. "
                f"Rule({value.name!r}, 'monetary > 500')) to save the model, or pickle it "
                "yourself."
            )
            raise PersistenceError(msg)
        cls = type(value)
        if not self._dataclass_allowed(cls.__module__):
            raise _UnencodableError(where, f"a {_class_path(cls)} object")
        return {
            _TAG: "dataclass",
            "class": _class_path(cls),
            "fields": {
                f.name: self.encode(getattr(value, f.name), f"{where}.{f.name}")
                for f in dataclasses.fields(value)
            },
        }

    def _encode_estimator(self, value: Any, where: str) -> dict[str, Any]:
        params = value.get_params(deep=False)
        try:
            return {
                _TAG: "estimator",
                "class": _class_path(type(value)),
                "params": self.encode(params, f"{where}.params"),
                "state": {
                    k: self.encode(v, f"{where}.{k}")
                    for k, v in vars(value).items()
                    if k not in params and not k.startswith("__")
                },
            }
        except PersistenceError:
            raise _UnencodableError(where, f"a {_class_path(type(value))} object") from None

    def _dataclass_allowed(self, module: str) -> bool:
        return (
            module == "segmentkit"
            or module.startswith("segmentkit.")
            or module.split(".")[0] == self.engine_module.split(".")[0]
        )

    # ---------------------------------------------------------------- decode

    def decode(self, node: Any, where: str) -> Any:
        if node is None or type(node) in (bool, int, float, str):
            return node
        if isinstance(node, list):
            return [self.decode(v, f"{where}[{i}]") for i, v in enumerate(node)]
        if not isinstance(node, dict):
            raise self.damaged(where, f"unexpected {type(node).__name__}")
        if _TAG not in node:
            return {k: self.decode(v, f"{where}[{k!r}]") for k, v in node.items()}
        tag = node[_TAG]
        decoder = getattr(self, f"_decode_{tag}", None) if isinstance(tag, str) else None
        if decoder is None:
            raise self.damaged(where, f"unknown value type {tag!r}")
        try:
            return decoder(node, where)
        except PersistenceError:
            raise
        except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as error:
            raise self.damaged(where, f"invalid {tag} ({type(error).__name__}: {error})") from None

    def damaged(self, where: str, detail: str) -> PersistenceError:
        return _damaged(self.source, where, detail)

    def _field(self, node: dict[str, Any], key: str, kind: Any, where: str) -> Any:
        if key not in node:
            raise self.damaged(where, f"{node[_TAG]} lacks {key!r}")
        value = node[key]
        wrong = kind is not None and (
            not isinstance(value, kind) or (isinstance(value, bool) and kind is int)
        )
        if wrong:
            raise self.damaged(where, f"{key!r} has the wrong type {type(value).__name__}")
        return value

    def _decode_float(self, node: dict[str, Any], where: str) -> float:
        text = self._field(node, "value", str, where)
        if text not in _NONFINITE:
            raise self.damaged(where, f"{text!r} is not nan, inf or -inf")
        return _NONFINITE[text]

    def _decode_numpy(self, node: dict[str, Any], where: str) -> Any:
        dtype = self._dtype(self._field(node, "dtype", str, where), where, kinds="biuf")
        value = _number(self._field(node, "value", None, where))
        self._check_leaves([value], dtype, where)
        return dtype.type(value)

    def _decode_tuple(self, node: dict[str, Any], where: str) -> tuple[Any, ...]:
        return tuple(self.decode(self._field(node, "items", list, where), where))

    def _decode_set(self, node: dict[str, Any], where: str) -> set[Any]:
        return set(self.decode(self._field(node, "items", list, where), where))

    def _decode_frozenset(self, node: dict[str, Any], where: str) -> frozenset[Any]:
        return frozenset(self.decode(self._field(node, "items", list, where), where))

    def _decode_dict(self, node: dict[str, Any], where: str) -> dict[Any, Any]:
        out = {}
        for pair in self._field(node, "items", list, where):
            if not isinstance(pair, list) or len(pair) != 2:
                raise self.damaged(where, "dict items must be [key, value] pairs")
            out[self.decode(pair[0], where)] = self.decode(pair[1], where)
        return out

    def _decode_ndarray(self, node: dict[str, Any], where: str) -> np.ndarray:
        dtype = self._dtype(self._field(node, "dtype", str, where), where, kinds=_ARRAY_KINDS)
        shape = self._field(node, "shape", list, where)
        if not all(type(n) is int and n >= 0 for n in shape):
            raise self.damaged(where, f"bad shape {shape}")
        data = self._field(node, "data", list, where)
        size = math.prod(shape)
        if dtype.kind == "O":
            if len(data) != size:
                raise self.damaged(where, f"{len(data)} values for shape {shape}")
            array = np.empty(size, dtype=object)
            for i, item in enumerate(data):
                array[i] = self.decode(item, f"{where}[{i}]")
            return array.reshape(shape)
        leaves = list(_leaves(data))
        if len(leaves) != size:
            raise self.damaged(where, f"{len(leaves)} values for shape {shape}")
        if dtype.kind in "Mm":
            self._check_leaves(leaves, np.dtype(np.int64), where)
            return np.array(leaves, dtype=np.int64).view(dtype).reshape(shape)
        if dtype.kind == "f":
            leaves = [_number(v) for v in leaves]
        self._check_leaves(leaves, dtype, where)
        return np.array(leaves, dtype=dtype).reshape(shape)

    def _decode_range_index(self, node: dict[str, Any], where: str) -> pd.RangeIndex:
        start, stop, step = (self._field(node, k, int, where) for k in ("start", "stop", "step"))
        name = self.decode(self._field(node, "name", None, where), where)
        return pd.RangeIndex(start, stop, step, name=name)

    def _decode_index(self, node: dict[str, Any], where: str) -> pd.Index:
        dtype = self._pandas_dtype(self._field(node, "dtype", str, where), where)
        values = self._decode_ndarray(self._field(node, "values", dict, where), where)
        name = self.decode(self._field(node, "name", None, where), where)
        return pd.Index(values, dtype=dtype, name=name)

    def _decode_series(self, node: dict[str, Any], where: str) -> pd.Series:
        dtype = self._pandas_dtype(self._field(node, "dtype", str, where), where)
        values = self._decode_ndarray(self._field(node, "values", dict, where), where)
        index = self.decode(self._field(node, "index", dict, where), f"{where}.index")
        name = self.decode(self._field(node, "name", None, where), where)
        return pd.Series(_typed(values, dtype), index=index, name=name)

    def _decode_dataframe(self, node: dict[str, Any], where: str) -> pd.DataFrame:
        index = self.decode(self._field(node, "index", dict, where), f"{where}.index")
        if not isinstance(index, pd.Index):
            raise self.damaged(where, "the index is not an index")
        data = {}
        for column in self._field(node, "columns", list, where):
            if not isinstance(column, dict):
                raise self.damaged(where, "columns must be objects")
            name = self.decode(column.get("name"), f"{where}.columns")
            dtype = self._pandas_dtype(column.get("dtype"), where)
            if not isinstance(column.get("values"), dict):
                raise self.damaged(where, f"column {name!r} has no values")
            values = self._decode_ndarray(column["values"], f"{where}[{name!r}]")
            if len(values) != len(index):
                raise self.damaged(where, f"column {name!r} does not match the index length")
            data[name] = _typed(values, dtype)
        return pd.DataFrame(data, index=index, columns=list(data))

    def _decode_na(self, node: dict[str, Any], where: str) -> Any:
        return pd.NA

    def _decode_nat(self, node: dict[str, Any], where: str) -> Any:
        return pd.NaT

    def _decode_timestamp(self, node: dict[str, Any], where: str) -> pd.Timestamp:
        stamp = pd.Timestamp(self._field(node, "value", str, where))
        tz = self._field(node, "tz", (str, type(None)), where)
        return stamp if tz is None else stamp.tz_convert(tz)

    def _decode_rule_expr(self, node: dict[str, Any], where: str) -> Expr:
        text = self._field(node, "text", str, where)
        try:
            return parse(text)
        except RuleSyntaxError as error:
            raise self.damaged(where, f"the rule does not parse: {error.message}") from None

    def _decode_dataclass(self, node: dict[str, Any], where: str) -> Any:
        path = self._field(node, "class", str, where)
        module_name, _, qualname = path.partition(":")
        module_name = _current_module(module_name)
        if not _CLASS_PATH.fullmatch(path) or not self._dataclass_allowed(module_name):
            raise self.damaged(where, f"{path} is not a segmentkit or engine data class")
        module: ModuleType | None
        if module_name == "segmentkit" or module_name.startswith("segmentkit."):
            module = importlib.import_module(module_name)
        else:
            module = sys.modules.get(module_name)  # the engine's package: already imported
        cls = _lookup(module, qualname) if module is not None else None
        if not (isinstance(cls, type) and dataclasses.is_dataclass(cls)):
            raise self.damaged(where, f"{path} is not a data class")
        fields = self._field(node, "fields", dict, where)
        known = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise self.damaged(where, f"{cls.__name__} has no fields {unknown}")
        values = {k: self.decode(v, f"{where}.{k}") for k, v in fields.items()}
        value = cls(**{k: v for k, v in values.items() if known[k].init})
        for k, v in values.items():
            if not known[k].init:
                object.__setattr__(value, k, v)
        return value

    def _decode_estimator(self, node: dict[str, Any], where: str) -> Any:
        from sklearn.base import BaseEstimator

        path = self._field(node, "class", str, where)
        module_name, _, qualname = path.partition(":")
        if not _CLASS_PATH.fullmatch(path) or not module_name.startswith("sklearn."):
            raise self.damaged(where, f"{path} is not a scikit-learn estimator")
        cls = _lookup(importlib.import_module(module_name), qualname)
        if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
            raise self.damaged(where, f"{path} is not a scikit-learn estimator")
        params = self.decode(self._field(node, "params", dict, where), f"{where}.params")
        # sklearn ships no types, so issubclass cannot narrow cls for the checker.
        names = cast("type[BaseEstimator]", cls)._get_param_names()
        unknown = sorted(set(params) - set(names))
        if unknown:
            raise self.damaged(where, f"{cls.__name__} has no parameters {unknown}")
        estimator = cls(**params)
        for name, item in self._field(node, "state", dict, where).items():
            if not _IDENTIFIER.fullmatch(name) or name.startswith("__"):
                raise self.damaged(where, f"{name!r} is not an attribute name")
            setattr(estimator, name, self.decode(item, f"{where}.{name}"))
        return estimator

    def _dtype(self, text: str, where: str, *, kinds: Any) -> np.dtype:
        try:
            dtype = np.dtype(text)
        except TypeError:
            raise self.damaged(where, f"unknown dtype {text!r}") from None
        if dtype.kind not in kinds or dtype.fields is not None:
            raise self.damaged(where, f"unsupported dtype {text!r}")
        return dtype

    def _pandas_dtype(self, text: Any, where: str) -> Any:
        if not isinstance(text, str):
            raise self.damaged(where, "the dtype is missing or not text")
        try:
            return pd.api.types.pandas_dtype(text)
        except TypeError:
            raise self.damaged(where, f"unknown dtype {text!r}") from None

    def _check_leaves(self, leaves: list[Any], dtype: np.dtype, where: str) -> None:
        allowed: Any = {
            "b": (bool,),
            "i": (int,),
            "u": (int,),
            "f": (int, float),
            "U": (str,),
        }[dtype.kind]
        for value in leaves:
            if type(value) not in allowed:
                raise self.damaged(where, f"{value!r} is not a valid {dtype} value")


# --------------------------------------------------------------------------- helpers


def _damaged(source: str, where: str, detail: str) -> PersistenceError:
    msg = (
        f"{source}: {where}: {detail}. The model file was edited or is damaged; save the "
        "model again."
    )
    return PersistenceError(msg)


def _untrusted(value: Any, limit: int = 80) -> str:
    """A value from a file, quoted and shortened: shown as the file's text, never trusted."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 4] + "...'"


def _builtin_engines() -> list[str]:
    from segmentkit.engines import _registry

    return sorted(path.partition(":")[2] for path in _registry._BUILTIN.values())


def _reject_constant(name: str) -> Any:
    msg = f"non-standard JSON constant {name}"
    raise ValueError(msg)


# Modules that moved when the package was laid out by stage (0.x files name the old ones).
_MOVED_MODULES = {
    "segmentkit._segmentation": "segmentkit.results._segmentation",
    "segmentkit._features": "segmentkit.features._extract",
}


def _current_module(name: str) -> str:
    return _MOVED_MODULES.get(name, name)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _lookup(module: Any, qualname: str) -> Any:
    found = module
    for part in qualname.split("."):
        if part.startswith("__"):
            return None
        found = getattr(found, part, None)
    return found


def _is_public_fitted(name: str) -> bool:
    return name.endswith("_") and not name.startswith("_")


def _is_sklearn_estimator(value: Any) -> bool:
    module = type(value).__module__
    if not module.startswith("sklearn."):
        return False
    from sklearn.base import BaseEstimator

    return isinstance(value, BaseEstimator)


def _finite(value: Any) -> Any:
    """Non-finite floats, which JSON lacks, as the text 'nan', 'inf' or '-inf'."""
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _number(value: Any) -> Any:
    return _NONFINITE.get(value, value) if isinstance(value, str) else value


def _typed(values: np.ndarray, dtype: Any) -> Any:
    if isinstance(dtype, np.dtype):
        return values.astype(dtype, copy=False)
    return pd.array(values, dtype=dtype)


def _leaves(data: Any) -> Iterator[Any]:
    for item in data:
        if isinstance(item, list):
            yield from _leaves(item)
        else:
            yield item
