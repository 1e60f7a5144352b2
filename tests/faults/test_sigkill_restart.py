"""SIGKILL at any moment, restart with ``start_from: committed``: every event counted once.

Real processes (``macrobase run``), the real broker, real SQLite, on the three runner
configurations of tests/runners.py. The pipeline is killed
(its whole process group, so SDK worker processes die too) before its first checkpoint,
right after a checkpoint, and at seeded random moments, while more events keep arriving.
After the last restart, with decay 0, ``total + dropped`` equals the messages in the topic,
and at every kill the offsets committed to Kafka never pass the stored checkpoint's.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

import pytest
import yaml

from connectors.kafka_client import open_partition_reader
from macrobase.store import ResultStore
from macrobase.synthetic import planted_table, to_json_lines
from tests.runners import runner_config, wait_for
from tests.topics import produce_to_every_partition

ATTRS = ["region", "firmware", "device_model", "carrier"]
PARTITIONS = 3
SEED = 20261202


class Pipeline:
    """`macrobase run` in its own process group."""

    def __init__(self, config_path, env) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "macrobase.cli", "run", str(config_path)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(60)

    def interrupt(self) -> int:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            return self.proc.wait(240)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)


def committed(bootstrap: str, topic: str) -> dict[int, int | None]:
    out = {}
    for p in range(PARTITIONS):
        r = open_partition_reader("kafka-python", [bootstrap], topic, p, "macrobase-p")
        try:
            out[p] = r.committed()
        finally:
            r.close()
    return out


@pytest.mark.parametrize("runner_name", ["in-process", "multi-process", "portable-external"])
def test_sigkill_anywhere_then_restart_counts_every_event_once(tmp_path, kafka_broker, topic_factory,
                                                               runner_name, request):
    rng = random.Random(SEED)
    topic = topic_factory(partitions=PARTITIONS)
    table, _ = planted_table(100_000, seed=SEED % 1000)
    values = to_json_lines(table.select(["power_drain"] + ATTRS).combine_chunks().to_batches()[0])
    bad = [b"not json", b'{"power_drain": "x"}'] * 10
    batches = [values[:20_000] + bad, values[20_000:40_000], values[40_000:60_000],
               values[60_000:80_000] + bad, values[80_000:]]
    db = tmp_path / "results.db"
    cfg = {
        "pipelines": [{
            "name": "p",
            "source": {"type": "kafka", "bootstrap_servers": [kafka_broker.bootstrap], "topic": topic,
                       "client": "kafka-python", "start_from": "committed", "group_id": "macrobase-p"},
            "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
            "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
            "explainer": {"decay": 0, "emit_every": "200ms"},
            "sink": {"type": "sqlite", "path": str(db), "checkpoint_every": "2s"},
        }],
        "runner": runner_config(runner_name, request),
    }
    path = tmp_path / "p.yaml"

    def configure(checkpoint_every: str) -> None:
        cfg["pipelines"][0]["sink"]["checkpoint_every"] = checkpoint_every
        path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    store = ResultStore(db)
    produced = 0

    def produce(batch):
        nonlocal produced
        produce_to_every_partition(kafka_broker.bootstrap, topic, batch, PARTITIONS)
        produced += len(batch)

    def check_commits_covered():
        stored = store.offsets("p")
        for p, off in committed(kafka_broker.bootstrap, topic).items():
            if off is not None:
                assert off <= stored.get((topic, p), 0), "offsets committed past the stored checkpoint"

    # 1. Killed after results were stored but before the first checkpoint (which is
    #    an hour away, so the moment does not depend on how fast the machine is).
    configure("1h")
    produce(batches[0])
    run = Pipeline(path, env)
    wait_for(lambda: store.latest("p") is not None, 180, "a first snapshot")
    assert store.checkpoint("p") is None
    run.kill()
    check_commits_covered()
    assert all(v is None for v in committed(kafka_broker.bootstrap, topic).values())

    # 2. Killed right after a checkpoint.
    configure("2s")
    produce(batches[1])
    run = Pipeline(path, env)
    wait_for(lambda: store.checkpoint("p") is not None, 180, "a first checkpoint")
    run.kill()
    check_commits_covered()

    # 3. Killed at seeded random moments while events keep arriving.
    for batch in batches[2:4]:
        run = Pipeline(path, env)
        before = len(store.history("p", limit=100_000))
        wait_for(lambda: len(store.history("p", limit=100_000)) > before, 180, "the restart's first snapshot")
        produce(batch)
        time.sleep(rng.uniform(0.0, 3.0))  # the kill moment is the variable under test
        run.kill()
        check_commits_covered()

    # 4. The last run sees everything exactly once.
    produce(batches[4])
    run = Pipeline(path, env)
    wait_for(lambda: (d := store.latest("p")) and d["total"] + d["dropped"] >= produced, 300,
             f"all {produced} messages counted")
    assert run.interrupt() == 0
    final = store.latest("p")
    assert final["total"] + final["dropped"] == produced
    assert final["total"] == final["events"] == len(values)
    assert final["dropped"] == final["dead_letters"] == 2 * len(bad)
    assert sum(v for v in committed(kafka_broker.bootstrap, topic).values()) == produced
