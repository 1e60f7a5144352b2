"""Classic z-score classifier (mean / standard deviation; not robust, but cheap)."""

from __future__ import annotations

from typing import Any

import numpy as np

from operators import _univariate as K
from operators.base import UnivariateScorer


class ZScore(UnivariateScorer):
    """score = |x - mean| / std (population std, ddof=0, like ``numpy.std``).

    Parameters
    ----------
    cutoff : {"score": z} or {"percentile": p}, default None = {"score": 3.0}
    tail : "high" | "low" | "both"

    Learned: ``mean_``, ``std_``, ``scale_`` (= ``std_``), ``threshold_``,
    ``n_features_in_``. With std 0 (constant data) values equal to the mean score 0 and
    all others +inf.

    Example
    -------
    >>> import numpy as np
    >>> from operators import ZScore
    >>> x = np.r_[np.random.default_rng(0).normal(size=1000), 9.0]
    >>> bool(ZScore(cutoff={"score": 4}).fit(x).predict(x)[-1])
    True
    """

    def __init__(self, cutoff: dict | None = None, tail: str = "high") -> None:
        super().__init__(cutoff=cutoff, tail=tail)

    def _center_scale(self, x: np.ndarray) -> tuple[float, float]:
        mean, std = K.mean_std(x)
        self.mean_ = float(mean)
        self.std_ = float(std)
        return self.mean_, self.std_

    def fit(self, X: Any) -> "ZScore":
        return super().fit(X)
