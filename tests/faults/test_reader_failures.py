"""A partition reader whose Kafka client fails: degraded and retried, never silently gone.

The failing client is an in-memory fake (a real client cannot be made to raise on cue);
the rest is real: the reader's poll thread, the in-process Beam runner, SQLite, the CLI.
"""
from __future__ import annotations

import time

import numpy as np
import pytest
import yaml

import connectors.chunks as chunks
from connectors.chunks import EventSchema, KafkaChunkReader, KafkaPartitionSpec, PartitionFailed
from connectors.kafka_client import RawPoll
from macrobase.cli import main


class FlakyClient:
    """Raises on the first ``failures`` polls it gets in total, then serves ``messages``."""

    state = {"polls": 0}

    def __init__(self, failures: int, messages: list[bytes]) -> None:
        self.failures, self.messages, self.position = failures, messages, 0

    def seek(self, offset: int) -> None:
        self.position = offset

    def poll(self, max_records: int, timeout_s: float) -> RawPoll:
        FlakyClient.state["polls"] += 1
        if FlakyClient.state["polls"] <= self.failures:
            raise RuntimeError("connection reset by peer (injected)")
        out = self.messages[self.position:self.position + max_records]
        if not out:
            time.sleep(timeout_s)
            return RawPoll()
        offsets = np.arange(self.position, self.position + len(out), dtype=np.int64)
        self.position += len(out)
        return RawPoll(out, offsets, np.zeros(len(out), np.int64))

    def lag_estimate(self) -> int:
        return len(self.messages) - self.position

    def close(self) -> None:
        pass


@pytest.fixture
def flaky(monkeypatch):
    FlakyClient.state["polls"] = 0
    monkeypatch.setattr(KafkaChunkReader, "BACKOFF_S", 0.01)

    def install(failures: int, messages: list[bytes]):
        monkeypatch.setattr(chunks, "open_partition_reader",
                            lambda *a, **k: FlakyClient(failures, messages))
    return install


def spec() -> KafkaPartitionSpec:
    return KafkaPartitionSpec("kafka-python", ("127.0.0.1:1",), "t", 0, "g",
                              EventSchema(("m",), ("a",)), start_offset=0)


def read_all(reader: KafkaChunkReader, timeout_s: float = 60.0) -> list:
    seen, deadline = [], time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        chunk = reader.read(0.1)
        if chunk is not None:
            seen.append(chunk)
            if chunk.batch is not None and chunk.next_offset == 3:
                return seen
    pytest.fail("the reader never delivered the messages")


def test_a_failing_client_is_reported_degraded_then_retried(flaky):
    flaky(failures=2, messages=[b'{"m": 1, "a": "x"}'] * 3)
    reader = KafkaChunkReader(spec(), 0)
    try:
        seen = read_all(reader)
    finally:
        reader.close()
    degraded = [c for c in seen if not c.healthy]
    assert len(degraded) == 2 and all("connection reset" in c.error for c in degraded)
    assert seen[-1].healthy and seen[-1].batch.num_rows == 3 and seen[-1].start_offset == 0


def test_a_persistent_failure_fails_the_partition(flaky):
    flaky(failures=10**9, messages=[])
    reader = KafkaChunkReader(spec(), 0)
    try:
        with pytest.raises(PartitionFailed, match="failed 6 times in a row"):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                reader.read(0.1)
    finally:
        reader.close()


def test_the_cli_stops_with_one_line_and_a_non_zero_exit(flaky, tmp_path, kafka_broker, topic_factory, capsys):
    flaky(failures=10**9, messages=[])
    topic = topic_factory(partitions=1)
    cfg = {"pipelines": [{
        "name": "p", "source": {"type": "kafka", "bootstrap_servers": [kafka_broker.bootstrap], "topic": topic},
        "schema": {"metrics": ["m"], "attributes": ["a"]},
        "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 1}},
        "sink": {"type": "sqlite", "path": str(tmp_path / "r.db")}}]}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(cfg))
    assert main(["run", str(tmp_path / "p.yaml")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"macrobase run: error: partition {topic}/0: reading failed 6 times in a row")
    assert "Traceback" not in "\n".join(err)
