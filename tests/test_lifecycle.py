"""Lifecycle of streaming explanations: new, ongoing, resolved (DESIGN.md "Lifecycle").

The scenario's expected statuses are written out by hand from the rule, snapshot by
snapshot; the engine tests check the tracker is wired into snapshots and checkpoints, and
the streaming test runs the real pipeline on a real broker.
"""
from __future__ import annotations

import pickle

import pytest

from macrobase.config import ConfigError, parse_config
from macrobase.diff import DiffRequest, run_diff
from macrobase.engine import GlobalEngine
from macrobase.lifecycle import ExplanationLifecycle, without_lifecycle
from macrobase.model import ModelKeeper
from macrobase.shard import ShardCounter
from macrobase.store import ResultStore
from macrobase.synthetic import planted_table, to_json_lines
from tests.runners import run_until
from tests.test_global_stage import ATTRS, chunks_of, pipeline_config
from tests.topics import produce_to_every_partition

A, B = {"model": "M101"}, {"model": "M7", "firmware": "0.4"}
T = [f"2026-01-01T14:{m:02d}:00.000Z" for m in range(9)]


def explanation(attributes: dict, support: float) -> dict:
    return {"attributes": dict(attributes), "support": support, "risk_ratio": 9.0, "outlier_count": 3, "count": 4}


def test_planted_appearances_and_disappearances_follow_the_rule():
    life = ExplanationLifecycle(resolve_after=2)
    present = [  # which explanations each snapshot reports (support marks the snapshot)
        [A], [A, B], [B], [A, B], [], [], [A], [], [],
    ]
    expected = [  # (attributes, status, first_seen, last_seen, support) listed, in order
        [(A, "new", T[0], T[0], 0.0)],
        [(A, "ongoing", T[0], T[1], 0.1), (B, "new", T[1], T[1], 0.1)],
        [(B, "ongoing", T[1], T[2], 0.2)],                      # A absent once: not resolved
        [(A, "ongoing", T[0], T[3], 0.3), (B, "ongoing", T[1], T[3], 0.3)],   # the gap keeps its onset
        [],                                                      # both absent once
        [(A, "resolved", T[0], T[3], 0.3), (B, "resolved", T[1], T[3], 0.3)],  # absent twice: last numbers
        [(A, "new", T[6], T[6], 0.6)],                           # back after resolving: new again
        [],
        [(A, "resolved", T[6], T[6], 0.6)],
    ]
    transitions = [
        [(A, "new")], [(B, "new")], [], [], [], [(A, "resolved"), (B, "resolved")], [(A, "new")], [],
        [(A, "resolved")],
    ]
    for i, items in enumerate(present):
        step = life.update([explanation(a, i / 10) for a in items], T[i])
        got = [(e["attributes"], e["status"], e["first_seen"], e["last_seen"], e["support"])
               for e in step.explanations]
        assert got == expected[i], f"snapshot {i}"
        assert step.transitions == [{"attributes": a, "status": s, "at": T[i]} for a, s in transitions[i]], i


def test_resolve_after_one_and_identity_by_itemset():
    life = ExplanationLifecycle(resolve_after=1)
    life.update([explanation({"a": "1", "b": 2}, 0.5)], T[0])
    # The same itemset in another key order is the same explanation.
    assert life.update([explanation({"b": 2, "a": "1"}, 0.5)], T[1]).explanations[0]["status"] == "ongoing"
    step = life.update([], T[2])
    assert [e["status"] for e in step.explanations] == ["resolved"]
    assert life.update([], T[3]).explanations == []
    with pytest.raises(ValueError, match="resolve_after"):
        ExplanationLifecycle(resolve_after=0)


def test_resolve_after_is_an_explainer_setting():
    assert pipeline_config().explainer.resolve_after == 5
    assert pipeline_config(resolve_after=2).explainer.resolve_after == 2
    with pytest.raises(ConfigError, match="resolve_after"):
        pipeline_config(resolve_after=0)


def engine_snapshots(seed: int = 4):
    """An engine fed half of a planted table, snapshotted, then the rest: two documents."""
    table, causes = planted_table(20_000, seed=seed)
    table = table.select(["power_drain"] + ATTRS)
    cfg = pipeline_config()
    model = ModelKeeper(cfg, sources=1).current
    engine = GlobalEngine(cfg, {("s0", 0): 0})
    half = table.num_rows // 2
    docs = []
    for part in (table.slice(0, half), table.slice(half)):
        counter = ShardCounter(cfg, "s0")
        for chunk in chunks_of(part, "s0", 3000):
            counter.add(chunk, model)
        engine.add(counter.partial())
        docs.append(engine.snapshot("p").document)
    return table, causes, engine, docs


def test_engine_snapshots_carry_the_lifecycle_and_still_equal_batch():
    table, causes, _, (first, second) = engine_snapshots()
    planted = [e for e in first["explanations"] if e["attributes"] in causes]
    assert planted, "a planted cause should be found in the first half"
    assert {e["status"] for e in planted} == {"new"}
    assert all(e["first_seen"] == e["last_seen"] == first["emitted_at"] for e in planted)
    assert {(tuple(t["attributes"].items()), t["status"]) for t in first["transitions"]} == {
        (tuple(e["attributes"].items()), "new") for e in first["explanations"]}
    again = {json_key(e): e for e in second["explanations"]}
    for e in planted:
        later = again[json_key(e)]
        assert later["status"] == "ongoing" and later["first_seen"] == first["emitted_at"]
        assert later["first_seen"] <= later["last_seen"] == second["emitted_at"]
    batch = run_diff(table, DiffRequest(("power_drain",), tuple(ATTRS), classifier="predicate", predicate=">= 150"))
    assert without_lifecycle(second["explanations"]) == batch["explanations"]


def json_key(e: dict) -> tuple:
    return tuple(sorted(e["attributes"].items()))


def test_the_lifecycle_survives_a_checkpoint_and_old_checkpoints_load():
    _, _, engine, (_, second) = engine_snapshots()
    cfg = engine.cfg
    restored = GlobalEngine.from_checkpoint(engine.to_checkpoint(), cfg, {("s0", 0): 20_000})
    third = restored.snapshot("p").document
    assert third["explanations"] and {e["status"] for e in third["explanations"]} == {"ongoing"}
    assert [e["first_seen"] for e in third["explanations"]] == [e["first_seen"] for e in second["explanations"]]
    # A checkpoint written before engines had a lifecycle: every explanation starts afresh.
    del engine.lifecycle
    old = GlobalEngine.from_checkpoint(pickle.dumps(engine), cfg, {("s0", 0): 20_000})
    assert old.lifecycle.resolve_after == cfg.explainer.resolve_after
    assert {e["status"] for e in old.snapshot("p").document["explanations"]} == {"new"}


def test_a_planted_cause_is_new_then_ongoing_in_a_streaming_run(tmp_path, kafka_broker, topic_factory):
    table, causes = planted_table(20_000, seed=21)
    table = table.select(["power_drain"] + ATTRS)
    topic = topic_factory(partitions=2)
    produce_to_every_partition(kafka_broker.bootstrap, topic, to_json_lines(table.combine_chunks().to_batches()[0]), 2)
    conf = parse_config({"pipelines": [{
        "name": "p",
        "source": {"type": "kafka", "bootstrap_servers": [kafka_broker.bootstrap], "topic": topic,
                   "client": "confluent-kafka", "start_from": "earliest"},
        "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
        "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
        "explainer": {"decay": 0, "emit_every": "200ms"},
        "sink": {"type": "sqlite", "path": str(tmp_path / "results.db")}}]}, "test")

    def cause_ongoing(doc: dict) -> bool:
        return any(e["attributes"] in causes and e["status"] == "ongoing" for e in doc["explanations"])

    run_until(conf, cause_ongoing, timeout=60)
    history = ResultStore(tmp_path / "results.db").history("p", limit=100_000)
    cause = next(e["attributes"] for e in history[-1]["explanations"] if e["attributes"] in causes)
    seen = [(d["emitted_at"], e) for d in history for e in d["explanations"] if e["attributes"] == cause]
    assert seen[0][1]["status"] == "new" and all(e["status"] == "ongoing" for _, e in seen[1:])
    assert len(seen) >= 2
    assert all(e["first_seen"] == seen[0][0] <= e["last_seen"] == at for at, e in seen)
    news = [t for d in history for t in d["transitions"] if t["attributes"] == cause]
    assert news == [{"attributes": cause, "status": "new", "at": seen[0][0]}]

