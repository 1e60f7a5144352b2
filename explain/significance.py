"""How sure we are: Fisher's exact test, ratio confidence intervals, Benjamini–Hochberg.

Every function takes arrays of counts ``o``/``n`` (outliers and rows matching an itemset)
and the totals ``O``/``N``, the 2x2 table of DESIGN.md::

              outlier    inlier
    in S      o          n - o
    not in S  O - o      (N - n) - (O - o)

Counts may be decayed floats (streaming): the exact test needs integers and rounds them
(see :func:`integer_table`); the intervals are smooth in the counts and use them as they are.

The exact test is our own log-space hypergeometric tail (:func:`hypergeom_cdf`), not
SciPy's: ``scipy.stats`` costs about a second to import, more than a whole ``macrobase
explain`` of a small file should take. tests/test_significance.py checks it against SciPy
(and, where SciPy itself is only good to ~1e-8, at a hundred million rows, says so).

>>> print(f"{fisher_greater(3, 3, 3, 10)[0]:.12g}")  # all 3 outliers in a group of 3 of 10 rows: 1/120
0.00833333333333
"""
from __future__ import annotations

import math

import numpy as np

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
        p[ok] = hypergeom_cdf(b, a + b, c + d, b + d)
    return p


# ----------------------------------------------------------------- the hypergeometric tail
# Catherine Loader's saddle-point expansion of the binomial density ("Fast and accurate
# computation of binomial probabilities", 2000), as in R's dbinom/dhyper/phyper: every log
# density is a sum of small terms (no difference of huge log-gammas), so it keeps about
# 13 significant digits for any N that float64 holds exactly, and tails down to 1e-308.

_LN_2PI = math.log(2.0 * math.pi)
#: stirlerr(k) = log(k!) - log(sqrt(2 pi k) (k/e)^k) for k = 0..15 (R's table; k = 0 unused).
_STIRLERR = np.array([
    0.0, 0.0810614667953272582196702, 0.0413406959554092940938221, 0.02767792568499833914878929,
    0.02079067210376509311152277, 0.01664469118982119216319487, 0.01387612882307074799874573,
    0.01189670994589177009505572, 0.010411265261972096497478567, 0.009255462182712732917728637,
    0.008330563433362871256469318, 0.007573675487951840794972024, 0.006942840107209529865664152,
    0.006408994188004207068439631, 0.005951370112758847735624416, 0.005554733551962801371038690])
_EPS = float(np.finfo(np.float64).eps)
#: Terms evaluated at once per table while summing a tail (bounded in total, see _tail_ratio_sum).
_BLOCK_CELLS = 1 << 20


def _stirlerr(k: np.ndarray) -> np.ndarray:
    """The error of Stirling's formula for log(k!), k a whole number >= 0."""
    small = k <= 15
    with np.errstate(divide="ignore", invalid="ignore"):
        kk = k * k  # the asymptotic series, good to ~1e-16 from k = 16 on
        big = (1 / 12 - (1 / 360 - (1 / 1260 - (1 / 1680 - (1 / 1188) / kk) / kk) / kk) / kk) / k
    return np.where(small, _STIRLERR[np.where(small, k, 0).astype(np.int64)], big)


def _bd0(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """x log(x/m) + m - x, the binomial deviance, without cancellation when x is near m."""
    with np.errstate(divide="ignore", invalid="ignore"):
        direct = x * np.log(x / m) + m - x
        v = (x - m) / (x + m)  # |v| < 0.1 where the series is used: 13 terms reach 1e-26
        s = (x - m) * v
        term, v2 = 2 * x * v, v * v
        for j in range(1, 14):
            term = term * v2
            s = s + term / (2 * j + 1)
    return np.where(np.abs(x - m) < 0.1 * (x + m), s, direct)


def _log_dbinom(x: np.ndarray, n: np.ndarray, p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """log P(Binomial(n, p) = x) for whole numbers 0 <= x <= n, 0 < p < 1, q = 1 - p."""
    with np.errstate(divide="ignore", invalid="ignore"):
        inner = (_stirlerr(n) - _stirlerr(x) - _stirlerr(n - x) - _bd0(x, n * p) - _bd0(n - x, n * q)
                 - 0.5 * (_LN_2PI + np.log(x) + np.log1p(-x / n)))
        at_0 = np.where(p < 0.1, -_bd0(n, n * q) - n * p, n * np.log(q))
        at_n = np.where(q < 0.1, -_bd0(n, n * p) - n * q, n * np.log(p))
    return np.where(x == 0, np.where(n == 0, 0.0, at_0), np.where(x == n, at_n, inner))


def _log_dhyper(x, r, b, n):
    """log P(X = x), X the red balls among n drawn from r red and b black (0 < n < r + b)."""
    p = n / (r + b)
    q = (r + b - n) / (r + b)
    return _log_dbinom(x, r, p, q) + _log_dbinom(n - x, b, p, q) - _log_dbinom(n, r + b, p, q)


def _tail_ratio_sum(x, r, b, n) -> np.ndarray:
    """P(X <= x) / P(X = x) for x at most the mean: 1 + the sum of the products of the
    ratios P(X = k - 1) / P(X = k) = k (b - n + k) / ((n + 1 - k)(r + 1 - k)), k = x, x-1, ...

    The ratios fall below 1 going down from the mean, so the sum stops once a term is below
    machine epsilon times the sum (R's pdhyper). Vectorised over tables, in blocks of terms
    that grow 4x per round (a far tail needs a few terms, a table at its mean thousands).
    """
    total = np.ones(x.shape)
    term = np.ones(x.shape)
    k0 = x.copy()
    active = np.flatnonzero(k0 > 0)
    width = 32
    while active.size:
        w = max(8, min(width, _BLOCK_CELLS // active.size))
        k = k0[active, None] - np.arange(w)
        ra, ba, na = r[active, None], b[active, None], n[active, None]
        ratio = np.where(k > 0, k * (ba - na + k) / ((na + 1 - k) * (ra + 1 - k)), 0.0)
        terms = np.cumprod(ratio, axis=1) * term[active, None]
        total[active] += terms.sum(axis=1)
        term[active] = terms[:, -1]
        k0[active] -= w
        active = active[(k0[active] > 0) & (term[active] >= _EPS * total[active])]
        width *= 4
    return total


def hypergeom_cdf(x, r, b, n) -> np.ndarray:
    """P(X <= x) where X counts the red balls among ``n`` drawn without replacement from
    ``r`` red and ``b`` black: ``scipy.stats.hypergeom.cdf(x, r + b, r, n)``, exact in log
    space and vectorised (counts are whole numbers, exact in float64 up to 2**53).

    The smaller tail is summed (above the mean, 1 - P(X > x)), from the density at its end.

    >>> print(f"{hypergeom_cdf(0, 3, 7, 3)[0]:.12g}")  # no red among 3 drawn from 3 red, 7 black: 7/24
    0.291666666667
    """
    x, r, b, n = (np.array(a, np.float64) for a in np.broadcast_arrays(x, r, b, n))
    x, r, b, n = (np.atleast_1d(a) for a in (np.floor(x), r, b, n))
    upper = x * (r + b) > n * r
    x, r, b = np.where(upper, n - x - 1, x), np.where(upper, b, r), np.where(upper, r, b)
    none = (x < 0) | (x < n - b)           # below the support: the tail is empty
    every = ~none & ((x >= r) | (x >= n))  # at or above its top: the whole distribution
    inside = ~(none | every)
    tail = np.where(every, 1.0, 0.0)
    if inside.any():
        xi, ri, bi, ni = x[inside], r[inside], b[inside], n[inside]
        tail[inside] = np.exp(_log_dhyper(xi, ri, bi, ni) + np.log(_tail_ratio_sum(xi, ri, bi, ni)))
    return np.where(upper, 1.0 - tail, tail)


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
