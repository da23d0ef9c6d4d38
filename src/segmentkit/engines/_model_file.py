"""The model file: segmenters written as readable JSON, and the codec of their values.

:meth:`Segmenter.save` writes through :func:`save`; :mod:`._persistence` reads the
files back with checks (it knows the engine classes, this module knows none).

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

from segmentkit._common._files import PathLike, write_atomic
from segmentkit._version import __version__
from segmentkit.engines._expr import Expr, parse
from segmentkit.errors import PersistenceError, RuleSyntaxError

__all__ = ["FORMAT", "FORMAT_VERSION", "MAX_DEPTH", "save"]

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


def save(segmenter: Any, path: PathLike) -> Path:
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
    text = _render(_to_document(segmenter)) + "\n"
    return write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


# --------------------------------------------------------------------------- writing


def _to_document(segmenter: Any) -> dict[str, Any]:
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
        # A dataclass that can hold code (a rule whose condition is a function) says why
        # it cannot be saved; this module knows no engine's classes.
        refusal = getattr(value, "_save_refusal", None)
        reason = refusal(self.owner) if callable(refusal) else None
        if reason:
            raise PersistenceError(reason)
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
