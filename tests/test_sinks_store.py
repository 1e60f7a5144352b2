"""Result sinks and the read-side store, checked against raw SQL and files, across processes."""

from __future__ import annotations

import json
import math
import os
import sqlite3
import subprocess
import sys
import textwrap
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.sinks import JsonlSink, KafkaSink, SinkError
from macrobase.config import JsonlSinkConfig, SqliteSinkConfig
from macrobase.store import SCHEMA_VERSION, ResultStore, SqliteSink, iso_utc, make_sink

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 25, 1, 0, 0, tzinfo=timezone.utc)


def document(pipeline: str = "telemetry", seq: int = 0, metric: str = "risk_ratio") -> dict:
    """A streaming result document as DESIGN.md describes it (ratios already strict JSON)."""
    return {
        "pipeline": pipeline,
        "emitted_at": (T0 + timedelta(seconds=seq)).isoformat().replace("+00:00", "Z"),
        "total": 1000 + seq,
        "outliers": 10 + seq,
        "dropped": 2,
        "thresholds": {"power_drain": 61.5},
        "explanations": [
            {"attributes": {"device_model": "M101", "firmware": "0.4"}, "support": 0.43, metric: 12.1,
             "outlier_count": 430, "count": 912},
            {"attributes": {"region": "eu-west"}, "support": 0.2, metric: "inf", "outlier_count": 200, "count": 200},
            {"attributes": {"device_model": "M7", "firmware": "1.0", "region": "us"}, "support": 0.05,
             metric: 4.0 + seq, "outlier_count": 50, "count": 120},
        ],
        "events_per_second": 5000.0,
        "dead_letters": 3,
    }


@pytest.fixture
def db(tmp_path) -> str:
    return str(tmp_path / "results" / "macrobase.db")


def raw(path: str) -> sqlite3.Connection:
    return sqlite3.connect(path)


# ---------------------------------------------------------------- SqliteSink, checked with plain SQL


def test_sqlite_sink_schema_and_rows(db):
    doc = document()
    with SqliteSink(db) as sink:
        sid = sink.write(doc)
    conn = raw(db)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = conn.execute("SELECT id, pipeline, emitted_at, total, outliers, dropped, dead_letters, events_per_second,"
                       " thresholds, document FROM snapshots").fetchone()
    assert row[:8] == (sid, "telemetry", "2026-11-25T01:00:00.000000Z", 1000, 10, 2, 3, 5000.0)
    assert json.loads(row[8]) == {"power_drain": 61.5}
    assert json.loads(row[9]) == doc
    rows = conn.execute("SELECT snapshot_id, rank, pipeline, emitted_at, attributes, description, item_count, support,"
                        " ratio_metric, ratio, outlier_count, count FROM explanations ORDER BY rank").fetchall()
    assert [r[1] for r in rows] == [1, 2, 3]
    assert rows[0] == (sid, 1, "telemetry", "2026-11-25T01:00:00.000000Z",
                       '{"device_model":"M101","firmware":"0.4"}', "device_model=M101 AND firmware=0.4",
                       2, 0.43, "risk_ratio", 12.1, 430, 912)
    assert rows[1][5] == "region=eu-west" and rows[1][9] == math.inf
    assert rows[2][6] == 3
    # infinity is a real number to SQLite: it sorts first and passes thresholds
    by_ratio = conn.execute("SELECT description FROM explanations ORDER BY ratio DESC").fetchall()
    assert by_ratio[0][0] == "region=eu-west"
    assert conn.execute("SELECT count(*) FROM explanations WHERE ratio >= 3").fetchone()[0] == 3


def test_ratio_metric_is_read_from_the_key(db):
    with SqliteSink(db) as sink:
        sink.write(document(metric="prevalence_ratio"))
    assert {r[0] for r in raw(db).execute("SELECT ratio_metric FROM explanations")} == {"prevalence_ratio"}


def test_stray_float_infinity_is_written_as_strict_json(db, tmp_path):
    doc = document()
    doc["explanations"][0]["risk_ratio"] = float("inf")
    with SqliteSink(db) as sink:
        sink.write(doc)
    stored = raw(db).execute("SELECT document FROM snapshots").fetchone()[0]
    assert json.loads(stored, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))["explanations"][0][
        "risk_ratio"] == "inf"


def test_offsets_and_checkpoint_upsert(db):
    with SqliteSink(db) as sink:
        sink.write(document(seq=0), offsets={("telemetry", 0): 10, ("telemetry", 1): 7}, checkpoint=b"s0")
        sink.write(document(seq=1), offsets={("telemetry", 0): 25}, checkpoint=b"s1")
        sink.write(document(seq=2))  # no state given: previous state stays
    store = ResultStore(db)
    assert store.offsets("telemetry") == {("telemetry", 0): 25, ("telemetry", 1): 7}
    assert store.checkpoint("telemetry") == b"s1"
    assert store.offsets("other") == {} and store.checkpoint("other") is None
    assert raw(db).execute("SELECT count(*) FROM checkpoints").fetchone()[0] == 1


def test_dead_letters_trimmed_per_pipeline(db):
    letters = [{"reason": "invalid_json", "detail": f"msg {i}", "raw": b"\xff{oops" + str(i).encode(),
                "partition": 0, "offset": i} for i in range(10)]
    with SqliteSink(db, keep_dead_letters=4) as sink:
        sink.write(document("a"), dead_letters=letters[:6])
        sink.write(document("b"), dead_letters=letters[:2])
        sink.write(document("a", seq=1), dead_letters=letters[6:])
    conn = raw(db)
    counts = dict(conn.execute("SELECT pipeline, count(*) FROM dead_letters GROUP BY pipeline").fetchall())
    assert counts == {"a": 4, "b": 2}
    store = ResultStore(db)
    kept = store.dead_letters("a", limit=100)
    assert [d["offset"] for d in kept] == [9, 8, 7, 6]  # newest first, oldest trimmed
    assert kept[0]["reason"] == "invalid_json" and kept[0]["raw"] == "\\xff{oops9"
    assert json.dumps(kept)  # JSON-able for the API
    assert [d["offset"] for d in store.dead_letters("a", limit=2)] == [9, 8]


@dataclass(frozen=True)
class Letter:
    """Shaped like connectors.decode.DeadLetter (attribute access, no partition)."""

    reason: str
    detail: str
    raw: str
    offset: int | None = None


def test_dead_letter_objects_with_attributes(db):
    received = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    with SqliteSink(db) as sink:
        sink.write(document(), dead_letters=[Letter("non_numeric_metric", "power_drain is 'abc'", '{"p": "abc"}', 41),
                                             {"reason": "invalid_json", "raw": "{", "partition": 2, "offset": 7,
                                              "received_at": received}])
    newest, oldest = ResultStore(db).dead_letters("telemetry")
    assert (oldest["reason"], oldest["detail"], oldest["raw"], oldest["partition"], oldest["offset"]) == (
        "non_numeric_metric", "power_drain is 'abc'", '{"p": "abc"}', None, 41)
    assert (newest["partition"], newest["offset"], newest["received_at"]) == (2, 7, "2026-01-02T03:04:05.000000Z")


def test_keep_zero_dead_letters_and_snapshot_retention(db):
    with SqliteSink(db, keep_dead_letters=0, keep_snapshots=3) as sink:
        for seq in range(6):
            sink.write(document(seq=seq), dead_letters=[{"reason": "x", "raw": "r"}])
    conn = raw(db)
    assert conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0] == 0
    assert [r[0] for r in conn.execute("SELECT total FROM snapshots ORDER BY id")] == [1003, 1004, 1005]
    # explanations of deleted snapshots go with them
    assert conn.execute("SELECT count(DISTINCT snapshot_id) FROM explanations").fetchone()[0] == 3


def test_failed_write_leaves_nothing_behind(db):
    with SqliteSink(db) as sink:
        sink.write(document(seq=0), offsets={("t", 0): 5}, checkpoint=b"good")
        bad = document(seq=1)
        bad["explanations"][1]["support"] = [1, 2]  # cannot be bound: fails after the snapshot insert
        with pytest.raises(sqlite3.Error):
            sink.write(bad, offsets={("t", 0): 99}, checkpoint=b"bad")
        sink.write(document(seq=2))  # the sink is still usable
    conn = raw(db)
    assert [r[0] for r in conn.execute("SELECT total FROM snapshots ORDER BY id")] == [1000, 1002]
    store = ResultStore(db)
    assert store.offsets("telemetry") == {("t", 0): 5}
    assert store.checkpoint("telemetry") == b"good"


CRASH_SCRIPT = textwrap.dedent("""
    import os, sys
    sys.path.insert(0, {root!r})
    from macrobase.store import SqliteSink
    from tests.test_sinks_store import document
    sink = SqliteSink({db!r})
    sink.write(document(seq=0), offsets={{("t", 0): 5}}, checkpoint=b"before")
    def die(statement):
        # the process dies inside the transaction, after the snapshot row went in
        if statement.startswith("INSERT INTO explanations"):
            os._exit(3)
    sink._conn.set_trace_callback(die)
    sink.write(document(seq=1), offsets={{("t", 0): 50}}, checkpoint=b"after")
""")


def test_crash_inside_a_write_commits_nothing(db):
    os.makedirs(os.path.dirname(db), exist_ok=True)
    script = CRASH_SCRIPT.format(root=str(ROOT), db=db)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    store = ResultStore(db)
    assert [d["total"] for d in store.history("telemetry", limit=10)] == [1000]
    assert store.offsets("telemetry") == {("t", 0): 5}
    assert store.checkpoint("telemetry") == b"before"
    assert raw(db).execute("SELECT count(*) FROM explanations").fetchone()[0] == 3


# ---------------------------------------------------------------- ResultStore


def test_store_round_trip_and_queries(db):
    docs = [document("telemetry", seq) for seq in range(5)] + [document("billing", 0)]
    with SqliteSink(db) as sink:
        for doc in docs:
            sink.write(doc)
    with ResultStore(db) as store:
        assert store.pipelines() == ["billing", "telemetry"]
        assert store.latest("telemetry") == docs[4]
        assert store.latest("nope") is None
        assert store.history("telemetry", limit=100) == docs[:5]
        assert store.history("telemetry", limit=2) == docs[3:5]  # newest two, oldest first
        since = T0 + timedelta(seconds=2)
        assert store.history("telemetry", since=since, limit=100) == docs[2:5]  # inclusive
        # naive datetimes are UTC; other offsets are converted
        assert store.history("telemetry", since=since.replace(tzinfo=None), limit=100) == docs[2:5]
        cet = timezone(timedelta(hours=1))
        assert store.history("telemetry", since=since.astimezone(cet), limit=100) == docs[2:5]
        series = store.explanation_series("telemetry", {"firmware": "1.0", "region": "us", "device_model": "M7"}, 3)
        assert [p.ratio for p in series] == [6.0, 7.0, 8.0]
        assert [p.emitted_at for p in series] == [iso_utc(T0 + timedelta(seconds=s)) for s in (2, 3, 4)]
        inf_series = store.explanation_series("telemetry", {"region": "eu-west"}, limit=10)
        assert len(inf_series) == 5 and all(p.ratio == math.inf and p.support == 0.2 for p in inf_series)
        assert store.explanation_series("telemetry", {"region": "nowhere"}, 10) == []
        with pytest.raises(ValueError, match="limit"):
            store.history("telemetry", limit=0)


def test_store_is_read_only(db):
    with SqliteSink(db) as sink:
        sink.write(document())
    store = ResultStore(db)
    store.latest("telemetry")
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        store._connection().execute("DELETE FROM snapshots")
    store.close()


def test_store_before_the_pipeline_started(tmp_path):
    path = tmp_path / "missing.db"
    store = ResultStore(path)
    assert store.pipelines() == [] and store.latest("x") is None and store.history("x", limit=5) == []
    assert store.dead_letters("x") == [] and store.offsets("x") == {} and store.checkpoint("x") is None
    assert not path.exists()  # reading never creates the file
    sqlite3.connect(path).close()  # file exists, no tables yet
    assert ResultStore(path).pipelines() == []


WRITER_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {root!r})
    from macrobase.store import SqliteSink
    from tests.test_sinks_store import document
    with SqliteSink({db!r}, keep_dead_letters=50) as sink:
        for seq in range({n}):
            doc = document(seq=seq)
            sink.write(doc, dead_letters=[{{"reason": "x", "offset": seq}}],
                       offsets={{("telemetry", 0): seq + 1}}, checkpoint=str(seq).encode())
            time.sleep(0.002)
""")


def test_reader_while_writer_process_writes(db):
    n = 300
    with SqliteSink(db) as sink:  # create the schema first so the reader has something to read
        sink.write(document("warmup"))
    writer = subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT.format(root=str(ROOT), db=db, n=n)],
                              stderr=subprocess.PIPE, text=True)
    store = ResultStore(db)
    seen, reads = -1, 0
    try:
        while writer.poll() is None or reads == 0:
            doc = store.latest("telemetry")
            if doc is not None:
                seq = doc["total"] - 1000
                assert seq >= seen  # never goes back in time
                seen = seq
                # offsets and checkpoint are never behind the results they were committed with
                offset = store.offsets("telemetry")[("telemetry", 0)]
                state = int(store.checkpoint("telemetry"))
                assert offset >= seq + 1 and state >= seq
                history = store.history("telemetry", limit=20)
                totals = [d["total"] for d in history]
                assert totals == sorted(totals) and len(set(totals)) == len(totals)
                reads += 1
            time.sleep(0.001)
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    finally:
        if writer.poll() is None:
            writer.kill()
    assert reads > 5  # the reader really overlapped the writer
    assert store.latest("telemetry")["total"] == 1000 + n - 1
    assert len(store.history("telemetry", limit=10_000)) == n
    assert len(store.dead_letters("telemetry", limit=1000)) == 50
    store.close()


def test_two_sinks_in_one_process_share_the_file(db):
    # e.g. two pipelines of one `macrobase run`, each with its own sink, writing concurrently
    import threading

    sinks = [SqliteSink(db), SqliteSink(db)]
    errors = []

    def run(sink, name):
        try:
            for seq in range(100):
                sink.write(document(name, seq), offsets={(name, 0): seq + 1})
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(sink, name)) for sink, name in zip(sinks, ("a", "b"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for sink in sinks:
        sink.close()
    assert errors == []
    store = ResultStore(db)
    for name in ("a", "b"):
        assert [d["total"] for d in store.history(name, limit=1000)] == list(range(1000, 1100))
        assert store.offsets(name) == {(name, 0): 100}


# ---------------------------------------------------------------- JSON lines, factory


def test_jsonl_sink_appends_flushed_lines(tmp_path):
    path = tmp_path / "out" / "r.jsonl"
    docs = [document(seq=s) for s in range(3)]
    sink = JsonlSink(path)
    sink.write(docs[0])
    assert [json.loads(line) for line in path.read_text().splitlines()] == docs[:1]  # visible before close
    sink.write(docs[1], dead_letters=[{"reason": "x"}], offsets={("t", 0): 1})
    sink.close()
    with JsonlSink(path) as again:  # reopening appends
        again.write(docs[2])
    assert [json.loads(line) for line in path.read_text().splitlines()] == docs


def test_make_sink_from_config_models_and_dicts(tmp_path):
    sink = make_sink(SqliteSinkConfig(path=str(tmp_path / "a.db"), keep_dead_letters=7))
    assert isinstance(sink, SqliteSink) and sink.keep_dead_letters == 7 and sink.stores_state
    sink.close()
    sink = make_sink(JsonlSinkConfig(type="jsonl", path=str(tmp_path / "a.jsonl")))
    assert isinstance(sink, JsonlSink) and not sink.stores_state
    sink.close()
    sink = make_sink({"type": "sqlite", "path": str(tmp_path / "b.db")})
    assert isinstance(sink, SqliteSink) and sink.keep_dead_letters == 1000
    sink.close()
    with pytest.raises(ValueError, match="unknown sink type"):
        make_sink({"type": "s3"})


def test_closed_sinks_refuse_writes(tmp_path):
    sink = SqliteSink(tmp_path / "c.db")
    sink.close()
    sink.close()  # idempotent
    with pytest.raises(RuntimeError, match="closed"):
        sink.write(document())


# ---------------------------------------------------------------- schema versions

TABLES = ["checkpoints", "dead_letters", "explanations", "offsets", "pipeline_status", "snapshots"]


def tables(path) -> list[str]:
    return sorted(r[0] for r in raw(str(path)).execute("SELECT name FROM sqlite_master WHERE type = 'table'"))


def test_every_table_is_created_with_the_schema_version(db):
    SqliteSink(db).close()
    assert tables(db) == TABLES  # the status table too, before any status is written
    assert raw(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2
    assert ResultStore(db).statuses() == []


@pytest.mark.parametrize("status_written", [False, True])
def test_a_version_1_store_is_migrated_in_place(db, status_written):
    from macrobase.store.schema import MIGRATIONS

    os.makedirs(os.path.dirname(db))
    conn = raw(db)
    conn.executescript(dict(MIGRATIONS)[1])  # version 1: five tables, pipeline_status made on first use
    if status_written:
        conn.executescript(dict(MIGRATIONS)[2])
        conn.execute("INSERT INTO pipeline_status (pipeline, state, updated_at, restarts) VALUES"
                     " ('telemetry', 'stopped', '2026-01-01T00:00:00.000000Z', 3)")
    conn.execute("INSERT INTO checkpoints VALUES ('telemetry', x'00', '2026-01-01T00:00:00.000000Z')")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with SqliteSink(db) as sink:
        sink.write_status({"pipeline": "telemetry", "state": "running", "events": 5})
    assert tables(db) == TABLES and raw(db).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    store = ResultStore(db)
    assert store.checkpoint("telemetry") == b"\x00"  # what version 1 held is kept
    status = store.status("telemetry")
    assert (status["state"], status["events"], status["restarts"]) == ("running", 5, 3 if status_written else None)


def test_a_newer_store_is_refused(db):
    SqliteSink(db).close()
    conn = raw(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SinkError, match="newer than this program's"):
        SqliteSink(db)


# ---------------------------------------------------------------- Kafka sink against a real broker


def test_kafka_sink_produces_documents(kafka_broker):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    broker = kafka_broker.bootstrap  # the embedded broker of tests/conftest.py
    topic = f"results-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": broker})
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=15)
    docs = [document(seq=s) for s in range(3)]
    with make_sink({"type": "kafka", "bootstrap_servers": [broker], "topic": topic}) as sink:
        assert isinstance(sink, KafkaSink)
        for doc in docs:
            sink.write(doc)
    consumer = Consumer({"bootstrap.servers": broker, "group.id": "t", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    got, deadline = [], time.monotonic() + 20
    while len(got) < len(docs) and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            got.append((msg.key(), json.loads(msg.value())))
    consumer.close()
    assert got == [(b"telemetry", doc) for doc in docs]
