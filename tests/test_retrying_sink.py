"""RetryingSink with an in-memory sink that fails on demand (the real faults are in
tests/faults/test_sink_faults.py)."""
from __future__ import annotations

import sqlite3

import pytest

from connectors.retrying_sink import RetryingSink
from connectors.sinks import SinkError


class FlakySink:
    """Fails ``fail_writes`` writes (across instances), then stores documents."""

    def __init__(self, world: dict) -> None:
        self.world = world
        world["opened"] += 1

    def write(self, document, **kwargs) -> None:
        if self.world["fail_writes"] > 0:
            self.world["fail_writes"] -= 1
            raise sqlite3.OperationalError("database is locked")
        self.world["stored"].append(document)

    def write_status(self, status) -> None:
        self.world["statuses"].append(status)

    def close(self) -> None:
        self.world["closed"] += 1


def world(fail_writes: int) -> dict:
    return {"fail_writes": fail_writes, "stored": [], "statuses": [], "opened": 0, "closed": 0}


def test_a_write_waits_out_the_fault_reopening_the_sink_each_time():
    w, faults = world(3), []
    sink = RetryingSink(lambda: FlakySink(w), on_fault=faults.append, backoff_s=0.001)
    sink.write({"pipeline": "p", "n": 1})
    assert w["stored"] == [{"pipeline": "p", "n": 1}]
    assert sink.faults == 3 and len(faults) == 3 and sink.error is None
    assert faults[0] == "result store: OperationalError: database is locked; retrying"
    assert (w["opened"], w["closed"]) == (4, 3)  # every failed sink was closed and replaced
    sink.write({"pipeline": "p", "n": 2})
    assert w["opened"] == 4 and len(w["stored"]) == 2


def test_stopping_gives_up_with_one_clear_error_and_stores_nothing():
    w = world(10**9)
    sink = RetryingSink(lambda: FlakySink(w), stopping=lambda: True, backoff_s=0.001)
    with pytest.raises(SinkError, match="result store unavailable while stopping: .*database is locked"):
        sink.write({"pipeline": "p"})
    assert w["stored"] == [] and sink.faults == 1


def test_programming_errors_are_not_retried():
    class Broken(FlakySink):
        def write(self, document, **kwargs):
            raise TypeError("a bug, not a fault")

    sink = RetryingSink(lambda: Broken(world(0)), backoff_s=0.001)
    with pytest.raises(TypeError):
        sink.write({"pipeline": "p"})
    assert sink.faults == 0


def test_status_is_best_effort_while_the_store_is_faulted():
    w = world(0)

    class NoStatus(FlakySink):
        def write_status(self, status):
            raise sqlite3.OperationalError("attempt to write a readonly database")

    sink = RetryingSink(lambda: NoStatus(w))
    sink.write_status({"pipeline": "p", "state": "degraded"})  # does not raise
    assert w["closed"] == 1
    sink = RetryingSink(lambda: FlakySink(w))
    sink.write_status({"pipeline": "p", "state": "running"})
    assert w["statuses"] == [{"pipeline": "p", "state": "running"}]
