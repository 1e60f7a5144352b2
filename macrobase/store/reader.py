"""Read side of the SQLite result store, for the HTTP API and the dashboard.

Opens the file read-only (``mode=ro`` URI), so it can never disturb the pipeline that
writes it (:class:`macrobase.store.SqliteSink`) and works from any number of processes while
that writer runs: SQLite's WAL mode gives every query a consistent snapshot. A store whose
file or tables do not exist yet (pipeline not started) simply reads as empty.

>>> import tempfile, os
>>> from macrobase.store import SqliteSink
>>> path = os.path.join(tempfile.mkdtemp(), "r.db")
>>> with SqliteSink(path) as sink:
...     _ = sink.write({"pipeline": "t", "emitted_at": "2026-01-01T00:00:00Z", "total": 3,
...                     "outliers": 1, "dropped": 0, "thresholds": {}, "explanations": [],
...                     "events_per_second": 1.0, "dead_letters": 0})
>>> store = ResultStore(path)
>>> store.pipelines(), store.latest("t")["total"]
(['t'], 3)
>>> store.close()
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, NamedTuple

from macrobase.store.jsonutil import canonical_attributes
from macrobase.store.schema import BUSY_TIMEOUT_MS, STATUS_FIELDS
from macrobase.store.timeutil import iso_utc, parse_iso

__all__ = ["ResultStore", "SeriesPoint"]


class SeriesPoint(NamedTuple):
    """One explanation at one emit: when, its ratio (inf allowed) and its support."""

    emitted_at: str
    ratio: float | None
    support: float | None


def _limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
    return limit


def _text(raw: Any) -> Any:
    # Dead letters keep the raw message bytes; readers get JSON-able text (invalid
    # UTF-8 shown as \\x.. escapes rather than lost).
    if isinstance(raw, bytes):
        return raw.decode("utf-8", errors="backslashreplace")
    return raw


class ResultStore:
    """Read-only queries over a result SQLite file; thread-safe (one connection per thread).

    Parameters
    ----------
    path : str
        The file a ``SqliteSink`` writes (``sink.path`` in the configuration).
    stale_after_s : float, default 30
        A live pipeline's status older than this reads as ``degraded`` (see :meth:`status`).
    """

    def __init__(self, path: str | os.PathLike, stale_after_s: float = 30.0):
        self.path = os.fspath(path)
        self.stale_after_s = float(stale_after_s)
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ connections

    def _connection(self) -> sqlite3.Connection | None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if not os.path.exists(self.path):
            return None
        uri = Path(self.path).resolve().as_uri() + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        self._local.conn = conn
        with self._lock:
            self._all.append(conn)
        return conn

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self._connection()
        if conn is None:
            return []
        try:
            return conn.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):  # file created, schema not yet committed
                return []
            raise

    def close(self) -> None:
        """Close every connection this store opened."""
        with self._lock:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()

    # ------------------------------------------------------------------ queries

    def pipelines(self) -> list[str]:
        """Names of every pipeline with a snapshot, dead letter or checkpoint, sorted."""
        rows = self._query(
            "SELECT pipeline FROM snapshots UNION SELECT pipeline FROM dead_letters"
            " UNION SELECT pipeline FROM checkpoints ORDER BY 1"
        )
        return [row[0] for row in rows]

    def latest(self, pipeline: str) -> dict | None:
        """The most recent result document of ``pipeline``, or None."""
        rows = self._query(
            "SELECT document FROM snapshots WHERE pipeline = ? ORDER BY emitted_at DESC, id DESC LIMIT 1",
            (pipeline,),
        )
        return json.loads(rows[0][0]) if rows else None

    def history(self, pipeline: str, since: datetime | str | None = None, limit: int = 100) -> list[dict]:
        """The newest ``limit`` documents emitted at or after ``since`` (all if None), oldest first.

        A naive ``since`` is taken as UTC.
        """
        limit = _limit(limit)
        where, params = "pipeline = ?", [pipeline]
        if since is not None:
            where += " AND emitted_at >= ?"
            params.append(iso_utc(since))
        rows = self._query(
            f"SELECT document FROM (SELECT id, emitted_at, document FROM snapshots WHERE {where}"
            " ORDER BY emitted_at DESC, id DESC LIMIT ?) ORDER BY emitted_at, id",
            (*params, limit),
        )
        return [json.loads(row[0]) for row in rows]

    def transitions(self, pipeline: str, since: datetime | str | None = None, limit: int = 100) -> list[dict]:
        """The newest ``limit`` lifecycle transitions of snapshots emitted at or after ``since``, oldest first.

        Each is ``{"attributes", "status": "new"|"resolved", "at"}`` from a document's
        ``transitions`` (``macrobase.lifecycle``); documents without any are skipped in SQL.
        """
        limit = _limit(limit)
        where, params = "pipeline = ? AND json_array_length(document, '$.transitions') > 0", [pipeline]
        if since is not None:
            where += " AND emitted_at >= ?"
            params.append(iso_utc(since))
        # Newest snapshots first until ``limit`` transitions are collected; one snapshot
        # can hold many, so the snapshot count cannot be limited in SQL.
        found: list[dict] = []
        rows = self._query(
            f"SELECT json_extract(document, '$.transitions') FROM snapshots WHERE {where}"
            " ORDER BY emitted_at DESC, id DESC", tuple(params))
        for (text,) in rows:
            found[:0] = json.loads(text)
            if len(found) >= limit:
                break
        return found[-limit:]

    def explanation_series(self, pipeline: str, attributes: Mapping[str, Any], limit: int = 1000) -> list[SeriesPoint]:
        """(emitted_at, ratio, support) of one explanation over its newest ``limit`` emits, oldest first.

        ``attributes`` must match the document's values exactly (``{"firmware": "0.4"}`` and
        ``{"firmware": 0.4}`` differ). Emits where it was not reported are absent.
        """
        limit = _limit(limit)
        rows = self._query(
            "SELECT emitted_at, ratio, support FROM (SELECT emitted_at, ratio, support, snapshot_id"
            " FROM explanations WHERE pipeline = ? AND attributes = ?"
            " ORDER BY emitted_at DESC, snapshot_id DESC LIMIT ?) ORDER BY emitted_at, snapshot_id",
            (pipeline, canonical_attributes(attributes), limit),
        )
        return [SeriesPoint(*row) for row in rows]

    def dead_letters(self, pipeline: str, limit: int = 100) -> list[dict]:
        """The newest ``limit`` dead letters, newest first; ``raw`` as text."""
        limit = _limit(limit)
        rows = self._query(
            'SELECT id, received_at, reason, detail, raw, "partition", "offset" FROM dead_letters'
            " WHERE pipeline = ? ORDER BY id DESC LIMIT ?",
            (pipeline, limit),
        )
        return [
            {"id": r[0], "pipeline": pipeline, "received_at": r[1], "reason": r[2], "detail": r[3],
             "raw": _text(r[4]), "partition": r[5], "offset": r[6]}
            for r in rows
        ]

    def offsets(self, pipeline: str) -> dict[tuple[str, int], int]:
        """``{(topic, partition): next_offset}`` stored with the pipeline's latest results."""
        rows = self._query(
            'SELECT topic, "partition", next_offset FROM offsets WHERE pipeline = ? ORDER BY topic, "partition"',
            (pipeline,),
        )
        return {(topic, partition): offset for topic, partition, offset in rows}

    def checkpoint(self, pipeline: str) -> bytes | None:
        """The explainer state committed with the pipeline's latest results, or None."""
        rows = self._query("SELECT state FROM checkpoints WHERE pipeline = ?", (pipeline,))
        return bytes(rows[0][0]) if rows else None

    # ------------------------------------------------------------------ pipeline status
    # For the HTTP API and the dashboard; written by ``SqliteSink.write_status``.

    # A live pipeline rewrites its row with every snapshot (every ``emit_every``). A row
    # that stopped changing means the pipeline or its result store is stuck (a locked,
    # read-only or full database takes no status either), so readers report it degraded.

    def statuses(self) -> list[dict]:
        """The latest status of every pipeline that reported one, sorted by name (keys: ``STATUS_FIELDS``)."""
        rows = self._query(f"SELECT {', '.join(STATUS_FIELDS)} FROM pipeline_status ORDER BY pipeline")
        return [self._judged(dict(zip(STATUS_FIELDS, row))) for row in rows]

    def status(self, pipeline: str) -> dict | None:
        """The latest status of ``pipeline``, or None if it never reported one.

        A ``running`` or ``degraded`` row older than ``stale_after_s`` reads as
        ``degraded``, its ``last_error`` saying since when nothing was heard.
        """
        rows = self._query(f"SELECT {', '.join(STATUS_FIELDS)} FROM pipeline_status WHERE pipeline = ?", (pipeline,))
        return self._judged(dict(zip(STATUS_FIELDS, rows[0]))) if rows else None

    def _judged(self, row: dict) -> dict:
        if row["state"] not in ("running", "degraded"):
            return row
        updated = parse_iso(row["updated_at"])
        if updated is None:
            return row
        age = (datetime.now(timezone.utc) - updated).total_seconds()
        if age <= self.stale_after_s:
            return row
        silent = f"no status from the pipeline for {age:.0f} s: it or its result store is stuck"
        previous = row.get("last_error")
        return {**row, "state": "degraded", "last_error": f"{silent}; before that: {previous}" if previous else silent}
