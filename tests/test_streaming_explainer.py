"""The streaming explainer against the exact batch explainer (itself checked against a
brute-force reference in test_explain.py), planted regime changes, merging and memory."""
from __future__ import annotations

import io
import math
import pickle
from itertools import combinations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explain import BatchExplainer, EncodedAttributes, StreamingExplainer, encode_columns
from explain.result import Explanation
from macrobase.columns import encode_arrow
from macrobase.synthetic import Cause, planted_table
from tests.test_explain import RATIOS, tables

MODES = ["refined", "minimal"]


def batch_answer(enc: EncodedAttributes, outliers: np.ndarray, **params) -> list[tuple]:
    return [
        (tuple(e.attributes), e.outlier_count, e.count, e.ratio)
        for e in BatchExplainer(**params).explain(enc, outliers)
    ]


def stream_answer(ex: StreamingExplainer, enc: EncodedAttributes) -> list[tuple]:
    found = ex.explanations(enc.values)
    assert all(isinstance(e, Explanation) for e in found)  # the batch explainer's type
    return [(tuple(e.attributes), e.outlier_count, e.count, e.ratio) for e in found]


def feed(ex: StreamingExplainer, enc: EncodedAttributes, outliers: np.ndarray, cuts) -> StreamingExplainer:
    """Feed rows in batches split at ``cuts`` (sorted row positions)."""
    bounds = [0, *cuts, enc.n_rows]
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        ex.update([c[lo:hi] for c in enc.codes], outliers[lo:hi])
    return ex


def assert_identical(got, want):
    """Same itemsets in the same order with the same counts and ratios (no tolerance)."""
    assert [g[:3] for g in got] == [w[:3] for w in want]
    for g, w in zip(got, want):
        assert g[3] == w[3] or (math.isinf(g[3]) and math.isinf(w[3]))


def random_cuts(rng: np.random.Generator, n_rows: int, n_batches: int) -> list[int]:
    return sorted(rng.integers(0, n_rows + 1, n_batches - 1).tolist())


# -- exactness: decay 0, nothing evicted == batch -----------------------------------------

@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tables(),
    st.lists(st.integers(0, 120), max_size=8),
    st.sampled_from([0.01, 0.1, 0.25, 0.5, 1.0]),
    st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]),
    st.sampled_from(RATIOS),
    st.integers(1, 3),
    st.sampled_from(MODES),
    st.sampled_from([4096, 2, 0]),
    st.sampled_from([18, 0]),
    st.sampled_from([100_000, 3]),
)
def test_matches_batch_explainer(table, cuts, min_support, min_ratio, ratio_metric, max_order,
                                 mode, dense_values, dense_bits, sketch_size):
    df, attributes = table
    enc = encode_columns({a: df[a].tolist() for a in attributes})
    outliers = df["outlier"].to_numpy(bool)
    params = dict(min_support=min_support, min_ratio=min_ratio, ratio_metric=ratio_metric,
                  max_order=max_order, mode=mode)
    ex = StreamingExplainer(attributes, sketch_size=sketch_size, dense_values=dense_values,
                            dense_bits=dense_bits, **params)
    feed(ex, enc, outliers, sorted(min(c, len(df)) for c in cuts))
    if dense_bits and sketch_size >= 100_000:
        assert ex.exact_            # the guarantee: dense tier (small tables) and no eviction
    if ex.exact_:                   # and whenever the flag says exact, the answer is
        assert_identical(stream_answer(ex, enc), batch_answer(enc, outliers, **params))
    assert ex.totals == (float(outliers.sum()), float(len(outliers)))


@pytest.mark.parametrize("dense_values", [4096, 0])
def test_exact_flag_is_trustworthy_when_everything_is_sketched(dense_values):
    # dense_bits=0: every pair/triple counts values in play only, so values that turn
    # frequent after their first rows are late. Whenever exact_ says True the answer must
    # be the batch answer; both outcomes must occur or the test proves nothing.
    rng = np.random.default_rng(dense_values)
    seen = {True: 0, False: 0}
    for _ in range(300):
        n_rows, n_attrs = int(rng.integers(5, 150)), int(rng.integers(2, 5))
        cols = {f"a{j}": rng.integers(0, rng.integers(1, 5), n_rows).tolist() for j in range(n_attrs)}
        enc = encode_columns(cols)
        outliers = rng.random(n_rows) < rng.uniform(0.05, 0.6)
        cause = rng.integers(0, 3, n_attrs)[:2]
        outliers |= (enc.codes[0] == cause[0]) & (enc.codes[1] == cause[1])
        params = dict(min_support=float(rng.choice([0.05, 0.2])), min_ratio=float(rng.choice([1.0, 1.5])),
                      max_order=int(rng.integers(2, 4)), mode=str(rng.choice(MODES)))
        ex = StreamingExplainer(list(cols), dense_bits=0, dense_values=dense_values, **params)
        feed(ex, enc, outliers, random_cuts(rng, n_rows, int(rng.integers(1, 6))))
        seen[ex.exact_] += 1
        if ex.exact_:
            assert_identical(stream_answer(ex, enc), batch_answer(enc, outliers, **params))
    assert min(seen.values()) >= 30, seen


SYNTH = ["region", "firmware", "device_model", "carrier", "app_version", "device_id"]


@pytest.fixture(scope="module")
def planted():
    table, causes = planted_table(60_000, seed=3)
    return encode_arrow(table, SYNTH), table.column("anomalous").to_numpy(), causes


@pytest.mark.parametrize("dense_values, dense_bits", [(8192, 18), (4096, 18), (0, 0)])
def test_matches_batch_on_planted_telemetry_in_random_batches(planted, dense_values, dense_bits):
    # Device-id pairs/triples do not fit the dense tier: they count values in play only;
    # dense_values=4096 sketches device ids 4096..4999 as singletons. (0, 0) sketches
    # everything: values that turn frequent after their first rows are late, so exactness
    # is no longer guaranteed, only flagged.
    enc, outliers, _ = planted
    rng = np.random.default_rng(dense_values)
    ex = StreamingExplainer(SYNTH, min_support=0.02, min_ratio=2.0, sketch_size=1_000_000,
                            dense_values=dense_values, dense_bits=dense_bits)
    feed(ex, enc, outliers, random_cuts(rng, enc.n_rows, 40))
    if dense_bits:
        assert ex.exact_
    for mode in MODES:
        for ratio_metric in RATIOS:
            # Parameters are plain attributes (scikit-learn style); counts do not depend on them.
            ex.mode, ex.ratio_metric = mode, ratio_metric
            want = batch_answer(enc, outliers, min_support=0.02, min_ratio=2.0,
                                ratio_metric=ratio_metric, mode=mode)
            if ex.exact_:
                assert_identical(stream_answer(ex, enc), want)
            else:
                assert stream_answer(ex, enc) != want


def test_refined_stream_finds_exactly_the_planted_causes(planted):
    enc, outliers, causes = planted
    ex = feed(StreamingExplainer(SYNTH, sketch_size=1_000_000), enc, outliers,
              random_cuts(np.random.default_rng(0), enc.n_rows, 25))
    got = [dict(a) for a, *_ in stream_answer(ex, enc)]
    assert sorted(sorted(d.items()) for d in got) == sorted(sorted(c.items()) for c in causes)


# -- decay: regime change ------------------------------------------------------------------

def test_explanation_switches_after_regime_change():
    cause_a = Cause({"device_model": "M101", "firmware": "0.4"}, 0.6)
    cause_b = Cause({"region": "region-2", "carrier": "carrier-07"}, 0.9)
    attrs = ["region", "firmware", "device_model", "carrier"]
    ex = StreamingExplainer(attrs, decay=0.5, sketch_size=50_000)

    def interval(seed, cause):
        # planted_table's dictionaries are the fixed value lists, so codes are global.
        table, _ = planted_table(20_000, seed=seed, causes=(cause,))
        enc = encode_arrow(table, attrs)
        ex.update(enc.codes, table.column("anomalous").to_numpy())
        found = [dict(e.attributes) for e in ex.explanations(enc.values)]
        ex.advance()
        return found

    for seed in range(8):
        found = interval(seed, cause_a)
    assert found == [cause_a.items]
    history = [interval(100 + seed, cause_b) for seed in range(8)]
    switched = next(i for i, found in enumerate(history) if found[:1] == [cause_b.items])
    assert switched <= 2                                  # within three intervals
    assert all(found[:1] == [cause_b.items] for found in history[switched:])
    # A has decayed away (tiny background triples may come and go: min_support is 1%).
    assert all(cause_a.items not in found for found in history[-4:])


@pytest.mark.parametrize("dense_bits", [18, 0])
def test_decayed_counts_are_exact_weighted_sums(dense_bits):
    # Three intervals with decay 0.3: each row weighs 0.7**(intervals after its own).
    # Brute force over every itemset of the weighted rows, independent of the explainer.
    rng = np.random.default_rng(dense_bits)
    codes = [rng.integers(0, k, 900).astype(np.int32) for k in (3, 4, 2)]
    outliers = (codes[0] == 1) & (codes[1] == 2) | (rng.random(900) < 0.1)
    interval = np.repeat([0, 1, 2], 300)
    ex = StreamingExplainer(["a", "b", "c"], min_support=0.05, decay=0.3, dense_bits=dense_bits)
    for i in range(3):
        rows = interval == i
        ex.update([c[rows] for c in codes], outliers[rows])
        ex.advance()
    weight = 0.7 ** (3 - interval)
    O, N = float(weight[outliers].sum()), float(weight.sum())
    assert ex.totals == pytest.approx((O, N), rel=1e-12)
    want = {}
    for k in (1, 2, 3):
        for attrs in combinations(range(3), k):
            keys = np.stack([codes[a] for a in attrs], axis=1)
            for key in np.unique(keys, axis=0):
                match = (keys == key).all(axis=1)
                o = float(weight[match & outliers].sum())
                if o / O >= 0.05:
                    want[tuple(zip(attrs, key.tolist()))] = (o, float(weight[match].sum()))
    got = ex.frequent_counts()
    assert ex.exact_          # common values are frequent from the first interval on
    assert got.keys() == want.keys()
    for itemset, (o, n) in want.items():
        assert got[itemset] == pytest.approx((o, n), rel=1e-12)


# -- merging and checkpoints -----------------------------------------------------------------

@pytest.mark.parametrize("dense_values, dense_bits", [(4096, 18), (0, 0)])
def test_merge_of_halves_equals_one_explainer_fed_everything(planted, dense_values, dense_bits):
    enc, outliers, _ = planted
    half = enc.n_rows // 2
    params = dict(min_support=0.02, min_ratio=2.0, sketch_size=1_000_000, dense_values=dense_values,
                  dense_bits=dense_bits)
    whole = feed(StreamingExplainer(SYNTH, **params), enc, outliers, [10_000, 20_000, 45_000])
    left = StreamingExplainer(SYNTH, **params)
    right = StreamingExplainer(SYNTH, **params)
    left.update([c[:half] for c in enc.codes], outliers[:half])
    right.update([c[half:] for c in enc.codes], outliers[half:])
    merged = left.merge(right)
    assert merged.totals == whole.totals
    want = batch_answer(enc, outliers, min_support=0.02, min_ratio=2.0)
    if dense_bits:
        assert merged.exact_ and whole.exact_
        assert merged.frequent_counts() == whole.frequent_counts()
    for ex in (merged, whole):      # everything sketched: exact only when the flag says so
        if ex.exact_:
            assert_identical(stream_answer(ex, enc), want)


def test_checkpoint_round_trip_through_savez_and_pickle(planted):
    enc, outliers, _ = planted
    ex = StreamingExplainer(SYNTH, decay=0.1, dense_values=1000, dense_bits=12, sketch_size=5_000)
    feed(ex, enc, outliers, [20_000, 40_000]).advance()
    buf = io.BytesIO()
    np.savez(buf, **ex.to_state())
    buf.seek(0)
    with np.load(buf) as npz:
        restored = StreamingExplainer.from_state(dict(npz))
    unpickled = pickle.loads(pickle.dumps(ex.to_state()))
    for other in (restored, StreamingExplainer.from_state(unpickled)):
        assert other.explanations() == ex.explanations()
        assert other.totals == ex.totals and other.exact_ == ex.exact_
        # And it keeps counting where it stopped.
        other.update([c[:5000] for c in enc.codes], outliers[:5000])
    ex.update([c[:5000] for c in enc.codes], outliers[:5000])
    assert restored.frequent_counts() == ex.frequent_counts()


# -- bounded memory and the exactness flag ---------------------------------------------------

def test_a_million_device_ids_keep_every_sketch_at_its_bound():
    rng = np.random.default_rng(0)
    size = 2_000
    ex = StreamingExplainer(["device", "model", "region"], sketch_size=size, dense_values=1024)
    for start in range(0, 1_000_000, 50_000):
        device = np.arange(start, start + 50_000, dtype=np.int32)   # every id new
        model = rng.integers(0, 10, 50_000).astype(np.int32)
        region = rng.integers(0, 4, 50_000).astype(np.int32)
        outlier = ((model == 3) & (rng.random(50_000) < 0.5)) | (rng.random(50_000) < 0.01)
        ex.update([device, model, region], outlier)
        assert all(n <= 2 * size for n in ex.n_entries_.values())
        assert len(ex.dense_n_[0]) <= 1024
    assert ex.n_entries_[1] > size and not ex.exact_      # device ids were evicted
    assert [e.attributes for e in ex.explanations()] == [(("model", 3),)]


def test_late_value_clears_the_exact_flag():
    # With pairs in the sketch, a=5 is seen with b=1 among inliers, then becomes frequent
    # among outliers: the pair's earlier rows were not counted, and the flag must say so.
    a = np.array([5] * 10 + [0] * 90, np.int32)
    b = np.array([1] * 100, np.int32)
    flags = np.array([True] * 10 + [False] * 90)
    ex = StreamingExplainer(["a", "b"], min_ratio=1.5, dense_bits=0)
    ex.update([a, b], np.zeros(100, bool)).update([a, b], flags)
    assert not ex.exact_
    assert ex.frequent_counts()[((0, 5), (1, 1))] == (10.0, 10.0)        # truly (10, 20)
    dense = StreamingExplainer(["a", "b"], min_ratio=1.5)                   # pairs in the dense tier
    dense.update([a, b], np.zeros(100, bool)).update([a, b], flags)
    assert dense.exact_ and dense.frequent_counts()[((0, 5), (1, 1))] == (10.0, 20.0)


@pytest.mark.parametrize("bad, message", [
    (dict(min_support=0), "min_support"), (dict(max_order=4), "max_order"),
    (dict(mode="maximal"), "mode"), (dict(ratio_metric="odds"), "ratio_metric"),
    (dict(decay=1.0), "decay"), (dict(sketch_size=0), "sketch_size"),
    (dict(dense_values=-1), "dense_values"), (dict(dense_bits=30), "dense_bits"),
])
def test_bad_parameters_name_the_parameter(bad, message):
    with pytest.raises(ValueError, match=message):
        StreamingExplainer(["a"], **bad).update([np.zeros(2, np.int32)], np.array([True, False]))


def test_bad_batches_are_rejected():
    ex = StreamingExplainer(["a", "b"])
    with pytest.raises(ValueError, match="codes"):
        ex.update([np.zeros(3, np.int32)], np.zeros(3, bool))
    with pytest.raises(ValueError, match="length"):
        ex.update([np.zeros(3, np.int32), np.zeros(2, np.int32)], np.zeros(3, bool))
    with pytest.raises(ValueError, match="-1"):
        ex.update([np.full(3, -2, np.int32), np.zeros(3, np.int32)], np.zeros(3, bool))
