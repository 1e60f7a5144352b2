"""Numeric parameter domains, declared once and checked, described and exported alike.

An :class:`Interval` is the one statement of a parameter's bounds: estimators check their
parameters with it, and the config schema (pydantic ``Field`` bounds), the HTTP API and
its OpenAPI document derive theirs from it, so their words and limits cannot drift apart.

>>> SCORE_CUTOFF.describe(), 0.5 in SCORE_CUTOFF, 0 in SCORE_CUTOFF, "1" in SCORE_CUTOFF
('a number > 0', True, False, False)
>>> Interval(1, 3, integer=True).check("max_order", 4)
Traceback (most recent call last):
...
operators.estimator.ParameterError: max_order: expected an integer from 1 to 3, got 4
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

from operators.estimator import ParameterError


@dataclass(frozen=True)
class Interval:
    """Finite numbers from ``low`` to ``high`` (None: unbounded), each end open or closed;
    ``integer`` admits whole numbers only. Booleans and strings are never numbers here."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    integer: bool = False

    def __contains__(self, value: Any) -> bool:
        kind = Integral if self.integer else Real
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            return False
        if self.low is not None and (value <= self.low if self.low_open else value < self.low):
            return False
        return self.high is None or (value < self.high if self.high_open else value <= self.high)

    def check(self, name: str, value: Any) -> Any:
        """``value`` when it is inside; else ``ParameterError("name: expected ..., got value")``."""
        if value not in self:
            raise ParameterError(name, f"{name}: expected {self.describe()}, got {value!r}")
        return value

    def describe(self) -> str:
        """In words: "a number > 0 and <= 1", "an integer from 1 to 3"."""
        if self.integer and self.low is not None and self.high is not None and not (self.low_open or self.high_open):
            return f"an integer from {self.low:g} to {self.high:g}"
        kind = "an integer" if self.integer else "a number"
        if self.low is not None and self.high is not None and self.low_open and self.high_open:
            return f"{kind} between {self.low:g} and {self.high:g} (exclusive)"
        bounds = []
        if self.low is not None:
            bounds.append(f"{'>' if self.low_open else '>='} {self.low:g}")
        if self.high is not None:
            bounds.append(f"{'<' if self.high_open else '<='} {self.high:g}")
        return f"{kind} {' and '.join(bounds)}" if bounds else f"{'an integer' if self.integer else 'a finite number'}"

    def field_bounds(self) -> dict[str, float]:
        """pydantic ``Field`` keyword bounds (``gt``, ``ge``, ``lt``, ``le``)."""
        out = {}
        if self.low is not None:
            out["gt" if self.low_open else "ge"] = self.low
        if self.high is not None:
            out["lt" if self.high_open else "le"] = self.high
        return out

    def json_schema(self) -> dict[str, Any]:
        """An OpenAPI 3.0 schema (``exclusiveMinimum`` as a flag beside ``minimum``)."""
        out: dict[str, Any] = {"type": "integer" if self.integer else "number"}
        if self.low is not None:
            out["minimum"] = self.low
            if self.low_open:
                out["exclusiveMinimum"] = True
        if self.high is not None:
            out["maximum"] = self.high
            if self.high_open:
                out["exclusiveMaximum"] = True
        return out


#: A scoring classifier's cut-off, in its own units (robust z, Mahalanobis distance): a
#: value of 0 would flag every row on the anomalous side of the centre, so it must be > 0.
SCORE_CUTOFF = Interval(0, low_open=True)
#: A percentile cut-off.
PERCENTILE = Interval(0, 100, low_open=True, high_open=True)
