"""Shared machinery for the classifiers: the Classifier base, cut-off and tail checks, input checks.

Conventions follow scikit-learn: ``__init__`` stores its arguments unchanged (it may
reject obviously bad ones early, but sets nothing else), ``fit`` learns state into
attributes ending in ``_`` and returns ``self``, and every check is repeated in ``fit``
so ``set_params`` cannot smuggle in a bad value.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from operators import _univariate as K
from operators.domains import PERCENTILE, SCORE_CUTOFF
from operators.estimator import Estimator, OperatorError, ParameterError

if TYPE_CHECKING:
    from operators.selection import Mapper, Passes

TAILS = {"high": K.TAIL_HIGH, "low": K.TAIL_LOW, "both": K.TAIL_BOTH}


class NotFittedError(OperatorError):
    """score/predict/thresholds called before fit."""


# --------------------------------------------------------------------------- parameter checks


def check_tail(owner: str, tail: Any) -> int:
    if not isinstance(tail, str) or tail not in TAILS:
        raise ParameterError("tail", f"{owner}: tail must be one of {', '.join(map(repr, TAILS))}; got {tail!r}")
    return TAILS[tail]


def check_percentile(owner: str, name: str, p: Any, parameter: str | None = None) -> float:
    if p not in PERCENTILE:
        raise ParameterError(parameter or name, f"{owner}: {name} must be {PERCENTILE.describe()}; got {p!r}")
    return float(p)


def check_cutoff(owner: str, cutoff: Any) -> tuple[str, float] | None:
    """Validate ``{"score": z}`` / ``{"percentile": p}``; None means the default."""
    if cutoff is None:
        return None
    if not isinstance(cutoff, dict) or len(cutoff) != 1:
        raise ParameterError(
            "cutoff", f"{owner}: cutoff must be a dict with exactly one key 'score' or 'percentile'; got {cutoff!r}")
    ((key, value),) = cutoff.items()
    if key == "percentile":
        return "percentile", check_percentile(owner, "cutoff['percentile']", value, parameter="cutoff")
    if key == "score":
        if value not in SCORE_CUTOFF:
            raise ParameterError("cutoff", f"{owner}: cutoff['score'] must be {SCORE_CUTOFF.describe()}; got {value!r}")
        return "score", float(value)
    raise ParameterError("cutoff", f"{owner}: cutoff key must be 'score' or 'percentile'; got {key!r}")


# --------------------------------------------------------------------------- input checks


def _finite_check(owner: str, arr: np.ndarray) -> None:
    if arr.size == 0:
        raise OperatorError(f"{owner}: X is empty; expected at least one row")
    if np.isnan(arr).any():
        raise OperatorError(f"{owner}: X contains NaN; drop or impute missing values first")


def as_1d(owner: str, X: Any) -> np.ndarray:
    """A contiguous float64 vector from a 1-D array or an (n, 1) column."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OperatorError(f"{owner}: X must be numeric; {exc}") from None
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        raise OperatorError(
            f"{owner}: X must be 1-D or shape (n, 1) for a univariate classifier; "
            f"got shape {arr.shape}"
        )
    _finite_check(owner, arr)
    return np.ascontiguousarray(arr)


def as_2d(owner: str, X: Any) -> np.ndarray:
    """A C-contiguous float64 matrix (a 1-D input is one feature)."""
    try:
        arr = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise OperatorError(f"{owner}: X must be numeric; {exc}") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise OperatorError(f"{owner}: X must be 2-D (n_rows, n_features); got shape {arr.shape}")
    _finite_check(owner, arr)
    return np.ascontiguousarray(arr)


# --------------------------------------------------------------------------- base class


class Classifier(Estimator):
    """Base class: the estimator contract, fit_predict, fitted-state checks.

    ``fits_by_passes``: ``fit_passes(passes, n)`` fits exactly as ``fit`` would, reading
    the values through repeated passes (data bigger than memory)."""

    fits_by_passes = False

    def _check_params(self) -> None:
        self._validate()

    def _validate(self) -> Any:
        """Check every parameter: the ``_constraints`` table here; subclasses add their
        structured ones (tail, cut-off) and return what ``fit`` needs. Called by
        ``__init__``, ``set_params`` and again by ``fit``."""
        Estimator._check_params(self)

    def _check_fitted(self) -> None:
        if not hasattr(self, "n_features_in_"):
            raise NotFittedError(
                f"{type(self).__name__}: not fitted; call fit(X) before score/predict/thresholds"
            )

    def fit(self, X: Any) -> "Classifier":  # pragma: no cover - abstract
        raise NotImplementedError

    def score(self, X: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def predict(self, X: Any) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def fit_predict(self, X: Any) -> np.ndarray:
        """fit(X) then predict(X)."""
        return self.fit(X).predict(X)

    def _check_names(self, metric_names: list[str], expected: int) -> list[str]:
        names = list(metric_names)
        if len(names) != expected:
            raise OperatorError(
                f"{type(self).__name__}: metric_names must have {expected} name(s); got {names!r}"
            )
        return names


class UnivariateScorer(Classifier):
    """Shared logic of MAD and ZScore: a centre, a scale, and a cut-off on the signed
    score s = (x - centre) / scale.

    * high: s >= z (or s >= the p-th percentile of the fit's signed scores)
    * low:  s <= -z (or s <= the (100-p)-th percentile)
    * both: |s| >= z (or |s| >= the p-th percentile of |s|)

    ``threshold_`` is stored in signed-score units for that rule (so it is -z for
    tail='low' with a score cut-off). ``score`` returns |s|.
    """

    _default_z = 3.0

    def __init__(self, cutoff: dict | None = None, tail: str = "high") -> None:
        self.cutoff = cutoff
        self.tail = tail
        self._validate()

    def _validate(self) -> tuple[int, tuple[str, float]]:
        super()._validate()
        owner = type(self).__name__
        tail = check_tail(owner, self.tail)
        cut = check_cutoff(owner, self.cutoff)
        if cut is None:
            cut = ("score", self._default_z)
        return tail, cut

    def _center_scale(self, x: np.ndarray) -> tuple[float, float]:  # pragma: no cover
        raise NotImplementedError

    def _center_scale_passes(self, passes: "Passes", n: int, mapper: "Mapper") -> tuple[float, float]:
        raise OperatorError(f"{type(self).__name__}: cannot be fitted by passes over the data; "
                            "fit it on the values in memory")

    def fit(self, X: Any) -> "UnivariateScorer":
        tail, (kind, value) = self._validate()
        x = as_1d(type(self).__name__, X)
        center, scale = self._center_scale(x)
        s = K.signed_scores(x, center, scale) if kind == "percentile" else None
        return self._set_fit(center, scale, tail, kind, value, lambda q, signed: float(np.percentile(
            s if signed else np.abs(s), q)))

    def fit_passes(self, passes: "Passes", n: int, mapper: "Mapper" = map) -> "UnivariateScorer":
        """Fit exactly as ``fit`` on all ``n`` values would, reading them through ``passes()``
        (a callable returning a fresh iterable of arrays each time: data bigger than memory).

        Only classifiers whose centre and scale are order statistics (MAD) implement
        ``_center_scale_passes``; the cut-off percentile is found by selection too.
        """
        from operators.selection import percentile_of_passes

        tail, (kind, value) = self._validate()
        center, scale = self._center_scale_passes(passes, n, mapper)

        def percentile(q: float, signed: bool) -> float:
            scores = lambda: (K.signed_scores(as_1d(type(self).__name__, x), center, scale) for x in passes())
            return percentile_of_passes(scores if signed else lambda: map(np.abs, scores()), n, q, mapper)

        return self._set_fit(center, scale, tail, kind, value, percentile)

    def _set_fit(self, center: float, scale: float, tail: int, kind: str, value: float,
                 percentile) -> "UnivariateScorer":
        if kind == "score":
            threshold = -value if tail == K.TAIL_LOW else value
        elif tail == K.TAIL_HIGH:
            threshold = percentile(value, True)
        elif tail == K.TAIL_LOW:
            threshold = percentile(100.0 - value, True)
        else:
            threshold = percentile(value, False)
        self._center_ = float(center)
        self.scale_ = float(scale)
        self.threshold_ = threshold
        self.n_features_in_ = 1
        return self

    def score(self, X: Any) -> np.ndarray:
        """|x - centre| / scale as float64 (0 at the centre, +inf when scale is 0)."""
        self._check_fitted()
        x = as_1d(type(self).__name__, X)
        return K.abs_scores(x, self._center_, self.scale_)

    def signed_score(self, X: Any) -> np.ndarray:
        """(x - centre) / scale, the quantity the tail rules compare."""
        self._check_fitted()
        x = as_1d(type(self).__name__, X)
        return K.signed_scores(x, self._center_, self.scale_)

    def predict(self, X: Any) -> np.ndarray:
        """Boolean outlier labels under the tail rule and the learned threshold_."""
        self._check_fitted()
        x = as_1d(type(self).__name__, X)
        return K.label_scores(x, self._center_, self.scale_, TAILS[self.tail], self.threshold_)

    def thresholds(self, metric_names: list[str]) -> dict[str, dict[str, float]]:
        """The cut-off in the metric's own units, e.g. {"power_drain": {"high": 812.3}}.

        When the scale is 0 (constant training data) both bounds equal the centre:
        values strictly beyond it score +inf.
        """
        self._check_fitted()
        (name,) = self._check_names(metric_names, 1)
        c, sc, t = self._center_, self.scale_, self.threshold_
        if self.tail == "high":
            return {name: {"high": c + t * sc}}
        if self.tail == "low":
            return {name: {"low": c + t * sc}}
        return {name: {"low": c - t * sc, "high": c + t * sc}}
