"""Constructor parameters in scikit-learn's way, shared by every model."""

from __future__ import annotations

from typing import Any, ClassVar

from typing_extensions import Self

from segmentkit.errors import InvalidParameterError


class ModelParameters:
    """``get_params`` / ``set_params`` / ``repr`` from ``_parameter_constraints``.

    The constraints are the one list of a model's constructor parameters; they are
    checked by ``validate_params`` at ``fit``, not here, as scikit-learn does.
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {}

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Constructor parameters, as scikit-learn's ``get_params``.

        Parameters
        ----------
        deep : bool, default=True
            Ignored; there are no nested estimators.

        Returns
        -------
        dict
            Parameter name to value.
        """
        return {name: getattr(self, name) for name in self._parameter_constraints}

    def set_params(self, **params: Any) -> Self:
        """Change constructor parameters, as scikit-learn's ``set_params``.

        Parameters
        ----------
        **params
            Parameter names and their new values (checked at the next ``fit``).

        Returns
        -------
        Self
            This model.
        """
        unknown = sorted(set(params) - set(self._parameter_constraints))
        if unknown:
            msg = (
                f"{type(self).__name__} has no parameters {unknown}; "
                f"valid: {sorted(self._parameter_constraints)}."
            )
            raise InvalidParameterError(msg)
        for name, value in params.items():
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({shown})"
