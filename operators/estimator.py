"""The one estimator contract: every classifier, reservoir, sketch and explainer follows it.

In the manner of scikit-learn and River:

* ``__init__`` stores its arguments under their own names and checks them against the
  class's declarative ``_constraints`` table (name -> constraint), so a bad value fails
  where it was written, not at the first ``fit`` or ``learn``;
* ``get_params`` / ``set_params`` read and replace them (``set_params`` checks again);
  ``repr`` shows them; learned state ends in ``_``;
* every bad parameter raises :class:`ParameterError`, a ``ValueError`` that names it in
  ``.parameter``;
* ``requires_training`` is False for estimators that learn nothing from data (a
  predicate), so callers never test for concrete classes.

>>> from operators.domains import Interval
>>> class Halver(Estimator):
...     _constraints = {"factor": Interval(0, 1, low_open=True)}
...     def __init__(self, factor: float = 0.5) -> None:
...         self.factor = factor
...         self._check_params()
>>> Halver()
Halver(factor=0.5)
>>> Halver().set_params(factor=2)
Traceback (most recent call last):
...
operators.estimator.ParameterError: factor: expected a number > 0 and <= 1, got 2
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from numbers import Integral
from typing import Any, ClassVar, Mapping, Protocol

import numpy as np


class OperatorError(ValueError):
    """A bad parameter or input for an operator (a ValueError, so callers can catch
    either)."""


class ParameterError(OperatorError):
    """A parameter outside its domain; ``parameter`` is its name."""

    def __init__(self, parameter: str, message: str) -> None:
        super().__init__(message)
        self.parameter = parameter


class Constraint(Protocol):
    def check(self, name: str, value: Any) -> Any:
        """``value`` when admitted, else :class:`ParameterError`."""


@dataclass(frozen=True)
class OneOf:
    """One of a fixed set of names."""

    choices: tuple[Any, ...]

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, str) or value not in self.choices:
            raise ParameterError(name, f"{name}: expected one of {', '.join(map(str, self.choices))}, got {value!r}")
        return value


@dataclass(frozen=True)
class OrNone:
    """None (the parameter is off or takes its default), or what ``inner`` admits."""

    inner: Constraint

    def check(self, name: str, value: Any) -> Any:
        return None if value is None else self.inner.check(name, value)


@dataclass(frozen=True)
class InstanceOf:
    """An instance of ``kind`` (e.g. an unfitted classifier used as a template)."""

    kind: type
    what: str

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, self.kind):
            raise ParameterError(name, f"{name}: expected {self.what}, got {value!r}")
        return value


class RandomState:
    """None, an integer seed or a NumPy Generator."""

    def check(self, name: str, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, (Integral, np.random.Generator))):
            raise ParameterError(name, f"{name}: expected None, an integer seed or a numpy Generator, got {value!r}")
        return value


class Estimator:
    """Parameters by introspection of ``__init__``, checked against ``_constraints``."""

    _constraints: ClassVar[Mapping[str, Constraint]] = {}
    #: False for estimators that learn nothing from data (``fit`` only checks its input).
    requires_training: ClassVar[bool] = True

    @classmethod
    def _param_names(cls) -> list[str]:
        return [p for p in inspect.signature(cls.__init__).parameters if p != "self"]

    def get_params(self) -> dict[str, Any]:
        """The constructor's parameters and their current values."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params: Any) -> "Estimator":
        """Replace parameters (checked like the constructor's); returns ``self``."""
        valid = self._param_names()
        for key in params:
            if key not in valid:
                raise ParameterError(key, f"{type(self).__name__}: unknown parameter {key!r}; expected one of {sorted(valid)}")
        for key, value in params.items():
            setattr(self, key, value)
        self._check_params()
        return self

    def _check_params(self) -> None:
        """Raise :class:`ParameterError` for the first parameter outside its constraint."""
        for name, constraint in self._constraints.items():
            constraint.check(name, getattr(self, name))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

