"""The result store's SQLite schema: every table, under one ``SCHEMA_VERSION``.

Query it directly (``sqlite3 macrobase.db``); :class:`macrobase.store.ResultStore` is the
read API and :class:`macrobase.store.SqliteSink` the only writer::

    snapshots(id, pipeline, emitted_at, total, outliers, dropped, dead_letters,
              events_per_second, thresholds JSON, document JSON)
    explanations(snapshot_id, rank, pipeline, emitted_at, attributes JSON, description,
                 item_count, support, ratio_metric, ratio, outlier_count, count)
    dead_letters(id, pipeline, received_at, reason, detail, raw, "partition", "offset")
    offsets(pipeline, topic, "partition", next_offset, updated_at)
    checkpoints(pipeline, state BLOB, updated_at)
    pipeline_status(pipeline, state, updated_at, events, outliers, events_per_second,
                    consumer_lag, dead_letters, last_error, emit_latency_ms, restarts)

Conventions: ``emitted_at``/``received_at``/``updated_at`` are ISO-8601 UTC text of fixed
width (``2026-01-01T00:00:00.000000Z``, :func:`macrobase.store.iso_utc`) so text order is
time order. ``attributes`` is canonical JSON (sorted keys, no spaces) so it can be
compared with ``=``. An infinite ratio is stored as IEEE +Infinity in the REAL column, not
NULL: ``ORDER BY ratio DESC`` puts it first and ``ratio >= 3`` includes it (the sqlite3
shell prints it as ``Inf``). ``rank`` starts at 1 in the document's order (outlier count,
then ratio).

Versions (``PRAGMA user_version``): 1 had the first five tables (``pipeline_status`` was
created on a sink's first status write); 2 creates all six together. The writer brings an
older file up to ``SCHEMA_VERSION`` in one transaction, step by step (:data:`MIGRATIONS`),
and refuses a newer one.

>>> import sqlite3
>>> conn = sqlite3.connect(":memory:", isolation_level=None)
>>> migrate(conn, ":memory:")
>>> conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
True
>>> sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
['checkpoints', 'dead_letters', 'explanations', 'offsets', 'pipeline_status', 'snapshots']
"""

from __future__ import annotations

import sqlite3

from connectors.sinks import SinkError

__all__ = ["BUSY_TIMEOUT_MS", "MIGRATIONS", "PIPELINE_STATES", "RAW_LIMIT", "SCHEMA_VERSION", "STATUS_FIELDS",
           "migrate"]

SCHEMA_VERSION = 2
BUSY_TIMEOUT_MS = 10_000  # readers and the writer wait this long for SQLite's lock
RAW_LIMIT = 64 * 1024  # bytes of a dead letter's raw message kept; larger ones are cut

#: The states a pipeline reports through ``SqliteSink.write_status``.
PIPELINE_STATES = ("starting", "running", "degraded", "stopped", "crashed", "restarting")
#: Columns of ``pipeline_status``, in order; the status dict uses the same keys.
STATUS_FIELDS = ("pipeline", "state", "updated_at", "events", "outliers", "events_per_second",
                 "consumer_lag", "dead_letters", "last_error", "emit_latency_ms", "restarts")

_RESULTS = """
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

# IF NOT EXISTS: a version-1 file may already have it (created by a status write).
_STATUS = """
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
);
"""

#: ``(version, statements)``: what a file at ``version - 1`` runs to reach ``version``.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _RESULTS), (2, _STATUS))
assert MIGRATIONS[-1][0] == SCHEMA_VERSION


def migrate(conn: sqlite3.Connection, path: str) -> None:
    """Bring the store behind ``conn`` (autocommit mode) to ``SCHEMA_VERSION`` in one transaction.

    Raises :class:`~connectors.sinks.SinkError` for a file of a newer version.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise SinkError(f"{path}: store schema version {version} is newer than this program's ({SCHEMA_VERSION})")
        for target, statements in MIGRATIONS:
            if target > version:
                for statement in statements.split(";"):
                    if statement.strip():
                        conn.execute(statement)
        # Written even when unchanged: opening a writer is then a write, so a read-only or
        # full store fails here, where the sink is made, as it always has.
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
