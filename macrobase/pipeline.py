"""Beam pipeline assembly: sources -> model -> shards (classify + count) -> global stage -> sink.

    specs | ReadChunks (splittable: one element per partition or file; decodes in parallel)
          | keyed by pipeline | AssignModel (stateful): train the one model, stamp each chunk
          | keyed by shard    | CountShard  (stateful): encode, classify, count -> Partial
          | keyed by pipeline | MergeGlobal (stateful): merge, decay, rules -> Snapshot
          | WriteResults: store (with checkpoint and offsets), then commit offsets

Every piece of run state is Beam state or is rebuilt from it: the model stage keeps the
training reservoir and the rows held before the first model, the global stage keeps the
merged counts. Shards send additive partial summaries with the value of every code, so
shards in different worker processes agree. A per-instance cache skips deserialising the
global state when the same worker sees the same key again; a miss reads Beam state. On
an empty state the global and model stages resume from the results store's checkpoint.
"""
from __future__ import annotations

import functools
import logging
import time
import uuid
from typing import Any, Iterator, Sequence

import connectors._quiet_beam  # noqa: F401  (before Beam)
import apache_beam as beam
from apache_beam.coders import PickleCoder
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.transforms.userstate import BagStateSpec, ReadModifyWriteStateSpec
from apache_beam.runners.worker.statecache import CacheAware
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.windowed_value import WindowedValue

from connectors.beam_source import ReadChunks, StopCondition
from connectors.chunks import Chunk
from connectors.kafka_client import BrokerUnavailable, KafkaClientError, open_partition_reader, produce_json
from connectors.retrying_sink import RetryingSink
from macrobase.columns import metric_matrix
from macrobase.alerts import Alerter, AlertRule
from macrobase.config import KafkaSourceConfig, PipelineConfig, RunnerConfig, SqliteSinkConfig
from macrobase.engine import GlobalEngine, Snapshot
from macrobase.model import ModelKeeper, ModelUpdate
from macrobase.shard import OffsetKey, ShardCounter, needs_model
from macrobase.store import make_sink

log = logging.getLogger(__name__)

KeyedAny = beam.typehints.Tuple[str, Any]


class Opaque(CacheAware):
    """A state value Beam's state cache weighs by ``weight`` instead of walking every
    object inside it (for an engine with many encoded values that walk cost more than
    the counting itself)."""

    def __init__(self, value: Any, weight: int) -> None:
        self.value = value
        self.weight = weight

    def get_referents_for_cache(self) -> list:
        return []

    def __sizeof__(self) -> int:
        return self.weight


def _weight(obj: Any) -> int:
    """Rough bytes of a keeper or engine: its arrays plus ~100 bytes per encoded value."""
    encoders = getattr(obj, "encoders", ())
    return (1 << 16) + sum(100 * len(e.values) for e in encoders)


def stored_checkpoint(cfg: PipelineConfig) -> bytes | None:
    """The pipeline's last checkpoint in its results store (SQLite sink only)."""
    if not isinstance(cfg.sink, SqliteSinkConfig):
        return None
    from macrobase.store import ResultStore
    with ResultStore(cfg.sink.path) as store:
        return store.checkpoint(cfg.name)


class AssignModel(beam.DoFn):
    """Keyed by pipeline: keeps the one model, retrained on every chunk's rows, and hands
    each chunk to its shard with the model current at that point of the stream.

    Rows that arrive before the first model (the warm-up) are held in Beam state and
    released, in order, with the first model. Chunks, not just models, pass through here
    because on Beam's local runners a Flatten (how a model could be broadcast beside the
    data) holds its output until the end of a streaming run.
    """

    KEEPER = ReadModifyWriteStateSpec("model", PickleCoder())
    HELD = BagStateSpec("held", PickleCoder())

    def __init__(self, cfg: PipelineConfig, sources: int, resume: bool) -> None:
        self.cfg = cfg
        self.sources = sources
        self.resume = resume

    def process(self, keyed, state=beam.DoFn.StateParam(KEEPER), held=beam.DoFn.StateParam(HELD)
                ) -> Iterator[tuple[str, tuple[Chunk, ModelUpdate | None]]]:
        _, chunk = keyed
        held_keeper = state.read()
        keeper = held_keeper.value if held_keeper is not None else None
        if keeper is None:
            keeper = ModelKeeper(self.cfg, self.sources)
            blob = stored_checkpoint(self.cfg) if self.resume else None
            if blob is not None:
                restored = GlobalEngine.from_checkpoint(blob, self.cfg, {})
                if restored.model is not None:
                    keeper.resume(restored.model.version, restored.model.model)
        rows = needs_model(chunk)
        keeper.learn(chunk.source, metric_matrix(chunk.batch, self.metrics) if rows else None, chunk.end)
        model = keeper.current
        # Rows wait for the first model; so does the end of a source while rows wait, so
        # that the end is counted after them. Anything else (heartbeats) passes at once.
        if model is None and (rows or (chunk.end and keeper.held)):
            held.add(chunk)
            keeper.held += 1
        else:
            if keeper.held and model is not None:
                for earlier in held.read():
                    yield earlier.source, (earlier, model)
                held.clear()
                keeper.held = 0
            yield chunk.source, (chunk, model)
        state.write(Opaque(keeper, 1 << 20))

    def setup(self) -> None:
        self.metrics = list(self.cfg.event_schema.metrics)


class CountShard(beam.DoFn):
    """Keyed by shard, so a distributed runner spreads shards over its workers: classify
    and count chunks with the model they came with; emit partial summaries.

    Partials go out at least every ``partial_every`` seconds, when a source ends, and at
    the end of every bundle, so no count is kept outside Beam state between bundles. The
    only state is the shard's partial sequence number.
    """

    SENT = ReadModifyWriteStateSpec("sent", PickleCoder())

    def __init__(self, cfg: PipelineConfig, partial_every: float) -> None:
        self.cfg = cfg
        self.partial_every = partial_every

    def start_bundle(self) -> None:
        self._open: dict[str, tuple[ShardCounter, Any]] = {}

    def process(self, keyed, sent=beam.DoFn.StateParam(SENT), timestamp=beam.DoFn.TimestampParam
                ) -> Iterator[tuple[str, Any]]:
        shard, (chunk, model) = keyed
        if shard not in self._open:
            self._open[shard] = (ShardCounter(self.cfg, shard), timestamp)
        counter = self._open[shard][0]
        counter.add(chunk, model)
        if counter.age() >= self.partial_every or counter.ends:
            sent.write((sent.read() or 0) + 1)
            yield self.cfg.name, self._open.pop(shard)[0].partial()

    def finish_bundle(self) -> Iterator[WindowedValue]:
        for counter, timestamp in self._open.values():
            yield WindowedValue((self.cfg.name, counter.partial()), timestamp, [GlobalWindow()])
        self._open.clear()


class MergeGlobal(beam.DoFn):
    """Keyed by pipeline: merge partials, emit a snapshot every ``emit_every`` and at the end."""

    ENGINE = ReadModifyWriteStateSpec("engine", PickleCoder())
    TOKEN = ReadModifyWriteStateSpec("token", PickleCoder())

    def __init__(self, cfg: PipelineConfig, starts: dict[OffsetKey, int], resume: bool, stateful_sink: bool) -> None:
        self.cfg = cfg
        self.starts = dict(starts)
        self.resume = resume
        self.stateful_sink = stateful_sink

    def setup(self) -> None:
        self._cache: dict[str, tuple[str, GlobalEngine]] = {}

    def process(self, keyed, state=beam.DoFn.StateParam(ENGINE), token=beam.DoFn.StateParam(TOKEN)
                ) -> Iterator[Snapshot]:
        name, partial = keyed
        engine = self._engine(name, state, token)
        snap = None
        if not engine.finished:  # after the final snapshot, late heartbeats change nothing
            engine.add(partial)
            finished = engine.finished
            if finished or engine.due():
                snap = engine.snapshot(name, final=finished, stateful_sink=self.stateful_sink)
            fresh = uuid.uuid4().hex
            state.write(Opaque(engine, _weight(engine)))
            token.write(fresh)
            self._cache[name] = (fresh, engine)
        if snap is not None:
            yield snap

    def _engine(self, name: str, state, token) -> GlobalEngine:
        cached = self._cache.get(name)
        current = token.read()
        if cached is not None and current is not None and cached[0] == current:
            return cached[1]
        held = state.read()
        engine = held.value if held is not None else None
        if engine is None:
            blob = stored_checkpoint(self.cfg) if self.resume else None
            engine = GlobalEngine.from_checkpoint(blob, self.cfg, self.starts) if blob \
                else GlobalEngine(self.cfg, self.starts)
        return engine


class WriteResults(beam.DoFn):
    """Store each snapshot (results, dead letters, offsets, state in one transaction),
    then commit to the Kafka consumer group the offsets that stored state covers.

    A faulted store blocks here (see :mod:`connectors.retrying_sink`): upstream stages
    stop consuming, and no offset is committed past a result that is not stored.
    """

    def __init__(self, cfg: PipelineConfig, stop: StopCondition, restarts: int = 0,
                 alerts: Sequence[AlertRule] = ()) -> None:
        self.cfg = cfg
        self.stop = stop
        self.restarts = restarts
        self.alerts = tuple(alerts)

    def setup(self) -> None:
        self.sink = RetryingSink(functools.partial(make_sink, self.cfg.sink), on_fault=self._degraded,
                                 stopping=self.stop.reached)
        self.committers: dict[OffsetKey, Any] = {}
        self._writing: Snapshot | None = None  # the snapshot a fault report is about
        self.alerter = Alerter(self.cfg.name, self.alerts)

    def process(self, snap: Snapshot) -> Iterator[dict]:
        started = time.monotonic()
        self._writing = snap
        document = {**snap.document, "alerts": self.alerter.counters()} if self.alerter.rules else snap.document
        self.sink.write(document, dead_letters=snap.dead_letters,
                        offsets=snap.offsets if snap.checkpoint is not None else None,
                        checkpoint=snap.checkpoint)
        self.alerter.observe(document)  # alerts only ever tell what is stored
        self._forward_dead_letters(snap.dead_letters)
        if snap.offsets is not None:
            self._commit(snap.offsets)
        self._status(snap, (time.monotonic() - started) * 1000)
        yield document

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

    def _commit(self, offsets: dict[OffsetKey, int]) -> None:
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

    def _degraded(self, sink_error: str) -> None:
        if self._writing is not None:
            self._status(self._writing, None, sink_error)

    def _status(self, snap: Snapshot, emit_ms: float | None, sink_error: str | None = None) -> None:
        d = snap.document
        if sink_error is not None:
            state, error = "degraded", sink_error
        else:
            state = "stopped" if snap.final else ("running" if d.get("healthy", True) else "degraded")
            error = snap.error
        self.sink.write_status({
            "pipeline": d["pipeline"], "state": state, "events": d["events"], "outliers": d["outliers"],
            "events_per_second": d["events_per_second"], "consumer_lag": d["consumer_lag"],
            "dead_letters": d["dead_letters"], "emit_latency_ms": None if emit_ms is None else round(emit_ms, 2),
            "last_error": error,
            "restarts": self.restarts,
        })

    def teardown(self) -> None:
        self.alerter.close()
        for c in self.committers.values():
            try:
                c.close()
            except Exception:
                pass
        self.sink.close()


def runner_and_options(runner: RunnerConfig) -> tuple[Any, PipelineOptions]:
    """``direct`` is Beam's FnApiRunner, named explicitly: the DirectRunner's automatic
    choice tries to download Prism. Other names and options go to Beam as given."""
    if runner.type == "direct":
        from apache_beam.runners.portability.fn_api_runner import FnApiRunner
        return FnApiRunner(), PipelineOptions.from_dictionary(dict(runner.options))
    return runner.type, PipelineOptions.from_dictionary(dict(runner.options))


def build(p: beam.Pipeline, cfg: PipelineConfig, specs: Sequence[Any], stop: StopCondition,
          resume: bool = False, restarts: int = 0, alerts: Sequence[AlertRule] = ()) -> beam.PCollection:
    """Add one configured pipeline to ``p``; returns the PCollection of stored documents.

    ``resume``: the global and model stages start from the stored checkpoint, and ``specs``
    start at the offsets stored with it.
    """
    name = cfg.name
    starts = {spec.offset_key: spec.start_offset for spec in specs}
    partial_every = min(1.0, cfg.explainer.emit_every)  # merged once per interval at most
    stateful_sink = isinstance(cfg.sink, SqliteSinkConfig)
    return (
        p
        | f"{name}/sources" >> beam.Create(list(specs))
        | f"{name}/read" >> beam.ParDo(ReadChunks(stop))
        | f"{name}/by pipeline" >> beam.Map(lambda chunk, key=name: (key, chunk)).with_output_types(KeyedAny)
        | f"{name}/model" >> beam.ParDo(AssignModel(cfg, len(specs), resume)).with_output_types(KeyedAny)
        | f"{name}/count" >> beam.ParDo(CountShard(cfg, partial_every)).with_output_types(KeyedAny)
        | f"{name}/merge" >> beam.ParDo(MergeGlobal(cfg, starts, resume, stateful_sink))
        | f"{name}/store" >> beam.ParDo(WriteResults(cfg, stop, restarts, alerts))
    )
