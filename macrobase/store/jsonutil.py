"""Strict JSON for result documents, the store's rows and the HTTP API, in one place.

JSON has no Infinity or NaN (``json.dumps`` would write them anyway): an infinite ratio is
the string ``"inf"`` (DESIGN.md, "Explanation semantics"), NaN is null. Itemsets are keyed
by :func:`canonical_attributes`, compact JSON with sorted keys, comparable with ``=`` in SQL.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from macrobase.store.timeutil import iso_utc

__all__ = ["canonical_attributes", "dumps", "strict_json"]


def strict_json(value: Any) -> Any:
    """``value`` as strict JSON data: inf as ``"inf"``/``"-inf"``, NaN as None, NumPy
    scalars as Python numbers, datetimes as ISO-8601 UTC (json.dumps would write Infinity).

    >>> strict_json({"r": float("inf"), "x": [float("nan"), 1]})
    {'r': 'inf', 'x': [None, 1]}
    """
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, datetime):
        return iso_utc(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy scalar
        return strict_json(value.item())
    return value


def dumps(document: Any) -> str:
    """Compact strict JSON text of ``document`` (UTF-8 kept as is).

    >>> dumps({"r": float("inf"), "a": "é"})
    '{"r":"inf","a":"é"}'
    """
    return json.dumps(strict_json(document), allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def canonical_attributes(attributes: Mapping[str, Any]) -> str:
    """The key an explanation is stored and looked up by: sorted, compact JSON.

    >>> canonical_attributes({"b": "2", "a": 1})
    '{"a":1,"b":"2"}'
    """
    return json.dumps(dict(attributes), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
