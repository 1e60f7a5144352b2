"""Lifecycle of streaming explanations: new, ongoing, resolved (DESIGN.md "Lifecycle").

The scenario's expected statuses are written out by hand from the rule, snapshot by
snapshot.
"""
from __future__ import annotations

import pytest

from macrobase.lifecycle import ExplanationLifecycle

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

