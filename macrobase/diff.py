"""One batch DIFF over an Arrow table: classify, explain, and build the result document.

Shared by ``macrobase explain`` and ``POST /api/v1/explain`` so both return the same
document.
"""
from __future__ import annotations

import os
import re
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import pyarrow as pa

from explain import BatchExplainer, Explanation
from explain.itemsets import CodedChunk
from macrobase.columns import CodeSpace, metric_matrix
from operators.percentile import DEFAULT_PERCENTILE
from operators.registry import CLASSIFIERS, MULTIVARIATE, make_classifier

#: Rows per chunk counted by one thread (a Parquet file is read in batches this big too).
CHUNK_ROWS = 1 << 20
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


#: A request's defaults for its classifier options (the CLI and the HTTP API use them).
BATCH_DEFAULTS = DiffRequest(metrics=(), attributes=())


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
    if req.classifier not in CLASSIFIERS:
        raise ValueError(f"classifier: expected one of {', '.join(CLASSIFIERS)}, got {req.classifier!r}")
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
        "percentile": DEFAULT_PERCENTILE if req.percentile is None else req.percentile}
    return classifier_template(req.classifier, cutoff, req.tail)


def classifier_template(kind: str, cutoff: dict[str, Any], tail: str = "high"):
    """An unfitted classifier from DESIGN.md's cut-off: ``{score: z}``, ``{percentile: p}``
    or, for predicates, ``{op: ">=", value: v}`` (shared by batch requests and pipelines)."""
    if kind == "predicate":
        return make_classifier("predicate", op=cutoff["op"], value=cutoff["value"])
    if kind == "percentile":
        return make_classifier("percentile", percentile=cutoff.get("percentile", DEFAULT_PERCENTILE), tail=tail)
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


def run_diff(table: pa.Table, req: DiffRequest, dropped: int = 0, threads: int | None = None) -> dict[str, Any]:
    """Classify the rows of ``table`` and explain its outliers: DESIGN.md's result document.

    ``threads`` (default: every core) encode and count chunks of rows in parallel; the
    result is the same for every thread count."""
    classifier, explainer = prepare(req)
    n = table.num_rows
    if n == 0:
        return document(0, 0, dropped, {}, [])
    batches = table.to_batches(max_chunksize=CHUNK_ROWS)
    spaces = [CodeSpace() for _ in req.attributes]
    with thread_map(threads) as mapper:
        if classifier.fits_by_passes:  # exact selection, counted on every thread
            metric = [metric_matrix(b, req.metrics) for b in batches]
            classifier.fit_passes(lambda: metric, n, mapper)
        else:
            classifier.fit(metric_matrix(table, req.metrics))
        # In memory the chunks are coded once and every pass reuses them.
        coded = list(mapper(_coder(classifier, req, spaces), batches))
        found = explainer.explain_passes(lambda: coded, req.attributes, spaces, mapper=mapper)
    return document(n, int(explainer.outliers_), dropped, classifier.thresholds(list(req.metrics)), found)


def run_diff_passes(source: BatchSource, req: DiffRequest, threads: int | None = None) -> dict[str, Any]:
    """The same document as :func:`run_diff` for input bigger than memory, read pass after
    pass through ``source.batches()`` (DESIGN.md "Bigger than memory"): memory stays
    bounded by the batch size and the counts, whatever the number of rows.

    MAD, percentile and predicate classifiers are fitted exactly by selection over the
    passes; the others (z-score, MCD) keep only the metric columns in memory to fit.
    """
    classifier, explainer = prepare(req)
    by_passes = classifier.fits_by_passes
    source = PassProgress(source)
    n = dropped = 0
    kept = []
    for fb in source.batches(columns=req.metrics):
        n += fb.batch.num_rows
        dropped += fb.dropped
        if not by_passes:
            kept.append(metric_matrix(fb.batch, req.metrics))
    if n == 0:
        return document(0, 0, dropped, {}, [])
    source.rows = n
    spaces = [CodeSpace() for _ in req.attributes]
    with thread_map(threads) as mapper:
        if by_passes:
            classifier.fit_passes(lambda: (metric_matrix(fb.batch, req.metrics)
                                           for fb in source.batches(columns=req.metrics)), n, mapper)
        else:
            classifier.fit(np.concatenate(kept))  # rows of 1-D (one metric) or 2-D arrays
            del kept
        found = explainer.explain_passes(lambda: (fb.batch for fb in source.batches()), req.attributes,
                                         spaces, chunk_of=_coder(classifier, req, spaces), mapper=mapper)
    return document(n, int(explainer.outliers_), dropped, classifier.thresholds(list(req.metrics)), found)


class BatchSource(Protocol):
    """Input read pass after pass (``connectors.files.FileInput``, ``connectors.sql.SqlInput``)."""

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[Any]: ...


class PassProgress:
    """``source`` with a bar on a terminal's stderr for each pass: "pass 3", rows read of
    ``rows`` (unknown, so a plain count, during the first pass)."""

    def __init__(self, source: BatchSource) -> None:
        self.source, self.rows, self.passes = source, None, 0

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[Any]:
        from connectors.files import terminal_bar

        self.passes += 1
        bar = terminal_bar(total=self.rows, unit=" rows", unit_scale=True, desc=f"pass {self.passes}")
        try:
            for fb in self.source.batches(columns=columns):
                if bar is not None:
                    bar.update(fb.batch.num_rows)
                yield fb
        finally:
            if bar is not None:
                bar.close()


def _coder(classifier, req: DiffRequest, spaces: list[CodeSpace]) -> Callable[[pa.RecordBatch], CodedChunk]:
    def coded(batch: pa.RecordBatch) -> CodedChunk:
        outliers = np.asarray(classifier.predict(metric_matrix(batch, req.metrics)), dtype=bool)
        return CodedChunk(tuple(space.codes(batch.column(a)) for space, a in zip(spaces, req.attributes)), outliers)
    return coded


@contextmanager
def thread_map(threads: int | None) -> Iterator[Callable]:
    """``map`` on ``threads`` threads (None: every core), in order, with at most two items
    per thread in flight so a pass over a big file never reads ahead unboundedly."""
    threads = threads or os.cpu_count() or 1
    if threads == 1:
        yield map
        return
    with ThreadPoolExecutor(threads, thread_name_prefix="macrobase-explain") as pool:
        def mapper(fn, items):
            pending: deque = deque()
            for item in items:
                pending.append(pool.submit(fn, item))
                if len(pending) >= 2 * threads:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        yield mapper


def document(total: int, outliers: int, dropped: int, thresholds: dict, found: list[Explanation]) -> dict:
    return {
        "total": total,
        "outliers": outliers,
        "dropped": dropped,
        "thresholds": thresholds,
        "explanations": [e.to_dict() for e in found],
    }
