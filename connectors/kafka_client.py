"""One small interface over two Kafka clients: kafka-python (default) and confluent-kafka.

Readers use **manual partition assignment** (one reader per topic partition, like Beam's
KafkaIO): group subscription waits a full rebalance timeout on the embedded broker. A
``group_id`` is only used to store committed offsets.

Broker going away
-----------------
Neither client treats a lost broker as fatal: both reconnect in the background
(backoff capped at ``reconnect_backoff_max_s``). What they show differs:

* kafka-python: ``poll()`` just returns nothing; offset look-ups and commits raise
  ``KafkaTimeoutError`` / retriable errors (``NodeNotReadyError``, ``KafkaConnectionError``...).
* confluent-kafka: ``consume()`` returns nothing (transport errors go to the error callback
  as ``_TRANSPORT`` / ``_ALL_BROKERS_DOWN``); look-ups and commits raise ``KafkaException``.

Here both readers behave the same: ``poll()``, ``commit()``, ``committed()``,
``beginning_offset()`` and ``end_offset()`` raise :class:`BrokerUnavailable` when the
broker cannot be reached (for an empty poll this is checked by a TCP connect to the
bootstrap servers, at most once per ``probe_interval_s``). The reader stays usable: call
again with backoff; it resumes when the broker is back. Opening a reader while the broker
is away does not fail either (kafka-python's consumer, which connects in its constructor,
is then created on first use). Non-retriable errors (bad topic
configuration, authorisation) are raised as :class:`KafkaClientError`. If the broker lost
its data (embedded broker: memory storage), an idle reader whose position is beyond the
new end restarts from the earliest offset (checked at most once per ``probe_interval_s``).

Readers never create topics. A broker that allows auto-creation (Tansu does, with 4
partitions) would otherwise create a missing source topic from a reader's metadata
request: a broker that restarted empty then gets the topic back before its owner re-creates
it with the intended partitions. kafka-python 3.0.12 drops the consumer's
``allow_auto_create_topics`` on its way to the metadata client, so it is set there too
(:func:`_no_topic_auto_creation`); librdkafka consumers get ``allow.auto.create.topics``
false. A reader of a missing topic polls nothing and its offset look-ups raise
:class:`BrokerUnavailable` until the topic exists.

Tansu 0.6 answers ListOffsets(latest) with the last record batch's *base* offset + 1, so
``end_offset()`` fetches that batch with a side consumer to learn the true high watermark.

Example (against the embedded broker):
    >>> from connectors.broker import EmbeddedBroker
    >>> with EmbeddedBroker() as b:
    ...     create_topic([b.bootstrap], "doc", 1)
    ...     _ = produce_json([b.bootstrap], "doc", [{"m": 1}, {"m": 2}], partition=0)
    ...     r = open_partition_reader("kafka-python", [b.bootstrap], "doc", 0, "g")
    ...     got = []
    ...     for _ in range(60):  # a poll may return part of what is there
    ...         got += r.poll(10_000, 1.0).values
    ...         if len(got) == 2:
    ...             break
    ...     r.commit(2); committed = r.committed(); r.close()
    >>> got, committed
    ([b'{"m":1}', b'{"m":2}'], 2)
"""

from __future__ import annotations

import json
import logging
import socket
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

__all__ = [
    "CLIENTS",
    "RawPoll",
    "PartitionReader",
    "BrokerUnavailable",
    "KafkaClientError",
    "open_partition_reader",
    "list_partitions",
    "quiet_client_logs",
    "create_topic",
    "produce_json",
]

CLIENTS = ("kafka-python", "confluent-kafka")
_EMPTY_I64 = np.zeros(0, dtype=np.int64)


class KafkaClientError(RuntimeError):
    """A Kafka error that retrying will not fix."""


class BrokerUnavailable(KafkaClientError):
    """The broker cannot be reached right now; retry the same call with backoff."""


@dataclass(frozen=True)
class RawPoll:
    """Messages of one poll: values plus aligned offset and timestamp (epoch ms) arrays."""

    values: list[bytes] = field(default_factory=list)
    offsets: np.ndarray = field(default_factory=lambda: _EMPTY_I64)
    timestamps_ms: np.ndarray = field(default_factory=lambda: _EMPTY_I64)

    def __len__(self) -> int:
        return len(self.values)

    @property
    def next_offset(self) -> int | None:
        """Offset after the last message, or None for an empty poll."""
        return int(self.offsets[-1]) + 1 if len(self.offsets) else None


def _check_client(client: str) -> None:
    if client not in CLIENTS:
        raise ValueError(f"unknown Kafka client {client!r}; expected one of {', '.join(CLIENTS)}")


def _split(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return (host or "localhost").strip("[]"), int(port or 9092)


class _Probe:
    """Rate-limited TCP reachability check of the bootstrap servers."""

    def __init__(self, servers: Sequence[str], interval_s: float):
        self.servers = [_split(s) for s in servers]
        self.interval_s = interval_s
        self._at = -1e18
        self._ok = True

    def reachable(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._at >= self.interval_s:
            self._at = now
            self._ok = any(self._connect(h, p) for h, p in self.servers)
        return self._ok

    @staticmethod
    def _connect(host: str, port: int) -> bool:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return True
        except OSError:
            return False


class PartitionReader:
    """Reads one topic partition in batches. Create with :func:`open_partition_reader`."""

    client: str
    topic: str
    partition: int
    group_id: str | None

    def beginning_offset(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError

    def end_offset(self) -> int:  # pragma: no cover - interface
        """Offset the next produced message will get (the high watermark)."""
        raise NotImplementedError

    def committed(self) -> int | None:  # pragma: no cover - interface
        """The group's committed next offset, or None (never committed / no group)."""
        raise NotImplementedError

    def seek(self, offset: int) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def poll(self, max_records: int, timeout_s: float) -> RawPoll:  # pragma: no cover
        raise NotImplementedError

    def commit(self, next_offset: int) -> None:  # pragma: no cover - interface
        """Store ``next_offset`` (the offset of the next message to read) for the group."""
        raise NotImplementedError

    def close(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    _position: int | None = None
    _checked_at: float = -1e18
    _probe_interval_s: float = 1.0

    def _empty_poll(self) -> RawPoll:
        """Called after an empty poll from a reachable broker.

        A broker that lost its data (memory storage, topic recreated) serves nothing at
        our old position and neither client notices (Tansu does not answer such a fetch
        with OFFSET_OUT_OF_RANGE), so when idle we compare the position with the end at
        most once per probe interval and restart from the beginning if it is beyond it.
        """
        now = time.monotonic()
        if self._position is not None and now - self._checked_at >= self._probe_interval_s:
            self._checked_at = now
            cached = self._cached_high_watermark()
            if cached is not None and cached >= self._position:
                return RawPoll()  # the last fetch saw data up to here: nothing was lost
            end = self.end_offset()
            if self._position > end:
                start = self.beginning_offset()
                logging.getLogger(__name__).warning(
                    "%s[%d]: position %d is beyond the end %d (broker lost its data?); "
                    "restarting from offset %d", self.topic, self.partition, self._position, end, start)
                self.seek(start)
        return RawPoll()

    def _cached_high_watermark(self) -> int | None:  # pragma: no cover - interface
        raise NotImplementedError

    def lag_estimate(self) -> int | None:
        """Messages behind the partition's end, from the last fetch (no broker round trip).

        Tansu reports the last record batch's base offset + 1 as the high watermark, so
        on it this can be low by up to one producer batch; None until a fetch happened.
        """
        hw = self._cached_high_watermark()
        if hw is None or self._position is None:
            return None
        return max(0, hw - self._position)

    def _need_group(self) -> None:
        if self.group_id is None:
            raise ValueError("committing offsets needs a group_id")


def quiet_client_logs(debug: bool = False) -> None:
    """kafka-python logs every failed reconnect at ERROR; a pipeline reports an outage as
    "degraded" instead, so the client's log is for debugging only."""
    logging.getLogger("kafka").setLevel(logging.DEBUG if debug else logging.CRITICAL)


def open_partition_reader(
    client: str,
    bootstrap_servers: Sequence[str],
    topic: str,
    partition: int,
    group_id: str | None,
    *,
    reconnect_backoff_max_s: float = 1.0,
    probe_interval_s: float = 1.0,
    request_timeout_s: float = 5.0,
) -> PartitionReader:
    """A reader of one partition, manually assigned. The first poll starts at the
    group's committed offset, else the earliest; call :meth:`PartitionReader.seek` to choose.
    """
    _check_client(client)
    servers = list(bootstrap_servers)
    if client == "kafka-python":
        return _KafkaPythonReader(servers, topic, partition, group_id, reconnect_backoff_max_s,
                                  probe_interval_s, request_timeout_s)
    return _ConfluentReader(servers, topic, partition, group_id, reconnect_backoff_max_s,
                            probe_interval_s, request_timeout_s)


# ----------------------------------------------------------------------- kafka-python


def _no_topic_auto_creation(consumer) -> None:
    """Make a kafka-python consumer's metadata requests forbid topic auto-creation.

    kafka-python 3.0.12 accepts ``allow_auto_create_topics=False`` but builds its
    ``ClusterMetadata`` without it (default True), so every metadata refresh of an assigned
    topic that does not exist asks the broker to create it. Set it where the requests are made.
    """
    cluster = getattr(getattr(consumer, "_client", None), "cluster", None)
    config = getattr(cluster, "config", None)
    if isinstance(config, dict):
        config["allow_auto_create_topics"] = False


class _KafkaPythonReader(PartitionReader):
    def __init__(self, servers, topic, partition, group_id, backoff_s, probe_s, timeout_s):
        from kafka import TopicPartition

        self.client, self.topic, self.partition, self.group_id = "kafka-python", topic, partition, group_id
        self._timeout_s = timeout_s
        self._probe = _Probe(servers, probe_s)
        self._probe_interval_s = probe_s
        self._tp = TopicPartition(topic, partition)
        self._servers = servers
        self._side = None  # lazily created consumer for end_offset(); see there
        self._backoff_s = backoff_s
        self._consumer = None
        # kafka-python's consumer bootstraps in its constructor and raises when the broker
        # cannot be reached. A reader opened during an outage (a runner resuming the read
        # in another worker) must not fail for that: it connects on first use instead,
        # and every call raises BrokerUnavailable until the broker is back.
        try:
            self._connect()
        except BrokerUnavailable:
            pass

    def _connect(self):
        from kafka import KafkaConsumer

        if not self._probe.reachable(force=True):  # fail fast instead of a bootstrap timeout
            raise BrokerUnavailable(f"connect on {self.topic}[{self.partition}]: broker unreachable")
        try:
            consumer = KafkaConsumer(
                bootstrap_servers=self._servers, group_id=self.group_id, enable_auto_commit=False,
                allow_auto_create_topics=False,
                auto_offset_reset="earliest", reconnect_backoff_max_ms=int(self._backoff_s * 1000),
                request_timeout_ms=max(int(self._timeout_s * 1000), 1000) + 30_000,
                bootstrap_timeout_ms=int(self._timeout_s * 1000),
                max_poll_records=100_000, fetch_max_bytes=64 << 20, max_partition_fetch_bytes=16 << 20,
            )
        except Exception as e:
            raise self._translate(e, "connect") from e
        _no_topic_auto_creation(consumer)
        consumer.assign([self._tp])
        if self._position is not None:  # a seek() made before the connection
            consumer.seek(self._tp, self._position)
        self._consumer = consumer
        return consumer

    @property
    def _c(self):
        """The consumer, connected now if it could not be before (BrokerUnavailable if still not)."""
        return self._consumer if self._consumer is not None else self._connect()

    def _translate(self, e: Exception, what: str) -> Exception:
        from kafka import errors as ke

        if isinstance(e, (BrokerUnavailable, ValueError)):
            return e
        retriable = getattr(e, "retriable", False) or isinstance(
            e, (ke.KafkaTimeoutError, ke.BrokerNotAvailableError, ke.KafkaConnectionError, ke.NodeNotReadyError,
                ke.CommitFailedError, ke.UnknownTopicOrPartitionError, ke.MetadataEmptyBrokerList, ke.NotCoordinatorError,
                ke.CoordinatorNotAvailableError, ke.CoordinatorLoadInProgressError, OSError))
        if retriable or not self._probe.reachable(force=True):
            return BrokerUnavailable(f"{what} on {self.topic}[{self.partition}] failed: broker unavailable ({e!r})")
        return KafkaClientError(f"{what} on {self.topic}[{self.partition}] failed: {e!r}")

    def _call(self, what, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as e:
            raise self._translate(e, what) from e

    def beginning_offset(self) -> int:
        return int(self._call("beginning_offsets", self._c.beginning_offsets, [self._tp],
                              timeout_ms=int(self._timeout_s * 1000))[self._tp])

    def end_offset(self) -> int:
        hi = int(self._call("end_offsets", self._c.end_offsets, [self._tp],
                            timeout_ms=int(self._timeout_s * 1000))[self._tp])
        if hi <= 0:
            return hi
        # Tansu answers ListOffsets(latest) with the last record batch's base offset + 1;
        # a fetch of that batch reports the true high watermark.
        if self._side is None:
            from kafka import KafkaConsumer

            self._side = self._call("end probe", KafkaConsumer, bootstrap_servers=self._servers,
                                    enable_auto_commit=False, reconnect_backoff_max_ms=1000,
                                    allow_auto_create_topics=False,
                                    max_poll_records=1, bootstrap_timeout_ms=int(self._timeout_s * 1000))
            _no_topic_auto_creation(self._side)
            self._side.assign([self._tp])
        self._side.seek(self._tp, hi - 1)
        self._call("end probe", self._side.poll, timeout_ms=int(self._timeout_s * 1000), max_records=1)
        return max(hi, int(self._side.highwater(self._tp) or 0))

    def _cached_high_watermark(self) -> int | None:
        if self._consumer is None:
            return None
        hw = self._consumer.highwater(self._tp)
        return None if hw is None else int(hw)

    def committed(self) -> int | None:
        if self.group_id is None:
            return None
        off = self._call("committed", self._c.committed, self._tp)
        return None if off is None or off < 0 else int(off)

    def seek(self, offset: int) -> None:
        if self._consumer is not None:  # else applied when it connects
            self._consumer.seek(self._tp, int(offset))
        self._position = int(offset)

    def poll(self, max_records: int, timeout_s: float) -> RawPoll:
        recs = self._call("poll", self._c.poll, timeout_ms=int(timeout_s * 1000), max_records=max_records,
                          update_offsets=True).get(self._tp)
        if not recs:
            if not self._probe.reachable():
                raise BrokerUnavailable(f"poll on {self.topic}[{self.partition}]: broker unreachable")
            return self._empty_poll()
        self._position = recs[-1].offset + 1
        # The client builds one ConsumerRecord per message; gather its fields in one pass each.
        return RawPoll(values=[r.value for r in recs],
                       offsets=np.fromiter((r.offset for r in recs), np.int64, len(recs)),
                       timestamps_ms=np.fromiter((r.timestamp for r in recs), np.int64, len(recs)))

    def commit(self, next_offset: int) -> None:
        from kafka.structs import OffsetAndMetadata

        self._need_group()
        if not self._probe.reachable(force=True):  # fail fast instead of a request timeout
            raise BrokerUnavailable(f"commit on {self.topic}[{self.partition}]: broker unreachable")
        # Bounded like the look-ups: kafka-python retries a retriable failure (a topic that is
        # gone, say) for the whole request timeout otherwise, and the caller can defer a commit.
        self._call("commit", self._c.commit, {self._tp: OffsetAndMetadata(int(next_offset), "", -1)},
                   timeout_ms=int(self._timeout_s * 1000))

    def close(self) -> None:
        try:
            if self._side is not None:
                self._side.close(autocommit=False)
            if self._consumer is not None:
                self._consumer.close(autocommit=False)
        except Exception:  # closing a reader of a dead broker must not raise
            logging.getLogger(__name__).debug("close failed", exc_info=True)


# -------------------------------------------------------------------- confluent-kafka


class _ConfluentReader(PartitionReader):
    def __init__(self, servers, topic, partition, group_id, backoff_s, probe_s, timeout_s):
        from confluent_kafka import Consumer, TopicPartition

        self.client, self.topic, self.partition, self.group_id = "confluent-kafka", topic, partition, group_id
        self._timeout_s = timeout_s
        self._probe = _Probe(servers, probe_s)
        self._probe_interval_s = probe_s
        self._TP = TopicPartition
        self._down = False
        self._side = None  # lazily created consumer for end_offset(); see there
        self._conf = {
            "bootstrap.servers": ",".join(servers),
            # librdkafka requires a group id; without one, a private id that is never committed.
            "group.id": group_id or f"macrobase-reader-{uuid.uuid4().hex}",
            "enable.auto.commit": False, "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest", "enable.partition.eof": False,
            "allow.auto.create.topics": False,  # librdkafka's default; readers never create topics
            "reconnect.backoff.max.ms": int(backoff_s * 1000),
            "socket.timeout.ms": max(int(timeout_s * 1000), 10),
            "error_cb": self._on_error, "log_level": 3,
        }
        self._c = Consumer(self._conf)
        self._c.assign([TopicPartition(topic, partition)])

    def _on_error(self, err) -> None:
        from confluent_kafka import KafkaError

        if err.code() in (KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE):
            self._down = True

    def _translate(self, e: Exception, what: str) -> Exception:
        from confluent_kafka import KafkaException

        if isinstance(e, (BrokerUnavailable, ValueError)):
            return e
        err = e.args[0] if isinstance(e, KafkaException) and e.args else None
        retriable = err is not None and hasattr(err, "retriable") and (err.retriable() or not err.fatal())
        if retriable or not self._probe.reachable(force=True):
            return BrokerUnavailable(f"{what} on {self.topic}[{self.partition}] failed: broker unavailable ({e})")
        return KafkaClientError(f"{what} on {self.topic}[{self.partition}] failed: {e}")

    def _call(self, what, fn, *args, **kw):
        try:
            return fn(*args, **kw)
        except Exception as e:
            raise self._translate(e, what) from e

    def _watermarks(self) -> tuple[int, int]:
        lo, hi = self._call("watermark offsets", self._c.get_watermark_offsets,
                            self._TP(self.topic, self.partition), timeout=self._timeout_s, cached=False)
        return int(lo), int(hi)

    def beginning_offset(self) -> int:
        return self._watermarks()[0]

    def _cached_high_watermark(self) -> int | None:
        try:
            lo, hi = self._c.get_watermark_offsets(self._TP(self.topic, self.partition), cached=True)
        except Exception:  # no fetch yet
            return None
        return int(hi) if hi is not None and hi >= 0 else None

    def end_offset(self) -> int:
        hi = self._watermarks()[1]
        if hi <= 0:
            return hi
        # Tansu answers ListOffsets(latest) with the last record batch's base offset + 1;
        # a fetch of that batch reports the true high watermark.
        from confluent_kafka import Consumer

        if self._side is None:
            self._side = Consumer({"bootstrap.servers": self._conf["bootstrap.servers"],
                                   "group.id": f"macrobase-end-probe-{uuid.uuid4().hex}",
                                   "enable.auto.commit": False, "log_level": 3, "fetch.wait.max.ms": 10,
                                   "allow.auto.create.topics": False,
                                   "reconnect.backoff.max.ms": self._conf["reconnect.backoff.max.ms"]})
        tp = self._TP(self.topic, self.partition, hi - 1)
        self._side.assign([tp])
        self._call("end probe", self._side.consume, num_messages=1, timeout=self._timeout_s)
        cached = self._side.get_watermark_offsets(self._TP(self.topic, self.partition), cached=True)
        return max(hi, int(cached[1]) if cached else hi)

    def committed(self) -> int | None:
        if self.group_id is None:
            return None
        (tp,) = self._call("committed", self._c.committed, [self._TP(self.topic, self.partition)],
                           timeout=self._timeout_s)
        if tp.error is not None:
            raise self._translate(KafkaClientError(str(tp.error)), "committed")
        return None if tp.offset < 0 else int(tp.offset)

    def seek(self, offset: int) -> None:
        # Re-assigning with an offset works whether or not the assignment is active yet.
        self._c.assign([self._TP(self.topic, self.partition, int(offset))])
        self._position = int(offset)

    def poll(self, max_records: int, timeout_s: float) -> RawPoll:
        msgs = self._call("poll", self._c.consume, num_messages=max_records, timeout=timeout_s)
        if not msgs:
            if self._down or not self._probe.reachable():
                self._down = False  # re-armed by the next transport error
                if not self._probe.reachable(force=True):
                    raise BrokerUnavailable(f"poll on {self.topic}[{self.partition}]: broker unreachable")
            return self._empty_poll()
        self._down = False
        # One comprehension per field: this runs once per message, holding the GIL.
        errors = [m for m in msgs if m.error() is not None]
        if errors:
            fatal = [m.error() for m in errors if m.error().fatal()]
            if fatal:
                raise KafkaClientError(f"poll on {self.topic}[{self.partition}]: {fatal[0]}")
            msgs = [m for m in msgs if m.error() is None]  # transient: the client retries
        values = [m.value() for m in msgs]
        offsets = [m.offset() for m in msgs]
        stamps = [m.timestamp()[1] for m in msgs]
        if offsets:
            self._position = offsets[-1] + 1
        return RawPoll(values=values, offsets=np.asarray(offsets, np.int64),
                       timestamps_ms=np.asarray(stamps, np.int64))

    def commit(self, next_offset: int) -> None:
        self._need_group()
        # A synchronous commit waits for the group coordinator without a time limit
        # (about 45 s seen with the broker down): check that the broker answers first.
        if not self._probe.reachable(force=True):
            raise BrokerUnavailable(f"commit on {self.topic}[{self.partition}]: broker unreachable")
        res = self._call("commit", self._c.commit,
                         offsets=[self._TP(self.topic, self.partition, int(next_offset))], asynchronous=False)
        for tp in res or ():
            if tp.error is not None:
                raise self._translate(KafkaClientError(str(tp.error)), "commit")

    def close(self) -> None:
        try:
            if self._side is not None:
                self._side.close()
            self._c.close()
        except Exception:
            logging.getLogger(__name__).debug("close failed", exc_info=True)


# ------------------------------------------------------------------------ topics, produce


def list_partitions(client: str, bootstrap_servers: Sequence[str], topic: str,
                    timeout_s: float = 10.0) -> list[int]:
    """Partition ids of ``topic`` from fresh metadata; [] if the topic does not exist."""
    _check_client(client)
    servers = list(bootstrap_servers)
    if client == "confluent-kafka":
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": ",".join(servers), "log_level": 3})
        try:
            # All topics: naming one would let the broker auto-create it.
            md = admin.list_topics(timeout=timeout_s)
        except KafkaException as e:
            raise BrokerUnavailable(f"cannot list partitions of {topic!r}: {e}") from e
        t = md.topics.get(topic)
        if t is None or t.error is not None:
            return []
        return sorted(t.partitions)
    from kafka import KafkaAdminClient
    from kafka import errors as ke

    try:
        admin = KafkaAdminClient(bootstrap_servers=servers, request_timeout_ms=int(timeout_s * 1000))
    except Exception as e:
        raise BrokerUnavailable(f"cannot list partitions of {topic!r}: {e!r}") from e
    try:
        desc = admin.describe_topics([topic])
    except ke.UnknownTopicOrPartitionError:
        return []
    except Exception as e:
        raise BrokerUnavailable(f"cannot list partitions of {topic!r}: {e!r}") from e
    finally:
        admin.close()
    for d in desc:
        if d.get("name", d.get("topic")) == topic and not d.get("error_code"):
            return sorted(p.get("partition_index", p.get("partition")) for p in d.get("partitions", []))
    return []


def create_topic(bootstrap_servers: Sequence[str], topic: str, partitions: int = 1,
                 exist_ok: bool = True, timeout_s: float = 10.0) -> None:
    """Create ``topic`` with ``partitions`` partitions (admin request via confluent-kafka)."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    if partitions < 1:
        raise ValueError(f"partitions must be >= 1, got {partitions}")
    admin = AdminClient({"bootstrap.servers": ",".join(bootstrap_servers), "log_level": 3})
    fut = admin.create_topics([NewTopic(topic, partitions)], operation_timeout=timeout_s,
                              request_timeout=timeout_s)[topic]
    try:
        fut.result(timeout=timeout_s)
    except KafkaException as e:
        err = e.args[0]
        if exist_ok and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
            return
        if err.code() in (KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT):
            raise BrokerUnavailable(f"cannot create topic {topic!r}: {err}") from e
        raise KafkaClientError(f"cannot create topic {topic!r}: {err}") from e
    except Exception as e:  # concurrent.futures timeout
        raise BrokerUnavailable(f"cannot create topic {topic!r}: {e!r}") from e


def _to_bytes(x: Any) -> bytes | None:
    if x is None:
        return None  # a tombstone
    if isinstance(x, (bytes, bytearray, memoryview)):
        return bytes(x)
    if isinstance(x, str):
        return x.encode("utf-8")
    return json.dumps(x, separators=(",", ":"), default=str).encode("utf-8")


MAX_MESSAGE_BYTES = 64 << 20


def produce_json(
    bootstrap_servers: Sequence[str],
    topic: str,
    rows_or_bytes: Iterable[Any],
    partition: int | None = None,
    client: str = "confluent-kafka",
    timestamps_ms: Sequence[int] | None = None,
    timeout_s: float = 60.0,
) -> int:
    """Produce rows (dicts, encoded as compact JSON), raw bytes/str values or None
    (tombstones); returns the
    number delivered. Waits for delivery; raises :class:`KafkaClientError` on failures.

    ``partition=None`` lets the client's partitioner spread messages (no key: round
    robin / sticky). confluent-kafka is about 40x faster than kafka-python here.
    """
    _check_client(client)
    servers = list(bootstrap_servers)
    values = (_to_bytes(x) for x in rows_or_bytes)
    if client == "confluent-kafka":
        return _produce_confluent(servers, topic, values, partition, timestamps_ms, timeout_s)
    return _produce_kafka_python(servers, topic, values, partition, timestamps_ms, timeout_s)


def _produce_confluent(servers, topic, values, partition, timestamps_ms, timeout_s) -> int:
    from confluent_kafka import Producer

    # Messages up to 64 MB: the clients' 1 MB default is a broker setting, not a property of events.
    p = Producer({"bootstrap.servers": ",".join(servers), "linger.ms": 5, "batch.num.messages": 10000,
                  "message.max.bytes": MAX_MESSAGE_BYTES,
                  "queue.buffering.max.messages": 500000, "message.timeout.ms": int(timeout_s * 1000),
                  "log_level": 3})
    errors: list[str] = []
    delivered = 0

    def on_delivery(err, msg):
        nonlocal delivered
        if err is not None:
            errors.append(str(err))
        else:
            delivered += 1

    kw: dict[str, Any] = {"on_delivery": on_delivery}
    if partition is not None:
        kw["partition"] = partition
    sent = 0
    for i, v in enumerate(values):
        if timestamps_ms is not None:
            kw["timestamp"] = int(timestamps_ms[i])
        while True:
            try:
                p.produce(topic, v, **kw)
                break
            except BufferError:  # local queue full: let deliveries drain
                p.poll(0.05)
        sent += 1
        if sent % 10000 == 0:
            p.poll(0)
    left = p.flush(timeout_s)
    if left or errors or delivered != sent:
        raise KafkaClientError(f"produced {delivered} of {sent} messages to {topic!r}; "
                               f"{left} undelivered; errors: {sorted(set(errors))[:3]}")
    return delivered


def _produce_kafka_python(servers, topic, values, partition, timestamps_ms, timeout_s) -> int:
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=servers, linger_ms=5, batch_size=1 << 20,
                      max_block_ms=int(timeout_s * 1000), max_request_size=MAX_MESSAGE_BYTES)
    futures = []
    try:
        for i, v in enumerate(values):
            ts = int(timestamps_ms[i]) if timestamps_ms is not None else None
            futures.append(p.send(topic, value=v, partition=partition, timestamp_ms=ts))
        p.flush(timeout_s)
        failed = [f for f in futures if f.failed() or not f.is_done]
    finally:
        p.close(timeout=5)
    if failed:
        raise KafkaClientError(f"produced {len(futures) - len(failed)} of {len(futures)} messages to "
                               f"{topic!r}; first error: {failed[0].exception!r}")
    return len(futures)
