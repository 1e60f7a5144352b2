"""How sure we are: Fisher's exact test, ratio confidence intervals, Benjamini–Hochberg.

Every function takes arrays of counts ``o``/``n`` (outliers and rows matching an itemset)
and the totals ``O``/``N``, the 2x2 table of DESIGN.md::

              outlier    inlier
    in S      o          n - o
    not in S  O - o      (N - n) - (O - o)

Counts may be decayed floats (streaming): the exact test needs integers and rounds them
(see :func:`integer_table`); the intervals are smooth in the counts and use them as they are.

>>> float(fisher_greater(3, 3, 3, 10)[0])  # all 3 outliers in a group of 3 out of 10 rows
0.008333333333333333
"""
from __future__ import annotations

import numpy as np
from scipy.stats import hypergeom

#: Two-sided 95% normal quantile, norm.ppf(0.975).
Z_95 = 1.959963984540054


def integer_table(o, n, O, N) -> tuple[np.ndarray, ...]:
    """Round counts to the nearest integers and clip them to a consistent 2x2 table.

    Rounding each count on its own can leave, say, o > n by one; clipping keeps every
    cell non-negative so the hypergeometric distribution is defined.
    """
    N = np.rint(np.asarray(N, np.float64)).astype(np.int64)
    O = np.minimum(np.rint(np.asarray(O, np.float64)).astype(np.int64), N)
    n = np.minimum(np.rint(np.asarray(n, np.float64)).astype(np.int64), N)
    o = np.rint(np.asarray(o, np.float64)).astype(np.int64)
    # o in [max(0, O - (N - n)), min(n, O)]: the outliers outside S fit into the rows outside S.
    o = np.clip(o, np.maximum(0, O - (N - n)), np.minimum(n, O))
    return np.broadcast_arrays(o, n, O, N)


def fisher_greater(o, n, O, N) -> np.ndarray:
    """One-sided (greater) Fisher exact p-values, equal to ``scipy.stats.fisher_exact(
    [[o, n-o], [O-o, N-n-O+o]], alternative="greater").pvalue``.

    The same hypergeometric tail SciPy evaluates (the inliers in S at most n - o, drawing
    the N - O inliers), vectorised; a table with an empty row or column has p = 1, as in SciPy.
    """
    o, n, O, N = (np.atleast_1d(a) for a in integer_table(o, n, O, N))
    p = np.ones(o.shape, np.float64)
    ok = (n > 0) & (n < N) & (O > 0) & (O < N)
    if ok.any():
        a, b, c, d = o[ok], n[ok] - o[ok], O[ok] - o[ok], (N[ok] - n[ok]) - (O[ok] - o[ok])
        p[ok] = hypergeom.cdf(b, a + b + c + d, a + b, b + d)
    return p


def ratio_ci(metric: str, o, n, O, N, z: float = Z_95) -> tuple[np.ndarray, np.ndarray]:
    """Normal-approximation interval on the log of the ratio metric: ``(lo, hi)`` arrays.

    Log-variances by the delta method under multinomial sampling of the four cells
    (a, b, c, d) = (o, n-o, O-o, N-n-O+o):

    * risk_ratio: Katz's 1/a - 1/(a+b) + 1/c - 1/(c+d).
    * global_ratio (o/n)/(O/N), where S is part of the whole: 1/a - 1/n - 1/O + 2a/(nO) - 1/N.
    * prevalence_ratio (o/(n-o))/(O/(N-O)): 1/a + 1/b - 1/O - 1/(N-O).

    A table with a zero cell gets 0.5 added to every cell (Haldane–Anscombe): without it
    an itemset whose rows are all outliers (b = 0) would get a zero-width log interval,
    and an infinite ratio (c = 0 for the risk ratio, b = 0 for the prevalence ratio) no
    lower bound; an infinite ratio keeps hi = +inf. Where DESIGN.md defines the ratio by
    convention (0 without outliers in S or when S is every row, 1 when every row is an
    outlier) the interval is that point.
    """
    o, n, O, N = (np.atleast_1d(np.asarray(x, np.float64)) for x in np.broadcast_arrays(o, n, O, N))
    a, b, c = o, n - o, O - o
    d = (N - n) - c
    if metric == "risk_ratio":
        inf = c <= 0
        point = np.where((o <= 0) | (n >= N), 0.0, np.nan)
    elif metric == "global_ratio":
        inf = np.zeros(o.shape, bool)
        point = np.where(o <= 0, 0.0, np.nan)
    elif metric == "prevalence_ratio":
        inf = b <= 0
        point = np.where(o <= 0, 0.0, np.where(N - O <= 0, 1.0, np.nan))
    else:
        raise ValueError(f"ratio_metric: no interval for {metric!r}")
    zero = np.minimum(np.minimum(a, b), np.minimum(c, d)) <= 0
    a, b, c, d = (np.where(zero, x + 0.5, x) for x in (a, b, c, d))
    n_, O_, N_ = a + b, a + c, a + b + c + d
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "risk_ratio":
            log_r = np.log(a / n_) - np.log(c / (c + d))
            var = 1 / a - 1 / n_ + 1 / c - 1 / (c + d)
        elif metric == "global_ratio":
            log_r = np.log(a / n_) - np.log(O_ / N_)
            var = 1 / a - 1 / n_ - 1 / O_ + 2 * a / (n_ * O_) - 1 / N_
        else:
            log_r = np.log(a / b) - np.log(O_ / (b + d))
            var = 1 / a + 1 / b - 1 / O_ - 1 / (b + d)
        half = z * np.sqrt(np.maximum(var, 0.0))   # rounding can leave -1e-17 for an exact ratio
        lo, hi = np.exp(log_r - half), np.where(inf, np.inf, np.exp(log_r + half))
    fixed = ~np.isnan(point)
    return np.where(fixed, point, lo), np.where(fixed, point, hi)


def bh_adjusted(p, m: int | None = None) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values of ``p`` in a family of ``m >= len(p)`` tests.

    The ``m - len(p)`` tests not given count as p = 1 (itemsets that were looked at but
    fell below min_support): that can only raise the others' adjusted values.
    """
    p = np.asarray(p, np.float64)
    m = len(p) if m is None else max(int(m), len(p))
    if p.size == 0:
        return p
    order = np.argsort(p, kind="stable")
    scaled = p[order] * m / np.arange(1, len(p) + 1)
    q = np.empty_like(p)
    q[order] = np.minimum(1.0, np.minimum.accumulate(scaled[::-1])[::-1])
    return q
