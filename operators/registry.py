"""Name -> classifier class, for configuration files (``classifier: mad``)."""

from __future__ import annotations

from typing import Any

from operators.base import Classifier, OperatorError
from operators.mad import MAD
from operators.mcd import MCD
from operators.percentile import Percentile
from operators.predicate import Predicate
from operators.zscore import ZScore

CLASSIFIERS: dict[str, type[Classifier]] = {
    "mad": MAD,
    "mcd": MCD,
    "zscore": ZScore,
    "percentile": Percentile,
    "predicate": Predicate,
}

#: Classifiers that score several metrics jointly (the rest take one metric).
MULTIVARIATE = frozenset({"mcd"})


def make_classifier(name: str, **params: Any) -> Classifier:
    """Build a classifier by its configuration name.

    >>> make_classifier("mad", cutoff={"score": 3.0})
    MAD(cutoff={'score': 3.0}, tail='high')
    """
    try:
        cls = CLASSIFIERS[name]
    except KeyError:
        raise OperatorError(
            f"classifier must be one of {sorted(CLASSIFIERS)}; got {name!r}"
        ) from None
    try:
        return cls(**params)
    except TypeError as exc:  # unknown keyword -> the same error type as bad values
        raise OperatorError(f"{name}: {exc}") from None
