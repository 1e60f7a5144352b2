"""A real topic with hostile messages interleaved: every message gets its verdict, no
partition stalls, with both Kafka clients (real broker, real Beam, real SQLite)."""
from __future__ import annotations

from collections import Counter

import pytest

from connectors.kafka_client import produce_json
from macrobase.config import parse_config
from macrobase.store import ResultStore
from macrobase.synthetic import planted_table, to_json_lines
from tests.faults.hostile import HOSTILE
from tests.runners import run_until

GOOD = 20_006


@pytest.mark.parametrize("client", ["kafka-python", "confluent-kafka"])
def test_hostile_topic_counts_every_good_event_and_every_verdict(tmp_path, kafka_broker, topic_factory, client):
    topic = topic_factory(partitions=2)
    table, _ = planted_table(GOOD, seed=8)
    good = to_json_lines(table.select(["power_drain", "region"]).combine_chunks().to_batches()[0])
    step = GOOD // len(HOSTILE)
    mixed: list = []
    for i, (value, _) in enumerate(HOSTILE):   # interleaved, on both partitions
        mixed += good[i * step:(i + 1) * step] + [value]
    mixed += good[len(HOSTILE) * step:]
    half = len(mixed) // 2
    for partition, part in enumerate((mixed[:half], mixed[half:])):
        produce_json([kafka_broker.bootstrap], topic, part, partition=partition)
    expected = Counter(reason for _, reason in HOSTILE if reason != "event")
    events = GOOD + sum(1 for _, reason in HOSTILE if reason == "event")
    conf = parse_config({"pipelines": [{
        "name": "p",
        "source": {"type": "kafka", "bootstrap_servers": [kafka_broker.bootstrap], "topic": topic,
                   "client": client, "start_from": "earliest"},
        "schema": {"metrics": ["power_drain"], "attributes": ["region"]},
        "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
        "explainer": {"decay": 0, "emit_every": "300ms"},
        "sink": {"type": "sqlite", "path": str(tmp_path / "r.db")}}]}, "test")
    run_until(conf, lambda d: d["events"] + d["dead_letters"] >= len(mixed), timeout=240)
    store = ResultStore(tmp_path / "r.db")
    final = store.latest("p")
    assert final["events"] == final["total"] == events
    assert final["dead_letters"] == sum(expected.values())
    assert Counter(d["reason"] for d in store.dead_letters("p", limit=1000)) == expected
    assert sum(store.offsets("p").values()) == len(mixed)    # both partitions read to the end
