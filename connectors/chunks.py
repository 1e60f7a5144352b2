"""Batch sources the streaming pipeline reads: Kafka partitions and replayed files.

Every source yields :class:`Chunk` objects: one decoded Arrow record batch (thousands of
events) plus its dead letters and the position after it. A position is a Kafka offset
or, for files, a row index; the Beam source claims positions, so a restarted source
resumes exactly after the last chunk whose results were stored.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Iterator, Protocol, Sequence

import pyarrow as pa

from connectors.decode import DeadLetter, decode_json_messages
from connectors.files import iter_file_batches
from connectors.kafka_client import BrokerUnavailable, open_partition_reader


@dataclass(frozen=True)
class Chunk:
    """What a source read: rows, dead letters, and where to resume.

    ``batch`` is None for a heartbeat (the source is idle or its broker unreachable,
    see ``healthy``) and for the end of a bounded source (``end``).
    """

    source: str
    partition: int
    next_offset: int
    batch: pa.RecordBatch | None = None
    dead_letters: tuple[DeadLetter, ...] = ()
    dropped: int = 0
    lag: int | None = None
    healthy: bool = True
    error: str | None = None
    end: bool = False


class ChunkReader(Protocol):
    def read(self, timeout_s: float) -> Chunk | None:
        """The next chunk, or None when nothing arrived within ``timeout_s``."""

    def close(self) -> None: ...


@dataclass(frozen=True)
class EventSchema:
    """Which fields of an event matter (mirrors the YAML ``schema`` block)."""

    metrics: tuple[str, ...]
    attributes: tuple[str, ...]
    time: str | None = None


@dataclass(frozen=True)
class KafkaPartitionSpec:
    """One (topic, partition) to read from ``start_offset`` on."""

    client: str
    bootstrap_servers: tuple[str, ...]
    topic: str
    partition: int
    group_id: str
    schema: EventSchema
    start_offset: int
    poll_max_records: int = 5000

    @property
    def key(self) -> str:
        return f"{self.topic}/{self.partition}"

    def open(self, position: int) -> "KafkaChunkReader":
        return KafkaChunkReader(self, position)


class KafkaChunkReader:
    """Polls one partition and decodes each poll in one go (Arrow JSON)."""

    LAG_EVERY_S = 2.0

    def __init__(self, spec: KafkaPartitionSpec, position: int) -> None:
        self.spec = spec
        self.position = position
        self._reader = open_partition_reader(spec.client, list(spec.bootstrap_servers), spec.topic,
                                             spec.partition, spec.group_id)
        self._reader.seek(position)
        self._lag: int | None = None
        self._lag_at = 0.0

    def read(self, timeout_s: float) -> Chunk | None:
        s = self.spec
        try:
            poll = self._reader.poll(s.poll_max_records, timeout_s)
        except BrokerUnavailable as exc:
            time.sleep(min(timeout_s, 0.5))
            return Chunk(s.key, s.partition, self.position, healthy=False, error=str(exc))
        if len(poll) == 0:
            self._refresh_lag(force=False)
            return None
        decoded = decode_json_messages(poll.values, list(s.schema.metrics), list(s.schema.attributes),
                                       s.schema.time, timestamps_ms=poll.timestamps_ms, offsets=poll.offsets)
        self.position = int(poll.offsets[-1]) + 1
        self._refresh_lag(force=False)
        return Chunk(s.key, s.partition, self.position, decoded.batch, decoded.dead_letters,
                     dropped=len(decoded.dead_letters), lag=self._lag)

    def _refresh_lag(self, force: bool) -> None:
        now = time.monotonic()
        if force or now - self._lag_at >= self.LAG_EVERY_S:
            self._lag_at = now
            try:
                self._lag = max(0, self._reader.end_offset() - self.position)
            except BrokerUnavailable:
                self._lag = None

    def commit(self, next_offset: int) -> None:
        self._reader.commit(next_offset)

    def close(self) -> None:
        self._reader.close()


@dataclass(frozen=True)
class FileSpec:
    """A bounded file replayed as a stream, optionally at ``rate`` events per second."""

    path: str
    schema: EventSchema
    rate: float | None = None
    batch_rows: int = 20_000
    start_offset: int = 0

    @property
    def key(self) -> str:
        return self.path

    def open(self, position: int) -> "FileChunkReader":
        return FileChunkReader(self, position)


class FileChunkReader:
    def __init__(self, spec: FileSpec, position: int) -> None:
        self.spec = spec
        self.position = 0
        self._skip = position
        self._batches: Iterator = iter_file_batches(spec.path, list(spec.schema.metrics),
                                                    list(spec.schema.attributes), spec.schema.time,
                                                    batch_rows=spec.batch_rows)
        self._started = time.monotonic()
        self._done = False

    def read(self, timeout_s: float) -> Chunk | None:
        if self._done:
            return None
        for fb in self._batches:
            n_in = fb.batch.num_rows + fb.dropped
            start, self.position = self.position, self.position + n_in
            if self.position <= self._skip:
                continue  # already covered by stored results
            batch = fb.batch
            if start < self._skip:  # resume inside a batch: the file's row order is stable
                batch = batch.slice(self._skip - start) if fb.dropped == 0 else batch
            self._pace()
            return Chunk(self.spec.key, 0, self.position, batch, dropped=fb.dropped)
        self._done = True
        return Chunk(self.spec.key, 0, self.position, end=True)

    def _pace(self) -> None:
        if self.spec.rate:
            due = self._started + (self.position - self._skip) / self.spec.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)

    def close(self) -> None:
        self._done = True


def kafka_specs(client: str, servers: Sequence[str], topic: str, partitions: Sequence[int],
                group_id: str, schema: EventSchema, start_offsets: dict[int, int],
                poll_max_records: int) -> list[KafkaPartitionSpec]:
    return [KafkaPartitionSpec(client, tuple(servers), topic, p, group_id, schema, start_offsets[p],
                               poll_max_records) for p in partitions]


__all__ = ["Chunk", "ChunkReader", "EventSchema", "FileSpec", "KafkaPartitionSpec", "kafka_specs"]
