"""Run configured pipelines: resolve where each source starts, run Beam, stop cleanly.

Start positions (Kafka, ``start_from``): ``committed`` resumes from the offsets stored
atomically with the global stage's checkpoint (SQLite sink), else the consumer group's
committed offsets, else the earliest; ``earliest``/``latest`` start fresh. A run stops
after ``duration`` seconds, on :meth:`PipelineRun.stop`, or on Ctrl-C. The stop reaches
the workers through the data path (the sources know the end time and watch a marker
file), so it works on every local runner; a runner that does not finish after that is
cancelled. The sources then end, a final snapshot is stored and offsets are committed.
When the topic gains partitions, the run stops and restarts itself with the new set.
The summary of a run is read back from the sink, so it counts what was stored.
"""
from __future__ import annotations

import json
import multiprocessing
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import connectors._quiet_beam  # noqa: F401  (before Beam)
import apache_beam as beam

from connectors.beam_source import StopCondition
from connectors.chunks import EventSchema, FileSpec, PartitionFailed, kafka_specs
from connectors.kafka_client import BrokerUnavailable, list_partitions, open_partition_reader
from macrobase.config import (Config, FileSourceConfig, GeneratorSourceConfig, JsonlSinkConfig,
                              KafkaSourceConfig, PipelineConfig, RunnerConfig, SqliteSinkConfig,
                              SqlSourceConfig)
from macrobase.generator import GeneratorSpec
from macrobase.pipeline import build, runner_and_options
from macrobase.alerts import rules_from_config
from macrobase.store import ResultStore

log = logging.getLogger(__name__)
PARTITION_CHECK_S = 10.0
PARTITION_WAIT_S = 15.0  # for the broker or the topic to appear at start-up
CANCEL_AFTER_S = 30.0    # a runner whose sources did not end by then is cancelled


def event_schema(cfg: PipelineConfig) -> EventSchema:
    s = cfg.event_schema
    return EventSchema(tuple(s.metrics), tuple(s.attributes), s.time)


def stored_state(cfg: PipelineConfig) -> tuple[bool, dict[tuple[str, int], int]]:
    """Whether a checkpoint is stored, and the offsets stored with it (SQLite sink only)."""
    if not isinstance(cfg.sink, SqliteSinkConfig):
        return False, {}
    with ResultStore(cfg.sink.path) as store:
        return store.checkpoint(cfg.name) is not None, store.offsets(cfg.name)


def source_specs(cfg: PipelineConfig, partitions: list[int] | None = None) -> tuple[list[Any], bool]:
    """The source elements of one pipeline, and whether they resume from a checkpoint."""
    src, schema = cfg.source, event_schema(cfg)
    if isinstance(src, FileSourceConfig):
        return [FileSpec(src.path, schema, rate=src.rate)], False
    if isinstance(src, GeneratorSourceConfig):
        return [GeneratorSpec(src.rate, src.seed, src.scenario, schema)], False
    if isinstance(src, SqlSourceConfig):
        from connectors.sql import SqlSpec  # imported here: only SQL pipelines need it

        return [SqlSpec(src.url, schema, query=src.query, table=src.table, rate=src.rate)], False
    assert isinstance(src, KafkaSourceConfig)
    if partitions is None:
        partitions = _partitions(src)
    resume, stored = stored_state(cfg) if src.start_from == "committed" else (False, {})
    starts: dict[int, int] = {}
    for p in partitions:
        if resume and (src.topic, p) in stored:
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
    return specs, resume


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
    pipeline: str
    documents: int            # result documents stored by this run (read back from the sink)
    last_document: dict | None
    restarts: int


class PipelineRun:
    """One configured pipeline, run until stopped (in the calling thread)."""

    def __init__(self, config: Config, cfg: PipelineConfig, restarts: int = 0) -> None:
        self.config = config
        self.cfg = cfg
        self.prior_restarts = restarts  # counted by a supervisor, reported in status rows
        self._stop = threading.Event()
        self._marker = os.path.join(tempfile.gettempdir(), "macrobase-not-running", "stop")
        self._result: Any = None

    def stop(self) -> None:
        """Ask every source to end (any worker on this machine sees the marker)."""
        self._stop.set()
        self._touch_marker()

    def _touch_marker(self) -> None:
        try:
            with open(self._marker, "w"):
                pass
        except FileNotFoundError:  # not running (yet): run() checks the stop flag
            pass

    def run(self, duration: float | None = None) -> RunResult:
        started = datetime.now(timezone.utc)
        deadline = None if duration is None else time.time() + duration
        restarts, partitions = 0, None
        control = tempfile.mkdtemp(prefix=f"macrobase-{self.cfg.name}-")
        self._marker = os.path.join(control, "stop")
        try:
            while True:
                specs, resume = source_specs(self.cfg, partitions)
                grew = threading.Event()
                if os.path.exists(self._marker):
                    os.remove(self._marker)  # left by a partition-growth restart
                if self._stop.is_set():
                    self._touch_marker()
                watcher = self._watch_partitions(specs, grew)
                try:
                    self._run_beam(specs, StopCondition(deadline, self._marker), resume,
                                   self.prior_restarts + restarts)
                finally:
                    if watcher:
                        watcher.set()
                if not grew.is_set() or self._stop.is_set():
                    documents, last = stored_summary(self.cfg, started)
                    return RunResult(self.cfg.name, documents, last, restarts)
                restarts += 1
                partitions = _partitions(self.cfg.source)
                log.info("%s: topic now has %d partitions; resuming with all of them",
                         self.cfg.name, len(partitions))
        finally:
            shutil.rmtree(control, ignore_errors=True)

    def _run_beam(self, specs, stop: StopCondition, resume: bool, restarts: int) -> None:
        if starts_local_workers(self.config.runner):
            return self._run_isolated(specs, stop, resume, restarts)
        finished = threading.Event()
        threading.Thread(target=self._cancel_if_stuck, args=(stop, finished), daemon=True).start()
        try:
            run_beam(self.config, self.cfg, specs, stop, resume, restarts, started=self._started)
        finally:
            finished.set()
            self._result = None

    def _started(self, result: Any) -> None:
        self._result = result  # what _cancel_if_stuck cancels

    def _run_isolated(self, specs, stop: StopCondition, resume: bool, restarts: int) -> None:
        """Run Beam in a child process with its own process group.

        A Ctrl-C reaches the whole foreground process group: it would kill the SDK worker
        processes Beam starts before they store the final snapshot. In their own group
        they only see the stop marker; the child dies with this process (PDEATHSIG).
        """
        ctx = multiprocessing.get_context("spawn")
        errors = ctx.Queue()
        child = ctx.Process(target=_isolated_run, name=f"{self.cfg.name}-beam",
                            args=(self.config, self.cfg, specs, stop, resume, restarts, errors))
        child.start()
        while child.is_alive():
            child.join(0.2)
        if child.exitcode != 0:
            detail = errors.get() if not errors.empty() else f"the Beam runner exited with status {child.exitcode}"
            raise PartitionFailed(detail)

    def _cancel_if_stuck(self, stop: StopCondition, finished: threading.Event) -> None:
        """Cancel a job still running CANCEL_AFTER_S after its stop (a runner whose workers
        cannot see the marker); the local runners end on their own well before that."""
        while not stop.reached():
            if finished.wait(0.5):
                return
        if finished.wait(CANCEL_AFTER_S):
            return
        result = self._result
        if result is not None:
            try:
                result.cancel()
            except Exception as exc:  # e.g. the embedded job service cannot cancel
                log.warning("%s: the runner could not cancel the job: %s", self.cfg.name, exc)

    def _watch_partitions(self, specs, grew: threading.Event) -> threading.Event | None:
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
                    self._touch_marker()
                    return

        threading.Thread(target=watch, daemon=True, name=f"{self.cfg.name}-partitions").start()
        return done


def starts_local_workers(runner: RunnerConfig) -> bool:
    """Whether Beam starts SDK worker processes of its own from this process."""
    return runner.type == "direct" and runner.options.get("direct_running_mode") == "multi_processing"


def _isolated_run(config: Config, cfg: PipelineConfig, specs, stop: StopCondition, resume: bool,
                  restarts: int, errors) -> None:
    os.setpgid(0, 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # inherited by the SDK workers
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _die_with_parent()
    try:
        run_beam(config, cfg, specs, stop, resume, restarts)
    except BaseException as exc:
        errors.put(str(exc))
        raise SystemExit(1)


def run_beam(config: Config, cfg: PipelineConfig, specs, stop: StopCondition, resume: bool, restarts: int,
             started=lambda result: None) -> None:
    """Build and run one pipeline until it finishes; a partition's failure is re-raised as
    :class:`PartitionFailed`. ``started`` gets the PipelineResult (the in-process runner
    only returns it once the pipeline is done)."""
    runner, options = runner_and_options(config.runner)
    p = beam.Pipeline(runner=runner, options=options)
    build(p, cfg, specs, stop, resume, restarts, rules_from_config(config.alerts))
    try:
        result = p.run()
        started(result)
        result.wait_until_finish()
    except Exception as exc:
        raise run_failure(exc) from None


def run_failure(exc: BaseException) -> BaseException:
    """A partition's failure as its own one-line error (Beam wraps it in its traceback)."""
    found = re.search(r"PartitionFailed: ([^\n\[]+)", str(exc))
    return PartitionFailed(found.group(1).strip()) if found else exc


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when its parent dies (a crash takes the run down whole)."""
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stored_summary(cfg: PipelineConfig, since: datetime) -> tuple[int, dict | None]:
    """(documents stored since ``since``, the last one), read back from the sink."""
    sink = cfg.sink
    since_iso = since.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(sink, SqliteSinkConfig):
        with ResultStore(sink.path) as store:
            docs = store.history(cfg.name, since=since, limit=1_000_000)
        return len(docs), (docs[-1] if docs else None)
    if isinstance(sink, JsonlSinkConfig) and os.path.exists(sink.path):
        count, last = 0, None
        with open(sink.path, encoding="utf-8") as f:
            for line in f:
                doc = json.loads(line)
                if doc.get("pipeline") == cfg.name and doc.get("emitted_at", "") >= since_iso:
                    count, last = count + 1, doc
        return count, last
    return 0, None  # a Kafka sink: the documents are in its topic


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
