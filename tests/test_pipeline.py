"""The streaming pipeline end to end: real Beam (FnApiRunner), real broker, real SQLite."""
from __future__ import annotations

import json
import time

import pyarrow.parquet as pq
import pytest

from connectors.files import read_file
from connectors.kafka_client import open_partition_reader, produce_json
from macrobase.config import parse_config
from macrobase.diff import DiffRequest, run_diff
from macrobase.store import ResultStore
from macrobase.synthetic import planted_table, to_json_lines
from tests.runners import assert_same_answer
from tests.runners import run_until as run_pipeline_until
from tests.topics import produce_to_every_partition

ATTRS = ["region", "firmware", "device_model", "carrier", "device_id"]


def config(tmp_path, source: dict, **over) -> dict:
    pipe = {
        "name": "p",
        "source": source,
        "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
        "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
        "explainer": {"decay": 0, "emit_every": "300ms"},
        "sink": {"type": "sqlite", "path": str(tmp_path / "results.db")},
    }
    for k, v in over.items():
        pipe[k] = v
    return {"pipelines": [pipe]}


def run_until(cfg: dict, done, timeout: float = 120.0):
    """Run the pipeline until ``done(latest document)`` holds, then stop it."""
    conf = parse_config(cfg, "test")
    run_pipeline_until(conf, done, timeout)
    store = ResultStore(conf.pipelines[0].sink.path)
    return store.latest("p"), store


def planted_events(n: int, seed: int):
    table, causes = planted_table(n, seed=seed)
    table = table.select(["power_drain"] + ATTRS)
    return table, causes, to_json_lines(table.combine_chunks().to_batches()[0])


def test_file_stream_ends_with_the_batch_result(tmp_path):
    table, _ = planted_table(120_000, seed=11)
    pq.write_table(table, tmp_path / "t.parquet")
    cfg = config(tmp_path, {"type": "file", "path": str(tmp_path / "t.parquet")})
    final, _ = run_until(cfg, lambda d: d["events"] == 120_000 and d.get("final", True))
    data = read_file(tmp_path / "t.parquet", ["power_drain"], ATTRS)
    batch = run_diff(data.table, DiffRequest(("power_drain",), tuple(ATTRS), classifier="predicate",
                                             predicate=">= 150"), dropped=data.dropped)
    assert_same_answer(final, batch, ("total", "outliers", "dropped", "thresholds", "explanations"))


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_planted_causes_through_kafka_with_dead_letters(tmp_path, kafka_broker, topic_factory, client):
    topic = topic_factory(partitions=4)
    table, causes, values = planted_events(150_000, seed=5)
    bad = [b"not json", b'{"power_drain": "high", "region": "region-1"}', b'{"region": "region-1"}',
           b'{"power_drain": NaN}', b"[1, 2]"] * 20
    mixed = values[:70_000] + bad + values[70_000:]
    produce_to_every_partition(kafka_broker.bootstrap, topic, mixed, 4)
    dlq = topic_factory(partitions=1, prefix="dlq")
    cfg = config(tmp_path, {"type": "kafka", "bootstrap_servers": [kafka_broker.bootstrap], "topic": topic,
                            "client": client, "start_from": "earliest", "dead_letter_topic": dlq})
    final, store = run_until(cfg, lambda d: d["events"] == 150_000 and d["dead_letters"] == len(bad))
    got = sorted(sorted(e["attributes"].items()) for e in final["explanations"])
    assert got == sorted(sorted(c.items()) for c in causes)
    reasons = {d["reason"] for d in store.dead_letters("p", limit=1000)}
    assert reasons >= {"invalid_json", "non_numeric_metric", "missing_metric"}
    # Offsets were committed to the consumer group after the results were stored.
    committed = 0
    for p in range(4):
        r = open_partition_reader(client, [kafka_broker.bootstrap], topic, p, "macrobase-p")
        committed += r.committed() or 0
        r.close()
    assert committed == len(mixed)
    # Dead letters were also forwarded to the dead-letter topic, with their reasons.
    r = open_partition_reader(client, [kafka_broker.bootstrap], dlq, 0, None)
    forwarded = []
    deadline = time.monotonic() + 20
    while len(forwarded) < len(bad) and time.monotonic() < deadline:
        forwarded += [json.loads(v) for v in r.poll(1000, 0.5).values]
    r.close()
    assert len(forwarded) == len(bad)
    assert sorted(f["raw"] for f in forwarded) == sorted(b.decode() for b in bad)
    assert {f["partition"] for f in forwarded} <= {0, 1, 2, 3}
    assert all(d["partition"] is not None for d in store.dead_letters("p", limit=1000))


def test_restart_from_committed_loses_and_duplicates_nothing(tmp_path, kafka_broker, topic_factory):
    topic = topic_factory(partitions=2)
    _, _, values = planted_events(60_000, seed=9)
    produce_json([kafka_broker.bootstrap], topic, values[:30_000])
    cfg = config(tmp_path, {"type": "kafka", "bootstrap_servers": [kafka_broker.bootstrap], "topic": topic,
                            "start_from": "committed"})
    first, _ = run_until(cfg, lambda d: d["events"] >= 10_000)  # stop mid-stream
    assert 10_000 <= first["events"] <= 30_000
    produce_json([kafka_broker.bootstrap], topic, values[30_000:])
    final, _ = run_until(cfg, lambda d: d["events"] >= 60_000)
    # Exactly every event once: totals equal the number produced (decay 0).
    assert final["events"] == 60_000 and final["total"] == 60_000

