"""Per-pipeline streaming state: encode, classify, explain, and snapshot.

Pure Python over Arrow batches (no Beam): the Beam DoFn in :mod:`macrobase.pipeline`
wraps one engine per pipeline key, and tests drive it directly.
"""
from __future__ import annotations

import pickle
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from connectors.chunks import Chunk
from explain.streaming import StreamingExplainer
from explain.result import explanations_from, json_count, value_item_key
from macrobase.columns import dictionary_codes, metric_matrix
from macrobase.config import PipelineConfig
from macrobase.diff import classifier_template
from operators.streaming import StreamingClassifier

KEEP_DEAD_LETTERS = 1000
CHECKPOINT_EVERY_S = 10.0  # a crash replays at most this much of the stream
HISTOGRAM_BINS = 40


class ValueEncoder:
    """A global, growing code space for one attribute: codes never change once given.

    Known values are looked up by Arrow (``index_in``, no per-value Python) while the
    attribute has at most ``ARROW_LOOKUP_LIMIT`` values; only values never seen before
    go through Python. Beyond that (a million device ids) a dict lookup per distinct value
    of the batch is cheaper than hashing the whole value set again for every batch.
    """

    ARROW_LOOKUP_LIMIT = 1 << 16

    def __init__(self) -> None:
        self.codes: dict[Any, int] = {}
        self.values: list[Any] = []
        self._known: pa.Array | None = None

    def encode(self, column: pa.Array | pa.ChunkedArray) -> np.ndarray:
        local, dictionary = dictionary_codes(column)
        lut = np.empty(len(dictionary) + 1, dtype=np.int32)
        lut[-1] = -1  # local -1 (null) picks lut[-1] = -1
        todo = range(len(dictionary))
        if self._known is not None and self._known.type == dictionary.type:
            found = pc.index_in(dictionary, value_set=self._known)
            lut[:-1] = found.fill_null(-1).to_numpy(zero_copy_only=False)
            todo = np.flatnonzero(lut[:-1] < 0).tolist()
        if todo:
            new = dictionary.take(pa.array(todo, pa.int64())).to_pylist() if len(todo) < len(dictionary) \
                else dictionary.to_pylist()
            for i, v in zip(todo, new):
                code = self.codes.get(v)
                if code is None:
                    code = self.codes[v] = len(self.values)
                    self.values.append(v)
                lut[i] = code
            small = len(self.values) <= self.ARROW_LOOKUP_LIMIT
            self._known = pa.array(self.values, type=dictionary.type) if small else None
        return lut[local]

    def __getstate__(self) -> dict:
        return {"values": self.values}  # codes and the Arrow lookup are rebuilt on load

    def __setstate__(self, state: dict) -> None:
        self.values = list(state["values"])
        self.codes = {v: i for i, v in enumerate(self.values)}
        self._known = None


def build_classifier(cfg) -> StreamingClassifier:
    c = cfg.classifier
    template = classifier_template(c.type, c.cutoff.model_dump(), c.tail)
    t = c.training
    return StreamingClassifier(template, reservoir=t.reservoir, decay=t.decay,
                               retrain_every=t.retrain_every, random_state=0)


@dataclass(frozen=True)
class Snapshot:
    """One emitted result with what must be stored atomically alongside it."""

    document: dict[str, Any]
    dead_letters: tuple
    offsets: dict[tuple[str, int], int]
    checkpoint: bytes | None  # every CHECKPOINT_EVERY_S and at the end; None in between
    final: bool = False


@dataclass
class _Counters:
    events: int = 0            # classified since start
    outliers: int = 0
    dead_letters: int = 0
    dropped: int = 0
    interval_events: int = 0
    interval_started: float = field(default_factory=time.monotonic)
    lag: dict = field(default_factory=dict)
    healthy: bool = True
    error: str | None = None


class StreamEngine:
    """Everything one pipeline remembers between batches (and across restarts)."""

    def __init__(self, cfg: PipelineConfig, topic: str | None = None) -> None:
        self.cfg = cfg
        s, e = cfg.event_schema, cfg.explainer
        self.metrics = list(s.metrics)
        self.attributes = list(s.attributes)
        self.encoders = [ValueEncoder() for _ in self.attributes]
        self.classifier = build_classifier(cfg)
        self.explainer = StreamingExplainer(self.attributes, min_support=e.min_support, min_ratio=e.min_ratio,
                                            ratio_metric=e.ratio_metric, max_order=e.max_order, mode=e.mode,
                                            decay=e.decay)
        self.held: list[tuple[list[np.ndarray], np.ndarray]] = []
        self.offsets: dict[tuple[str, int], int] = {}
        self.counters = _Counters()
        self.pending_dead_letters: deque = deque(maxlen=KEEP_DEAD_LETTERS)
        self.next_emit = time.monotonic() + e.emit_every
        self.next_checkpoint = time.monotonic() + CHECKPOINT_EVERY_S
        self.ended_sources: set[str] = set()

    # -- ingest ---------------------------------------------------------------------------
    def ingest(self, chunk: Chunk) -> None:
        c = self.counters
        c.healthy, c.error = chunk.healthy, chunk.error
        if chunk.lag is not None:
            c.lag[chunk.source] = chunk.lag
        if chunk.end:
            self.ended_sources.add(chunk.source)
        if chunk.dead_letters or chunk.dropped:
            self.pending_dead_letters.extend(
                {"reason": d.reason, "detail": d.detail, "raw": d.raw, "offset": d.offset,
                 "partition": chunk.partition} for d in chunk.dead_letters)
            c.dead_letters += max(chunk.dropped, len(chunk.dead_letters))
            c.dropped += chunk.dropped
        if chunk.batch is not None and chunk.batch.num_rows:
            self._ingest_rows(chunk.batch)
        if chunk.batch is not None or chunk.end:
            self.offsets[chunk.offset_key] = chunk.next_offset

    def _ingest_rows(self, batch: pa.RecordBatch) -> None:
        X = metric_matrix(batch, self.metrics)
        codes = [enc.encode(batch.column(a)) for enc, a in zip(self.encoders, self.attributes)]
        self.classifier.learn(X)
        self.counters.interval_events += len(X)
        if not self.classifier.ready:
            self.held.append((codes, X))  # classified once the first model exists
            return
        for held_codes, held_X in self.held:
            self._classify(held_codes, held_X)
        self.held.clear()
        self._classify(codes, X)

    def _classify(self, codes: list[np.ndarray], X: np.ndarray) -> None:
        labels = np.asarray(self.classifier.predict(X), dtype=bool)
        self.explainer.update(codes, labels)
        self.counters.events += len(labels)
        self.counters.outliers += int(labels.sum())

    # -- emit -----------------------------------------------------------------------------
    def due(self, now: float | None = None) -> bool:
        return (time.monotonic() if now is None else now) >= self.next_emit

    def snapshot(self, pipeline: str, final: bool = False) -> Snapshot:
        """The result document of DESIGN.md, then decay for the next interval."""
        now = time.monotonic()
        c = self.counters
        elapsed = max(now - c.interval_started, 1e-9)
        O, N = self.explainer.totals
        values = [enc.values for enc in self.encoders]
        found = self.explainer.explanations(item_key=value_item_key(values))
        metric = self.cfg.explainer.ratio_metric
        doc = {
            "pipeline": pipeline,
            "emitted_at": datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "total": json_count(N),
            "outliers": json_count(O),
            "dropped": c.dropped,
            "thresholds": self.classifier.thresholds(self.metrics),
            "explanations": [e.to_dict() for e in explanations_from(found, self.attributes, values, O, metric)],
            "events_per_second": round(c.interval_events / elapsed, 1),
            "dead_letters": c.dead_letters,
            "events": c.events,
            "consumer_lag": sum(c.lag.values()) if c.lag else None,
            "healthy": c.healthy,
            "distribution": self._distribution(),
        }
        dead = tuple(self.pending_dead_letters)
        self.pending_dead_letters.clear()
        self.explainer.advance()
        self.classifier.advance()
        c.interval_events, c.interval_started = 0, now
        self.next_emit = now + self.cfg.explainer.emit_every
        # The checkpoint is taken after decay: a restored engine continues the next interval.
        checkpoint = None
        if final or now >= self.next_checkpoint:
            checkpoint = self.to_checkpoint()
            self.next_checkpoint = now + CHECKPOINT_EVERY_S
        return Snapshot(doc, dead, dict(self.offsets), checkpoint, final)

    def _distribution(self) -> dict[str, Any]:
        sample = self.classifier.sample()
        if sample.size == 0:
            return {}
        out = {}
        for j, m in enumerate(self.metrics):
            counts, edges = np.histogram(sample[:, j], bins=HISTOGRAM_BINS)
            out[m] = {"edges": edges.round(6).tolist(), "counts": counts.tolist()}
        return out

    # -- checkpoint -----------------------------------------------------------------------
    def to_checkpoint(self) -> bytes:
        """Everything needed to resume: counts, model, codes, counters, offsets."""
        state = {
            "explainer": self.explainer.to_state(),
            "classifier": self.classifier,
            "encoders": [(e.values,) for e in self.encoders],
            "held": self.held,
            "offsets": self.offsets,
            "counters": (self.counters.events, self.counters.outliers, self.counters.dead_letters,
                         self.counters.dropped),
        }
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)

    def restore(self, blob: bytes) -> "StreamEngine":
        state = pickle.loads(blob)
        self.explainer = StreamingExplainer.from_state(state["explainer"])
        self.classifier = state["classifier"]
        for enc, (values,) in zip(self.encoders, state["encoders"]):
            enc.__setstate__({"values": values})
        self.held = state["held"]
        self.offsets = dict(state["offsets"])
        c = self.counters
        c.events, c.outliers, c.dead_letters, c.dropped = state["counters"]
        return self
