"""Declarative parameter constraints: one declaration per parameter, one wording of the error.

Public through :mod:`segmentkit.engines` (``Interval``, ``OneOf``, ``InstanceOf``,
``Satisfies``, ``NONE``) so that third-party engines declare theirs the same way.

A small in-house version of scikit-learn's idea (its implementation is private and
changes between releases): each engine declares ``_parameter_constraints`` mapping a
parameter to the constraints it may satisfy, checked when ``fit`` starts; every other
public function or method declares its parameters with the :func:`validated`
decorator, checked on each call. :func:`validate_params` raises one
:class:`~segmentkit.errors.InvalidParameterError` (a ``ValueError`` and a
``TypeError``) in a fixed wording when none is met.
"""

from __future__ import annotations

import functools
import inspect
import math
import numbers
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar, cast

import numpy as np
import pandas as pd

from segmentkit.errors import InvalidParameterError

_P = ParamSpec("_P")
_R = TypeVar("_R")
# Values whose repr may hold customer data or run to many lines are named by type only.
_DATA_TYPES = (pd.DataFrame, pd.Series, pd.Index, np.ndarray)
_MAX_SHOWN = 80


@dataclass(frozen=True)
class Interval:
    """Numbers of ``kind`` (``int`` or ``float``) between ``left`` and ``right``.

    Parameters
    ----------
    kind : type
        ``int`` (integers only) or ``float`` (any real number). Booleans never pass.
    left, right : float or None
        Bounds; ``None`` leaves that end open.
    closed : {'both', 'left', 'right', 'neither'}, default='both'
        Which bounds belong to the interval.

    Examples
    --------
    >>> from segmentkit.engines import Interval
    >>> Interval(int, 2, None).is_satisfied_by(5), str(Interval(int, 2, None))
    (True, 'an int in the range [2, inf)')
    """

    kind: type
    left: float | None
    right: float | None
    closed: str = "both"  # "both", "left", "right" or "neither"

    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets the constraint.

        Parameters
        ----------
        value : object
            The parameter value.

        Returns
        -------
        bool
            True when acceptable.
        """
        if isinstance(value, bool):
            return False
        wanted = numbers.Integral if self.kind is int else numbers.Real
        if not isinstance(value, wanted) or (isinstance(value, float) and math.isnan(value)):
            return False
        # typeshed's numbers.Real declares only < and <=; every Real compares like a float.
        number = cast("float", value)
        low_ok = self.left is None or (
            number >= self.left if self.closed in {"both", "left"} else number > self.left
        )
        high_ok = self.right is None or (
            number <= self.right if self.closed in {"both", "right"} else number < self.right
        )
        return bool(low_ok and high_ok)

    def __str__(self) -> str:
        noun = "an int" if self.kind is int else "a float"
        left = "-inf" if self.left is None else f"{self.left:g}"
        right = "inf" if self.right is None else f"{self.right:g}"
        lb = "[" if self.closed in {"both", "left"} and self.left is not None else "("
        rb = "]" if self.closed in {"both", "right"} and self.right is not None else ")"
        return f"{noun} in the range {lb}{left}, {right}{rb}"


class OneOf:
    """One of a fixed set of values (usually strings).

    Parameters
    ----------
    *values : object
        The allowed values.

    Examples
    --------
    >>> from segmentkit.engines import OneOf
    >>> OneOf("auto", "full").is_satisfied_by("fast")
    False
    """

    def __init__(self, *values: Any) -> None:
        self.values = frozenset(values)

    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets the constraint.

        Parameters
        ----------
        value : object
            The parameter value.

        Returns
        -------
        bool
            True when acceptable.
        """
        try:
            return value in self.values
        except TypeError:
            return False

    def __str__(self) -> str:
        return f"one of {sorted(self.values, key=str)}"


@dataclass(frozen=True)
class InstanceOf:
    """An instance of one of ``types``.

    Parameters
    ----------
    types : tuple of type
        Accepted types (``bool`` only passes when listed itself).
    label : str
        How the message names them, e.g. ``"a str"``.
    """

    types: tuple[type, ...]
    label: str

    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets the constraint.

        Parameters
        ----------
        value : object
            The parameter value.

        Returns
        -------
        bool
            True when acceptable.
        """
        return isinstance(value, self.types) and not (
            isinstance(value, bool) and bool not in self.types
        )

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class Satisfies:
    """Any value for which ``check`` returns true.

    Parameters
    ----------
    check : callable
        Takes the value, returns whether it is acceptable.
    label : str
        How the message describes acceptable values.
    """

    check: Callable[[Any], bool]
    label: str

    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets the constraint.

        Parameters
        ----------
        value : object
            The parameter value.

        Returns
        -------
        bool
            True when acceptable.
        """
        return bool(self.check(value))

    def __str__(self) -> str:
        return self.label


@dataclass(frozen=True)
class ListLike:
    """A list, tuple, array, Index or other iterable of items, but not a str or a mapping.

    Parameters
    ----------
    label : str
        How the message describes acceptable values, e.g. ``"a sequence of str"``.
    item : constraint, optional
        A constraint every item must meet (checked for collections only, so a
        generator is not consumed).
    min_length : int, default=0
        Fewest items a collection may hold.

    Examples
    --------
    >>> ListLike("a sequence of str", InstanceOf((str,), "a str")).is_satisfied_by("ab")
    False
    """

    label: str
    item: Any = None
    min_length: int = 0

    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets the constraint.

        Parameters
        ----------
        value : object
            The parameter value.

        Returns
        -------
        bool
            True when acceptable.
        """
        if isinstance(value, str | bytes | Mapping | pd.DataFrame) or not isinstance(
            value, Iterable
        ):
            return False
        if isinstance(value, np.ndarray) and value.ndim != 1:
            return False
        if not isinstance(value, Collection):
            return True
        return self.explain(value) is None

    def explain(self, value: Any) -> str | None:
        """What is wrong with a collection of the right kind, or None.

        Parameters
        ----------
        value : collection
            The parameter value.

        Returns
        -------
        str or None
            E.g. ``"item 2 is 'x'"``; None when every item is acceptable.
        """
        if not isinstance(value, Collection) or isinstance(value, str | bytes | Mapping):
            return None
        if len(value) < self.min_length:
            return f"it has {len(value)} item{'s' if len(value) != 1 else ''}"
        if self.item is not None:
            for i, v in enumerate(value):
                if not self.item.is_satisfied_by(v):
                    return f"item {i} is {_shown(v)}, not {self.item}"
        return None

    def __str__(self) -> str:
        return self.label


def _is_nonempty_text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


#: A file system path.
PATH = InstanceOf((str, os.PathLike), "a path (str or os.PathLike)")
#: A str that is not blank.
NONEMPTY_TEXT = Satisfies(_is_nonempty_text, "a non-empty str")


class _NoneConstraint:
    def is_satisfied_by(self, value: Any) -> bool:
        """Whether ``value`` meets the constraint.

        Parameters
        ----------
        value : object
            The parameter value.

        Returns
        -------
        bool
            True when acceptable.
        """
        return value is None

    def __str__(self) -> str:
        return "None"


NONE = _NoneConstraint()


def validate_params(owner: str, params: dict[str, Any], constraints: dict[str, list[Any]]) -> None:
    """Check every parameter against its constraints; raise on the first that fails."""
    for name, allowed in constraints.items():
        if name not in params:
            continue
        value = params[name]
        if any(c.is_satisfied_by(value) for c in allowed):
            continue
        described = [str(c) for c in allowed]
        expected = described[0] if len(described) == 1 else _join(described)
        msg = f"The {name!r} parameter of {owner} must be {expected}. Got {_shown(value)} instead"
        # A collection of the right kind says which item is wrong.
        details = [c.explain(value) for c in allowed if hasattr(c, "explain")]
        details = [d for d in details if d]
        msg += f": {details[0]}." if details else "."
        raise InvalidParameterError(msg)


def _shown(value: Any) -> str:
    """The value as an error message shows it: its repr, or its type when that is unsafe."""
    if isinstance(value, _DATA_TYPES):
        return f"{type(value).__name__} object"
    try:
        shown = repr(value)
    except Exception:  # a broken __repr__ must not hide the parameter error
        return f"{type(value).__name__} object"
    if len(shown) > _MAX_SHOWN or "\n" in shown:
        return f"{type(value).__name__} object"
    return shown


def validated(**constraints: list[Any]) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Declare the constraints of every parameter of a function; check them on each call.

    Each keyword names a parameter and lists the constraints it may satisfy (as in an
    engine's ``_parameter_constraints``). Every named parameter of the function except
    ``self``/``cls`` must be declared, so a new parameter cannot be added unchecked.
    Arguments left at their default are not checked.

    Parameters
    ----------
    **constraints : list of constraint
        Parameter name to the constraints a value may satisfy.

    Returns
    -------
    callable
        A decorator; the wrapped function keeps its signature and docstring and
        exposes the declaration as ``__parameter_constraints__``.

    Raises
    ------
    TypeError
        At decoration, if the declaration and the signature name different parameters.

    Examples
    --------
    >>> @validated(n=[Interval(int, 1, None)], how=[OneOf("a", "b")])
    ... def f(n: int, *, how: str = "a") -> int:
    ...     return n
    >>> f(0)
    Traceback (most recent call last):
    ...
    segmentkit.errors.InvalidParameterError: The 'n' parameter of f() must be an int in \
the range [1, inf). Got 0 instead.
    """

    def decorate(func: Callable[_P, _R]) -> Callable[_P, _R]:
        signature = inspect.signature(func)
        named = [
            p.name
            for p in signature.parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in ("self", "cls")
        ]
        if set(named) != set(constraints):
            msg = (
                f"{func.__qualname__}: parameters {sorted(named)} but constraints declared "
                f"for {sorted(constraints)}."
            )
            raise TypeError(msg)
        owner = f"{func.__qualname__}()"

        @functools.wraps(func)
        def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            try:
                arguments = signature.bind(*args, **kwargs).arguments
            except TypeError:
                # Missing or unexpected arguments: Python's own message says it best.
                return func(*args, **kwargs)
            validate_params(owner, arguments, constraints)
            return func(*args, **kwargs)

        wrapper.__parameter_constraints__ = dict(constraints)  # type: ignore[attr-defined]
        return wrapper

    return decorate


def _join(items: Iterable[str]) -> str:
    items = list(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
