"""GET /api/v1/pipelines/{name}/events: lifecycle transitions read back from stored snapshots."""
from __future__ import annotations

import pytest

from macrobase.api import API_PREFIX, StoreSource, create_app
from macrobase.store import SqliteSink
from tests.test_api import body

A, B, C = {"device_id": "D00042"}, {"device_model": "M101", "firmware": "0.4"}, {"carrier": "c-1"}
TIMES = [f"2026-03-01T10:00:0{s}.000Z" for s in range(5)]
# Snapshot i carries these transitions (what the engine's lifecycle would have written).
TRANSITIONS = [
    [(A, "new"), (B, "new")],
    [],
    [(C, "new")],
    [(A, "resolved")],
    [(B, "resolved"), (C, "resolved"), (A, "new")],
]


def _events(i: int) -> list[dict]:
    return [{"attributes": a, "status": s, "at": TIMES[i]} for a, s in TRANSITIONS[i]]


ALL = [t for i in range(len(TIMES)) for t in _events(i)]


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("events") / "results.db")
    with SqliteSink(path) as sink:
        for i, at in enumerate(TIMES):
            sink.write({"pipeline": "p", "emitted_at": at, "total": 10, "outliers": 1, "dropped": 0,
                        "thresholds": {}, "explanations": [], "events_per_second": 1.0, "dead_letters": 0,
                        "transitions": _events(i)})
        # a document from before lifecycles (no transitions key) is skipped, not an error
        sink.write({"pipeline": "old", "emitted_at": TIMES[0], "total": 1, "outliers": 0, "dropped": 0,
                    "thresholds": {}, "explanations": [], "events_per_second": 1.0, "dead_letters": 0})
    return create_app(StoreSource(path)).test_client()


def test_every_transition_oldest_first(client):
    assert body(client.get(f"{API_PREFIX}/pipelines/p/events")) == {"pipeline": "p", "events": ALL}
    assert body(client.get(f"{API_PREFIX}/pipelines/old/events"))["events"] == []


@pytest.mark.parametrize("since, first", [
    ("2026-03-01T10:00:02Z", 2),                 # at or after: the snapshot at exactly 'since' counts
    ("2026-03-01T10:00:01.5Z", 2),
    ("2026-03-01T11:00:02+01:00", 2),            # another offset, same instant
    ("2026-03-01T10:00:02", 2),                  # naive is UTC
    ("2026-03-01T10:00:03Z", 3),
    ("2026-03-01T10:00:05Z", len(ALL)),
    ("0001-01-01T00:00:00Z", 0),
])
def test_since_keeps_the_later_transitions(client, since, first):
    got = body(client.get(f"{API_PREFIX}/pipelines/p/events", query_string={"since": since}))["events"]
    assert got == ALL[first:]


@pytest.mark.parametrize("limit", [1, 2, 3, 4, 6, 1000])
def test_limit_keeps_the_newest_oldest_first(client, limit):
    got = body(client.get(f"{API_PREFIX}/pipelines/p/events?limit={limit}"))["events"]
    assert got == ALL[-limit:]


@pytest.mark.parametrize("query, parameter", [
    ("since=yesterday", "since"), ("since=", "since"), ("limit=0", "limit"), ("limit=1001", "limit"),
    ("limit=x", "limit"), ("limit=1&limit=2", "limit"), ("sinse=2026-01-01", "sinse"),
])
def test_bad_parameters_are_400_naming_them(client, query, parameter):
    r = client.get(f"{API_PREFIX}/pipelines/p/events?{query}")
    assert r.status_code == 400 and body(r)["parameter"] == parameter


def test_unknown_pipeline_is_404(client):
    r = client.get(f"{API_PREFIX}/pipelines/nope/events")
    assert r.status_code == 404 and body(r)["parameter"] == "name"
