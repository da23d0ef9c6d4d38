"""Declarative parameter constraints, checked when ``fit`` starts.

Public through :mod:`segmentkit.engines` (``Interval``, ``OneOf``, ``InstanceOf``,
``Satisfies``, ``NONE``) so that third-party engines declare theirs the same way.

A small in-house version of scikit-learn's idea (its implementation is private and
changes between releases): each engine declares ``_parameter_constraints`` mapping a
parameter to the constraints it may satisfy; :func:`validate_params` raises one
``ValueError``/``TypeError`` in a fixed wording when none is met.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast

from segmentkit.errors import InvalidParameterError


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
        msg = f"The {name!r} parameter of {owner} must be {expected}. Got {value!r} instead."
        raise InvalidParameterError(msg)


def _join(items: Iterable[str]) -> str:
    items = list(items)
    return ", ".join(items[:-1]) + " or " + items[-1]
