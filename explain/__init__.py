"""Explanations: which attribute combinations are over-represented among outliers.

A library usable on its own (NumPy + Numba only): encode attributes, label outliers with
any classifier, then ask :class:`BatchExplainer` for minimal or refined explanations.
"""
from explain.batch import BatchExplainer
from explain.encoding import EncodedAttributes, encode_column, encode_columns
from explain.metrics import RATIO_METRICS, global_ratio, prevalence_ratio, ratio_function, risk_ratio
from explain.params import ExplainerParams
from explain.result import Explanation, describe, json_number
from explain.sketch import AmcSketch

__all__ = [
    "AmcSketch", "BatchExplainer", "EncodedAttributes", "ExplainerParams", "Explanation", "RATIO_METRICS",
    "describe", "encode_column", "encode_columns", "global_ratio",
    "json_number", "prevalence_ratio", "ratio_function", "risk_ratio",
]
from explain.streaming import StreamingExplainer  # noqa: E402  (after the batch API it builds on)

__all__ += ["StreamingExplainer"]
