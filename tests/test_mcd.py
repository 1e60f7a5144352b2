"""FastMCD against scikit-learn's MinCovDet and SciPy's chi-square, plus planted
multivariate outliers that per-metric classifiers cannot see."""

from __future__ import annotations

import time

import numpy as np
import pytest
import scipy.stats
from sklearn.covariance import MinCovDet

from operators import MAD, MCD
from operators import _chi2 as K


def contaminated(n, d, frac=0.1, seed=0):
    """Correlated Gaussian bulk plus a shifted cluster of outliers (first rows)."""
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(d, d))
    cov = A @ A.T + np.eye(d)
    X = rng.multivariate_normal(np.zeros(d), cov, size=n)
    m = int(frac * n)
    X[:m] = rng.normal(5.0, 1.0, size=(m, d))
    return X


# ----------------------------------------------------------------------- chi-square


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 7, 10, 15, 20, 30, 50])
def test_chi2_ppf_and_cdf_match_scipy(df):
    ps = [1e-10, 1e-6, 1e-3, 0.025, 0.1, 0.5, 0.9, 0.975, 0.999, 1 - 1e-6, 1 - 1e-10]
    for p in ps:
        ref = scipy.stats.chi2.ppf(p, df)
        assert K.chi2_ppf(p, float(df)) == pytest.approx(ref, rel=1e-10)
    for x in [1e-3, 0.5, df / 2, df, 2 * df + 3, 5 * df + 20]:
        assert K.chi2_cdf(x, float(df)) == pytest.approx(scipy.stats.chi2.cdf(x, df), rel=1e-11, abs=1e-300)
        assert K.gammainc_upper(df / 2, x / 2) == pytest.approx(scipy.stats.chi2.sf(x, df), rel=1e-10)


# ----------------------------------------------------------------------- scikit-learn parity


def test_top5_agreement_with_sklearn_200k():
    """Graded: >= 99% agreement on the top-5% of 200k contaminated 4-D points."""
    n = 200_000
    X = contaminated(n, 4)
    MCD(random_state=0).fit(X[:2000])  # warm the Numba cache outside the timing
    t0 = time.perf_counter()
    ours = MCD(random_state=0).fit(X).score(X)
    t_ours = time.perf_counter() - t0
    ref = MinCovDet(random_state=0).fit(X)
    theirs = ref.mahalanobis(X)  # squared distances
    k = n // 20
    top_ours = np.argpartition(-ours, k)[:k]
    top_theirs = np.argpartition(-theirs, k)[:k]
    agreement = np.intersect1d(top_ours, top_theirs).size / k
    assert agreement >= 0.99
    # same estimate, not just the same ranking: distances agree closely
    np.testing.assert_allclose(ours**2, theirs, rtol=1e-2)
    assert t_ours < 5.0


@pytest.mark.parametrize("n,d,seed", [(400, 3, 1), (1200, 2, 2), (5000, 6, 3)])
def test_estimate_close_to_sklearn(n, d, seed):
    # covers the small-n path (all rows), the n < 1500 merged path and the large path
    X = contaminated(n, d, frac=0.15, seed=seed)
    ours = MCD(random_state=0).fit(X)
    ref = MinCovDet(random_state=0).fit(X)
    scale = np.sqrt(np.diag(ref.covariance_))
    np.testing.assert_allclose(ours.location_ / scale, ref.location_ / scale, atol=0.05)
    np.testing.assert_allclose(ours.covariance_, ref.covariance_, rtol=0.1, atol=0.05 * scale.max() ** 2)
    k = n // 20
    top_o = np.argsort(-ours.score(X))[:k]
    top_r = np.argsort(-ref.mahalanobis(X))[:k]
    assert np.intersect1d(top_o, top_r).size / k >= 0.95


def test_univariate_mcd_is_exact_min_variance_window():
    # d = 1 uses the exact MCD: of all h-subsets, the contiguous window of sorted values
    # with the smallest variance. Brute force over every window as the reference.
    rng = np.random.default_rng(5)
    x = np.r_[rng.normal(0, 1, 900), rng.normal(8, 0.5, 100)]
    n, h = len(x), int(np.ceil((len(x) + 2) / 2))
    xs = np.sort(x)
    variances = [xs[i : i + h].var() for i in range(n - h + 1)]
    best = int(np.argmin(variances))
    ours = MCD(random_state=0).fit(x[:, None])
    assert ours.raw_location_[0] == pytest.approx(xs[best : best + h].mean(), rel=1e-12)
    c1 = ours.raw_covariance_[0, 0] / variances[best]  # consistency factor applied
    q = scipy.stats.chi2.ppf(h / n, 1)
    assert c1 == pytest.approx((h / n) / scipy.stats.chi2.cdf(q, 3), rel=1e-9)
    # sklearn approximates d = 1 by the shortest half; the final estimates still agree
    ref = MinCovDet(random_state=0).fit(x[:, None])
    np.testing.assert_allclose(ours.location_, ref.location_, atol=0.02)
    np.testing.assert_allclose(ours.covariance_, ref.covariance_, rtol=0.05)


def test_score_is_unsquared_mahalanobis_distance():
    X = contaminated(3000, 3, seed=4)
    est = MCD(random_state=0).fit(X)
    diff = X - est.location_
    ref = np.sqrt(np.einsum("ij,jk,ik->i", diff, np.linalg.inv(est.covariance_), diff))
    np.testing.assert_allclose(est.score(X), ref, rtol=1e-9)
    np.testing.assert_allclose(est.dist_, ref, rtol=1e-9)


# ----------------------------------------------------------------------- behaviour


def test_finds_outliers_invisible_per_metric():
    # Strongly correlated pair; outliers break the correlation but stay well inside each
    # marginal range, so a per-metric MAD cannot flag them.
    rng = np.random.default_rng(6)
    n = 10_000
    z = rng.normal(size=n)
    X = np.c_[z, z + 0.1 * rng.normal(size=n)]
    idx = rng.choice(n, 100, replace=False)
    X[idx, 1] = X[idx, 0] + rng.choice([-1, 1], 100) * rng.uniform(0.8, 1.5, 100)  # >= 8 residual sd off the diagonal
    truth = np.zeros(n, bool)
    truth[idx] = True
    y = MCD(random_state=0).fit_predict(X)  # default cut-off: sqrt(chi2_2(0.975))
    assert (y & truth).sum() / 100 >= 0.98
    per_metric = MAD(cutoff={"score": 3.5}, tail="both").fit_predict(X[:, 1])
    assert (per_metric & truth).sum() / 100 <= 0.2
    # the usual chi-square cut-off flags about 2.5% of clean Gaussian rows
    assert (y & ~truth).mean() == pytest.approx(0.025, abs=0.01)


def test_cutoffs_and_thresholds():
    X = contaminated(5000, 4, seed=7)
    est = MCD(cutoff={"percentile": 95}, random_state=0).fit(X)
    assert est.predict(X).mean() == pytest.approx(0.05, abs=0.002)
    assert est.threshold_ == pytest.approx(np.percentile(est.score(X), 95))
    assert est.thresholds(["a", "b", "c", "d"]) == {"mahalanobis_distance": {"high": est.threshold_}}
    est = MCD(cutoff={"score": 4.0}, random_state=0).fit(X)
    np.testing.assert_array_equal(est.predict(X), est.score(X) >= 4.0)
    default = MCD(random_state=0).fit(X)
    assert default.threshold_ == pytest.approx(np.sqrt(scipy.stats.chi2.ppf(0.975, 4)))
    with pytest.raises(ValueError, match="metric_names"):
        default.thresholds(["a"])


def test_random_state_determinism_and_support_fraction():
    X = contaminated(4000, 5, seed=8)
    a = MCD(random_state=3).fit(X).score(X)
    b = MCD(random_state=3).fit(X).score(X)
    np.testing.assert_array_equal(a, b)
    est = MCD(support_fraction=0.75, random_state=0).fit(X)
    ref = MinCovDet(support_fraction=0.75, random_state=0).fit(X)
    np.testing.assert_allclose(est.location_, ref.location_, atol=0.05)


def test_singular_data_raises_clear_error():
    rng = np.random.default_rng(9)
    t = rng.normal(size=500)
    X = np.c_[t, 2 * t, -t]  # all rows on a line in 3-D
    with pytest.raises(ValueError, match="singular"):
        MCD(random_state=0).fit(X)
    with pytest.raises(ValueError, match="rows"):
        MCD().fit(np.ones((3, 4)))
