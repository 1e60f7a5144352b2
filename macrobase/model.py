"""The pipeline's one classifier model: trained on every shard's rows, sent to every shard.

One model stage per pipeline (keyed by the pipeline's name) sees the metric values of
every chunk read, keeps the damped training reservoir, retrains every ``retrain_every``
events and issues a numbered :class:`ModelUpdate`. Every chunk goes on to its shard
with the update current at that point, so all shards classify with the same thresholds;
rows read before the first model are held until it exists.

Pure Python (no Beam): :mod:`macrobase.pipeline` wraps it in a stateful DoFn.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from macrobase.config import PipelineConfig
from macrobase.diff import classifier_template
from operators.streaming import StreamingClassifier

HISTOGRAM_BINS = 40


@dataclass(frozen=True)
class ModelUpdate:
    """A fitted model (``version`` counts trainings; 0 for a predicate) and what to show of it."""

    version: int
    model: Any
    thresholds: dict[str, Any]
    distribution: dict[str, Any]
    issued_at: float  # wall-clock seconds: the newest distribution wins

    @property
    def rank(self) -> tuple[int, float]:
        return (self.version, self.issued_at)


def build_classifier(cfg: PipelineConfig) -> StreamingClassifier:
    c = cfg.classifier
    template = classifier_template(c.type, c.cutoff.model_dump(), c.tail)
    t = c.training
    return StreamingClassifier(template, reservoir=t.reservoir, decay=t.decay,
                               retrain_every=t.retrain_every, random_state=0)


class ModelKeeper:
    """Training state of one pipeline's model (kept in Beam state by the model stage)."""

    def __init__(self, cfg: PipelineConfig, sources: int) -> None:
        self.metrics = list(cfg.event_schema.metrics)
        self.emit_every = cfg.explainer.emit_every
        self.sources = sources
        self.classifier = build_classifier(cfg)
        self.version = 0
        self.ended: set[str] = set()
        self.held = 0  # chunks the model stage holds until the first model exists
        self._current: ModelUpdate | None = None
        self.next_refresh = time.time() + self.emit_every

    def resume(self, version: int, model: Any) -> "ModelKeeper":
        """Continue from a checkpointed model: shards need not wait for a new warm-up."""
        if model is not None and version > 0:
            self.classifier.resume(model)
            self.version = version
            self._current = None
        return self

    @property
    def current(self) -> ModelUpdate | None:
        """The model every shard uses now (None during the warm-up)."""
        if self._current is None and self.classifier.ready:
            self._current = self.update()
        return self._current

    def learn(self, source: str, X: np.ndarray | None, end: bool) -> None:
        """Add one chunk's metric rows; retrain when due; refresh the shown distribution
        once per emit interval."""
        before = getattr(self.classifier, "trainings_", 0)
        if X is not None and len(X):
            self.classifier.learn(X)
        if end:
            self.ended.add(source)
            if len(self.ended) >= self.sources and not self.classifier.ready:
                self.classifier.train_now()  # a bounded input shorter than the warm-up
        now = time.time()
        trained = getattr(self.classifier, "trainings_", 0) != before
        if trained:
            self.version += 1
        if now >= self.next_refresh:
            self.classifier.advance()  # older reservoir rows lose weight once per interval
            self.next_refresh = now + self.emit_every
            trained = True
        if trained or end:
            self._current = self.update(now)

    def update(self, now: float | None = None) -> ModelUpdate | None:
        model = self.classifier.model
        if model is None:
            return None
        return ModelUpdate(self.version, model, model.thresholds(self.metrics), self._distribution(),
                           time.time() if now is None else now)

    def _distribution(self) -> dict[str, Any]:
        sample = self.classifier.sample()
        if sample.size == 0:
            return {}
        out = {}
        for j, m in enumerate(self.metrics):
            counts, edges = np.histogram(sample[:, j], bins=HISTOGRAM_BINS)
            out[m] = {"edges": edges.round(6).tolist(), "counts": counts.tolist()}
        return out
