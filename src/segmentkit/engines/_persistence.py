"""Loading segmenters saved as JSON model files (see :mod:`._model_file`), with checks.

:func:`load` imports no module a file names unless it is part of segmentkit or
scikit-learn, or provides an engine registered with :func:`segmentkit.register_engine`
or installed as a plugin; modules already imported are looked up, not imported. The
engine must subclass :class:`Segmenter`. Files with pickled state are refused unless
``trust_pickle=True``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import json
import math
import numbers
import pickle
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from segmentkit._common._documents import exceeds_depth
from segmentkit._common._files import PathLike
from segmentkit._common._params import validate_params
from segmentkit._version import __version__
from segmentkit.engines._base import Segmenter
from segmentkit.engines._model_file import (
    _BASE_STATE,
    _CLASS_PATH,
    _IDENTIFIER,
    _KEYS,
    _OPTIONAL_KEYS,
    FORMAT,
    FORMAT_VERSION,
    MAX_DEPTH,
    _builtin_engines,
    _class_path,
    _Codec,
    _current_module,
    _damaged,
    _is_public_fitted,
    _lookup,
    _reject_constant,
    _UnencodableError,
    _untrusted,
    save,
)
from segmentkit.errors import PersistenceError

__all__ = ["FORMAT", "FORMAT_VERSION", "_Codec", "_UnencodableError", "load", "save"]


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
