"""Result sinks: where a pipeline's result documents (and, for SQLite, its state) go.

Every sink takes the streaming result document of DESIGN.md ("Explanation semantics"):
``{pipeline, emitted_at, total, outliers, dropped, thresholds, explanations,
events_per_second, dead_letters}``, with infinite ratios already written as ``"inf"``.

``SqliteSink`` is the one that also stores dead letters, Kafka offsets and the explainer
checkpoint, all in the *same* transaction as the snapshot: results, the offsets they cover
and the state that produced them commit together or not at all (at-least-once delivery,
DESIGN "Delivery and failure"). The JSON-lines and Kafka sinks only carry documents
(``stores_state`` is False): a pipeline using them keeps no resumable state.

>>> import tempfile, os
>>> doc = {"pipeline": "t", "emitted_at": "2026-01-01T00:00:00Z", "total": 10, "outliers": 1,
...        "dropped": 0, "thresholds": {"x": 3.5}, "events_per_second": 5.0, "dead_letters": 0,
...        "explanations": [{"attributes": {"a": "1"}, "support": 1.0, "risk_ratio": "inf",
...                          "outlier_count": 1, "count": 1}]}
>>> with SqliteSink(os.path.join(tempfile.mkdtemp(), "r.db")) as sink:
...     snapshot_id = sink.write(doc, offsets={("events", 0): 10}, checkpoint=b"state")

SQLite schema (query it directly; ``macrobase.store.ResultStore`` is the read API)::

    snapshots(id, pipeline, emitted_at, total, outliers, dropped, dead_letters,
              events_per_second, thresholds JSON, document JSON)
    explanations(snapshot_id, rank, pipeline, emitted_at, attributes JSON, description,
                 item_count, support, ratio_metric, ratio, outlier_count, count)
    dead_letters(id, pipeline, received_at, reason, detail, raw, "partition", "offset")
    offsets(pipeline, topic, "partition", next_offset, updated_at)
    checkpoints(pipeline, state BLOB, updated_at)

Conventions: ``emitted_at``/``received_at``/``updated_at`` are ISO-8601 UTC text of fixed
width (``2026-01-01T00:00:00.000000Z``) so text order is time order. ``attributes`` is
canonical JSON (sorted keys, no spaces) so it can be compared with ``=``. An infinite
ratio is stored as IEEE +Infinity in the REAL column, not NULL: ``ORDER BY ratio DESC``
puts it first and ``ratio >= 3`` includes it (the sqlite3 shell prints it as ``Inf``).
``rank`` starts at 1 in the document's order (outlier count, then ratio).
"""

from __future__ import annotations

import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

__all__ = [
    "ResultSink",
    "SqliteSink",
    "JsonlSink",
    "KafkaSink",
    "SinkError",
    "make_sink",
    "RATIO_METRICS",
    "SCHEMA_VERSION",
    "canonical_attributes",
    "describe_attributes",
    "explanation_ratio",
    "iso_utc",
    "parse_iso",
    "PIPELINE_STATES",
    "STATUS_FIELDS",
]

RATIO_METRICS = ("risk_ratio", "global_ratio", "prevalence_ratio")


def explanation_ratio(explanation: Mapping[str, Any]) -> float | None:
    """The ratio of a result document's explanation, whichever metric it carries ("inf" text included).

    >>> explanation_ratio({"attributes": {}, "global_ratio": "inf"}), explanation_ratio({})
    (inf, None)
    """
    for metric in RATIO_METRICS:
        if metric in explanation:
            try:
                return float(explanation[metric])
            except (TypeError, ValueError):
                return None
    return None
SCHEMA_VERSION = 1
RAW_LIMIT = 64 * 1024  # bytes of a dead letter's raw message kept; larger ones are cut
BUSY_TIMEOUT_MS = 10_000


class SinkError(RuntimeError):
    """A result could not be stored or delivered."""


# --------------------------------------------------------------------------- shared helpers


def iso_utc(value: Any = None) -> str:
    """Fixed-width ISO-8601 UTC text (``...T..:..:..ffffffZ``) for a datetime, ISO string or epoch seconds.

    Naive datetimes and strings without an offset are taken as UTC.

    >>> iso_utc("2026-01-01T01:00:00+01:00")
    '2026-01-01T00:00:00.000000Z'
    """
    if value is None:
        moment = datetime.now(timezone.utc)
    elif isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        moment = datetime.fromisoformat(text)
    else:
        raise TypeError(f"expected a datetime, ISO-8601 string or epoch seconds, got {type(value).__name__}")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: Any) -> datetime | None:
    """ISO-8601 text (``...Z`` accepted) as an aware UTC datetime; None for None/garbage.

    >>> parse_iso("2026-01-01T00:00:00Z").isoformat(), parse_iso("soon")
    ('2026-01-01T00:00:00+00:00', None)
    """
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def canonical_attributes(attributes: Mapping[str, Any]) -> str:
    """The key an explanation is stored and looked up by: sorted, compact JSON.

    >>> canonical_attributes({"b": "2", "a": 1})
    '{"a":1,"b":"2"}'
    """
    return json.dumps(dict(attributes), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def describe_attributes(attributes: Mapping[str, Any]) -> str:
    """Human form in the document's attribute order: ``device_model=M101 AND firmware=0.4``."""
    return " AND ".join(f"{key}={value}" for key, value in attributes.items())


def strict_json(value: Any) -> Any:
    """``value`` as strict JSON data: inf as ``"inf"``/``"-inf"``, NaN as None, NumPy
    scalars as Python numbers, datetimes as ISO-8601 UTC (json.dumps would write Infinity).

    >>> strict_json({"r": float("inf"), "x": [float("nan"), 1]})
    {'r': 'inf', 'x': [None, 1]}
    """
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    if isinstance(value, datetime):
        return iso_utc(value)
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # NumPy scalar
        return strict_json(value.item())
    return value


def _dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(strict_json(document), allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def _field(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _tp(key: Any) -> tuple[str, int]:
    """(topic, partition) from a tuple, kafka-python TopicPartition or confluent TopicPartition."""
    if isinstance(key, tuple) and len(key) == 2:
        return str(key[0]), int(key[1])
    return str(key.topic), int(key.partition)


class ResultSink:
    """Base of all sinks: ``write`` one result document, ``close``; usable as a context manager."""

    #: True when ``write`` persists offsets and checkpoints atomically with the document.
    stores_state = False

    def write(
        self,
        document: Mapping[str, Any],
        dead_letters: Iterable[Any] = (),
        offsets: Mapping[Any, int] | None = None,
        checkpoint: bytes | None = None,
    ) -> None:
        """Store one result document (and, where supported, dead letters, offsets, checkpoint)."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release resources; idempotent."""

    def __enter__(self) -> "ResultSink":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- SQLite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    emitted_at TEXT NOT NULL,
    total INTEGER,
    outliers INTEGER,
    dropped INTEGER,
    dead_letters INTEGER,
    events_per_second REAL,
    thresholds TEXT,
    document TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS snapshots_by_time ON snapshots (pipeline, emitted_at, id);
CREATE TABLE IF NOT EXISTS explanations (
    snapshot_id INTEGER NOT NULL REFERENCES snapshots (id) ON DELETE CASCADE,
    rank INTEGER NOT NULL,
    pipeline TEXT NOT NULL,
    emitted_at TEXT NOT NULL,
    attributes TEXT NOT NULL,
    description TEXT NOT NULL,
    item_count INTEGER NOT NULL,
    support REAL,
    ratio_metric TEXT,
    ratio REAL,
    outlier_count REAL,
    count REAL,
    PRIMARY KEY (snapshot_id, rank)
);
CREATE INDEX IF NOT EXISTS explanations_series ON explanations (pipeline, attributes, emitted_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    id INTEGER PRIMARY KEY,
    pipeline TEXT NOT NULL,
    received_at TEXT NOT NULL,
    reason TEXT,
    detail TEXT,
    raw BLOB,
    "partition" INTEGER,
    "offset" INTEGER
);
CREATE INDEX IF NOT EXISTS dead_letters_by_pipeline ON dead_letters (pipeline, id);
CREATE TABLE IF NOT EXISTS offsets (
    pipeline TEXT NOT NULL,
    topic TEXT NOT NULL,
    "partition" INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (pipeline, topic, "partition")
);
CREATE TABLE IF NOT EXISTS checkpoints (
    pipeline TEXT PRIMARY KEY,
    state BLOB NOT NULL,
    updated_at TEXT NOT NULL
);
"""


def _connect_writer(path: str) -> sqlite3.Connection:
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so the write lock is taken
    # up front and a concurrent writer waits (busy_timeout) instead of failing mid-way.
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        conn.close()
        raise SinkError(f"{path}: could not switch SQLite to WAL mode (got {mode!r})")
    # FULL: a commit is on disk before write() returns, because Kafka offsets are
    # committed right after it (at-least-once). One fsync per emit interval is cheap.
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def _init_schema(conn: sqlite3.Connection, path: str) -> None:
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SinkError(f"{path}: store schema version {version} is newer than this program's ({SCHEMA_VERSION})")
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


class SqliteSink(ResultSink):
    """Snapshots, explanations, dead letters, offsets and checkpoints in one SQLite file (WAL).

    One writer process; any number of reader processes (``macrobase.store.ResultStore``).
    Several sinks (threads) in the writer process may share the file: writes serialise on
    SQLite's lock with a busy timeout.

    Parameters
    ----------
    path : str
        Database file; created with its directory if missing.
    keep_dead_letters : int, default 1000
        Dead letters kept per pipeline (older ones are deleted in the same transaction).
    keep_snapshots : int or None, default None
        Snapshots kept per pipeline (with their explanations); None keeps all.
    """

    stores_state = True

    def __init__(self, path: str | os.PathLike, keep_dead_letters: int = 1000, keep_snapshots: int | None = None):
        if int(keep_dead_letters) < 0:
            raise ValueError(f"keep_dead_letters must be >= 0, got {keep_dead_letters}")
        if keep_snapshots is not None and int(keep_snapshots) < 1:
            raise ValueError(f"keep_snapshots must be >= 1 or None, got {keep_snapshots}")
        self.path = os.fspath(path)
        self.keep_dead_letters = int(keep_dead_letters)
        self.keep_snapshots = None if keep_snapshots is None else int(keep_snapshots)
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = _connect_writer(self.path)
        try:
            _init_schema(self._conn, self.path)
        except BaseException:  # a locked or full store: do not leave the file open
            self._conn.close()
            raise

    def write(
        self,
        document: Mapping[str, Any],
        dead_letters: Iterable[Any] = (),
        offsets: Mapping[Any, int] | None = None,
        checkpoint: bytes | None = None,
    ) -> int:
        """Store a document with its dead letters, offsets and checkpoint atomically; return the snapshot id.

        ``dead_letters``: mappings or objects with ``reason``, ``detail``, ``raw`` (bytes or
        str), ``partition``, ``offset`` and optionally ``received_at`` (defaults to now).
        ``offsets``: ``{(topic, partition): next_offset}`` (TopicPartition keys accepted).
        ``checkpoint``: the explainer's serialised state.
        """
        pipeline = document.get("pipeline")
        if not isinstance(pipeline, str) or not pipeline:
            raise ValueError("the result document has no 'pipeline' name")
        emitted_at = iso_utc(document.get("emitted_at"))
        body = _dumps(document)
        explanations = list(document.get("explanations") or ())
        now = iso_utc()
        rows = []
        for rank, item in enumerate(explanations, 1):
            attributes = item.get("attributes") or {}
            metric = next((m for m in RATIO_METRICS if m in item), None)
            rows.append((
                rank, pipeline, emitted_at, canonical_attributes(attributes), describe_attributes(attributes),
                len(attributes), item.get("support"), metric, (None if item.get(metric) is None else float(item.get(metric))) if metric else None,
                item.get("outlier_count"), item.get("count"),
            ))
        letters = [_dead_letter_row(pipeline, letter, now) for letter in dead_letters] if self.keep_dead_letters else []
        offset_rows = [(pipeline, *_tp(key), int(value), now) for key, value in (offsets or {}).items()]
        if checkpoint is not None and not isinstance(checkpoint, (bytes, bytearray, memoryview)):
            raise TypeError(f"checkpoint must be bytes, got {type(checkpoint).__name__}")

        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                snapshot_id = conn.execute(
                    "INSERT INTO snapshots (pipeline, emitted_at, total, outliers, dropped, dead_letters,"
                    " events_per_second, thresholds, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (pipeline, emitted_at, document.get("total"), document.get("outliers"), document.get("dropped"),
                     document.get("dead_letters"), document.get("events_per_second"),
                     _dumps(document.get("thresholds") or {}), body),
                ).lastrowid
                conn.executemany(
                    "INSERT INTO explanations (snapshot_id, rank, pipeline, emitted_at, attributes, description,"
                    " item_count, support, ratio_metric, ratio, outlier_count, count)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [(snapshot_id, *row) for row in rows],
                )
                if letters:
                    conn.executemany(
                        'INSERT INTO dead_letters (pipeline, received_at, reason, detail, raw, "partition", "offset")'
                        " VALUES (?, ?, ?, ?, ?, ?, ?)",
                        letters,
                    )
                    self._trim(conn, "dead_letters", pipeline, self.keep_dead_letters)
                if offset_rows:
                    conn.executemany(
                        'INSERT INTO offsets (pipeline, topic, "partition", next_offset, updated_at)'
                        " VALUES (?, ?, ?, ?, ?) ON CONFLICT (pipeline, topic, \"partition\")"
                        " DO UPDATE SET next_offset = excluded.next_offset, updated_at = excluded.updated_at",
                        offset_rows,
                    )
                if checkpoint is not None:
                    conn.execute(
                        "INSERT INTO checkpoints (pipeline, state, updated_at) VALUES (?, ?, ?) ON CONFLICT (pipeline)"
                        " DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at",
                        (pipeline, bytes(checkpoint), now),
                    )
                if self.keep_snapshots is not None:
                    self._trim(conn, "snapshots", pipeline, self.keep_snapshots)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # a failed BEGIN or COMMIT may have ended it already
                    conn.execute("ROLLBACK")
                raise
        return int(snapshot_id)

    @staticmethod
    def _trim(conn: sqlite3.Connection, table: str, pipeline: str, keep: int) -> None:
        # Delete everything older than the keep-th newest row; explanations follow
        # snapshots through ON DELETE CASCADE.
        conn.execute(
            f"DELETE FROM {table} WHERE pipeline = ? AND id < "
            f"(SELECT id FROM {table} WHERE pipeline = ? ORDER BY id DESC LIMIT 1 OFFSET ?)",
            (pipeline, pipeline, keep - 1),
        )

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise SinkError(f"{self.path}: sink is closed")
        return self._conn

    def close(self) -> None:
        """Close the connection (SQLite checkpoints the WAL into the main file)."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


    # ------------------------------------------------------------------ pipeline status
    # Added for the HTTP API (/api/v1/pipelines, /metrics): one row per pipeline, replaced on
    # every call. Kept out of ``write``'s transaction on purpose: status is advisory and is
    # written more often than results (a crashed or degraded pipeline emits no documents).

    def write_status(self, status: Mapping[str, Any]) -> None:
        """Update the status row of ``status["pipeline"]`` (created on first use).

        Fields (all but ``pipeline`` and ``state`` optional): ``pipeline``, ``state`` (one of
        :data:`PIPELINE_STATES`), ``updated_at`` (default now), ``events``, ``outliers``,
        ``events_per_second``, ``consumer_lag`` (int or None), ``dead_letters``,
        ``last_error`` (str or None), ``emit_latency_ms`` (float or None), ``restarts``.
        A field given is stored (None clears it); a field left out keeps its stored value,
        so a supervisor can report ``{"state": "restarting", "restarts": 2}`` without
        erasing the counters. Unknown keys are a ValueError (a misspelt field would
        silently read as missing).

        >>> import tempfile, os
        >>> with SqliteSink(os.path.join(tempfile.mkdtemp(), "s.db")) as sink:
        ...     sink.write_status({"pipeline": "t", "state": "running", "events": 10})
        """
        row = dict(zip(STATUS_FIELDS, _status_row(status)))
        columns = [f for f in STATUS_FIELDS if f in ("pipeline", "state", "updated_at") or f in status]
        updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c != "pipeline")
        with self._lock:
            conn = self._connection()
            if not getattr(self, "_status_ready", False):
                conn.execute(_STATUS_SCHEMA)
                self._status_ready = True
            conn.execute(
                f"INSERT INTO pipeline_status ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                f" ON CONFLICT (pipeline) DO UPDATE SET {updates}",
                [row[c] for c in columns],
            )


#: The states a pipeline reports through ``SqliteSink.write_status``.
PIPELINE_STATES = ("starting", "running", "degraded", "stopped", "crashed", "restarting")
#: Columns of ``pipeline_status``, in order; the status dict uses the same keys.
STATUS_FIELDS = ("pipeline", "state", "updated_at", "events", "outliers", "events_per_second",
                 "consumer_lag", "dead_letters", "last_error", "emit_latency_ms", "restarts")
_STATUS_SCHEMA = """
CREATE TABLE IF NOT EXISTS pipeline_status (
    pipeline TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    events INTEGER,
    outliers INTEGER,
    events_per_second REAL,
    consumer_lag INTEGER,
    dead_letters INTEGER,
    last_error TEXT,
    emit_latency_ms REAL,
    restarts INTEGER
)"""


def _status_row(status: Mapping[str, Any]) -> tuple:
    unknown = sorted(set(status) - set(STATUS_FIELDS))
    if unknown:
        raise ValueError(f"status: unknown field(s) {', '.join(unknown)}; expected {', '.join(STATUS_FIELDS)}")
    pipeline = status.get("pipeline")
    if not isinstance(pipeline, str) or not pipeline:
        raise ValueError("status: 'pipeline' must be a non-empty string")
    state = status.get("state")
    if state not in PIPELINE_STATES:
        raise ValueError(f"status: 'state' must be one of {', '.join(PIPELINE_STATES)}, got {state!r}")

    def number(name: str, kind: type) -> Any:
        value = status.get(name)
        if value is None:
            return None
        if hasattr(value, "item"):  # numpy scalar
            value = value.item()
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"status: {name!r} must be a number or None, got {value!r}")
        value = kind(value)
        if isinstance(value, float) and not math.isfinite(value):
            return None  # strict JSON downstream: an unknown rate is "no value", not NaN
        return value

    error = status.get("last_error")
    return (
        pipeline, state, iso_utc(status.get("updated_at")),
        number("events", int), number("outliers", int), number("events_per_second", float),
        number("consumer_lag", int), number("dead_letters", int),
        None if error is None else str(error)[:RAW_LIMIT],
        number("emit_latency_ms", float), number("restarts", int),
    )

def _dead_letter_row(pipeline: str, letter: Any, now: str) -> tuple:
    raw = _field(letter, "raw")
    if isinstance(raw, (bytearray, memoryview)):
        raw = bytes(raw)
    if isinstance(raw, bytes):
        raw = raw[:RAW_LIMIT]
    elif raw is not None:
        raw = str(raw)[:RAW_LIMIT]
    received = _field(letter, "received_at")
    partition = _field(letter, "partition")
    offset = _field(letter, "offset")
    detail = _field(letter, "detail")
    return (
        pipeline,
        iso_utc(received) if received is not None else now,
        str(_field(letter, "reason", "") or ""),
        None if detail is None else str(detail),
        raw,
        None if partition is None else int(partition),
        None if offset is None else int(offset),
    )


# --------------------------------------------------------------------------- JSON lines


class JsonlSink(ResultSink):
    """Append each result document as one JSON line, flushed after every write."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, document, dead_letters=(), offsets=None, checkpoint=None) -> None:
        """Append ``document``; dead letters, offsets and checkpoint are not stored by this sink."""
        line = _dumps(document) + "\n"
        with self._lock:
            if self._file is None:
                raise SinkError(f"{self.path}: sink is closed")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# --------------------------------------------------------------------------- Kafka


class KafkaSink(ResultSink):
    """Produce each result document as JSON to a Kafka topic (key: pipeline name), with confluent-kafka.

    ``write`` waits until the broker acknowledged the document (up to ``timeout`` seconds)
    and raises SinkError otherwise, so offsets are never committed for undelivered results.
    """

    def __init__(self, bootstrap_servers: str | Iterable[str], topic: str, timeout: float = 10.0,
                 producer_config: Mapping[str, Any] | None = None):
        from confluent_kafka import Producer  # imported here: only this sink needs librdkafka

        servers = bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)
        self.bootstrap_servers = servers
        self.topic = topic
        self.timeout = float(timeout)
        config = {"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 0}
        config.update(producer_config or {})
        self._producer = Producer(config)
        self._errors: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def write(self, document, dead_letters=(), offsets=None, checkpoint=None) -> None:
        """Produce ``document`` and wait for its acknowledgement."""
        if self._producer is None:
            raise SinkError(f"kafka sink to {self.topic!r} is closed")
        from confluent_kafka import KafkaException

        key = str(document.get("pipeline", "")).encode()
        try:
            self._producer.produce(self.topic, value=_dumps(document).encode(), key=key,
                                   on_delivery=self._delivered)
            deadline = time.monotonic() + self.timeout
            while len(self._producer) and time.monotonic() < deadline:
                self._producer.flush(max(0.0, deadline - time.monotonic()))
        except (KafkaException, BufferError, SystemError) as exc:
            # SystemError: seen from flush() in an SDK worker while the broker was away.
            raise SinkError(f"kafka sink to {self.topic!r}: {type(exc).__name__}: {exc}") from exc
        if self._errors:
            errors, self._errors = self._errors, []
            raise SinkError(f"kafka sink to {self.topic!r}: delivery failed: {errors[0]}")
        if len(self._producer):
            raise SinkError(f"kafka sink to {self.topic!r}: not acknowledged within {self.timeout:g}s")

    def close(self) -> None:
        """Flush outstanding messages and drop the producer."""
        if self._producer is not None:
            self._producer.flush(self.timeout)
            self._producer = None


# --------------------------------------------------------------------------- factory


def make_sink(sink_config: Any) -> ResultSink:
    """Build the sink a config describes (``macrobase.config`` sink model or a plain dict).

    >>> import tempfile, os
    >>> make_sink({"type": "jsonl", "path": os.path.join(tempfile.mkdtemp(), "r.jsonl")}).close()
    """
    kind = _field(sink_config, "type", "sqlite")
    if kind == "sqlite":
        return SqliteSink(
            _field(sink_config, "path", "macrobase.db"),
            keep_dead_letters=_field(sink_config, "keep_dead_letters", 1000),
            keep_snapshots=_field(sink_config, "keep_snapshots", None),
        )
    if kind == "jsonl":
        return JsonlSink(_field(sink_config, "path"))
    if kind == "kafka":
        return KafkaSink(_field(sink_config, "bootstrap_servers"), _field(sink_config, "topic"))
    raise ValueError(f"unknown sink type {kind!r}; expected sqlite, jsonl or kafka")
