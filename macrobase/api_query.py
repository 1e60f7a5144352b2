"""Query parameters of the HTTP API: typed getters whose errors name the parameter.

Unknown and repeated parameters are errors too (a misspelt ``min_suport`` must not be
ignored; it gets the "did you mean" of :mod:`macrobase.errors`). ``explain_defaults`` lists
the parameters of ``POST /api/v1/explain`` with their defaults (also read by
:mod:`macrobase.openapi`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict
from datetime import datetime
from typing import Any, Iterable

from flask import request

from macrobase.api_http import ApiError
from macrobase.errors import suggest
from macrobase.store import utc_datetime

__all__ = ["QueryArgs", "explain_defaults", "parse_since"]


@functools.cache
def explain_defaults() -> dict[str, Any]:
    """Parameters of POST /api/v1/explain with their defaults, those of ``macrobase explain``
    (the library's, imported on first use: the read-only routes need no engine)."""
    from explain.params import DEFAULTS
    from macrobase.diff import BATCH_DEFAULTS

    return {"metric": None, "attributes": None, "classifier": BATCH_DEFAULTS.classifier, "percentile": None,
            "score_cutoff": None, "predicate": None, "tail": BATCH_DEFAULTS.tail, **asdict(DEFAULTS)}


class QueryArgs:
    """Query parameters of one request: typed getters whose errors name the parameter."""

    def __init__(self, allowed: Iterable[str]):
        self.allowed = tuple(allowed)
        for name in request.args:
            if name not in self.allowed:
                hint = suggest(name, self.allowed) or (
                    f"; expected one of {', '.join(self.allowed)}" if self.allowed else "; this route takes none")
                raise ApiError(400, f"{name}: unknown parameter{hint}", name)
            if len(request.args.getlist(name)) > 1:
                raise ApiError(400, f"{name}: given more than once", name)

    @staticmethod
    def raw(name: str) -> str | None:
        return request.args.get(name)

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if not value.strip():
            raise ApiError(400, f"{name}: expected a value, got an empty string", name)
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in choices:
            hint = suggest(str(value), choices)
            raise ApiError(400, f"{name}: expected one of {', '.join(choices)}, got {value!r}{hint}", name)
        return value

    def number(self, name: str, default: float | None, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float | None:
        value = self.text(name)
        if value is None:
            return default
        interval = _interval(low, high, low_open, high_open)
        try:
            number = float(value)
        except ValueError:
            raise ApiError(400, f"{name}: expected a number{interval}, got {value!r}", name) from None
        if not math.isfinite(number):
            raise ApiError(400, f"{name}: expected a finite number{interval}, got {value!r}", name)
        if (low is not None and (number <= low if low_open else number < low)) or (high is not None and (number >= high if high_open else number > high)):
            raise ApiError(400, f"{name}: expected a number{interval}, got {value!r}", name)
        return number

    def within(self, name: str, default: float | None, domain) -> float | None:
        """A number (or integer) inside an ``operators.domains.Interval``."""
        if domain.integer:
            return self.integer(name, default, int(domain.low), int(domain.high))
        return self.number(name, default, low=domain.low, high=domain.high, low_open=domain.low_open,
                           high_open=domain.high_open)

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise ApiError(400, f"{name}: expected an integer from {low} to {high}, got {value!r}", name) from None
        if not low <= number <= high:
            raise ApiError(400, f"{name}: expected an integer from {low} to {high}, got {value!r}", name)
        return number

    def names(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            raise ApiError(400, f"{name}: required parameter missing (comma-separated column names)", name)
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        if not items:
            raise ApiError(400, f"{name}: expected comma-separated column names, got {value!r}", name)
        return items


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    return ""


def parse_since(text: str) -> datetime | None:
    """A ``since`` parameter as an aware UTC datetime; None when it precedes every possible emit."""
    try:
        moment = utc_datetime(text)
    except ValueError:
        raise ApiError(400, f"since: expected an ISO-8601 time such as 2026-01-01T00:00:00Z, got {text!r}",
                       "since") from None
    # Stored times are fixed-width text from year 1000 on; earlier years would not be
    # written with four digits (strftime), and every result is later anyway.
    return None if moment.year < 1000 else moment
