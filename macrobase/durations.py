"""Parse human durations ("1s", "500ms", "2m") into float seconds.

>>> parse_duration("500ms")
0.5
>>> parse_duration(2)
2.0
"""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration", "DURATION_EXPECTATION"]

DURATION_EXPECTATION = "a duration like '1s', '500ms', '2m', '1h' or a number of seconds > 0"

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")


def parse_duration(value: object) -> float:
    """Return ``value`` in seconds; raise ValueError unless it is a positive finite duration.

    Accepts an int or float (seconds) or a string of a number with an optional unit
    ``ms``, ``s``, ``m`` or ``h``. Booleans are rejected even though ``True == 1``.

    >>> parse_duration("1.5m")
    90.0
    """
    if isinstance(value, bool):  # YAML "yes" is a bool; never a duration
        raise ValueError(f"expected {DURATION_EXPECTATION}")
    if isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(f"expected {DURATION_EXPECTATION}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected {DURATION_EXPECTATION}")
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"expected {DURATION_EXPECTATION}")
    return seconds
