"""Per-shard work: encode, classify and count one shard's chunks into a partial summary.

A shard (one Kafka partition, file or generator) counts its rows with the pipeline's
current model into a :class:`ShardCounter`, whose :meth:`~ShardCounter.partial` is a small,
self-contained :class:`Partial`: additive counts in the shard's own attribute codes plus
the value of every code, so the global stage can map them into its code space. A partial
also says which positions it covers, so offsets are committed only for counted events.

Pure Python over Arrow batches (no Beam): :mod:`macrobase.pipeline` wraps it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from connectors.chunks import Chunk
from explain.streaming import StreamingExplainer
from macrobase.columns import metric_matrix
from macrobase.config import PipelineConfig
from macrobase.model import ModelUpdate
from macrobase.values import ValueEncoder

OffsetKey = tuple[str, int]


@dataclass(frozen=True)
class Partial:
    """What one shard counted since its previous partial."""

    shard: str
    explainer: dict | None                    # StreamingExplainer.to_state(), shard codes
    values: tuple[tuple, ...]                 # per attribute: the value of each shard code
    events: int = 0
    outliers: int = 0
    ranges: tuple[tuple[OffsetKey, int, int], ...] = ()   # (key, start, next) counted
    dead_letters: tuple[dict, ...] = ()
    dead_letter_count: int = 0
    dropped: int = 0
    lag: int | None = None
    healthy: bool = True
    error: str | None = None
    ends: tuple[tuple[OffsetKey, int], ...] = ()          # sources that ended, at which position
    model: ModelUpdate | None = None


def explainer_for(cfg: PipelineConfig) -> StreamingExplainer:
    e = cfg.explainer
    return StreamingExplainer(list(cfg.event_schema.attributes), min_support=e.min_support,
                              min_ratio=e.min_ratio, ratio_metric=e.ratio_metric, max_order=e.max_order,
                              mode=e.mode, decay=e.decay, max_p_value=e.max_p_value)


@dataclass
class ShardCounter:
    """Counts of one shard's chunks, in the shard's own codes, until :meth:`partial`."""

    cfg: PipelineConfig
    shard: str
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        s = self.cfg.event_schema
        self.metrics, self.attributes = list(s.metrics), list(s.attributes)
        self.encoders = [ValueEncoder() for _ in self.attributes]
        self.explainer = explainer_for(self.cfg)
        self.events = self.outliers = self.dead_letter_count = self.dropped = 0
        self.ranges: list[tuple[OffsetKey, int, int]] = []
        self.dead_letters: list[dict] = []
        self.ends: list[tuple[OffsetKey, int]] = []
        self.lag: int | None = None
        self.healthy, self.error = True, None
        self.model: ModelUpdate | None = None

    def add(self, chunk: Chunk, model: ModelUpdate | None) -> None:
        """Count one chunk; a chunk with rows needs ``model`` (the caller holds it otherwise)."""
        self.healthy, self.error = chunk.healthy, chunk.error
        if chunk.lag is not None:
            self.lag = chunk.lag
        if model is not None:
            self.model = model
        if chunk.dead_letters or chunk.dropped:
            self.dead_letters.extend(
                {"reason": d.reason, "detail": d.detail, "raw": d.raw, "offset": d.offset,
                 "partition": chunk.partition} for d in chunk.dead_letters)
            self.dead_letter_count += max(chunk.dropped, len(chunk.dead_letters))
            self.dropped += chunk.dropped
        if chunk.batch is not None and chunk.batch.num_rows:
            assert model is not None, "rows need a model; hold them until one arrives"
            batch = chunk.batch
            X = metric_matrix(batch, self.metrics)
            codes = [enc.encode(batch.column(a)) for enc, a in zip(self.encoders, self.attributes)]
            labels = np.asarray(model.model.predict(X), dtype=bool)
            self.explainer.update(codes, labels)
            self.events += len(labels)
            self.outliers += int(labels.sum())
        if chunk.batch is not None and chunk.start_offset is not None:
            self.ranges.append((chunk.offset_key, chunk.start_offset, chunk.next_offset))
        if chunk.end:
            self.ends.append((chunk.offset_key, chunk.next_offset))

    def age(self) -> float:
        return time.monotonic() - self.started

    def partial(self) -> Partial:
        counted = self.events > 0
        return Partial(
            self.shard, self.explainer.to_state() if counted else None,
            tuple(tuple(enc.values) for enc in self.encoders) if counted else (),
            self.events, self.outliers, tuple(self.ranges), tuple(self.dead_letters),
            self.dead_letter_count, self.dropped, self.lag, self.healthy, self.error, tuple(self.ends),
            self.model)


def needs_model(chunk: Chunk) -> bool:
    return chunk.batch is not None and chunk.batch.num_rows > 0


__all__ = ["Partial", "ShardCounter", "explainer_for", "needs_model"]
