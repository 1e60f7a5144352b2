"""Percentile classifier: a value is an outlier iff it lies in the extreme p% tail."""

from __future__ import annotations

from typing import Any

import numpy as np

from operators import _univariate as K
from operators.base import TAILS, Classifier, as_1d, check_percentile, check_tail


#: The percentile cut-off when none is given (the CLI, API and pipelines use it too).
DEFAULT_PERCENTILE = 99.0


class Percentile(Classifier):
    """Outlier iff x >= percentile(values, p) (high), x <= percentile(values, 100 - p)
    (low), or either (both); ``numpy.percentile`` with its default linear method.

    Learned: ``low_`` (the (100-p)-th percentile), ``high_`` (the p-th percentile),
    ``n_features_in_``. ``score`` returns the value itself as float64 (the classifier is
    a pure threshold on it).

    Example
    -------
    >>> import numpy as np
    >>> from operators import Percentile
    >>> x = np.arange(100.0)
    >>> int(Percentile(percentile=95).fit(x).predict(x).sum())
    5
    """

    fits_by_passes = True

    def __init__(self, percentile: float = DEFAULT_PERCENTILE, tail: str = "high") -> None:
        self.percentile = percentile
        self.tail = tail
        self._validate()

    def _validate(self) -> tuple[float, int]:
        super()._validate()
        owner = type(self).__name__
        return check_percentile(owner, "percentile", self.percentile), check_tail(owner, self.tail)

    def fit(self, X: Any) -> "Percentile":
        p, _ = self._validate()
        x = as_1d(type(self).__name__, X)
        low, high = np.percentile(x, [100.0 - p, p])
        self.low_ = float(low)
        self.high_ = float(high)
        self.n_features_in_ = 1
        return self

    def fit_passes(self, passes, n: int, mapper=map) -> "Percentile":
        """Fit exactly as ``fit`` on all ``n`` values would, reading them through ``passes()``
        (a callable returning a fresh iterable of arrays each time), by exact selection."""
        from operators.selection import percentiles_of_passes

        p, _ = self._validate()
        self.low_, self.high_ = percentiles_of_passes(passes, n, [100.0 - p, p], mapper)
        self.n_features_in_ = 1
        return self

    def score(self, X: Any) -> np.ndarray:
        """The values themselves (float64)."""
        self._check_fitted()
        return as_1d(type(self).__name__, X).copy()

    def predict(self, X: Any) -> np.ndarray:
        self._check_fitted()
        x = as_1d(type(self).__name__, X)
        return K.label_values(x, TAILS[self.tail], self.low_, self.high_)

    def thresholds(self, metric_names: list[str]) -> dict[str, dict[str, float]]:
        """{"metric": {"high": v}} / {"low": v} / both, in the metric's units."""
        self._check_fitted()
        (name,) = self._check_names(metric_names, 1)
        if self.tail == "high":
            return {name: {"high": self.high_}}
        if self.tail == "low":
            return {name: {"low": self.low_}}
        return {name: {"low": self.low_, "high": self.high_}}
