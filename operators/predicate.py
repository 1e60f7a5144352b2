"""Predicate classifier: a fixed rule such as ``latency_ms > 500``."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from operators import _univariate as K
from operators.base import Classifier, as_1d
from operators.estimator import OneOf, ParameterError

OPS = {">": 0, ">=": 1, "<": 2, "<=": 3, "==": 4, "!=": 5}


class Predicate(Classifier):
    """Outlier iff ``x OP value`` with OP one of > >= < <= == !=.

    Nothing is learned from the data; ``fit`` only checks the input and records
    ``threshold_`` (= value) and ``n_features_in_`` so the classifier behaves like the
    others. ``score`` returns 1.0 where the predicate holds and 0.0 elsewhere.

    Example
    -------
    >>> import numpy as np
    >>> from operators import Predicate
    >>> Predicate(">=", 0.8).fit_predict(np.array([0.1, 0.8, 0.9])).tolist()
    [False, True, True]
    """

    fits_by_passes = True
    requires_training = False
    _constraints = {"op": OneOf(tuple(OPS))}

    def __init__(self, op: str = ">", value: float = 0.0) -> None:
        self.op = op
        self.value = value
        self._validate()

    def _validate(self) -> tuple[int, float]:
        super()._validate()
        v = self.value
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or math.isnan(float(v)):
            raise ParameterError("value", f"Predicate: value must be a number (not NaN); got {v!r}")
        return OPS[self.op], float(v)

    def fit(self, X: Any) -> "Predicate":
        _, value = self._validate()
        as_1d("Predicate", X)
        self.threshold_ = value
        self.n_features_in_ = 1
        return self

    def fit_passes(self, passes, n: int, mapper=map) -> "Predicate":
        """A fixed rule learns nothing: the same as ``fit``, without reading the data."""
        _, value = self._validate()
        self.threshold_ = value
        self.n_features_in_ = 1
        return self

    def predict(self, X: Any) -> np.ndarray:
        self._check_fitted()
        op, _ = self._validate()
        return K.label_predicate(as_1d("Predicate", X), op, self.threshold_)

    def score(self, X: Any) -> np.ndarray:
        """1.0 where ``x OP value`` holds, else 0.0."""
        return self.predict(X).astype(np.float64)

    def thresholds(self, metric_names: list[str]) -> dict[str, dict[str, float]]:
        """{"metric": {op: value}}, e.g. {"x": {">=": 0.8}}."""
        self._check_fitted()
        (name,) = self._check_names(metric_names, 1)
        return {name: {self.op: self.threshold_}}
