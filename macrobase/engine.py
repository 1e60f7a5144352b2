"""The global stage of one pipeline: merge shard partials, decay, apply the rules, snapshot.

Every shard sends :class:`~macrobase.shard.Partial` summaries in its own attribute codes;
:class:`GlobalEngine` maps their values into one code space per attribute, adds the counts
(they are additive), tracks which positions of every source are counted, and emits the
result document of DESIGN.md every ``emit_every``. Its whole state pickles compactly (the
explainer as its non-empty cells), so it can live in Beam state and in a checkpoint.

Pure Python (no Beam): :mod:`macrobase.pipeline` wraps one engine per pipeline key.
"""
from __future__ import annotations

import pickle
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Iterable

import pyarrow as pa

from explain.result import json_count
from explain.streaming import StreamingExplainer
from macrobase.config import PipelineConfig
from macrobase.lifecycle import ExplanationLifecycle
from macrobase.model import ModelUpdate
from macrobase.shard import OffsetKey, Partial, explainer_for
from macrobase.values import ValueEncoder

KEEP_DEAD_LETTERS = 1000


@dataclass(frozen=True)
class Snapshot:
    """One emitted result with what must be stored atomically alongside it.

    ``offsets`` are the positions up to which every event is counted in ``checkpoint``;
    they are None when the snapshot carries no checkpoint (nothing may be committed then).
    """

    document: dict[str, Any]
    dead_letters: tuple
    offsets: dict[OffsetKey, int] | None
    checkpoint: bytes | None
    final: bool = False
    error: str | None = None  # why a source is unhealthy, for the status row


class Coverage:
    """Counted position ranges of one source, merged; ``resume`` is where reading resumes."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.runs: list[list[int]] = []   # disjoint, sorted [start, next) ranges

    def add(self, start: int, stop: int) -> None:
        if stop <= start:
            return
        runs = self.runs + [[start, stop]]
        runs.sort()
        merged = [runs[0]]
        for a, b in runs[1:]:
            if a <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], b)
            else:
                merged.append([a, b])
        self.runs = merged

    @property
    def resume(self) -> int:
        """The end of the counted run that begins at (or before) ``start``."""
        for a, b in self.runs:
            if a <= self.start <= b:
                return b
        return self.start


class GlobalEngine:
    """Everything one pipeline remembers between snapshots (and across restarts)."""

    def __init__(self, cfg: PipelineConfig, starts: dict[OffsetKey, int]) -> None:
        self.cfg = cfg
        self.attributes = list(cfg.event_schema.attributes)
        self.metrics = list(cfg.event_schema.metrics)
        self.encoders = [ValueEncoder() for _ in self.attributes]
        self.explainer = explainer_for(cfg)
        self.coverage = {key: Coverage(start) for key, start in starts.items()}
        self.ended: dict[OffsetKey, int] = {}
        self.model: ModelUpdate | None = None
        self.events = self.outliers = self.dead_letters = self.dropped = 0
        self.lag: dict[str, int] = {}
        self.health: dict[str, tuple[bool, str | None]] = {}
        self.last_read: dict[str, float] = {}   # shard -> wall clock of its last counted read
        self.pending_dead_letters: deque = deque(maxlen=KEEP_DEAD_LETTERS)
        self.lifecycle = ExplanationLifecycle(cfg.explainer.resolve_after)
        now = time.time()
        self.interval_events, self.interval_started = 0, now
        self.next_emit = now + cfg.explainer.emit_every
        self.next_checkpoint = now + _checkpoint_every(cfg)

    # -- merge ----------------------------------------------------------------------------
    def add(self, p: Partial) -> None:
        if p.explainer is not None:
            shard = StreamingExplainer.from_state(p.explainer)
            recode = [enc.encode(pa.array(list(values), type=_value_type(values)))
                      for enc, values in zip(self.encoders, p.values)]
            self.explainer.merge(shard, recode)
        self.events += p.events
        self.outliers += p.outliers
        self.interval_events += p.events
        self.dead_letters += p.dead_letter_count
        self.dropped += p.dropped
        self.pending_dead_letters.extend(p.dead_letters)
        for key, start, stop in p.ranges:
            self.coverage.setdefault(key, Coverage(start)).add(start, stop)
            if stop > start:
                self.last_read[p.shard] = time.time()
        for key, end in p.ends:
            self.ended[key] = end
        if p.lag is not None:
            self.lag[p.shard] = p.lag
        self.health[p.shard] = (p.healthy, p.error)
        if p.model is not None and (self.model is None or p.model.rank > self.model.rank):
            self.model = p.model

    @property
    def finished(self) -> bool:
        """Every source ended and every event before its end is counted."""
        return bool(self.coverage) and all(
            key in self.ended and cov.resume >= self.ended[key] for key, cov in self.coverage.items())

    def offsets(self) -> dict[OffsetKey, int]:
        return {key: cov.resume for key, cov in self.coverage.items()}

    # -- emit -----------------------------------------------------------------------------
    def due(self, now: float | None = None) -> bool:
        return (time.time() if now is None else now) >= self.next_emit

    def snapshot(self, pipeline: str, final: bool = False, stateful_sink: bool = True) -> Snapshot:
        """The result document of DESIGN.md, then decay for the next interval."""
        now = time.time()
        elapsed = max(now - self.interval_started, 1e-9)
        O, N = self.explainer.totals
        found = self.explainer.explanations([enc.values for enc in self.encoders])
        unhealthy = [err for ok, err in self.health.values() if not ok]
        emitted_at = _iso(now)
        step = self.lifecycle.update(
            [e.to_dict() for e in found], emitted_at)
        doc = {
            "pipeline": pipeline,
            "emitted_at": emitted_at,
            "total": json_count(N),
            "outliers": json_count(O),
            "dropped": self.dropped,
            "thresholds": self.model.thresholds if self.model else {},
            "explanations": step.explanations,
            "transitions": step.transitions,
            "events_per_second": round(self.interval_events / elapsed, 1),
            "dead_letters": self.dead_letters,
            "events": self.events,
            "consumer_lag": sum(self.lag.values()) if self.lag else None,
            "healthy": not unhealthy,
            "distribution": self.model.distribution if self.model else {},
            "partitions": self._partitions(),
        }
        dead = tuple(self.pending_dead_letters)
        self.pending_dead_letters.clear()
        self.explainer.advance()
        self.interval_events, self.interval_started = 0, now
        self.next_emit = now + self.cfg.explainer.emit_every
        # The checkpoint is taken after decay: a restored engine continues the next interval.
        checkpoint, offsets = None, None
        if final or now >= self.next_checkpoint or not stateful_sink:
            checkpoint = self.to_checkpoint() if stateful_sink else None
            offsets = self.offsets()
            self.next_checkpoint = now + _checkpoint_every(self.cfg)
        error = (unhealthy[0] or "a source is unavailable; retrying") if unhealthy else None
        return Snapshot(doc, dead, offsets, checkpoint, final, error)

    def _partitions(self) -> dict[str, dict[str, Any]]:
        """Per source: lag, when it last delivered events, health (a stalled one shows)."""
        return {shard: {"lag": self.lag.get(shard),
                        "last_read_at": _iso(self.last_read[shard]) if shard in self.last_read else None,
                        "healthy": ok, "error": error}
                for shard, (ok, error) in sorted(self.health.items())}

    # -- state ----------------------------------------------------------------------------
    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["explainer"] = self.explainer.to_state()  # non-empty cells only: small
        return state

    def __setstate__(self, state: dict) -> None:
        state = dict(state)
        state["explainer"] = StreamingExplainer.from_state(state["explainer"])
        self.__dict__.update(state)

    def to_checkpoint(self) -> bytes:
        """Everything needed to resume: counts, codes, counters, model, covered offsets."""
        return pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def from_checkpoint(cls, blob: bytes, cfg: PipelineConfig,
                        starts: dict[OffsetKey, int]) -> "GlobalEngine":
        """A restored engine; sources it does not know yet (new partitions) start at ``starts``."""
        engine: GlobalEngine = pickle.loads(blob)
        engine.cfg = cfg
        for key, start in starts.items():
            cov = engine.coverage.get(key)
            if cov is None or cov.resume != start:
                engine.coverage[key] = Coverage(start)
        engine.ended = {}
        engine.lag, engine.health = {}, {}
        engine.last_read = getattr(engine, "last_read", {})
        # Checkpoints from before lifecycles start tracking afresh (every explanation "new").
        engine.lifecycle = getattr(engine, "lifecycle", None) or ExplanationLifecycle(cfg.explainer.resolve_after)
        engine.lifecycle.resolve_after = cfg.explainer.resolve_after
        now = time.time()
        engine.interval_events, engine.interval_started = 0, now
        engine.next_emit = now + cfg.explainer.emit_every
        engine.next_checkpoint = now + _checkpoint_every(cfg)
        return engine


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _checkpoint_every(cfg: PipelineConfig) -> float:
    """Seconds between checkpoints (a crash replays at most this much of the stream)."""
    return float(getattr(cfg.sink, "checkpoint_every", 10.0))


def _value_type(values: Iterable[Any]) -> pa.DataType | None:
    """Arrow infers the type, except for an all-null list."""
    return pa.null() if all(v is None for v in values) else None
