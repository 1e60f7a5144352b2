"""Run configured pipelines: resolve where each source starts, run Beam, stop cleanly.

Start positions (Kafka, ``start_from``): ``committed`` resumes from the offsets stored
atomically with the explainer's checkpoint (SQLite sink), else the consumer group's
committed offsets, else the earliest; ``earliest``/``latest`` start fresh. A run stops
after ``duration`` seconds, on :meth:`PipelineRun.stop`, or on Ctrl-C; the sources then
end, a final snapshot is stored and offsets are committed. When the topic gains
partitions, the run checkpoints and restarts itself with the new set (no events lost).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import connectors._quiet_beam  # noqa: F401  (before Beam)
import apache_beam as beam

from connectors.beam_source import release_run, request_stop
from connectors.chunks import EventSchema, FileSpec, kafka_specs
from connectors.kafka_client import BrokerUnavailable, list_partitions, open_partition_reader
from macrobase.config import (Config, FileSourceConfig, GeneratorSourceConfig, KafkaSourceConfig,
                              PipelineConfig, SqliteSinkConfig)
from macrobase.generator import GeneratorSpec
from macrobase.pipeline import build, release_engines, runner_and_options
from macrobase.store import ResultStore

log = logging.getLogger(__name__)
PARTITION_CHECK_S = 10.0
PARTITION_WAIT_S = 15.0  # for the broker or the topic to appear at start-up


def event_schema(cfg: PipelineConfig) -> EventSchema:
    s = cfg.event_schema
    return EventSchema(tuple(s.metrics), tuple(s.attributes), s.time)


def stored_state(cfg: PipelineConfig) -> tuple[bytes | None, dict[tuple[str, int], int]]:
    """The last checkpoint and the offsets stored with it (SQLite sink only)."""
    if not isinstance(cfg.sink, SqliteSinkConfig):
        return None, {}
    with ResultStore(cfg.sink.path) as store:
        return store.checkpoint(cfg.name), store.offsets(cfg.name)


def source_specs(cfg: PipelineConfig, partitions: list[int] | None = None) -> tuple[list[Any], bytes | None]:
    """The source elements of one pipeline and the checkpoint to resume from."""
    src, schema = cfg.source, event_schema(cfg)
    if isinstance(src, FileSourceConfig):
        return [FileSpec(src.path, schema, rate=src.rate)], None
    if isinstance(src, GeneratorSourceConfig):
        return [GeneratorSpec(src.rate, src.seed, src.scenario, schema)], None
    assert isinstance(src, KafkaSourceConfig)
    if partitions is None:
        partitions = _partitions(src)
    checkpoint, stored = stored_state(cfg) if src.start_from == "committed" else (None, {})
    starts: dict[int, int] = {}
    for p in partitions:
        if checkpoint is not None and (src.topic, p) in stored:
            starts[p] = stored[(src.topic, p)]
            continue
        reader = open_partition_reader(src.client, src.bootstrap_servers, src.topic, p, src.group_id)
        try:
            committed = reader.committed() if src.start_from == "committed" else None
            if committed is not None:
                starts[p] = committed
            elif src.start_from == "latest":
                starts[p] = reader.end_offset()
            else:
                starts[p] = reader.beginning_offset()
        finally:
            reader.close()
    specs = kafka_specs(src.client, src.bootstrap_servers, src.topic, partitions, src.group_id, schema,
                        starts, src.poll_max_records)
    return specs, checkpoint


def _partitions(src: KafkaSourceConfig, wait_s: float = PARTITION_WAIT_S) -> list[int]:
    """The topic's partitions, waiting up to ``wait_s`` for the broker or the topic to appear."""
    deadline = time.monotonic() + wait_s
    unreachable = None
    while True:
        try:
            parts = list_partitions(src.client, src.bootstrap_servers, src.topic)
            unreachable = None
            if parts:
                return sorted(parts)
        except BrokerUnavailable as exc:
            unreachable = exc
        if time.monotonic() > deadline:
            servers = ", ".join(src.bootstrap_servers)
            if unreachable is not None:
                raise ValueError(f"source.bootstrap_servers: no Kafka broker answers on {servers} "
                                 "(for local development start one with `macrobase broker`)")
            raise ValueError(f"source.topic: topic {src.topic!r} not found on {servers}")
        time.sleep(0.5)


@dataclass
class RunResult:
    documents: int
    last_document: dict | None
    restarts: int


class PipelineRun:
    """One configured pipeline, run until stopped (in the calling thread)."""

    def __init__(self, config: Config, cfg: PipelineConfig, restarts: int = 0) -> None:
        self.config = config
        self.cfg = cfg
        self.prior_restarts = restarts  # counted by a supervisor, reported in status rows
        self._stop = threading.Event()
        self._run_id: str | None = None

    def stop(self) -> None:
        self._stop.set()
        if self._run_id:
            request_stop(self._run_id)

    def run(self, duration: float | None = None) -> RunResult:
        if duration is not None:
            timer = threading.Timer(duration, self.stop)
            timer.daemon = True
            timer.start()
        documents, last, restarts = 0, None, 0
        partitions = None
        while True:
            specs, checkpoint = source_specs(self.cfg, partitions)
            grew = threading.Event()
            self._run_id = run_id = f"{self.cfg.name}-{uuid.uuid4().hex[:8]}"
            if self._stop.is_set():
                request_stop(run_id)
            watcher = self._watch_partitions(specs, grew, run_id)
            try:
                docs = self._run_beam(specs, checkpoint, run_id, self.prior_restarts + restarts)
            finally:
                release_run(run_id)
                release_engines(run_id)
                if watcher:
                    watcher.set()
            documents += len(docs)
            last = docs[-1] if docs else last
            if not grew.is_set() or self._stop.is_set():
                return RunResult(documents, last, restarts)
            restarts += 1
            partitions = _partitions(self.cfg.source)
            log.info("%s: topic now has %d partitions; resuming with all of them", self.cfg.name, len(partitions))

    def _run_beam(self, specs, checkpoint, run_id, restarts) -> list[dict]:
        runner, options = runner_and_options(self.config.runner)
        collected: list[dict] = []
        with beam.Pipeline(runner=runner, options=options) as p:
            docs = build(p, self.cfg, specs, run_id, checkpoint, restarts)
            if self.config.runner.type == "direct":
                docs | f"{self.cfg.name}/count" >> beam.Map(_collect, run_id)
        return _COLLECTED.pop(run_id, collected)

    def _watch_partitions(self, specs, grew: threading.Event, run_id: str) -> threading.Event | None:
        src = self.cfg.source
        if not isinstance(src, KafkaSourceConfig):
            return None
        done = threading.Event()
        known = len(specs)

        def watch() -> None:
            while not done.wait(PARTITION_CHECK_S):
                try:
                    n = len(list_partitions(src.client, src.bootstrap_servers, src.topic))
                except Exception:  # broker away: the sources report it; try again later
                    continue
                if n > known:
                    grew.set()
                    request_stop(run_id)
                    return

        threading.Thread(target=watch, daemon=True, name=f"{self.cfg.name}-partitions").start()
        return done


# Documents stored by an in-process run, for the caller's summary (not for results).
_COLLECTED: dict[str, list[dict]] = {}


def _collect(doc: dict, run_id: str) -> None:
    _COLLECTED.setdefault(run_id, []).append(doc)


def run_pipelines(config: Config, names: list[str] | None = None, duration: float | None = None) -> list[RunResult]:
    """Run the selected pipelines concurrently until ``duration`` passes or Ctrl-C."""
    chosen = [p for p in config.pipelines if names is None or p.name in names]
    runs = [PipelineRun(config, p) for p in chosen]
    results: list[Any] = [None] * len(runs)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            results[i] = runs[i].run(duration)
        except BaseException as exc:  # reported by the caller, in the main thread
            errors.append(exc)
            for r in runs:
                r.stop()

    threads = [threading.Thread(target=target, args=(i,), name=r.cfg.name) for i, r in enumerate(runs)]
    for t in threads:
        t.start()
    # Poll instead of join(): a KeyboardInterrupt inside Thread.join() can leave the
    # thread marked finished while it still runs (CPython 3.11).
    try:
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
    except KeyboardInterrupt:
        for r in runs:
            r.stop()
        while any(t.is_alive() for t in threads):
            time.sleep(0.2)
    if errors:
        raise errors[0]
    return results
