"""The same planted topic on every runner configuration CI can run (real broker, real Beam).

In-process FnApiRunner, FnApiRunner with 2 SDK worker processes, and PortableRunner with
an EXTERNAL SDK worker pool (how Flink, Spark and Dataflow run Python). Each must stop by
itself, never report totals going backwards, and end with exactly the batch explainer's
answer (predicate classifier, decay 0).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import yaml

from macrobase.config import parse_config
from macrobase.diff import DiffRequest, run_diff
from macrobase.runner import PipelineRun
from macrobase.store import ResultStore
from macrobase.synthetic import planted_table, to_json_lines
from tests.runners import RUNNERS, assert_same_answer, run_until, runner_config
from tests.topics import produce_to_every_partition

ATTRS = ["region", "firmware", "device_model", "carrier", "device_id"]
BAD = [b"not json", b'{"power_drain": "high", "region": "region-1"}', b'{"region": "region-1"}', b"[1]"] * 5


@pytest.fixture(params=list(RUNNERS))
def runner(request) -> dict:
    return runner_config(request.param, request)


def pipeline(tmp_path, bootstrap: str, topic: str, runner: dict) -> dict:
    return {
        "pipelines": [{
            "name": "p",
            "source": {"type": "kafka", "bootstrap_servers": [bootstrap], "topic": topic,
                       "client": "confluent-kafka", "start_from": "earliest"},
            "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
            "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
            "explainer": {"decay": 0, "emit_every": "300ms"},
            "sink": {"type": "sqlite", "path": str(tmp_path / "results.db")},
        }],
        "runner": runner,
    }


@pytest.fixture(scope="module")
def planted():
    table, causes = planted_table(40_000, seed=21)
    table = table.select(["power_drain"] + ATTRS)
    values = to_json_lines(table.combine_chunks().to_batches()[0])
    mixed = values[:15_000] + BAD + values[15_000:]
    return table, mixed


def test_same_answer_on_every_runner(tmp_path, kafka_broker, topic_factory, runner, planted):
    table, mixed = planted
    topic = topic_factory(partitions=4)
    produce_to_every_partition(kafka_broker.bootstrap, topic, mixed, 4)
    conf = parse_config(pipeline(tmp_path, kafka_broker.bootstrap, topic, runner), "test")
    result = run_until(conf, lambda d: d["events"] == table.num_rows and d["dead_letters"] == len(BAD))
    store = ResultStore(tmp_path / "results.db")
    history = store.history("p", limit=100_000)
    events = [d["events"] for d in history]
    assert events == sorted(events), "totals went backwards"
    assert [d["total"] for d in history] == sorted(d["total"] for d in history)
    final = history[-1]
    assert store.status("p")["state"] == "stopped"
    assert result.documents == len(history)
    batch = run_diff(table, DiffRequest(("power_drain",), tuple(ATTRS), classifier="predicate", predicate=">= 150"))
    assert_same_answer(final, batch)
    assert final["dropped"] == final["dead_letters"] == len(BAD)
    # Offsets committed to the group are exactly the messages counted.
    assert sum(store.offsets("p").values()) == len(mixed)
    # Every partition is visible, drained and healthy.
    parts = final["partitions"]
    assert sorted(parts) == [f"{topic}/{p}" for p in range(4)]
    assert all(v["lag"] == 0 and v["healthy"] and v["last_read_at"] for v in parts.values())


def test_for_stops_the_cli_on_every_runner(tmp_path, kafka_broker, topic_factory, runner, planted):
    _, mixed = planted
    topic = topic_factory(partitions=4)
    produce_to_every_partition(kafka_broker.bootstrap, topic, mixed[:10_000], 4)
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(pipeline(tmp_path, kafka_broker.bootstrap, topic, runner)))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "macrobase.cli", "run", str(path), "--for", "6"],
                          capture_output=True, text=True, timeout=300, cwd=os.getcwd())
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.monotonic() - started >= 6
    store = ResultStore(tmp_path / "results.db")
    history = store.history("p", limit=100_000)
    last = history[-1]
    summary = [line for line in proc.stderr.splitlines() if line.startswith("p: ")]
    assert summary == [f"p: {last['events']:,} events classified, {len(history)} snapshots stored, "
                       f"{last['dead_letters']:,} dead letters"]
    assert store.status("p")["state"] == "stopped"
    assert last["events"] + last["dead_letters"] == sum(store.offsets("p").values())


def test_a_trained_model_shorter_than_its_warm_up_on_every_runner(tmp_path, runner):
    # A bounded input shorter than the reservoir: the model is trained on all of it when
    # the source ends, so the streaming answer equals a batch MAD over the same rows.
    import pyarrow.parquet as pq

    table, _ = planted_table(6_000, seed=4)
    table = table.select(["power_drain"] + ATTRS)
    pq.write_table(table, tmp_path / "t.parquet")
    cfg = pipeline(tmp_path, "unused:1", "unused", runner)
    cfg["pipelines"][0]["source"] = {"type": "file", "path": str(tmp_path / "t.parquet")}
    cfg["pipelines"][0]["classifier"] = {"type": "mad", "cutoff": {"score": 3.0},
                                         "training": {"reservoir": 10_000}}
    conf = parse_config(cfg, "test")
    result = PipelineRun(conf, conf.pipelines[0]).run()   # ends with its input
    final = ResultStore(tmp_path / "results.db").latest("p")
    assert result.documents >= 1 and final["events"] == table.num_rows
    batch = run_diff(table, DiffRequest(("power_drain",), tuple(ATTRS), classifier="mad", score_cutoff=3.0))
    assert_same_answer(final, batch)


def test_an_idle_topic_with_a_trained_model_stops_on_every_runner(tmp_path, kafka_broker, topic_factory, runner):
    topic = topic_factory(partitions=2)
    cfg = pipeline(tmp_path, kafka_broker.bootstrap, topic, runner)
    cfg["pipelines"][0]["classifier"] = {"type": "mad", "cutoff": {"score": 3.0}}
    conf = parse_config(cfg, "test")
    result = PipelineRun(conf, conf.pipelines[0]).run(duration=4)
    store = ResultStore(tmp_path / "results.db")
    assert result.documents == len(store.history("p", limit=100_000)) >= 1
    assert store.latest("p")["events"] == 0 and store.latest("p")["thresholds"] == {}
    assert store.status("p")["state"] == "stopped"
