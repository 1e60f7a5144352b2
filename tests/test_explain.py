"""The exact explainer against the brute-force pandas reference and planted ground truth."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import fisher_exact

from explain import BatchExplainer, encode_columns
from macrobase.columns import encode_arrow
from macrobase.synthetic import planted_table
from tests.reference import reference_explain

RATIOS = ["risk_ratio", "global_ratio", "prevalence_ratio"]


def ours(df: pd.DataFrame, attributes, **params):
    enc = encode_columns({a: df[a].tolist() for a in attributes})
    found = BatchExplainer(**params).explain(enc, df["outlier"].to_numpy(bool))
    return [
        {"attributes": dict(e.attributes), "outlier_count": e.outlier_count, "count": e.count,
         "support": e.support, "ratio": e.ratio, "implies": dict(e.implies)}
        for e in found
    ]


def assert_same(got, want):
    assert [g["attributes"] for g in got] == [w["attributes"] for w in want]
    assert [list(g["implies"].items()) for g in got] == [list(w["implies"].items()) for w in want]
    for g, w in zip(got, want):
        assert (g["outlier_count"], g["count"]) == (w["outlier_count"], w["count"])
        assert g["support"] == pytest.approx(w["support"], rel=1e-9)
        if math.isinf(w["ratio"]):
            assert math.isinf(g["ratio"])
        else:
            assert g["ratio"] == pytest.approx(w["ratio"], rel=1e-9)


@st.composite
def tables(draw):
    """Small tables whose outliers are often caused by a planted combination of values."""
    n_attrs = draw(st.integers(1, 4))
    n_rows = draw(st.integers(1, 120))
    attributes = [f"a{i}" for i in range(n_attrs)]
    data = {}
    for a in attributes:
        alphabet = draw(st.lists(st.sampled_from(["x", "y", "z", "w", None]), min_size=1, max_size=4))
        data[a] = draw(st.lists(st.sampled_from(alphabet), min_size=n_rows, max_size=n_rows))
    df = pd.DataFrame(data)
    noise = draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows))
    kind = draw(st.sampled_from(["planted", "random", "none", "all"]))
    if kind == "planted":
        cause = draw(st.lists(st.sampled_from(attributes), min_size=1, max_size=3, unique=True))
        match = np.ones(n_rows, dtype=bool)
        for a in cause:
            match &= (df[a] == draw(st.sampled_from(["x", "y", "z"]))).to_numpy()
        rare = draw(st.lists(st.booleans(), min_size=n_rows, max_size=n_rows))
        flags = match | (np.array(noise) & np.array(rare))
    else:
        flags = {"random": np.array(noise), "none": np.zeros(n_rows, bool),
                 "all": np.ones(n_rows, bool)}[kind]
    df["outlier"] = flags
    return df, attributes


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tables(),
    st.sampled_from([0.01, 0.1, 0.25, 0.5, 1.0]),
    st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]),
    st.sampled_from(RATIOS),
    st.integers(1, 3),
    st.sampled_from(["refined", "minimal"]),
)
def test_matches_bruteforce_reference(table, min_support, min_ratio, ratio_metric, max_order, mode):
    df, attributes = table
    params = dict(min_support=min_support, min_ratio=min_ratio, ratio_metric=ratio_metric,
                  max_order=max_order, mode=mode)
    assert_same(ours(df, attributes, **params), reference_explain(df, attributes, **params))


@pytest.mark.parametrize("mode", ["refined", "minimal"])
@pytest.mark.parametrize("ratio_metric", RATIOS)
def test_matches_reference_on_synthetic_telemetry(mode, ratio_metric):
    table, _ = planted_table(60_000, seed=3)
    attributes = ["region", "firmware", "device_model", "carrier", "app_version"]
    df = table.select(attributes + ["anomalous"]).to_pandas()
    df = df.rename(columns={"anomalous": "outlier"}).astype({a: object for a in attributes})
    params = dict(min_support=0.02, min_ratio=2.0, ratio_metric=ratio_metric, mode=mode)
    assert_same(ours(df, attributes, **params), reference_explain(df, attributes, **params))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_refined_finds_exactly_the_planted_causes(seed):
    table, causes = planted_table(300_000, seed=seed)
    attributes = ["region", "firmware", "device_model", "carrier", "app_version", "device_id"]
    enc = encode_arrow(table, attributes)
    outliers = table.column("anomalous").to_numpy()
    refined = BatchExplainer().explain(enc, outliers)
    assert sorted(sorted(dict(e.attributes).items()) for e in refined) == sorted(
        sorted(c.items()) for c in causes)
    minimal = BatchExplainer(mode="minimal").explain(enc, outliers)
    # MacroBase's minimal answer reports parts of the pair instead of the pair itself.
    assert {"device_model": "M101", "firmware": "0.4"} not in [dict(e.attributes) for e in minimal]


def test_no_outliers_gives_no_explanations():
    enc = encode_columns({"a": ["x", "y"]})
    assert BatchExplainer().explain(enc, np.array([False, False])) == []


def test_infinite_ratio_and_strict_json():
    enc = encode_columns({"a": ["x"] * 5 + ["y"] * 95})
    (e,) = BatchExplainer().explain(enc, np.array([True] * 5 + [False] * 95))
    assert math.isinf(e.ratio) and e.to_dict()["risk_ratio"] == "inf"
    doc = e.to_dict()
    p = fisher_exact([[5, 0], [0, 95]], alternative="greater").pvalue
    assert doc.pop("p_value") == pytest.approx(p, rel=1e-9)
    lo, hi = doc.pop("ratio_ci")
    assert hi == "inf" and 1 < lo < math.inf   # the interval of an infinite ratio is open above
    assert doc == {"attributes": {"a": "x"}, "support": 1.0, "risk_ratio": "inf",
                   "outlier_count": 5, "count": 5, "implies": {}}
    json.dumps(e.to_dict(), allow_nan=False)


def test_missing_values_are_not_items():
    enc = encode_columns({"a": [None] * 10 + ["y"] * 90})
    found = BatchExplainer(min_ratio=1.0).explain(enc, np.array([True] * 10 + [False] * 90))
    assert all(v is not None for e in found for _, v in e.attributes)


def test_high_cardinality_attribute_costs_surviving_values_only():
    rng = np.random.default_rng(0)
    n = 2_000_000
    device = rng.integers(0, 1_000_000, n).astype(np.int32)
    model = rng.integers(0, 10, n).astype(np.int32)
    outlier = (model == 3) & (rng.random(n) < 0.2)
    from explain import EncodedAttributes
    enc = EncodedAttributes.from_codes(["device", "model"], [device, model],
                                       [range(1_000_000), [f"M{i}" for i in range(10)]])
    found = BatchExplainer().explain(enc, outlier)
    assert [dict(e.attributes) for e in found] == [{"model": "M3"}]


@pytest.mark.parametrize("bad, message", [
    (dict(min_support=0), "min_support"), (dict(min_support=1.5), "min_support"),
    (dict(min_ratio=0), "min_ratio"), (dict(max_order=4), "max_order"),
    (dict(mode="maximal"), "mode"), (dict(ratio_metric="odds"), "ratio_metric"),
])
def test_bad_parameters_name_the_parameter(bad, message):
    enc = encode_columns({"a": ["x", "y"]})
    with pytest.raises(ValueError, match=message):
        BatchExplainer(**bad).explain(enc, np.array([True, False]))


def test_refinement_prefers_higher_ratio_then_more_outliers():
    from explain.metrics import global_ratio
    from explain.rules import apply_rules
    # O=100 of N=1000, global ratio = 10 * o/n. {a=0} (ratio 6) has two absorbing
    # extensions with ratio 10; the one covering more outliers wins.
    counts = {((0, 0),): (60, 100), ((0, 0), (1, 0)): (50, 50), ((0, 0), (2, 0)): (55, 55)}
    (found,) = apply_rules(counts, 100, 1000, min_support=0.01, min_ratio=3.0, ratio=global_ratio,
                           max_order=2, mode="refined", item_key=lambda i: i)
    assert found.itemset == ((0, 0), (2, 0))
    counts[((0, 0), (1, 0))] = (56, 56)  # now strictly higher ratio? no: equal ratio, more outliers
    (found,) = apply_rules(counts, 100, 1000, min_support=0.01, min_ratio=3.0, ratio=global_ratio,
                           max_order=2, mode="refined", item_key=lambda i: i)
    assert found.itemset == ((0, 0), (1, 0))


@pytest.mark.parametrize("joint_limit, dense_limit", [(0, 1 << 22), (0, 0)])
def test_per_combination_counting_paths_agree(monkeypatch, joint_limit, dense_limit):
    """Large joint tables fall back to one pass per combination (dense or sorted keys)."""
    import explain._counting
    import explain.itemsets
    monkeypatch.setattr(explain.itemsets, "JOINT_CELL_LIMIT", joint_limit)
    monkeypatch.setattr(explain._counting, "DENSE_CELL_LIMIT", dense_limit)
    table, _ = planted_table(40_000, seed=4)
    attributes = ["region", "firmware", "device_model", "carrier", "app_version"]
    df = table.select(attributes + ["anomalous"]).to_pandas()
    df = df.rename(columns={"anomalous": "outlier"}).astype({a: object for a in attributes})
    for mode in ("refined", "minimal"):
        params = dict(min_support=0.02, min_ratio=2.0, mode=mode)
        assert_same(ours(df, attributes, **params), reference_explain(df, attributes, **params))


# ------------------------------------------------- the refine tie-break, with literal answers

def _same_rows_table(order: tuple[str, ...]):
    """100 rows; a=x exactly where b=y (rows 0-19); the outliers are rows 0-9, and among
    rows 10-99 c is z on every other row, so c=z is frequent but not a cause."""
    n = 100
    a = ["x" if i < 20 else f"a{i % 4}" for i in range(n)]
    b = ["y" if i < 20 else f"b{i % 5}" for i in range(n)]
    c = ["z" if i % 2 else "w" for i in range(n)]
    cols = {"a": a, "b": b, "c": c}
    return encode_columns({k: cols[k] for k in order}), np.arange(n) < 10


def test_same_rows_keep_the_item_of_the_first_attribute():
    encoded, outlier = _same_rows_table(("a", "b", "c"))
    found = BatchExplainer(min_support=0.2, min_ratio=3.0, max_order=1).explain(encoded, outlier)
    assert [(e.attributes, e.implies) for e in found] == [((("a", "x"),), (("b", "y"),))]
    # MacroBase's minimal explanations report both, equal counts ordered by attribute
    found = BatchExplainer(min_support=0.2, min_ratio=3.0, max_order=1, mode="minimal").explain(encoded, outlier)
    assert [(e.attributes, e.implies) for e in found] == [((("a", "x"),), ()), ((("b", "y"),), ())]


def test_same_rows_follow_the_attribute_order_given():
    encoded, outlier = _same_rows_table(("b", "a", "c"))
    found = BatchExplainer(min_support=0.2, min_ratio=3.0, max_order=1).explain(encoded, outlier)
    assert [(e.attributes, e.implies) for e in found] == [((("b", "y"),), (("a", "x"),))]
