"""Alerts: the rules on planted documents, delivery to a real local HTTP receiver (json,
slack, retries, a receiver that is away) and to a real Alertmanager from Debian's
``prometheus-alertmanager`` started on loopback."""
from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import pytest

from macrobase.alerts import Alerter, AlertRule
from tests.runners import wait_for

ALERTMANAGER = "/usr/bin/prometheus-alertmanager"


def document(at: str, *explanations: dict) -> dict:
    return {"pipeline": "p", "emitted_at": at, "explanations": list(explanations)}


def explanation(attributes: dict, status: str, ratio: float = 10.0, p: float = 1e-6,
                first_seen: str = "2026-01-01T00:00:00Z") -> dict:
    return {"attributes": attributes, "risk_ratio": ratio, "support": 0.4, "p_value": p,
            "status": status, "first_seen": first_seen}


# ----------------------------------------------------------------------------- rules

def test_fires_once_per_itemset_and_resolves_once():
    a, b = {"firmware": "0.4"}, {"model": "M101", "firmware": "0.4"}
    alerter = Alerter("p", [AlertRule("http://unused")], deliver=False)
    said = []
    for doc in [document("2026-01-01T00:00:01Z", explanation(a, "new")),
                document("2026-01-01T00:00:02Z", explanation(a, "ongoing"), explanation(b, "new")),
                document("2026-01-01T00:00:03Z", explanation(a, "ongoing"), explanation(b, "ongoing")),
                document("2026-01-01T00:00:04Z", explanation(a, "resolved"), explanation(b, "ongoing")),
                document("2026-01-01T00:00:05Z", explanation(b, "ongoing")),
                document("2026-01-01T00:00:06Z", explanation(a, "new"))]:   # back again: a new episode
        said.append([(n.state, n.explanation["attributes"]) for _, n in alerter.observe(doc)])
    assert said == [[("firing", a)], [("firing", b)], [], [("resolved", a)], [], [("firing", a)]]


def test_filters_ratio_p_value_and_for():
    rule = AlertRule("http://unused", min_ratio=5, max_p_value=0.01, for_s=30)
    alerter = Alerter("p", [rule], deliver=False)
    weak = explanation({"a": "1"}, "new", ratio=4.9)
    noisy = explanation({"a": "2"}, "new", p=0.02)
    young = explanation({"a": "3"}, "new", first_seen="2026-01-01T00:00:00Z")
    assert alerter.observe(document("2026-01-01T00:00:29Z", weak, noisy, young)) == []
    fired = alerter.observe(document("2026-01-01T00:00:30Z", weak, noisy, {**young, "status": "ongoing"}))
    assert [n.explanation["attributes"] for _, n in fired] == [{"a": "3"}]


def test_without_a_lifecycle_gone_means_resolved():
    alerter = Alerter("p", [AlertRule("http://unused")], deliver=False)
    e = {"attributes": {"a": "1"}, "risk_ratio": 3.0}
    assert [n.state for _, n in alerter.observe(document("2026-01-01T00:00:01Z", e))] == ["firing"]
    assert [n.state for _, n in alerter.observe(document("2026-01-01T00:00:02Z"))] == ["resolved"]


def test_rules_for_other_pipelines_are_ignored():
    alerter = Alerter("p", [AlertRule("http://unused", pipelines=("q",))], deliver=False)
    assert alerter.observe(document("2026-01-01T00:00:01Z", explanation({"a": "1"}, "new"))) == []


# ----------------------------------------------------------------------------- a real HTTP receiver

class Receiver:
    """A local HTTP server recording POSTed JSON; the first ``fail_first`` requests get 500."""

    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list = []
        self.fail_first = fail_first
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if receiver.fail_first > 0:
                    receiver.fail_first -= 1
                    self.send_response(500)
                else:
                    receiver.bodies.append(body)
                    self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(fail_first=2)
    yield r
    r.close()


def test_json_and_slack_reach_the_receiver_after_retries(receiver):
    alerter = Alerter("p", [AlertRule(receiver.url), AlertRule(receiver.url, format="slack")])
    e = explanation({"firmware": "0.4", "model": "M101"}, "new", ratio=12.0)
    alerter.observe(document("2026-01-01T00:00:01Z", e))
    alerter.observe(document("2026-01-01T00:00:02Z", {**e, "status": "resolved"}))
    alerter.close(timeout_s=30)
    assert alerter.counters() == {"sent": 4, "failed": 0, "last_error": None}
    as_json = [b for b in receiver.bodies if "state" in b]
    assert [(b["state"], b["explanation"]["attributes"]) for b in as_json] == [
        ("firing", e["attributes"]), ("resolved", e["attributes"])]
    assert as_json[0]["summary"] == "p: firmware=0.4 AND model=M101: 12x, 40% of outliers, p=1e-06"
    texts = [b["text"] for b in receiver.bodies if "text" in b]
    assert texts[0].startswith(":rotating_light: p: firmware=0.4 AND model=M101: 12x")
    assert texts[1].startswith(":white_check_mark: resolved: p: firmware=0.4")


def test_a_receiver_that_is_away_is_counted_and_never_blocks():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]   # closed again: nothing listens there
    alerter = Alerter("p", [AlertRule(f"http://127.0.0.1:{port}/hook", retries=0)])
    started = time.monotonic()
    for i in range(50):
        alerter.observe(document(f"2026-01-01T00:00:{i:02d}Z", explanation({"a": str(i)}, "new")))
    assert time.monotonic() - started < 1.0, "observe waited for the receiver"
    wait_for(lambda: alerter.counters()["failed"] == 50, 120, "every delivery to fail")
    assert alerter.counters()["sent"] == 0
    assert f"127.0.0.1:{port}" in alerter.counters()["last_error"]
    alerter.close()


# ----------------------------------------------------------------------------- a real Alertmanager

@contextlib.contextmanager
def alertmanager(tmp_path) -> Iterator[str]:
    if not __import__("os").path.exists(ALERTMANAGER):
        pytest.fail(f"{ALERTMANAGER} missing: run `bash scripts/install_test_tools.sh`")
    (tmp_path / "am.yml").write_text('route:\n  receiver: "null"\nreceivers:\n  - name: "null"\n')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([ALERTMANAGER, f"--config.file={tmp_path / 'am.yml'}",
                             f"--storage.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{port}",
                             "--cluster.listen-address="],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        def ready():
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return proc.poll() is not None and pytest.fail("alertmanager exited")
        wait_for(ready, 60, "alertmanager to listen")
        yield url
    finally:
        proc.terminate()
        proc.wait(30)


def listed(url: str) -> list[dict]:
    with urllib.request.urlopen(f"{url}/api/v2/alerts", timeout=5) as r:
        return json.loads(r.read())


def test_alertmanager_lists_the_alert_then_resolves_it(tmp_path):
    with alertmanager(tmp_path) as url:
        alerter = Alerter("p", [AlertRule(url, format="alertmanager")])
        e = explanation({"firmware": "0.4", "device model": "M101"}, "new", first_seen="2026-12-02T05:00:00Z")
        alerter.observe(document("2026-12-02T05:00:00Z", e))
        alerts = wait_for(lambda: listed(url), 60, "the alert listed")
        assert [a["labels"] for a in alerts] == [{
            "alertname": "MacroBaseExplanation", "pipeline": "p",
            "explanation": "firmware=0.4 AND device model=M101",
            "firmware": "0.4", "device_model": "M101"}]
        assert alerts[0]["status"]["state"] == "active"
        assert alerts[0]["startsAt"].startswith("2026-12-02T05:00:00")
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        alerter.observe(document(now, {**e, "status": "resolved"}))
        wait_for(lambda: listed(url) == [], 60, "the alert resolved")
        alerter.close()
        assert alerter.counters()["sent"] == 2 and alerter.counters()["failed"] == 0


# ----------------------------------------------------------------------------- through the pipeline

@pytest.mark.parametrize("runner_name", ["in-process", "multi-process", "portable-external"])
def test_a_pipeline_alerts_on_its_planted_causes(tmp_path, receiver, runner_name, request):
    import pyarrow.parquet as pq

    from macrobase.config import parse_config
    from macrobase.runner import PipelineRun
    from macrobase.store import ResultStore
    from macrobase.synthetic import planted_table
    from tests.runners import runner_config

    attrs = ["region", "firmware", "device_model", "carrier"]
    table, causes = planted_table(30_000, seed=12)
    pq.write_table(table.select(["power_drain"] + attrs), tmp_path / "t.parquet")
    conf = parse_config({
        "pipelines": [{
            "name": "p", "source": {"type": "file", "path": str(tmp_path / "t.parquet")},
            "schema": {"metrics": ["power_drain"], "attributes": attrs},
            "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
            "explainer": {"decay": 0, "emit_every": "200ms"},
            "sink": {"type": "sqlite", "path": str(tmp_path / "r.db")}}],
        "alerts": [{"type": "webhook", "url": receiver.url, "min_ratio": 3}],
        "runner": runner_config(runner_name, request)}, "test")
    PipelineRun(conf, conf.pipelines[0]).run()   # ends with its input
    final = ResultStore(tmp_path / "r.db").latest("p")
    expected = {json.dumps(e["attributes"], sort_keys=True) for e in final["explanations"]
                if e.get("status") != "resolved" and e["risk_ratio"] >= 3}
    planted = {json.dumps(c, sort_keys=True) for c in causes if set(c) <= set(attrs)}
    assert planted and planted <= expected

    def fired():
        return {json.dumps(b["explanation"]["attributes"], sort_keys=True)
                for b in receiver.bodies if b["state"] == "firing"}
    wait_for(lambda: fired() >= expected, 60, "an alert for every explanation of the final result")
    firing = [json.dumps(b["explanation"]["attributes"], sort_keys=True) for b in receiver.bodies
              if b["state"] == "firing"]
    assert len(firing) == len(set(firing)), "an explanation was announced twice"
    assert "alerts" in final and final["alerts"]["failed"] == 0


def test_alert_deliveries_show_in_the_api_and_metrics(tmp_path):
    from macrobase.store import SqliteSink
    from macrobase.api import StoreSource, create_app

    path = tmp_path / "r.db"
    with SqliteSink(path) as sink:
        sink.write({"pipeline": "p", "emitted_at": "2026-01-01T00:00:00Z", "total": 1, "outliers": 0,
                    "explanations": [], "alerts": {"sent": 3, "failed": 2, "last_error": "alert to x: refused"}})
        sink.write({"pipeline": "q", "emitted_at": "2026-01-01T00:00:00Z", "total": 1, "outliers": 0,
                    "explanations": []})
    client = create_app(StoreSource(path)).test_client()
    rows = {r["name"]: r for r in client.get("/api/v1/pipelines").get_json()["pipelines"]}
    assert rows["p"]["alerts"] == {"sent": 3, "failed": 2, "last_error": "alert to x: refused"}
    assert rows["q"]["alerts"] is None
    metrics = client.get("/metrics").get_data(as_text=True).splitlines()
    assert 'macrobase_alerts_sent_total{pipeline="p"} 3' in metrics
    assert 'macrobase_alerts_failed_total{pipeline="p"} 2' in metrics
    assert not any(line.startswith("macrobase_alerts_sent_total{pipeline=\"q\"") for line in metrics)
