"""The result store's writer: :class:`SqliteSink`, and :func:`make_sink` for any configured sink.

``SqliteSink`` stores a pipeline's result documents together with its dead letters, Kafka
offsets and explainer checkpoint, all in the *same* transaction as the snapshot: results,
the offsets they cover and the state that produced them commit together or not at all
(at-least-once delivery, DESIGN "Delivery and failure"). Tables: :mod:`macrobase.store.schema`.
The document sinks of ``connectors.sinks`` (JSON lines, Kafka) carry documents only
(``stores_state`` is False): a pipeline using them keeps no resumable state.

Every sink takes the streaming result document of DESIGN.md ("Explanation semantics"):
``{pipeline, emitted_at, total, outliers, dropped, thresholds, explanations,
events_per_second, dead_letters}``, with infinite ratios already written as ``"inf"``.

>>> import tempfile, os
>>> doc = {"pipeline": "t", "emitted_at": "2026-01-01T00:00:00Z", "total": 10, "outliers": 1,
...        "dropped": 0, "thresholds": {"x": 3.5}, "events_per_second": 5.0, "dead_letters": 0,
...        "explanations": [{"attributes": {"a": "1"}, "support": 1.0, "risk_ratio": "inf",
...                          "outlier_count": 1, "count": 1}]}
>>> with SqliteSink(os.path.join(tempfile.mkdtemp(), "r.db")) as sink:
...     snapshot_id = sink.write(doc, offsets={("events", 0): 10}, checkpoint=b"state")
"""

from __future__ import annotations

import math
import os
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from typing import Any

from connectors.sinks import JsonlSink, KafkaSink, ResultSink, SinkError
from macrobase.store.documents import RATIO_METRICS, describe_attributes
from macrobase.store.jsonutil import canonical_attributes, dumps
from macrobase.store.schema import BUSY_TIMEOUT_MS, PIPELINE_STATES, RAW_LIMIT, STATUS_FIELDS, migrate
from macrobase.store.timeutil import iso_utc

__all__ = ["SqliteSink", "make_sink"]


def _field(item: Any, name: str, default: Any = None) -> Any:
    if isinstance(item, Mapping):
        return item.get(name, default)
    return getattr(item, name, default)


def _tp(key: Any) -> tuple[str, int]:
    """(topic, partition) from a tuple, kafka-python TopicPartition or confluent TopicPartition."""
    if isinstance(key, tuple) and len(key) == 2:
        return str(key[0]), int(key[1])
    return str(key.topic), int(key.partition)


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
            migrate(self._conn, self.path)
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
        body = dumps(document)
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
                     dumps(document.get("thresholds") or {}), body),
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
    # For the HTTP API (/api/v1/pipelines, /metrics): one row per pipeline, replaced on
    # every call. Kept out of ``write``'s transaction on purpose: status is advisory and is
    # written more often than results (a crashed or degraded pipeline emits no documents).

    def write_status(self, status: Mapping[str, Any]) -> None:
        """Update the status row of ``status["pipeline"]``.

        Fields (all but ``pipeline`` and ``state`` optional): ``pipeline``, ``state`` (one of
        :data:`~macrobase.store.schema.PIPELINE_STATES`), ``updated_at`` (default now), ``events``, ``outliers``,
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
            conn.execute(
                f"INSERT INTO pipeline_status ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
                f" ON CONFLICT (pipeline) DO UPDATE SET {updates}",
                [row[c] for c in columns],
            )


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


def make_sink(sink_config: Any) -> ResultSink:
    """Build the sink a config describes (``macrobase.config`` sink model or a plain dict).

    ``sqlite`` is this store's :class:`SqliteSink`; ``jsonl`` and ``kafka`` are
    ``connectors.sinks``' document sinks, writing this store's strict JSON (:func:`dumps`).

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
        return JsonlSink(_field(sink_config, "path"), encode=dumps)
    if kind == "kafka":
        return KafkaSink(_field(sink_config, "bootstrap_servers"), _field(sink_config, "topic"), encode=dumps)
    raise ValueError(f"unknown sink type {kind!r}; expected sqlite, jsonl or kafka")
