"""Private Numba kernels behind the public classifiers (no validation here).

Every function in this module assumes its inputs were already checked by a public
wrapper: contiguous float64 arrays, no NaN, sane parameters. Keeping validation out of
the kernels keeps them small and lets Numba compile them once (``cache=True``).

Tail codes used throughout: 0 = high, 1 = low, 2 = both.
Predicate op codes: 0 ``>``, 1 ``>=``, 2 ``<``, 3 ``<=``, 4 ``==``, 5 ``!=``.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

TAIL_HIGH = 0
TAIL_LOW = 1
TAIL_BOTH = 2


# --------------------------------------------------------------------------- univariate


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


# --------------------------------------------------------------------------- linear algebra
# d is small (<= ~20), so a hand-written Cholesky beats calling LAPACK per candidate and
# keeps operators/ free of SciPy (Numba's np.linalg would need SciPy's LAPACK bindings).


@njit(cache=True)
def cholesky(a):
    """Lower Cholesky factor of a symmetric matrix; ok=False when not positive definite."""
    d = a.shape[0]
    L = np.zeros((d, d), dtype=np.float64)
    for j in range(d):
        s = a[j, j]
        for k in range(j):
            s -= L[j, k] * L[j, k]
        # Relative test: a pivot that collapsed to rounding noise means the points lie
        # (numerically) on a hyperplane.
        if s <= 1e-12 * abs(a[j, j]) or s <= 0.0:
            return L, False
        L[j, j] = math.sqrt(s)
        for i in range(j + 1, d):
            t = a[i, j]
            for k in range(j):
                t -= L[i, k] * L[j, k]
            L[i, j] = t / L[j, j]
    return L, True


@njit(cache=True)
def logdet_chol(L):
    s = 0.0
    for j in range(L.shape[0]):
        s += math.log(L[j, j])
    return 2.0 * s


@njit(cache=True)
def sq_mahalanobis(X, loc, L):
    """Squared Mahalanobis distance of every row under N(loc, L L^T)."""
    n, d = X.shape
    out = np.empty(n, dtype=np.float64)
    y = np.empty(d, dtype=np.float64)
    for r in range(n):
        acc = 0.0
        for i in range(d):  # forward substitution L y = x - loc
            t = X[r, i] - loc[i]
            for k in range(i):
                t -= L[i, k] * y[k]
            t /= L[i, i]
            y[i] = t
            acc += t * t
        out[r] = acc
    return out


@njit(cache=True)
def mean_cov_rows(X, idx, m):
    """Mean and biased (divide by m) covariance of rows idx[:m]."""
    d = X.shape[1]
    loc = np.zeros(d, dtype=np.float64)
    for j in range(m):
        r = idx[j]
        for i in range(d):
            loc[i] += X[r, i]
    for i in range(d):
        loc[i] /= m
    cov = np.zeros((d, d), dtype=np.float64)
    c = np.empty(d, dtype=np.float64)
    for j in range(m):
        r = idx[j]
        for i in range(d):
            c[i] = X[r, i] - loc[i]
        for a in range(d):
            ca = c[a]
            for b in range(a + 1):
                cov[a, b] += ca * c[b]
    for a in range(d):
        for b in range(a + 1):
            cov[a, b] /= m
            cov[b, a] = cov[a, b]
    return loc, cov


@njit(cache=True)
def mean_cov_mask(X, mask):
    """Mean and biased covariance of the rows where mask is True."""
    idx = np.nonzero(mask)[0]
    return mean_cov_rows(X, idx, idx.shape[0])


@njit(cache=True)
def smallest_h(d2, h):
    """Indices of the h smallest entries (ties broken by position), O(n)."""
    kth = np.partition(d2, h - 1)[h - 1]
    idx = np.empty(h, dtype=np.int64)
    m = 0
    for i in range(d2.shape[0]):
        if d2[i] < kth:
            idx[m] = i
            m += 1
    for i in range(d2.shape[0]):
        if m >= h:
            break
        if d2[i] == kth:
            idx[m] = i
            m += 1
    return idx


# --------------------------------------------------------------------------- FastMCD


@njit(cache=True)
def c_steps(X, h, loc, cov, max_steps):
    """Concentration steps (Rousseeuw & Van Driessen 1999, Theorem 1).

    Each step keeps the h rows of X closest to the current (loc, cov). The first step is
    always taken: the start (d+1 rows, or an estimate from another subset) is not an
    h-subset of X, so its determinant is no bound. After that the determinant never
    increases, and we stop when it no longer decreases.
    Returns loc, cov, log-determinant (-inf when singular), steps taken.
    """
    L, ok = cholesky(cov)
    if not ok:
        return loc, cov, -np.inf, 0
    best_logdet = np.inf
    steps = 0
    for _ in range(max_steps):
        d2 = sq_mahalanobis(X, loc, L)
        idx = smallest_h(d2, h)
        new_loc, new_cov = mean_cov_rows(X, idx, h)
        steps += 1
        new_L, ok = cholesky(new_cov)
        if not ok:
            return new_loc, new_cov, -np.inf, steps
        new_logdet = logdet_chol(new_L)
        if steps > 1 and new_logdet > best_logdet - 1e-12 * max(1.0, abs(best_logdet)):
            # No further decrease: converged (keep the better of the two).
            if new_logdet < best_logdet:
                return new_loc, new_cov, new_logdet, steps
            return loc, cov, best_logdet, steps
        loc, cov, L, best_logdet = new_loc, new_cov, new_L, new_logdet
    return loc, cov, best_logdet, steps


@njit(cache=True)
def random_starts(X, h, perms, n_steps):
    """One candidate per row of perms: start from the first d+1 permuted rows (enlarged
    one row at a time while their covariance is singular, as the paper prescribes) and
    apply n_steps C-steps. Returns locations, covariances and log-determinants."""
    n, d = X.shape
    s = perms.shape[0]
    locs = np.empty((s, d), dtype=np.float64)
    covs = np.empty((s, d, d), dtype=np.float64)
    logdets = np.empty(s, dtype=np.float64)
    for t in range(s):
        m = min(d + 1, n)
        loc, cov = mean_cov_rows(X, perms[t], m)
        _, ok = cholesky(cov)
        while not ok and m < n:
            m += 1
            loc, cov = mean_cov_rows(X, perms[t], m)
            _, ok = cholesky(cov)
        if not ok:
            locs[t] = loc
            covs[t] = cov
            logdets[t] = -np.inf
            continue
        loc, cov, ld, _ = c_steps(X, h, loc, cov, n_steps)
        locs[t] = loc
        covs[t] = cov
        logdets[t] = ld
    return locs, covs, logdets


@njit(cache=True)
def refine(X, h, locs, covs, n_steps):
    """Apply up to n_steps C-steps to every given candidate on X."""
    s, d = locs.shape
    out_l = np.empty((s, d), dtype=np.float64)
    out_c = np.empty((s, d, d), dtype=np.float64)
    out_ld = np.empty(s, dtype=np.float64)
    for t in range(s):
        loc, cov, ld, _ = c_steps(X, h, locs[t].copy(), covs[t].copy(), n_steps)
        out_l[t] = loc
        out_c[t] = cov
        out_ld[t] = ld
    return out_l, out_c, out_ld


@njit(cache=True)
def univariate_mcd(xs, h):
    """Exact univariate MCD: the contiguous window of h sorted values with the smallest
    variance (running sums make it O(n)). xs must be sorted. Returns mean, variance."""
    n = xs.shape[0]
    s = 0.0
    ss = 0.0
    # Shift by the median to keep the running sums well conditioned.
    shift = xs[n // 2]
    for i in range(h):
        v = xs[i] - shift
        s += v
        ss += v * v
    best_var = ss / h - (s / h) ** 2
    best_start = 0
    for start in range(1, n - h + 1):
        a = xs[start - 1] - shift
        b = xs[start + h - 1] - shift
        s += b - a
        ss += b * b - a * a
        var = ss / h - (s / h) ** 2
        if var < best_var:
            best_var = var
            best_start = start
    # Recompute the winner exactly (the running sums drift).
    m = 0.0
    for i in range(best_start, best_start + h):
        m += xs[i]
    m /= h
    v = 0.0
    for i in range(best_start, best_start + h):
        v += (xs[i] - m) ** 2
    return m, v / h


# --------------------------------------------------------------------------- chi-square
# Regularised incomplete gamma by the standard series / continued-fraction split, then a
# safeguarded Newton iteration for the inverse. Accurate to ~1e-12 relative; tested
# against scipy.stats.chi2 in tests/test_mcd.py.


@njit(cache=True)
def _gamma_p_series(a, x):
    term = 1.0 / a
    total = term
    ap = a
    for _ in range(10000):
        ap += 1.0
        term *= x / ap
        total += term
        if abs(term) < abs(total) * 1e-16:
            break
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


@njit(cache=True)
def _gamma_q_cf(a, x):
    # Modified Lentz evaluation of the continued fraction for Q(a, x).
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    dd = 1.0 / b
    f = dd
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2.0
        dd = an * dd + b
        if abs(dd) < tiny:
            dd = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        dd = 1.0 / dd
        delta = dd * c
        f *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return f * math.exp(-x + a * math.log(x) - math.lgamma(a))


@njit(cache=True)
def gammainc_lower(a, x):
    """Regularised lower incomplete gamma P(a, x)."""
    if x <= 0.0:
        return 0.0
    if x < a + 1.0:
        return _gamma_p_series(a, x)
    return 1.0 - _gamma_q_cf(a, x)


@njit(cache=True)
def gammainc_upper(a, x):
    """Regularised upper incomplete gamma Q(a, x) = 1 - P(a, x), without cancellation
    in the far tail."""
    if x <= 0.0:
        return 1.0
    if x < a + 1.0:
        return 1.0 - _gamma_p_series(a, x)
    return _gamma_q_cf(a, x)


@njit(cache=True)
def chi2_cdf(x, df):
    return gammainc_lower(0.5 * df, 0.5 * x)


@njit(cache=True)
def chi2_ppf(p, df):
    """Inverse chi-square CDF for 0 < p < 1: Wilson-Hilferty start, then Newton steps
    kept inside a shrinking bisection bracket."""
    # Rough normal quantile (Tukey-lambda approximation); Newton fixes the rest.
    z = 4.91 * (p ** 0.14 - (1.0 - p) ** 0.14)
    c = 2.0 / (9.0 * df)
    x = df * (1.0 - c + z * math.sqrt(c)) ** 3
    if not (x > 0.0) or not math.isfinite(x):
        x = df
    lo = 0.0
    hi = max(2.0 * x, df + 10.0)
    while chi2_cdf(hi, df) < p:
        lo = hi
        hi *= 2.0
    a = 0.5 * df
    lg = math.lgamma(a)
    for _ in range(200):
        # Work with the upper tail above the median so p near 1 keeps its digits.
        if p > 0.5:
            f = (1.0 - p) - gammainc_upper(a, 0.5 * x)
        else:
            f = chi2_cdf(x, df) - p
        if f > 0.0:
            hi = min(hi, x)
        else:
            lo = max(lo, x)
        # chi-square density at x
        pdf = math.exp((a - 1.0) * math.log(0.5 * x) - 0.5 * x - lg) * 0.5
        nx = x - f / pdf if pdf > 0.0 else 0.5 * (lo + hi)
        if not (lo < nx < hi):
            nx = 0.5 * (lo + hi)
        if abs(nx - x) <= 1e-14 * abs(x):
            return nx
        x = nx
    return x


# --------------------------------------------------------------------------- reservoir


@njit(cache=True)
def reservoir_insert(res, size, total_weight, batch, u, slots):
    """Chao's weighted reservoir sampling for unit-weight items, in arrival order.

    Item i raises the running weight W by 1 and enters a full reservoir with
    probability k / W (capped at 1), replacing the slot slots[i]. Decay is applied by
    the caller shrinking W between periods, which is what makes newer items heavier.
    u and slots are drawn by the caller so results are reproducible.
    """
    k = res.shape[0]
    for i in range(batch.shape[0]):
        total_weight += 1.0
        if size < k:
            res[size] = batch[i]
            size += 1
        elif u[i] * total_weight < k:
            res[slots[i]] = batch[i]
    return size, total_weight
