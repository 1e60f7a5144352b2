"""Batch sources the streaming pipeline reads: Kafka partitions and replayed files.

Every source yields :class:`Chunk` objects: one decoded Arrow record batch (thousands of
events) plus its dead letters and the position after it. A position is a Kafka offset
or, for files, a row index; the Beam source claims positions, so a restarted source
resumes exactly after the last chunk whose results were stored.
"""
from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Iterator, Protocol, Sequence

import pyarrow as pa

from connectors.decode import DeadLetter, decode_json_messages
from connectors.files import iter_file_batches
from connectors.kafka_client import BrokerUnavailable, open_partition_reader


class PartitionFailed(RuntimeError):
    """A partition could not be read or decoded after retries: the run must stop."""


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
    stream: str | None = None  # what offsets are stored under (a Kafka topic); default: source
    start_offset: int | None = None  # first position this chunk covers (None: a heartbeat)

    @property
    def offset_key(self) -> tuple[str, int]:
        return (self.stream or self.source, self.partition)


class ChunkReader(Protocol):
    def read(self, timeout_s: float) -> Chunk | None:
        """The next chunk, or None when nothing arrived within ``timeout_s``."""

    def heartbeat(self) -> Chunk:
        """A chunk without rows carrying the reader's position and health."""

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

    @property
    def offset_key(self) -> tuple[str, int]:
        return (self.topic, self.partition)

    def open(self, position: int) -> "KafkaChunkReader":
        return KafkaChunkReader(self, position)


class KafkaChunkReader:
    """Polls and decodes one partition in a background thread.

    The Kafka clients and Arrow's JSON reader release the GIL, so fetching and decoding
    the next polls overlap with classifying the current one. At most ``QUEUE_CHUNKS``
    decoded polls wait in memory; a full queue stops the poller (back-pressure).
    """

    QUEUE_CHUNKS = 8
    UP_AFTER_S = 2.0  # empty polls without errors for this long: the broker is back
    RETRIES = 5       # client failures in a row before the partition (and the run) fails
    BACKOFF_S = 0.5   # first wait before a retry; doubles with every failure, up to 30 s

    def __init__(self, spec: KafkaPartitionSpec, position: int) -> None:
        self.spec = spec
        self.position = position
        self.healthy = True
        self.error: str | None = None
        self._lag: int | None = None
        self._queue: queue.Queue = queue.Queue(self.QUEUE_CHUNKS)
        self._stopping = threading.Event()
        self._reader = self._open(position)
        self._thread = threading.Thread(target=self._pump, name=f"poll-{spec.key}", daemon=True)
        self._thread.start()

    def _pump(self) -> None:
        s = self.spec
        down_since_ok: float | None = None
        cursor = self.position
        failures = 0
        checked_log = True
        while not self._stopping.is_set():
            try:
                poll = self._reader.poll(s.poll_max_records, 0.2)
            except BrokerUnavailable as exc:
                down_since_ok, checked_log = time.monotonic(), False
                self._put(("down", str(exc)))
                self._stopping.wait(0.5)
                continue
            except Exception as exc:  # a client failure: degraded, retried with a new client
                failures += 1
                if failures > self.RETRIES:
                    self._put(("error", PartitionFailed(
                        f"partition {s.key}: reading failed {failures} times in a row; last: "
                        f"{type(exc).__name__}: {exc}")))
                    return
                down_since_ok, checked_log = time.monotonic(), False
                self._put(("down", f"partition {s.key}: {type(exc).__name__}: {exc}; retrying"))
                self._stopping.wait(min(30.0, self.BACKOFF_S * 2 ** (failures - 1)))
                self._reopen(cursor)
                continue
            failures = 0
            if not checked_log:
                before = cursor
                cursor, checked_log = self._rewind_if_log_lost(cursor)
                if cursor != before:
                    continue  # this poll predates the rewind; the seek reads it again
            self._lag = self._reader.lag_estimate()
            if len(poll) == 0:
                if down_since_ok is not None and checked_log and time.monotonic() - down_since_ok > self.UP_AFTER_S:
                    down_since_ok = None
                    self._put(("up", None))
                continue
            down_since_ok = None
            try:
                decoded = decode_json_messages(poll.values, list(s.schema.metrics), list(s.schema.attributes),
                                               s.schema.time, timestamps_ms=poll.timestamps_ms,
                                               offsets=poll.offsets)
            except Exception as exc:  # a decoder bug fails the run loudly, never stalls a partition
                self._put(("error", PartitionFailed(f"partition {s.key}: decoding failed at offset "
                                                    f"{cursor}: {type(exc).__name__}: {exc}")))
                return
            # A position that went back means the broker lost its log: count from there.
            start = cursor if cursor <= poll.next_offset else int(poll.offsets[0])
            self._put(Chunk(s.key, s.partition, poll.next_offset, decoded.batch, decoded.dead_letters,
                            dropped=len(decoded.dead_letters), lag=self._lag, stream=s.topic,
                            start_offset=start))
            cursor = poll.next_offset

    def _rewind_if_log_lost(self, cursor: int) -> tuple[int, bool]:
        """After an outage: a log now shorter than our position was lost (an in-memory
        broker restarted, a topic re-created): read it again from its beginning. Checked
        before the broker is reported back, so before new messages can fill the gap."""
        try:
            if self._reader.end_offset() < cursor:
                start = self._reader.beginning_offset()
                self._reader.seek(start)
                return start, True
            return cursor, True
        except Exception:  # the topic may not be back yet: check again after the next poll
            return cursor, False

    def _open(self, position: int):
        s = self.spec
        reader = open_partition_reader(s.client, list(s.bootstrap_servers), s.topic, s.partition, s.group_id)
        reader.seek(position)
        return reader

    def _reopen(self, position: int) -> None:
        try:
            self._reader.close()
        except Exception:  # the broken client may not close cleanly; a new one replaces it
            pass
        try:
            self._reader = self._open(position)
        except Exception as exc:  # counted as the next failure by the following poll
            self._put(("down", f"partition {self.spec.key}: reconnecting failed: {exc}"))

    def _put(self, item) -> None:
        while not self._stopping.is_set():
            try:
                self._queue.put(item, timeout=0.2)
                return
            except queue.Full:
                continue

    def read(self, timeout_s: float) -> Chunk | None:
        try:
            item = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return None
        if isinstance(item, tuple):
            kind, detail = item
            if kind == "error":
                raise detail
            self.healthy, self.error = kind == "up", (detail if kind == "down" else None)
            return self.heartbeat()
        self.healthy, self.error = True, None
        self.position = item.next_offset
        return item

    def heartbeat(self) -> Chunk:
        """No rows: says the source is alive (or not) so results still go out on time."""
        return Chunk(self.spec.key, self.spec.partition, self.position, lag=self._lag,
                     healthy=self.healthy, error=self.error, stream=self.spec.topic)

    def close(self) -> None:
        self._stopping.set()
        self._thread.join(5)
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

    @property
    def offset_key(self) -> tuple[str, int]:
        return (self.path, 0)

    def open(self, position: int) -> "FileChunkReader":
        return FileChunkReader(self, position)


class FileChunkReader:
    def __init__(self, spec: FileSpec, position: int) -> None:
        self.spec = spec
        self.position = 0
        self._skip = position
        self._batches: Iterator = iter_file_batches(spec.path, list(spec.schema.metrics),
                                                    list(spec.schema.attributes), spec.schema.time,
                                                    batch_rows=self._batch_rows(spec))
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
            return Chunk(self.spec.key, 0, self.position, batch, dropped=fb.dropped,
                         start_offset=max(start, self._skip))
        self._done = True
        return Chunk(self.spec.key, 0, self.position, end=True)

    @staticmethod
    def _batch_rows(spec: FileSpec) -> int:
        # A paced replay hands out about a tenth of a second of events at a time, so
        # results flow smoothly instead of one big batch after a long sleep.
        return spec.batch_rows if not spec.rate else max(1, min(spec.batch_rows, int(spec.rate / 10)))

    def heartbeat(self) -> Chunk:
        return Chunk(self.spec.key, 0, self.position)

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


__all__ = ["Chunk", "ChunkReader", "PartitionFailed", "EventSchema", "FileSpec", "KafkaPartitionSpec", "kafka_specs"]
