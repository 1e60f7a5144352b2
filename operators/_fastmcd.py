"""FastMCD (Rousseeuw & Van Driessen 1999): concentration steps, random starts, refinement,
and the exact univariate MCD.

Private Numba kernels: inputs were checked by a public wrapper (contiguous float64
arrays, no NaN, sane parameters); keeping validation out keeps the kernels small and
lets Numba compile them once (``cache=True``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from operators._linalg import cholesky, logdet_chol, mean_cov_rows, sq_mahalanobis, smallest_h


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
