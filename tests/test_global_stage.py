"""Shards and the global stage without Beam: partial summaries merge to the batch answer.

The reference is the batch explainer (itself checked against brute force in
test_explain.py) over all rows at once; the shards see the rows split, shuffled, with
values first met in different orders, and encode them independently.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from connectors.chunks import Chunk
from explain.streaming import StreamingExplainer
from macrobase.config import parse_config
from macrobase.diff import DiffRequest, run_diff
from macrobase.engine import Coverage, GlobalEngine
from macrobase.model import ModelKeeper
from macrobase.shard import ShardCounter
from macrobase.synthetic import planted_table
from tests.runners import assert_same_answer

ATTRS = ["region", "firmware", "device_model", "carrier", "device_id"]


def pipeline_config(classifier: dict | None = None, **explainer):
    return parse_config({"pipelines": [{
        "name": "p", "source": {"type": "file", "path": "unused.parquet"},
        "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
        "classifier": classifier or {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
        "explainer": {"decay": 0, **explainer}}]}, "test").pipelines[0]


def chunks_of(table: pa.Table, shard: str, rows: int):
    batch = table.combine_chunks().to_batches(max_chunksize=rows)
    pos = 0
    for b in batch:
        yield Chunk(shard, 0, pos + b.num_rows, b, start_offset=pos)
        pos += b.num_rows
    yield Chunk(shard, 0, pos, end=True)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_merged_shards_equal_the_batch_explainer(seed):
    table, _ = planted_table(30_000, seed=seed)
    table = table.select(["power_drain"] + ATTRS)
    cfg = pipeline_config()
    keeper = ModelKeeper(cfg, sources=3)
    model = keeper.current
    rng = np.random.default_rng(seed)
    order = rng.permutation(table.num_rows)
    cuts = np.sort(rng.choice(np.arange(1, table.num_rows), 2, replace=False))
    parts = np.split(order, cuts)
    shards = {f"s{i}": table.take(pa.array(idx)) for i, idx in enumerate(parts)}
    engine = GlobalEngine(cfg, {(k, 0): 0 for k in shards})
    partials = []
    for name, part in shards.items():
        counter = ShardCounter(cfg, name)
        for i, chunk in enumerate(chunks_of(part, name, int(rng.integers(500, 4000)))):
            counter.add(chunk, model)
            if i % 3 == 2:  # partials at arbitrary points, each in its own code space
                partials.append(counter.partial())
                counter = ShardCounter(cfg, name)
        partials.append(counter.partial())
    for i in rng.permutation(len(partials)):   # any arrival order
        assert not engine.finished or i is None
        engine.add(partials[i])
    assert engine.finished
    doc = engine.snapshot("p", final=True).document
    batch = run_diff(table, DiffRequest(("power_drain",), tuple(ATTRS), classifier="predicate", predicate=">= 150"))
    assert_same_answer(doc, batch)
    assert doc["events"] == table.num_rows


def test_translated_explainer_matches_one_encoder():
    rng = np.random.default_rng(7)
    n = 5000
    cols = [rng.integers(0, k, n).astype(np.int32) for k in (4, 30, 2000)]
    out = rng.random(n) < 0.05
    ex = StreamingExplainer(["a", "b", "c"], min_support=0.02, dense_values=500).update(cols, out)
    luts = [rng.permutation(np.arange(10_000))[: int(c.max()) + 1] for c in cols]
    moved = ex.translated(luts)
    direct = StreamingExplainer(["a", "b", "c"], min_support=0.02, dense_values=500).update(
        [lut[c].astype(np.int32) for lut, c in zip(luts, cols)], out)
    assert moved.frequent_counts() == direct.frequent_counts()
    assert moved.totals == direct.totals


def test_coverage_resumes_only_after_a_contiguous_run():
    cov = Coverage(100)
    cov.add(300, 400)
    assert cov.resume == 100           # 100..300 not counted yet
    cov.add(100, 200)
    assert cov.resume == 200
    cov.add(200, 300)
    assert cov.resume == 400


def test_a_predicate_pipeline_snapshots_before_its_first_batch():
    cfg = pipeline_config()
    engine = GlobalEngine(cfg, {("t", 0): 0})
    doc = engine.snapshot("p").document
    assert (doc["total"], doc["events"], doc["explanations"]) == (0, 0, [])
    assert ModelKeeper(cfg, 1).current.thresholds == {"power_drain": {">=": 150.0}}


def test_rows_before_the_first_model_wait_and_every_shard_gets_the_same_model():
    cfg = pipeline_config({"type": "mad", "cutoff": {"score": 3.0},
                           "training": {"reservoir": 1000, "retrain_every": 5000}})
    keeper = ModelKeeper(cfg, sources=2)
    rng = np.random.default_rng(0)
    assert keeper.current is None
    keeper.learn("a", rng.normal(size=(600, 1)), end=False)
    assert keeper.current is None                      # warm-up: 600 < 1000
    keeper.learn("b", rng.normal(size=(600, 1)), end=False)
    first = keeper.current
    assert first is not None and first.version == 1
    keeper.learn("a", rng.normal(size=(3000, 1)), end=False)
    assert keeper.current.version == 1                 # not yet due
    keeper.learn("b", rng.normal(size=(3000, 1)), end=False)
    assert keeper.current.version == 2


def test_a_bounded_input_shorter_than_the_warm_up_is_still_classified():
    cfg = pipeline_config({"type": "mad", "cutoff": {"score": 3.0}, "training": {"reservoir": 10_000}})
    keeper = ModelKeeper(cfg, sources=2)
    keeper.learn("a", np.arange(100.0).reshape(-1, 1), end=True)
    assert keeper.current is None                      # the other source may still send rows
    keeper.learn("b", np.arange(100.0).reshape(-1, 1), end=True)
    assert keeper.current is not None


def test_merged_explainers_still_decay():
    # Merging partials with no late values once left an int64 array behind, which broke decay.
    ex = StreamingExplainer(["a", "b"], decay=0.1)
    rng = np.random.default_rng(0)
    for _ in range(3):
        part = StreamingExplainer(["a", "b"], decay=0.1).update(
            [rng.integers(0, 5, 100).astype(np.int32), rng.integers(0, 5, 100).astype(np.int32)], rng.random(100) < 0.1)
        ex.merge(part).advance()
    assert ex.totals[1] == pytest.approx(100 * (0.9 ** 3 + 0.9 ** 2 + 0.9))
