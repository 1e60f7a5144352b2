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
ValueError: min_support: expected a number > 0 and <= 1, got '0.1'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from explain.metrics import RATIO_METRICS
from operators.domains import Interval

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


@dataclass(frozen=True)
class ExplainerParams:
    """The parameters both explainers share, with their defaults."""

    min_support: float = 0.01
    min_ratio: float = 3.0
    ratio_metric: str = "risk_ratio"
    max_order: int = MAX_ORDER
    mode: str = "refined"
    max_p_value: float | None = None

    @classmethod
    def of(cls, explainer: Any) -> "ExplainerParams":
        """The shared parameters of an explainer (its attributes of the same names)."""
        return cls(**{f.name: getattr(explainer, f.name) for f in fields(cls)})

    def validate(self) -> "ExplainerParams":
        """``self``, or ValueError naming the first parameter outside its domain."""
        for name, value in asdict(self).items():
            if name in CHOICES and value not in CHOICES[name]:
                raise ValueError(f"{name}: expected one of {', '.join(CHOICES[name])}, got {value!r}")
            if name in DOMAINS and not (name == "max_p_value" and value is None):
                DOMAINS[name].check(name, value)
        return self


DEFAULTS = ExplainerParams()
