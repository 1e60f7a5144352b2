"""Result-store faults: a locked database, a full disk, a read-only store, a Kafka sink
whose broker is away. Real SQLite on a real (size-limited) tmpfs, the real broker, the
three runner configurations.

What must hold at every fault: the pipeline stops storing (and so committing) while the
store is faulted, reports ``degraded`` (API and /metrics, which stay conformant to the
OpenAPI document), never commits an offset past a stored result, and continues when the
fault clears, so that at the end, with decay 0, every produced event is counted exactly
once and the answer equals the batch explainer's over the same rows.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
import schemathesis

from connectors.broker import EmbeddedBroker
from connectors.kafka_client import create_topic, list_partitions, open_partition_reader
from macrobase.api import StoreSource, create_app
from macrobase.config import parse_config
from macrobase.diff import DiffRequest, run_diff
from macrobase.store import ResultStore
from macrobase.synthetic import planted_table, to_json_lines
from tests.runners import RUNNERS, assert_same_answer, running, runner_config
from tests.test_api_schemathesis import CASES, assert_conforms
from tests.topics import produce_to_every_partition

ATTRS = ["region", "firmware", "device_model", "carrier"]
PARTITIONS = 2
STALE_S = 3.0  # readers call a silent running pipeline degraded after this long
GROUP = "macrobase-p"


@contextlib.contextmanager
def tmpfs(path: Path, size: str = "16m"):
    """A small tmpfs at ``path``: a disk that really fills up and can be made read-only."""
    path.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"sink-fault tests need to mount a tmpfs (root): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path: Path, mode: str) -> bool:
    """True once remounted; False while files are open for writing on it (busy)."""
    done = subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], capture_output=True, text=True)
    return done.returncode == 0


def fill(directory: Path) -> Path:
    """Write a file until the filesystem has not one byte left."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        for block in (1 << 16, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, b"\0" * block)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return filler


def committed(bootstrap: str, topic: str) -> dict[int, int]:
    out = {}
    for p in range(PARTITIONS):
        r = open_partition_reader("kafka-python", [bootstrap], topic, p, GROUP)
        try:
            out[p] = r.committed() or 0
        finally:
            r.close()
    return out


def planted_values(n: int):
    table, _ = planted_table(n, seed=17)
    table = table.select(["power_drain"] + ATTRS)
    return table, to_json_lines(table.combine_chunks().to_batches()[0])


def config(source: dict, sink: dict, runner: dict):
    return parse_config({
        "pipelines": [{
            "name": "p",
            "source": {"type": "kafka", "client": "kafka-python", "start_from": "committed",
                       "group_id": GROUP, **source},
            "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
            "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
            "explainer": {"decay": 0, "emit_every": "200ms"},
            "sink": sink,
        }],
        "runner": runner,
    }, "test")


def assert_same_as_batch(final: dict, table) -> None:
    batch = run_diff(table, DiffRequest(("power_drain",), tuple(ATTRS), classifier="predicate", predicate=">= 150"))
    assert_same_answer(final, batch, ("total", "outliers", "explanations"))


class Faulted:
    """What a test checks while the store is faulted."""

    def __init__(self, db: Path, bootstrap: str, topic: str) -> None:
        self.db, self.bootstrap, self.topic = db, bootstrap, topic
        self.store = ResultStore(db, stale_after_s=STALE_S)
        self.source = StoreSource(db, stale_after_s=STALE_S)
        self.app = create_app(self.source)

    def close(self) -> None:
        self.store.close()
        self.source.close()

    def degraded(self) -> bool:
        status = self.store.status("p")
        return status is not None and status["state"] == "degraded"

    def running_with(self, events: int) -> bool:
        doc, status = self.store.latest("p"), self.store.status("p")
        return bool(doc and doc["events"] == events and status and status["state"] == "running")

    def commits_covered(self) -> None:
        """Offsets committed to Kafka never pass the ones stored with the results."""
        stored = self.store.offsets("p")
        for p, off in committed(self.bootstrap, self.topic).items():
            assert off <= stored.get((self.topic, p), 0), "offsets committed past the stored results"

    def api_reports_degraded(self) -> None:
        client = self.app.test_client()
        rows = client.get("/api/v1/pipelines").get_json()["pipelines"]
        assert [(r["name"], r["status"]) for r in rows] == [("p", "degraded")]
        assert rows[0]["last_error"]
        metrics = client.get("/metrics").get_data(as_text=True)
        assert 'macrobase_pipeline_state{pipeline="p",state="degraded"} 1' in metrics

    def api_conforms(self) -> None:
        schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", self.app)
        for method, path, mode in CASES:
            if method == "GET":
                assert_conforms(schema[path][method], mode, 8, "p")


@pytest.mark.parametrize("runner_name", list(RUNNERS))
def test_sqlite_locked_full_and_read_only_lose_nothing(tmp_path, kafka_broker, topic_factory, runner_name, request):
    topic = topic_factory(partitions=PARTITIONS)
    table, values = planted_values(60_000)
    parts = [values[i * 12_000:(i + 1) * 12_000] for i in range(5)]

    def produce(part):
        produce_to_every_partition(kafka_broker.bootstrap, topic, part, PARTITIONS)

    with tmpfs(tmp_path / "store") as disk:
        db = disk / "results.db"
        conf = config({"bootstrap_servers": [kafka_broker.bootstrap], "topic": topic},
                      {"type": "sqlite", "path": str(db), "checkpoint_every": "1s"},
                      runner_config(runner_name, request))
        check = Faulted(db, kafka_broker.bootstrap, topic)
        with running(conf) as run:
            produce(parts[0])
            run.wait_for(lambda: check.running_with(12_000), 240, "the first events stored")

            # 1. Locked: another process holds SQLite's write lock.
            lock = sqlite3.connect(db, isolation_level=None)
            lock.execute("BEGIN EXCLUSIVE")
            produce(parts[1])
            run.wait_for(check.degraded, 120, "degraded while the store is locked")
            check.api_reports_degraded()
            check.api_conforms()
            assert check.store.latest("p")["events"] == 12_000, "nothing is stored under the lock"
            check.commits_covered()
            lock.rollback()
            lock.close()
            run.wait_for(lambda: check.running_with(24_000), 120, "running again after the lock")
            check.commits_covered()

            # 2. Full disk.
            filler = fill(disk)
            produce(parts[2])
            run.wait_for(check.degraded, 120, "degraded on a full disk")
            check.api_reports_degraded()
            check.api_conforms()
            check.commits_covered()

            # 3. ... and then read-only too (remounted). Files open for writing keep a
            #    filesystem from going read-only, so our readers let go first; the
            #    pipeline's store only holds its file during a write attempt.
            stored = check.store.latest("p")["events"]
            check.close()
            run.wait_for(lambda: remount(disk, "ro"), 120, "the store remounted read-only")
            check = Faulted(db, kafka_broker.bootstrap, topic)
            produce(parts[3])
            run.wait_for(check.degraded, 120, "degraded on a read-only store")
            check.api_reports_degraded()
            check.api_conforms()
            assert check.store.latest("p")["events"] == stored, "nothing is stored on a read-only disk"
            check.commits_covered()
            # SQLite shares one shared-memory handle per file among a process's connections:
            # one opened while the file was read-only would keep the (in-process) writer
            # read-only, so readers reconnect across the change (see docs/DESIGN.md).
            check.close()
            remount(disk, "rw")
            filler.unlink()
            check = Faulted(db, kafka_broker.bootstrap, topic)
            run.wait_for(lambda: check.running_with(48_000), 120, "running again once writable with space")
            check.commits_covered()
            produce(parts[4])
            run.wait_for(lambda: check.running_with(60_000), 120, "all events stored")
        final = check.store.latest("p")
        assert check.store.status("p")["state"] == "stopped"
        assert final["events"] == final["total"] == 60_000
        assert sum(committed(kafka_broker.bootstrap, topic).values()) == 60_000
        assert_same_as_batch(final, table)
        check.close()


@pytest.mark.parametrize("runner_name", list(RUNNERS))
def test_kafka_sink_broker_away_loses_nothing(tmp_path, kafka_broker, topic_factory, runner_name, request):
    topic = topic_factory(partitions=PARTITIONS)
    table, values = planted_values(36_000)
    parts = [values[i * 12_000:(i + 1) * 12_000] for i in range(3)]
    sink_broker = EmbeddedBroker(port=0)
    sink_broker.start()
    try:
        create_topic([sink_broker.bootstrap], "results", 1)
        conf = config({"bootstrap_servers": [kafka_broker.bootstrap], "topic": topic},
                      {"type": "kafka", "bootstrap_servers": [sink_broker.bootstrap], "topic": "results"},
                      runner_config(runner_name, request))
        delivered = Delivered(sink_broker.bootstrap)

        def produce(part):
            produce_to_every_partition(kafka_broker.bootstrap, topic, part, PARTITIONS)

        def counted() -> int:
            return sum(committed(kafka_broker.bootstrap, topic).values())

        with running(conf) as run:
            produce(parts[0])
            run.wait_for(lambda: delivered.events() == 12_000, 240, "the first results delivered")
            run.wait_for(lambda: counted() == 12_000, 60, "offsets committed after delivery")
            delivered.close()
            sink_broker.stop()
            produce(parts[1])
            # Nothing is delivered, so nothing more may be committed: watch for a while.
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                assert counted() == 12_000, "offsets committed for results never delivered"
                time.sleep(0.5)
            assert run.thread.is_alive()
            sink_broker.start()  # memory storage: a fresh, empty broker on the same port
            create_topic([sink_broker.bootstrap], "results", 1)
            delivered = Delivered(sink_broker.bootstrap)
            produce(parts[2])
            run.wait_for(lambda: delivered.events() == 36_000, 240, "results delivered after the outage")
            run.wait_for(lambda: counted() == 36_000, 60, "every offset committed")
        assert_same_as_batch(delivered.latest, table)
        delivered.close()
    finally:
        sink_broker.stop()


class Delivered:
    """The newest result document in the sink topic, on whichever partition it is: a
    producer that reaches a restarted broker first gets the topic auto-created."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.readers: dict[int, object] = {}
        self.latest: dict = {}

    def events(self) -> int:
        for p in list_partitions("confluent-kafka", [self.bootstrap], "results"):
            if p not in self.readers:
                self.readers[p] = open_partition_reader("kafka-python", [self.bootstrap], "results", p, None)
        for reader in self.readers.values():
            for value in reader.poll(10_000, 0.2).values:
                doc = json.loads(value)
                if doc.get("events", 0) >= self.latest.get("events", 0):
                    self.latest = doc
        return self.latest.get("events", 0)

    def close(self) -> None:
        for reader in self.readers.values():
            reader.close()
