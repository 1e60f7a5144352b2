"""Small dense linear algebra for MCD: Cholesky, log-determinant, squared Mahalanobis
distances, means and covariances of row subsets, the h smallest distances.

d is small (<= ~20), so a hand-written Cholesky beats calling LAPACK per candidate and
keeps operators/ free of SciPy (Numba's np.linalg would need SciPy's LAPACK bindings).

Private Numba kernels: inputs were checked by a public wrapper (contiguous float64
arrays, no NaN, sane parameters); keeping validation out keeps the kernels small and
lets Numba compile them once (``cache=True``).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


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
