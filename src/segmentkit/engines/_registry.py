"""Engines by name: the built-in ones, ones registered at run time, and plugins.

Third-party packages publish engines in the ``segmentkit.engines`` entry-point group:

.. code-block:: toml

    [project.entry-points."segmentkit.engines"]
    gmm = "my_package.engines:GaussianMixtureSegmenter"

Discovery reads entry-point metadata once (cached); a plugin's module is imported
only when its name is asked for.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from segmentkit.errors import InvalidParameterError, UnknownEngineError

__all__ = ["available_engines", "get_engine", "register_engine"]

ENTRY_POINT_GROUP = "segmentkit.engines"

# Built-ins by import path, so that importing segmentkit does not import scikit-learn.
_BUILTIN: dict[str, str] = {
    "hdbscan": "segmentkit.engines._hdbscan:HDBSCANSegmenter",
    "kmeans": "segmentkit.engines._kmeans:KMeansSegmenter",
    "rfm": "segmentkit.engines._rfm:RFMSegmenter",
    "rules": "segmentkit.engines._rules:RuleSegmenter",
    "value-risk": "segmentkit.engines._value_risk:ValueRiskSegmenter",
}
_REGISTERED: dict[str, Callable[..., Any]] = {}


@functools.cache
def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def available_engines() -> list[str]:
    """Names of every engine :func:`get_engine` can build, sorted.

    Returns
    -------
    list of str
        Built-in, registered and plugin engine names.

    Examples
    --------
    >>> import segmentkit as sk
    >>> {"rfm", "rules"} <= set(sk.available_engines())
    True
    """
    return sorted(set(_BUILTIN) | set(_REGISTERED) | set(_entry_points()))


def register_engine(name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Make an engine available to :func:`get_engine` under ``name``.

    Parameters
    ----------
    name : str
        The name users ask for.
    factory : callable
        Usually the engine class; called with the parameters given to ``get_engine``.
    overwrite : bool, default=False
        Replace an engine already registered under ``name``.

    Raises
    ------
    ValueError
        If ``name`` is taken and ``overwrite`` is false.

    Examples
    --------
    >>> import segmentkit as sk
    >>> sk.register_engine("vip_rules", sk.RuleSegmenter)
    >>> type(sk.get_engine("vip_rules", rules=[("VIP", "monetary > 1000")])).__name__
    'RuleSegmenter'
    """
    taken = name in _BUILTIN or name in _REGISTERED or name in _entry_points()
    if taken and not overwrite:
        msg = f"An engine named {name!r} is already registered. Pass overwrite=True to replace it."
        raise ValueError(msg)
    if not callable(factory):
        msg = f"The engine factory for {name!r} must be callable, got {type(factory).__name__}."
        raise TypeError(msg)
    _REGISTERED[name] = factory


def get_engine(name: str, /, **params: Any) -> Any:
    """Build the engine registered under ``name`` with ``params``.

    Parameters
    ----------
    name : str
        ``'rfm'``, ``'rules'``, or any registered or plugin engine.
    **params
        Passed to the engine's constructor.

    Returns
    -------
    Segmenter
        A new, unfitted engine.

    Raises
    ------
    UnknownEngineError
        If no engine has that name; the message lists the available ones.

    Examples
    --------
    >>> import segmentkit as sk
    >>> sk.get_engine("rfm", n_bins=5)
    RFMSegmenter()
    """
    factory = _resolve(name)
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some callables have no inspectable signature
        return factory(**params)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    unknown = [key for key in params if key not in signature.parameters]
    if unknown and not accepts_any:
        from segmentkit.contracts._schema import suggest

        valid = sorted(signature.parameters)
        hints = "".join(suggest(key, valid) for key in unknown)
        msg = f"Engine {name!r} has no parameters {unknown}.{hints} Its parameters: {valid}."
        raise InvalidParameterError(msg)
    return factory(**params)


def _resolve(name: str) -> Callable[..., Any]:
    if name in _REGISTERED:
        return _REGISTERED[name]
    if name in _BUILTIN:
        module, _, attribute = _BUILTIN[name].partition(":")
        return getattr(importlib.import_module(module), attribute)
    plugins = _entry_points()
    if name in plugins:
        return plugins[name].load()
    from segmentkit.contracts._schema import suggest

    known = available_engines()
    msg = f"Unknown engine {name!r}.{suggest(name, known)} Available engines: {known}."
    raise UnknownEngineError(msg)
