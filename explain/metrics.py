"""Ratio metrics of DESIGN.md, on counts (integers in batch mode, decayed floats in streaming).

``o``/``n`` are the outliers and rows matching an itemset, ``O``/``N`` the totals.

>>> round(risk_ratio(30, 40, 100, 1000), 2)  # 75% vs 7.3% outlier rate
10.29
>>> risk_ratio(0, 0, 100, 1000)
0.0
"""
from __future__ import annotations

import math
from typing import Callable

RatioFunction = Callable[[float, float, float, float], float]


def risk_ratio(o: float, n: float, O: float, N: float) -> float:
    """(o/n) / ((O-o)/(N-n)); 0 when n = 0 or N = n; +inf when O = o < N."""
    if n <= 0 or N <= n:
        return 0.0
    if O - o <= 0:
        return math.inf if o > 0 else 0.0
    return (o / n) / ((O - o) / (N - n))


def global_ratio(o: float, n: float, O: float, N: float) -> float:
    """(o/n) / (O/N); 0 when n = 0 or there are no outliers."""
    if n <= 0 or O <= 0:
        return 0.0
    return (o / n) / (O / N)


def prevalence_ratio(o: float, n: float, O: float, N: float) -> float:
    """Odds ratio (o/(n-o)) / (O/(N-O)); 0 when n = 0, +inf when n = o.

    When every row is an outlier (N = O) both odds are infinite and nothing separates
    the itemset from the rest, so the ratio is 1.
    """
    if n <= 0 or o <= 0:
        return 0.0
    if N - O <= 0:
        return 1.0
    if n - o <= 0:
        return math.inf
    return (o / (n - o)) / (O / (N - O))


RATIO_METRICS: dict[str, RatioFunction] = {
    "risk_ratio": risk_ratio,
    "global_ratio": global_ratio,
    "prevalence_ratio": prevalence_ratio,
}


def metric_name(fn: RatioFunction) -> str:
    """The name of one of :data:`RATIO_METRICS` (its statistics depend on which it is)."""
    for name, known in RATIO_METRICS.items():
        if known is fn:
            return name
    raise ValueError(f"ratio: expected one of {', '.join(RATIO_METRICS)}, got {fn!r}")


def ratio_function(name: str) -> RatioFunction:
    """Look a ratio metric up by name, with an error listing the known ones."""
    try:
        return RATIO_METRICS[name]
    except KeyError:
        known = ", ".join(RATIO_METRICS)
        raise ValueError(f"ratio_metric: expected one of {known}, got {name!r}") from None
