"""Robust outlier classifiers and samplers on NumPy arrays (numpy + numba only).

>>> import numpy as np
>>> from operators import MAD
>>> MAD().fit_predict(np.r_[np.arange(100.0), 1e6])[-1]
np.True_
"""

from operators.base import Classifier, NotFittedError
from operators.estimator import Estimator, OperatorError, ParameterError
from operators.mad import MAD
from operators.mcd import MCD
from operators.percentile import Percentile
from operators.predicate import Predicate
from operators.registry import CLASSIFIERS, make_classifier
from operators.reservoir import DampedReservoir
from operators.streaming import StreamingClassifier
from operators.zscore import ZScore

__all__ = [
    "CLASSIFIERS",
    "Classifier",
    "DampedReservoir",
    "Estimator",
    "MAD",
    "MCD",
    "NotFittedError",
    "OperatorError",
    "ParameterError",
    "Percentile",
    "Predicate",
    "StreamingClassifier",
    "ZScore",
    "make_classifier",
]
