"""One batch DIFF over an Arrow table: classify, explain, and build the result document.

Shared by ``macrobase explain`` and ``POST /api/v1/explain`` so both return the same
document.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from explain import BatchExplainer, Explanation
from macrobase.columns import encode_arrow, metric_matrix
from operators.registry import MULTIVARIATE, make_classifier

CLASSIFIER_TYPES = ("percentile", "mad", "mcd", "zscore", "predicate")
_PREDICATE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")


@dataclass(frozen=True)
class DiffRequest:
    """Everything one batch DIFF needs; :func:`build_classifier` validates it."""

    metrics: tuple[str, ...]
    attributes: tuple[str, ...]
    classifier: str = "percentile"
    percentile: float | None = None
    score_cutoff: float | None = None
    predicate: str | None = None
    tail: str = "high"
    explainer: dict[str, Any] = field(default_factory=dict)


def parse_predicate(text: str) -> tuple[str, float]:
    """">= 60" -> (">=", 60.0)."""
    m = _PREDICATE.match(text or "")
    if not m:
        raise ValueError(
            f"predicate: expected an operator (> >= < <= == !=) and a number, e.g. '>= 60', got {text!r}"
        )
    return m.group(1), float(m.group(2))


def build_classifier(req: DiffRequest):
    """Classifier for a request; raises ValueError naming the offending option."""
    if req.classifier not in CLASSIFIER_TYPES:
        raise ValueError(f"classifier: expected one of {', '.join(CLASSIFIER_TYPES)}, got {req.classifier!r}")
    if req.classifier in MULTIVARIATE:
        if len(req.metrics) < 2:
            raise ValueError("metric: the mcd classifier needs at least two comma-separated metrics")
    elif len(req.metrics) != 1:
        raise ValueError(f"metric: the {req.classifier} classifier takes exactly one metric, got {len(req.metrics)}")
    if req.percentile is not None and req.score_cutoff is not None:
        raise ValueError("percentile: give either a percentile or a score cutoff, not both")
    if req.classifier == "predicate":
        if req.predicate is None:
            raise ValueError("predicate: the predicate classifier needs a predicate such as '>= 60'")
        op, value = parse_predicate(req.predicate)
        return classifier_template("predicate", {"op": op, "value": value})
    if req.predicate is not None:
        raise ValueError(f"predicate: only valid with the predicate classifier, not {req.classifier}")
    if req.classifier == "percentile" and req.score_cutoff is not None:
        raise ValueError("score_cutoff: the percentile classifier takes a percentile, not a score cutoff")
    cutoff = {"score": req.score_cutoff} if req.score_cutoff is not None else {
        "percentile": 99.0 if req.percentile is None else req.percentile}
    return classifier_template(req.classifier, cutoff, req.tail)


def classifier_template(kind: str, cutoff: dict[str, Any], tail: str = "high"):
    """An unfitted classifier from DESIGN.md's cut-off: ``{score: z}``, ``{percentile: p}``
    or, for predicates, ``{op: ">=", value: v}`` (shared by batch requests and pipelines)."""
    if kind == "predicate":
        return make_classifier("predicate", op=cutoff["op"], value=cutoff["value"])
    if kind == "percentile":
        return make_classifier("percentile", percentile=cutoff.get("percentile", 99.0), tail=tail)
    params: dict[str, Any] = {"cutoff": cutoff, "tail": tail}
    if kind == "mcd":
        params["random_state"] = 0  # reproducible FastMCD starts
    return make_classifier(kind, **params)


def prepare(req: DiffRequest) -> tuple[Any, BatchExplainer]:
    """The classifier and explainer of a request; bad options fail here, before any data is read."""
    explainer = BatchExplainer(**req.explainer)
    classifier = build_classifier(req)
    explainer.validate()
    return classifier, explainer


def run_diff(table: pa.Table, req: DiffRequest, dropped: int = 0) -> dict[str, Any]:
    """Classify the rows of ``table`` and explain its outliers: DESIGN.md's result document."""
    classifier, explainer = prepare(req)
    n = table.num_rows
    if n == 0:
        return document(0, 0, dropped, {}, [])
    X = metric_matrix(table, req.metrics)
    outliers = np.asarray(classifier.fit(X).predict(X), dtype=bool)
    found = explainer.explain(encode_arrow(table, req.attributes), outliers)
    return document(n, int(outliers.sum()), dropped, classifier.thresholds(list(req.metrics)), found)


def document(total: int, outliers: int, dropped: int, thresholds: dict, found: list[Explanation]) -> dict:
    return {
        "total": total,
        "outliers": outliers,
        "dropped": dropped,
        "thresholds": thresholds,
        "explanations": [e.to_dict() for e in found],
    }
