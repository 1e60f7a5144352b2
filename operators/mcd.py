"""Minimum Covariance Determinant (FastMCD) classifier for several metrics at once."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from operators import _chi2, _fastmcd, _linalg
from operators.base import Classifier, OperatorError, as_2d, check_cutoff, check_tail
from operators.domains import Interval
from operators.estimator import OrNone, RandomState

#: Candidates kept per subset / on the merged set (Rousseeuw & Van Driessen use 10).
_N_BEST = 10
#: Of those, how many are iterated to convergence on the full data after two C-steps.
_N_CONVERGE_FULL = 3
#: FastMCD's subset size, number of subsets and merged-set size for large n.
_SUBSET_SIZE = 300
_MAX_SUBSETS = 5
_MERGED_SIZE = 1500
#: Reweighting keeps points with squared distance below this chi-square quantile.
_REWEIGHT_Q = 0.975


def _consistency_factor(d: int, alpha: float) -> float:
    """Croux & Haesbroeck (1999) / Pison et al. (2002) factor making the covariance of
    the alpha-fraction of most central points consistent at the normal model (the same
    factor scikit-learn's MinCovDet applies)."""
    if alpha >= 1.0:
        return 1.0
    q = _chi2.chi2_ppf(alpha, float(d))
    return alpha / _chi2.chi2_cdf(q, float(d + 2))


def _rng(random_state: Any) -> np.random.Generator:
    if isinstance(random_state, np.random.Generator):
        return random_state
    return np.random.default_rng(random_state)


class MCD(Classifier):
    """Robust multivariate outlier score: Mahalanobis distance under the reweighted
    Minimum Covariance Determinant estimate, fitted with FastMCD
    (Rousseeuw & Van Driessen, Technometrics 1999).

    Parameters
    ----------
    cutoff : {"score": z} or {"percentile": p}, default None
        Outlier iff distance >= z, or >= the p-th percentile of the training distances.
        None uses z = sqrt(chi2_{d}^{-1}(0.975)), the usual robust-distance cut-off.
    tail : "high" | "low" | "both"
        Accepted for a uniform interface and validated, but ignored: a distance has one
        tail.
    support_fraction : float in (0, 1] or None
        Fraction h/n of rows in the raw MCD subset; None = (n + d + 1) / 2 rows, the
        maximal-breakdown choice (as scikit-learn).
    n_starts : int
        Random (d+1)-row starts spread over the subsets (the paper uses 500).
    random_state : int, numpy Generator or None
    max_iter : int
        Cap on C-steps per candidate when iterating to convergence.

    Algorithm: for n > 600, a random 1500-row sample is split into <= 5 subsets of ~300;
    each subset gets n_starts/k random starts with two C-steps and keeps its 10 best;
    the pooled candidates are iterated to convergence on the 1500-row merged set, the 10
    best get two C-steps on the full data and the best 3 are iterated to convergence.
    Small n runs the starts on all rows. d = 1 uses the exact univariate MCD. The raw
    estimate is then made consistent (Croux-Haesbroeck factor), rows with squared
    distance < chi2_{d}^{-1}(0.975) are re-weighted into the final estimate, which is
    corrected again - the steps of scikit-learn's MinCovDet.

    ``score`` returns Mahalanobis distances, NOT squared (sklearn's ``mahalanobis``
    returns squared ones). Learned: ``location_``, ``covariance_``,
    ``raw_location_``, ``raw_covariance_``, ``support_`` (rows used by the reweighted
    estimate), ``dist_`` (training distances), ``threshold_``, ``n_features_in_``.

    Example
    -------
    >>> import numpy as np
    >>> from operators import MCD
    >>> X = np.random.default_rng(0).normal(size=(1000, 3)); X[:20] += 8
    >>> m = MCD(random_state=0).fit(X)
    >>> bool(m.predict(X)[:20].all())
    True
    """

    def __init__(
        self,
        cutoff: dict | None = None,
        tail: str = "high",
        support_fraction: float | None = None,
        n_starts: int = 500,
        random_state: Any = None,
        max_iter: int = 100,
    ) -> None:
        self.cutoff = cutoff
        self.tail = tail
        self.support_fraction = support_fraction
        self.n_starts = n_starts
        self.random_state = random_state
        self.max_iter = max_iter
        self._validate()

    _constraints = {
        "support_fraction": OrNone(Interval(0, 1, low_open=True)),
        "n_starts": Interval(1, integer=True),
        "random_state": RandomState(),
        "max_iter": Interval(1, integer=True),
    }

    def _validate(self) -> tuple[str, float] | None:
        super()._validate()
        check_tail("MCD", self.tail)
        cut = check_cutoff("MCD", self.cutoff)
        return cut

    # ----------------------------------------------------------------- raw FastMCD

    def _support_size(self, n: int, d: int) -> int:
        if self.support_fraction is None:
            h = int(math.ceil(0.5 * (n + d + 1)))
        else:
            h = int(math.ceil(float(self.support_fraction) * n))
        h = min(h, n)
        if h < d + 1:
            raise OperatorError(
                f"MCD: support of {h} rows is too small for {d} features; "
                "need more rows or a larger support_fraction"
            )
        return h

    @staticmethod
    def _best(locs, covs, lds, k):
        order = np.argsort(lds, kind="stable")
        order = order[np.isfinite(lds[order])][:k]
        return locs[order], covs[order], lds[order]

    def _starts(self, X, h, n_starts, rng):
        n = X.shape[0]
        # One random permutation per start: the kernel starts from its first d+1 rows
        # and walks further along it only if those are singular.
        perms = rng.permuted(np.tile(np.arange(n, dtype=np.int64), (n_starts, 1)), axis=1)
        return _fastmcd.random_starts(X, h, perms, 2)

    def _raw_fastmcd(self, X: np.ndarray, h: int, rng: np.random.Generator):
        n, d = X.shape
        if n <= 2 * _SUBSET_SIZE:
            locs, covs, lds = self._starts(X, h, self.n_starts, rng)
            locs, covs, lds = self._best(locs, covs, lds, _N_BEST)
            if len(lds) == 0:
                return None
            locs, covs, lds = _fastmcd.refine(X, h, locs, covs, self.max_iter)
        else:
            n_merged = min(_MERGED_SIZE, n)
            merged = X[rng.permutation(n)[:n_merged]]
            k = min(_MAX_SUBSETS, n_merged // _SUBSET_SIZE)
            per = max(1, self.n_starts // k)
            pool_l, pool_c, pool_d = [], [], []
            for part in np.array_split(merged, k):
                part = np.ascontiguousarray(part)
                h_sub = min(len(part), int(math.ceil(len(part) * h / n)))
                locs, covs, lds = self._starts(part, h_sub, per, rng)
                locs, covs, lds = self._best(locs, covs, lds, _N_BEST)
                pool_l.append(locs)
                pool_c.append(covs)
                pool_d.append(lds)
            locs = np.concatenate(pool_l)
            covs = np.concatenate(pool_c)
            if len(locs) == 0:
                return None
            h_merged = min(n_merged, int(math.ceil(n_merged * h / n)))
            locs, covs, lds = _fastmcd.refine(merged, h_merged, locs, covs, self.max_iter)
            locs, covs, lds = self._best(locs, covs, lds, _N_BEST)
            if len(lds) == 0:
                return None
            # Full data: two C-steps for every survivor, convergence for the best few
            # (each full-data C-step costs O(n d^2), so we do not converge all ten).
            locs, covs, lds = _fastmcd.refine(X, h, locs, covs, 2)
            locs, covs, lds = self._best(locs, covs, lds, _N_CONVERGE_FULL)
            if len(lds) == 0:
                return None
            locs, covs, lds = _fastmcd.refine(X, h, locs, covs, self.max_iter)
        i = int(np.argmin(lds))
        if not np.isfinite(lds[i]):
            return None
        return locs[i], covs[i]

    # ----------------------------------------------------------------- public API

    def fit(self, X: Any) -> "MCD":
        """Fit the reweighted MCD estimate; returns self."""
        cut = self._validate()
        X = as_2d("MCD", X)
        n, d = X.shape
        if n <= d:
            raise OperatorError(f"MCD: need more rows than features; got X of shape {X.shape}")
        h = self._support_size(n, d)
        rng = _rng(self.random_state)
        if d == 1:
            xs = np.sort(X[:, 0])
            m, v = _fastmcd.univariate_mcd(xs, h)
            raw = (np.array([m]), np.array([[v]])) if v > 0 else None
        else:
            raw = self._raw_fastmcd(X, h, rng)
        if raw is None:
            raise OperatorError(
                "MCD: every candidate h-subset has a singular covariance (more than "
                f"{h} rows lie on a hyperplane); X needs more variety or a larger support_fraction"
            )
        raw_loc, raw_cov = raw
        # 1) consistency at the normal model for the raw (h-subset) covariance
        c1 = _consistency_factor(d, h / n)
        raw_cov = raw_cov * c1
        L, ok = _linalg.cholesky(raw_cov)
        d2 = _linalg.sq_mahalanobis(X, raw_loc, L)
        # 2) reweighting: keep rows inside the 97.5% chi-square ellipsoid
        mask = d2 < _chi2.chi2_ppf(_REWEIGHT_Q, float(d))
        loc, cov = _linalg.mean_cov_mask(X, mask)
        # 3) consistency again, for the 97.5%-trimmed covariance
        cov = cov * _consistency_factor(d, _REWEIGHT_Q)
        L, ok = _linalg.cholesky(cov)
        if not ok:
            raise OperatorError("MCD: reweighted covariance is singular; X needs more variety")
        dist = np.sqrt(_linalg.sq_mahalanobis(X, loc, L))

        if cut is None:
            threshold = math.sqrt(_chi2.chi2_ppf(_REWEIGHT_Q, float(d)))
        elif cut[0] == "score":
            threshold = cut[1]
        else:
            threshold = float(np.percentile(dist, cut[1]))

        self.raw_location_ = raw_loc
        self.raw_covariance_ = raw_cov
        self.location_ = loc
        self.covariance_ = cov
        self.support_ = mask
        self.dist_ = dist
        self.threshold_ = threshold
        self.n_features_in_ = d
        return self

    def _X(self, X: Any) -> np.ndarray:
        self._check_fitted()
        X = as_2d("MCD", X)
        if X.shape[1] != self.n_features_in_:
            raise OperatorError(
                f"MCD: X has {X.shape[1]} features; the model was fitted on {self.n_features_in_}"
            )
        return X

    def score(self, X: Any) -> np.ndarray:
        """Mahalanobis distance (not squared) of every row, float64."""
        X = self._X(X)
        L, _ = _linalg.cholesky(self.covariance_)
        return np.sqrt(_linalg.sq_mahalanobis(X, self.location_, L))

    def predict(self, X: Any) -> np.ndarray:
        """True where the distance is >= threshold_."""
        return self.score(X) >= self.threshold_

    def thresholds(self, metric_names: list[str]) -> dict[str, dict[str, float]]:
        """An ellipsoid is not a per-metric bound, so: {"mahalanobis_distance": {"high": t}}."""
        self._check_fitted()
        self._check_names(metric_names, self.n_features_in_)
        return {"mahalanobis_distance": {"high": float(self.threshold_)}}
