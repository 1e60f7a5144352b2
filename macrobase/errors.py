"""Pieces of one-line error messages, shared by the configuration and the HTTP API.

How a value the user gave is shown (``show``, ``kind_of``) and the one "did you mean"
(``closest``, ``suggest``): a misspelt key, enum value, query parameter or pipeline name gets
the same suggestion wherever it is written. Plain text only (no pydantic, no Flask), so any
front end can use it.

>>> suggest("min_suport", ["min_support", "min_ratio"])
'; did you mean min_support?'
>>> closest("MAD", ["mad", "mcd", "zscore"]), closest("mda", ["mad", "mcd"]), closest("xyz", ["mad"])
('mad', 'mad', None)
>>> show("abc"), show(3), show(True), show(None), show(["a", 1])
("'abc'", '3', 'true', 'null', '["a", 1]')
"""

from __future__ import annotations

import difflib
import json
from typing import Any, Iterable

__all__ = ["closest", "kind_of", "show", "suggest"]


def kind_of(value: Any) -> str:
    """What sort of YAML/JSON value ``value`` is: 'a string', 'a number', 'a mapping', ..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def show(value: Any) -> str:
    """Render a YAML value the way the user wrote it: 'abc', 3, true, null, [a, b]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _edits(a: str, b: str) -> int:
    """Optimal-string-alignment distance: a swapped pair of letters ("mda") counts as one edit."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def closest(word: Any, options: Iterable[str]) -> str | None:
    """The option ``word`` most likely misspells (difflib shortlist, ties broken by edit distance)."""
    if not isinstance(word, str):
        return None
    options = list(options)
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.6)
    if not close:  # case slips ("MAD") are below difflib's ratio but obvious
        close = [o for o in options if o.lower() == word.lower()]
    if not close:
        return None
    return min(close, key=lambda o: (_edits(word.lower(), o.lower()), close.index(o)))


def suggest(word: Any, options: Iterable[str]) -> str:
    """'; did you mean X?' or ''."""
    best = closest(word, options)
    return f"; did you mean {best}?" if best is not None else ""
