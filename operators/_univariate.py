"""Kernels of the univariate classifiers: signed and absolute scores, labels by tail,
value cut-offs and predicates, deviations, mean and standard deviation.

Tail codes: 0 = high, 1 = low, 2 = both. Predicate op codes: 0 ``>``, 1 ``>=``, 2 ``<``,
3 ``<=``, 4 ``==``, 5 ``!=``.

Private Numba kernels: inputs were checked by a public wrapper (contiguous float64
arrays, no NaN, sane parameters); keeping validation out keeps the kernels small and
lets Numba compile them once (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


TAIL_HIGH = 0
TAIL_LOW = 1
TAIL_BOTH = 2


@njit(cache=True, inline="always")
def _signed(v: float, center: float, scale: float) -> float:
    # scale == 0 only when every training value equalled the centre: a value equal to
    # the centre is perfectly typical (0), anything else is infinitely far away.
    diff = v - center
    if scale > 0.0:
        return diff / scale
    if diff > 0.0:
        return np.inf
    if diff < 0.0:
        return -np.inf
    return 0.0


@njit(cache=True)
def signed_scores(x, center, scale):
    """(x - center) / scale for every value, with the scale == 0 rule above."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for i in range(x.shape[0]):
        out[i] = _signed(x[i], center, scale)
    return out


@njit(cache=True)
def abs_scores(x, center, scale):
    """|x - center| / scale for every value (the classic MAD / z-score)."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for i in range(x.shape[0]):
        out[i] = abs(_signed(x[i], center, scale))
    return out


@njit(cache=True)
def label_scores(x, center, scale, tail, threshold):
    """Outlier labels from the signed score without materialising the scores.

    high: s >= threshold; low: s <= threshold; both: |s| >= threshold.
    """
    out = np.empty(x.shape[0], dtype=np.bool_)
    for i in range(x.shape[0]):
        s = _signed(x[i], center, scale)
        if tail == TAIL_HIGH:
            out[i] = s >= threshold
        elif tail == TAIL_LOW:
            out[i] = s <= threshold
        else:
            out[i] = abs(s) >= threshold
    return out


@njit(cache=True)
def label_values(x, tail, low, high):
    """Percentile labels: x >= high (high), x <= low (low), either (both)."""
    out = np.empty(x.shape[0], dtype=np.bool_)
    for i in range(x.shape[0]):
        v = x[i]
        if tail == TAIL_HIGH:
            out[i] = v >= high
        elif tail == TAIL_LOW:
            out[i] = v <= low
        else:
            out[i] = (v >= high) or (v <= low)
    return out


@njit(cache=True)
def label_predicate(x, op, value):
    """x OP value for every value (op codes in the module docstring)."""
    out = np.empty(x.shape[0], dtype=np.bool_)
    for i in range(x.shape[0]):
        v = x[i]
        if op == 0:
            out[i] = v > value
        elif op == 1:
            out[i] = v >= value
        elif op == 2:
            out[i] = v < value
        elif op == 3:
            out[i] = v <= value
        elif op == 4:
            out[i] = v == value
        else:
            out[i] = v != value
    return out


@njit(cache=True)
def abs_deviations(x, center):
    """|x - center| (one pass; feeds the exact median for MAD)."""
    out = np.empty(x.shape[0], dtype=np.float64)
    for i in range(x.shape[0]):
        out[i] = abs(x[i] - center)
    return out


@njit(cache=True)
def mean_std(x):
    """Mean and population std (ddof=0) by a two-pass sum, as numpy.std does."""
    n = x.shape[0]
    s = 0.0
    for i in range(n):
        s += x[i]
    mean = s / n
    ss = 0.0
    for i in range(n):
        d = x[i] - mean
        ss += d * d
    return mean, math.sqrt(ss / n)
