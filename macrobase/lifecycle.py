"""When a streaming explanation appeared, whether it is still there, and when it went away.

:class:`ExplanationLifecycle` is fed the explanation dicts of every streaming snapshot in
emit order and annotates each with ``first_seen``, ``last_seen`` and ``status`` (DESIGN.md
"Lifecycle of a streaming explanation"):

* ``new`` — the first snapshot it is in (again, after it resolved);
* ``ongoing`` — in this snapshot and tracked since an earlier one (a gap of fewer than
  ``resolve_after`` snapshots does not restart it);
* ``resolved`` — absent from ``resolve_after`` consecutive snapshots: listed once, with
  its last known numbers and ``last_seen`` the last snapshot it was in, then forgotten.

Identity is the itemset (``canonical_attributes``). The tracker is plain data, so it
pickles with the :class:`~macrobase.engine.GlobalEngine` that holds it.

>>> life = ExplanationLifecycle(resolve_after=1)
>>> e = {"attributes": {"model": "M101"}, "support": 0.5}
>>> [x["status"] for x in life.update([e], "2026-01-01T00:00:00.000Z").explanations]
['new']
>>> [x["status"] for x in life.update([e], "2026-01-01T00:00:01.000Z").explanations]
['ongoing']
>>> step = life.update([], "2026-01-01T00:00:02.000Z")
>>> step.explanations[0]["status"], step.explanations[0]["last_seen"], step.transitions[0]["status"]
('resolved', '2026-01-01T00:00:01.000Z', 'resolved')
>>> life.update([], "2026-01-01T00:00:03.000Z").explanations
[]
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from macrobase.store import canonical_attributes

__all__ = ["LIFECYCLE_KEYS", "ExplanationLifecycle", "LifecycleStep", "without_lifecycle"]

#: The keys :meth:`ExplanationLifecycle.update` adds to every explanation.
LIFECYCLE_KEYS = ("first_seen", "last_seen", "status")


@dataclass(frozen=True)
class LifecycleStep:
    """One snapshot's annotated explanations (present ones in their order, then the
    resolved ones) and its transitions ``{"attributes", "status": "new"|"resolved", "at"}``."""

    explanations: list[dict[str, Any]]
    transitions: list[dict[str, Any]]


@dataclass(frozen=True)
class _Tracked:
    first_seen: str
    last_seen: str
    missed: int                 # consecutive snapshots without it
    last: dict[str, Any]        # its numbers when last seen, listed once it resolves


class ExplanationLifecycle:
    """Per-itemset onset and resolution over successive snapshots of one pipeline."""

    def __init__(self, resolve_after: int = 5) -> None:
        if isinstance(resolve_after, bool) or not isinstance(resolve_after, int) or resolve_after < 1:
            raise ValueError(f"resolve_after must be an integer >= 1, got {resolve_after!r}")
        self.resolve_after = resolve_after
        self._tracked: dict[str, _Tracked] = {}   # canonical attributes -> state, in onset order

    def update(self, explanations: Sequence[Mapping[str, Any]], at: str) -> LifecycleStep:
        """Annotate one snapshot's ``explanations`` emitted at ``at`` (ISO-8601 text) and advance."""
        out: list[dict[str, Any]] = []
        transitions: list[dict[str, Any]] = []
        present: set[str] = set()
        for item in explanations:
            key = canonical_attributes(item.get("attributes") or {})
            present.add(key)
            known = self._tracked.get(key)
            first = at if known is None else known.first_seen
            self._tracked[key] = _Tracked(first, at, 0, dict(item))
            out.append({**item, "first_seen": first, "last_seen": at, "status": "new" if known is None else "ongoing"})
            if known is None:
                transitions.append({"attributes": dict(item.get("attributes") or {}), "status": "new", "at": at})
        for key, known in list(self._tracked.items()):
            if key in present:
                continue
            if known.missed + 1 < self.resolve_after:
                self._tracked[key] = _Tracked(known.first_seen, known.last_seen, known.missed + 1, known.last)
                continue
            del self._tracked[key]
            out.append({**known.last, "first_seen": known.first_seen, "last_seen": known.last_seen,
                        "status": "resolved"})
            transitions.append({"attributes": dict(known.last.get("attributes") or {}), "status": "resolved",
                                "at": at})
        return LifecycleStep(out, transitions)


def without_lifecycle(explanations: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The explanations as the batch explainer writes them: resolved ones and lifecycle keys removed.

    A streaming document compares with a batch one through this (DESIGN.md: with decay 0
    and an exact sketch the final snapshot equals the batch result).

    >>> without_lifecycle([{"attributes": {"a": 1}, "status": "new", "first_seen": "t", "last_seen": "t"},
    ...                    {"attributes": {"b": 2}, "status": "resolved", "first_seen": "t", "last_seen": "t"}])
    [{'attributes': {'a': 1}}]
    """
    return [{k: v for k, v in item.items() if k not in LIFECYCLE_KEYS}
            for item in explanations if item.get("status") != "resolved"]
