"""One explanation per set of rows: checked against the rows themselves (pandas masks),
independently of the count-based rule the explainers and tests/reference.py apply."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explain import BatchExplainer, StreamingExplainer, encode_columns
from tests.test_explain import tables


def rows_of(df: pd.DataFrame, items: dict) -> frozenset[int]:
    mask = np.ones(len(df), bool)
    for a, v in items.items():
        mask &= (df[a] == v).to_numpy()
    return frozenset(np.flatnonzero(mask).tolist())


def flights(seed: int = 0) -> pd.DataFrame:
    """HA flies only JFK -> HNL; its 9 o'clock flights are late."""
    rng = np.random.default_rng(seed)
    n = 4000
    df = pd.DataFrame({
        "carrier": rng.choice(["AA", "DL", "UA"], n), "origin": rng.choice(["JFK", "LGA", "BOS"], n),
        "dest": rng.choice(["LAX", "SFO", "ORD"], n), "hour": rng.choice([7, 9, 12, 18], n),
    })
    ha = rng.random(n) < 0.05
    df.loc[ha, ["carrier", "origin", "dest"]] = ["HA", "JFK", "HNL"]
    df["outlier"] = (ha & (df["hour"] == 9) & (rng.random(n) < 0.8)) | (rng.random(n) < 0.01)
    return df


def test_flights_of_one_route_are_reported_once_with_implies():
    df = flights()
    attrs = ["carrier", "origin", "dest", "hour"]
    enc = encode_columns({a: df[a].tolist() for a in attrs})
    found = BatchExplainer(min_support=0.05, min_ratio=4.0).explain(enc, df["outlier"].to_numpy())
    ha_rows = rows_of(df, {"carrier": "HA", "hour": 9})
    matching = [e for e in found if rows_of(df, dict(e.attributes)) == ha_rows]
    assert len(matching) == 1
    (e,) = matching
    assert dict(e.attributes) == {"carrier": "HA", "hour": 9}
    assert dict(e.implies) == {"origin": "JFK", "dest": "HNL"}
    assert "origin=JFK, dest=HNL" in e.sentence()
    assert e.to_dict()["implies"] == {"origin": "JFK", "dest": "HNL"}
    # MacroBase's minimal mode is unchanged: carrier=HA and dest=HNL, the same flights, both listed.
    minimal = BatchExplainer(min_support=0.05, min_ratio=4.0, mode="minimal").explain(
        enc, df["outlier"].to_numpy())
    minimal_rows = [rows_of(df, dict(m.attributes)) for m in minimal]
    assert len(set(minimal_rows)) < len(minimal_rows)
    assert all(m.implies == () for m in minimal)


def test_streaming_reports_the_same_route_once():
    df = flights(1)
    attrs = ["carrier", "origin", "dest", "hour"]
    enc = encode_columns({a: df[a].tolist() for a in attrs})
    outliers = df["outlier"].to_numpy()
    params = dict(min_support=0.05, min_ratio=4.0)
    ex = StreamingExplainer(attrs, **params)
    for lo in range(0, len(df), 700):
        ex.update([c[lo:lo + 700] for c in enc.codes], outliers[lo:lo + 700])
    got = [(dict(e.attributes), dict(e.implies)) for e in ex.explanations(enc.values)]
    want = [(dict(e.attributes), dict(e.implies)) for e in BatchExplainer(**params).explain(enc, outliers)]
    assert got == want and ({"carrier": "HA", "hour": 9}, {"origin": "JFK", "dest": "HNL"}) in got


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.sampled_from([0.01, 0.1, 0.25]), st.sampled_from([1.0, 1.5, 3.0]), st.integers(1, 3))
def test_implies_is_true_of_every_row_and_small_duplicates_are_merged(table, min_support, min_ratio, max_order):
    df, attributes = table
    enc = encode_columns({a: df[a].tolist() for a in attributes})
    found = BatchExplainer(min_support=min_support, min_ratio=min_ratio, max_order=max_order).explain(
        enc, df["outlier"].to_numpy(bool))
    row_sets = [rows_of(df, dict(e.attributes)) for e in found]
    for e, rows in zip(found, row_sets):
        # Sound: every row of the explanation has the implied items.
        assert rows <= rows_of(df, dict(e.implies))
        assert not set(dict(e.attributes)) & set(dict(e.implies))
    # Complete where counts of at most max_order items can show it: an explanation with
    # fewer than max_order items shares its rows with no other one.
    for i, (e, rows) in enumerate(zip(found, row_sets)):
        if e.order < max_order:
            assert [j for j, r in enumerate(row_sets) if r == rows] == [i]
