"""Reading result documents: their ratio metric, and explanations in words.

A result document (DESIGN.md, "Explanation semantics") carries each explanation's ratio
under the configured metric's name. The wording of itemsets and explanations is defined
once, by the library (``explain.result``), and exposed here so that the store, the API,
alerts and the dashboard (which imports only ``macrobase``) spell them the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from explain.metrics import RATIO_METRICS as _LIBRARY_METRICS
from explain.result import describe, describe_attributes

__all__ = ["RATIO_METRICS", "describe", "describe_attributes", "explanation_ratio"]

#: The ratio metrics a document may carry (the library's, ``explain.metrics``), in the
#: order :func:`explanation_ratio` looks for them.
RATIO_METRICS = tuple(_LIBRARY_METRICS)


def explanation_ratio(explanation: Mapping[str, Any]) -> float | None:
    """The ratio of a result document's explanation, whichever metric it carries ("inf" text included).

    >>> explanation_ratio({"attributes": {}, "global_ratio": "inf"}), explanation_ratio({})
    (inf, None)
    """
    for metric in RATIO_METRICS:
        if metric in explanation:
            try:
                return float(explanation[metric])
            except (TypeError, ValueError):
                return None
    return None
