"""Beam pipeline assembly: sources -> chunks -> classify + explain (stateful) -> sink.

    specs | ReadChunks (splittable) | key by pipeline | ExplainStream (stateful) | WriteResults

Data moves as Arrow record batches (thousands of events per element). The explainer
state is one small, mergeable object per key (counts are additive); the in-process
runner keeps it in Beam state and pickles it only at bundle boundaries.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Iterator, Sequence

import connectors._quiet_beam  # noqa: F401  (before Beam)
import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.userstate import ReadModifyWriteStateSpec

from connectors.beam_source import ReadChunks
from connectors.chunks import Chunk
from connectors.kafka_client import BrokerUnavailable, KafkaClientError, open_partition_reader, produce_json
from connectors.sinks import make_sink
from macrobase.config import KafkaSourceConfig, PipelineConfig, RunnerConfig
from macrobase.engine import Snapshot, StreamEngine

log = logging.getLogger(__name__)


# Live engines of in-process runs, by (run id, pipeline). Beam's state API would pickle the
# engine (tens of MB with a million distinct values) at every bundle; the engine lives here
# instead and its durable copy is the checkpoint stored with the results.
_ENGINES: dict[tuple[str, str], StreamEngine] = {}


def release_engines(run_id: str) -> None:
    for key in [k for k in _ENGINES if k[0] == run_id]:
        del _ENGINES[key]


class ExplainStream(beam.DoFn):
    """Keyed by pipeline name: ingest chunks, emit a snapshot every ``emit_every``.

    The DoFn is stateful (so a runner routes every chunk of a pipeline to one place);
    the only Beam state is whether this key was restored from its checkpoint.
    """

    RESTORED = ReadModifyWriteStateSpec("restored", PickleCoder())

    def __init__(self, cfg: PipelineConfig, n_sources: int, run_id: str, checkpoint: bytes | None = None) -> None:
        self.cfg = cfg
        self.n_sources = n_sources
        self.run_id = run_id
        self.checkpoint = checkpoint

    def process(self, keyed: tuple[str, Chunk], restored=beam.DoFn.StateParam(RESTORED)) -> Iterator[Snapshot]:
        name, chunk = keyed
        engine = _ENGINES.get((self.run_id, name))
        if engine is None:
            engine = StreamEngine(self.cfg)
            if self.checkpoint and not restored.read():
                engine.restore(self.checkpoint)
                restored.write(True)
            _ENGINES[(self.run_id, name)] = engine
        engine.ingest(chunk)
        finished = len(engine.ended_sources) >= self.n_sources
        if finished or engine.due():
            yield engine.snapshot(name, final=finished)


class WriteResults(beam.DoFn):
    """Store each snapshot (results, dead letters, offsets, state in one transaction),
    then commit the offsets it covers to the Kafka consumer group (at least once)."""

    def __init__(self, cfg: PipelineConfig, restarts: int = 0) -> None:
        self.cfg = cfg
        self.restarts = restarts

    def setup(self) -> None:
        self.sink = make_sink(self.cfg.sink)
        self.committers: dict[tuple[str, int], Any] = {}

    def process(self, snap: Snapshot) -> Iterator[dict]:
        started = time.monotonic()
        offsets = snap.offsets
        # Offsets are stored only with a checkpoint: a restart resumes both from one point.
        with_state = self.sink.stores_state and snap.checkpoint is not None
        self.sink.write(snap.document, dead_letters=snap.dead_letters, offsets=offsets if with_state else None,
                        checkpoint=snap.checkpoint if with_state else None)
        self._forward_dead_letters(snap.dead_letters)
        self._commit(offsets)
        self._status(snap, (time.monotonic() - started) * 1000)
        yield snap.document

    def _forward_dead_letters(self, dead_letters) -> None:
        src = self.cfg.source
        topic = getattr(src, "dead_letter_topic", None)
        if not topic or not dead_letters:
            return
        rows = [{"pipeline": self.cfg.name, **d} for d in dead_letters]
        try:
            produce_json(src.bootstrap_servers, topic, rows)
        except (BrokerUnavailable, KafkaClientError) as exc:
            log.warning("dead letters not forwarded to %s: %s (they are kept in the store)", topic, exc)

    def _commit(self, offsets: dict[tuple[str, int], int]) -> None:
        src = self.cfg.source
        if not isinstance(src, KafkaSourceConfig):
            return
        for (topic, partition), next_offset in offsets.items():
            try:
                committer = self.committers.get((topic, partition))
                if committer is None:
                    committer = self.committers[(topic, partition)] = open_partition_reader(
                        src.client, src.bootstrap_servers, topic, partition, src.group_id)
                committer.commit(next_offset)
            except (BrokerUnavailable, KafkaClientError) as exc:
                # The store already holds these offsets; the group catches up next time.
                log.warning("offset commit for %s/%s deferred: %s", topic, partition, exc)

    def _status(self, snap: Snapshot, emit_ms: float) -> None:
        write_status = getattr(self.sink, "write_status", None)
        if write_status is None:
            return
        d = snap.document
        state = "stopped" if snap.final else ("running" if d.get("healthy", True) else "degraded")
        write_status({
            "pipeline": d["pipeline"], "state": state, "events": d["events"], "outliers": d["outliers"],
            "events_per_second": d["events_per_second"], "consumer_lag": d["consumer_lag"],
            "dead_letters": d["dead_letters"], "emit_latency_ms": round(emit_ms, 2),
            "last_error": None if d.get("healthy", True) else "broker unreachable; retrying",
            "restarts": self.restarts,
        })

    def teardown(self) -> None:
        for c in self.committers.values():
            try:
                c.close()
            except Exception:
                pass
        self.sink.close()


def runner_and_options(runner: RunnerConfig) -> tuple[Any, PipelineOptions]:
    """``direct`` is the in-process FnApiRunner, named explicitly: the DirectRunner's
    automatic choice tries to download Prism. Other names and options go to Beam as given."""
    if runner.type == "direct":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return FnApiRunner(), PipelineOptions.from_dictionary(dict(runner.options))
    return runner.type, PipelineOptions.from_dictionary(dict(runner.options))


def build(p: beam.Pipeline, cfg: PipelineConfig, specs: Sequence[Any], run_id: str,
          checkpoint: bytes | None = None, restarts: int = 0) -> beam.PCollection:
    """Add one configured pipeline to ``p``; returns the PCollection of stored documents."""
    name = cfg.name
    return (
        p
        | f"{name}/sources" >> beam.Create(list(specs))
        | f"{name}/read" >> beam.ParDo(ReadChunks(run_id))
        | f"{name}/key" >> beam.Map(lambda chunk, key=name: (key, chunk)).with_output_types(
            beam.typehints.Tuple[str, Any])
        | f"{name}/explain" >> beam.ParDo(ExplainStream(cfg, len(specs), run_id, checkpoint))
        | f"{name}/store" >> beam.ParDo(WriteResults(cfg, restarts))
    )
