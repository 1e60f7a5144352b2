"""The explainers' shared parameters: names, defaults and domains, declared once.

:class:`ExplainerParams` holds the defaults; :data:`DOMAINS` and :data:`CHOICES` what
each parameter admits. Both explainers check their parameters here, and the CLI, the
pipeline config schema, the HTTP API and its OpenAPI document derive their choices,
defaults and bounds from here (``tests/test_vocabulary.py`` checks every front end).

>>> DEFAULTS.min_support, DOMAINS["min_support"].describe(), CHOICES["mode"]
(0.01, 'a number > 0 and <= 1', ('refined', 'minimal'))
>>> ExplainerParams(min_support="0.1").validate()
Traceback (most recent call last):
...
operators.estimator.ParameterError: min_support: expected a number > 0 and <= 1, got '0.1'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

from explain.metrics import RATIO_METRICS
from operators.domains import Interval
from operators.estimator import Constraint, OneOf, OrNone

#: Explanation modes (DESIGN.md "Explanation semantics").
MODES = ("refined", "minimal")
#: The most attributes in one explanation.
MAX_ORDER = 3

DOMAINS: dict[str, Interval] = {
    "min_support": Interval(0, 1, low_open=True),
    "min_ratio": Interval(0, low_open=True),
    "max_order": Interval(1, MAX_ORDER, integer=True),
    "max_p_value": Interval(0, 1, low_open=True),  # or None: off
}
CHOICES: dict[str, tuple[str, ...]] = {
    "ratio_metric": tuple(RATIO_METRICS),
    "mode": MODES,
}
#: The constraints table of every explainer's shared parameters (``Estimator._constraints``).
CONSTRAINTS: Mapping[str, Constraint] = {
    "min_support": DOMAINS["min_support"],
    "min_ratio": DOMAINS["min_ratio"],
    "ratio_metric": OneOf(CHOICES["ratio_metric"]),
    "max_order": DOMAINS["max_order"],
    "mode": OneOf(MODES),
    "max_p_value": OrNone(DOMAINS["max_p_value"]),
}


@dataclass(frozen=True)
class ExplainerParams:
    """The parameters both explainers share, with their defaults."""

    min_support: float = 0.01
    min_ratio: float = 3.0
    ratio_metric: str = "risk_ratio"
    max_order: int = MAX_ORDER
    mode: str = "refined"
    max_p_value: float | None = None

    def validate(self) -> "ExplainerParams":
        """``self``, or :class:`~operators.estimator.ParameterError` naming the first
        parameter outside its domain."""
        for name, value in asdict(self).items():
            CONSTRAINTS[name].check(name, value)
        return self


DEFAULTS = ExplainerParams()
