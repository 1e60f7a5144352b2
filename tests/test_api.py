"""The HTTP API against a real SQLite store written by the real SqliteSink.

Most tests use Flask's test client; ``test_gunicorn_*`` start the production server
(gunicorn) on a free port and talk HTTP to it with urllib. Expected values come from what
the tests wrote (planted documents), from tests/reference.py's brute-force explainer, or
from the command line's own output on the same rows.
"""
from __future__ import annotations

import io
import json
import math
import re
import urllib.error
import urllib.request
from contextlib import redirect_stdout

import numpy as np
import pytest

from macrobase.api import API_PREFIX, AuthPolicy, StoreSource, create_app
from macrobase.config import ServerConfig
from macrobase.openapi import openapi_document
from macrobase.store import SqliteSink
from macrobase.synthetic import planted_table
from macrobase.webserver import WebServer, create_web_app
from tests.reference import reference_explain

ATTRS = ["region", "firmware", "device_model", "carrier", "device_id"]
TIMES = ["2026-03-01T10:00:00Z", "2026-03-01T10:00:01Z", "2026-03-01T10:00:02Z", "2026-03-01T10:00:03Z"]


def _explanations(step: int) -> list[dict]:
    """Planted explanations in DESIGN order, orders 1-3, one infinite ratio, changing per step."""
    return [
        {"attributes": {"device_id": "D00042"}, "support": 0.40, "risk_ratio": "inf",
         "outlier_count": 40 + step, "count": 40 + step},
        {"attributes": {"device_model": "M101", "firmware": "0.4"}, "support": 0.30, "risk_ratio": 12.5,
         "outlier_count": 30, "count": 100},
        {"attributes": {"region": "region-2", "firmware": "0.2", "carrier": "carrier-07"}, "support": 0.10,
         "risk_ratio": 40.0, "outlier_count": 10, "count": 11},
        {"attributes": {"carrier": "carrier-01"}, "support": 0.02, "risk_ratio": 3.5,
         "outlier_count": 2, "count": 20},
    ]


def _document(step: int) -> dict:
    return {"pipeline": "telemetry", "emitted_at": TIMES[step], "total": 1000 * (step + 1),
            "outliers": 100 + step, "dropped": step, "thresholds": {"power_drain": {"high": 150.5 + step}},
            "events_per_second": 250.0 + step, "dead_letters": 3 * step, "explanations": _explanations(step)}


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("store") / "results.db")
    with SqliteSink(path) as sink:
        for step in range(len(TIMES)):
            letters = [{"reason": "invalid_json", "detail": f"step {step}", "raw": b"{not json\xff",
                        "partition": 0, "offset": 10 * step + i} for i in range(step)]
            sink.write(_document(step), dead_letters=letters)
        sink.write_status({"pipeline": "telemetry", "state": "degraded", "events": 4321, "outliers": 99,
                           "events_per_second": 812.5, "consumer_lag": 17, "dead_letters": 6,
                           "last_error": "broker unreachable", "emit_latency_ms": 4.25, "restarts": 1})
        sink.write_status({"pipeline": "idle", "state": "starting"})
        # a pipeline with snapshots but no status row: the latest document fills in
        sink.write({**_document(0), "pipeline": "legacy", "explanations": []})
    return path


@pytest.fixture(scope="module")
def client(store_path):
    return create_app(StoreSource(store_path)).test_client()


def strict_loads(text: str):
    def refuse(name):
        raise AssertionError(f"non-strict JSON constant {name}")
    return json.loads(text, parse_constant=refuse)


def body(response) -> dict:
    assert response.mimetype == "application/json", response.get_data(as_text=True)[:200]
    return strict_loads(response.get_data(as_text=True))


# ----------------------------------------------------------------------------- reads


def test_pipelines_merge_status_and_latest_document(client):
    got = {p["name"]: p for p in body(client.get(f"{API_PREFIX}/pipelines"))["pipelines"]}
    assert sorted(got) == ["idle", "legacy", "telemetry"]
    t = got["telemetry"]
    assert (t["status"], t["events"], t["outliers"], t["events_per_second"], t["consumer_lag"],
            t["dead_letters"], t["emit_latency_ms"], t["restarts"], t["last_error"]) == (
        "degraded", 4321, 99, 812.5, 17, 6, 4.25, 1, "broker unreachable")
    assert t["last_emitted_at"] == TIMES[-1]
    assert got["idle"]["status"] == "starting" and got["idle"]["events"] is None
    legacy = got["legacy"]  # no status row: numbers from its only snapshot
    assert (legacy["status"], legacy["events"], legacy["outliers"], legacy["events_per_second"]) == (
        "unknown", 1000, 100, 250.0)


def _ratio(e):
    return float(e["risk_ratio"])


@pytest.mark.parametrize("query", [
    {}, {"min_support": "0.05"}, {"min_ratio": "13"}, {"min_ratio": "1e6"}, {"max_order": "1"},
    {"max_order": "2", "limit": "2"}, {"limit": "1"}, {"min_support": "0.02", "min_ratio": "3.5", "max_order": "3"},
    {"min_support": "1"}, {"min_ratio": "0"},
])
def test_explanations_are_the_latest_document_filtered_in_order(client, query):
    url = f"{API_PREFIX}/pipelines/telemetry/explanations?" + "&".join(f"{k}={v}" for k, v in query.items())
    doc = body(client.get(url))
    want = _document(len(TIMES) - 1)
    kept = [e for e in want["explanations"]
            if e["support"] >= float(query.get("min_support", 0)) and _ratio(e) >= float(query.get("min_ratio", 0))
            and len(e["attributes"]) <= int(query.get("max_order", 3))]
    kept = kept[: int(query.get("limit", len(kept)))]
    assert doc["explanations"] == kept  # same items, same order, "inf" kept as a string
    assert {k: v for k, v in doc.items() if k != "explanations"} == {
        k: v for k, v in want.items() if k != "explanations"}


def test_history_since_and_limit(client):
    docs = body(client.get(f"{API_PREFIX}/pipelines/telemetry/history"))["snapshots"]
    assert [d["total"] for d in docs] == [1000, 2000, 3000, 4000]  # oldest first
    docs = body(client.get(f"{API_PREFIX}/pipelines/telemetry/history?since=2026-03-01T11:00:01%2B01:00"))["snapshots"]
    assert [d["emitted_at"] for d in docs] == TIMES[1:]  # offset understood
    docs = body(client.get(f"{API_PREFIX}/pipelines/telemetry/history?since=2026-03-01T10:00:01Z&limit=2"))["snapshots"]
    assert [d["total"] for d in docs] == [3000, 4000]  # the newest two, oldest first
    assert body(client.get(f"{API_PREFIX}/pipelines/telemetry/history?since=2030-01-01"))["snapshots"] == []
    assert body(client.get(f"{API_PREFIX}/pipelines/idle/history"))["snapshots"] == []
    # a time before year 1000 precedes everything (and must not break fixed-width comparison)
    docs = body(client.get(f"{API_PREFIX}/pipelines/telemetry/history?since=0543-01-23T23:04:31Z"))["snapshots"]
    assert len(docs) == len(TIMES)


def test_dead_letters_newest_first_with_reasons(client):
    letters = body(client.get(f"{API_PREFIX}/pipelines/telemetry/dead_letters?limit=4"))["dead_letters"]
    written = [(10 * step + i, f"step {step}") for step in range(len(TIMES)) for i in range(step)]
    assert [(d["offset"], d["detail"]) for d in letters] == written[::-1][:4]
    assert {d["reason"] for d in letters} == {"invalid_json"}
    assert letters[0]["raw"] == "{not json\\xff"  # invalid UTF-8 shown, not lost
    assert len(body(client.get(f"{API_PREFIX}/pipelines/telemetry/dead_letters"))["dead_letters"]) == len(written)


@pytest.mark.parametrize("route", ["explanations", "history", "dead_letters"])
def test_unknown_pipeline_is_404_naming_it(client, route):
    r = client.get(f"{API_PREFIX}/pipelines/telemetri/{route}")
    assert r.status_code == 404
    doc = body(r)
    assert doc["parameter"] == "name" and "telemetri" in doc["error"] and "did you mean telemetry" in doc["error"]


def test_pipeline_without_results_is_404_on_explanations(client):
    r = client.get(f"{API_PREFIX}/pipelines/idle/explanations")
    assert r.status_code == 404 and "not emitted" in body(r)["error"]


def test_missing_store_reads_as_empty(tmp_path):
    c = create_app(StoreSource(str(tmp_path / "later.db"))).test_client()
    assert body(c.get(f"{API_PREFIX}/pipelines")) == {"pipelines": []}
    assert c.get(f"{API_PREFIX}/pipelines/x/explanations").status_code == 404
    assert body(c.get("/healthz")) == {"status": "ok"}


def test_configured_pipelines_are_listed_before_they_report(tmp_path):
    from macrobase.config import parse_config

    cfg = parse_config({"pipelines": [
        {"name": "alpha", "source": {"type": "generator"}, "schema": {"metrics": ["x"], "attributes": ["a"]},
         "sink": {"type": "sqlite", "path": str(tmp_path / "a.db")}},
        {"name": "beta", "source": {"type": "generator"}, "schema": {"metrics": ["x"], "attributes": ["a"]},
         "sink": {"type": "sqlite", "path": str(tmp_path / "b.db")}}]})
    with SqliteSink(tmp_path / "b.db") as sink:
        sink.write({**_document(2), "pipeline": "beta"})
    c = create_web_app(cfg).test_client()
    got = body(c.get(f"{API_PREFIX}/pipelines"))["pipelines"]
    assert [(p["name"], p["events"]) for p in got] == [("alpha", None), ("beta", 3000)]
    assert body(c.get(f"{API_PREFIX}/pipelines/beta/explanations"))["total"] == 3000  # read from b.db
    assert c.get(f"{API_PREFIX}/pipelines/alpha/explanations").status_code == 404


# ----------------------------------------------------------------------------- strict JSON


def test_non_finite_numbers_are_strict_json(tmp_path):
    path = tmp_path / "inf.db"
    with SqliteSink(path) as sink:
        sink.write({"pipeline": "p", "emitted_at": TIMES[0], "total": 5, "outliers": 5, "dropped": 0,
                    "thresholds": {"m": {"high": float("inf"), "low": float("nan")}}, "events_per_second": float("nan"),
                    "dead_letters": 0, "explanations": [
                        {"attributes": {"a": 1}, "support": 1.0, "risk_ratio": float("inf"),
                         "outlier_count": 5, "count": 5}]})
    r = create_app(StoreSource(path)).test_client().get(f"{API_PREFIX}/pipelines/p/explanations?min_ratio=100")
    text = r.get_data(as_text=True)
    assert "Infinity" not in text and "NaN" not in text
    doc = strict_loads(text)
    assert doc["explanations"][0]["risk_ratio"] == "inf" and doc["thresholds"]["m"]["high"] == "inf"
    assert doc["events_per_second"] is None


# ----------------------------------------------------------------------------- bad input


BAD_GETS = [
    ("/pipelines/telemetry/explanations?min_support=abc", "min_support"),
    ("/pipelines/telemetry/explanations?min_support=1.5", "min_support"),
    ("/pipelines/telemetry/explanations?min_support=-0.1", "min_support"),
    ("/pipelines/telemetry/explanations?min_support=nan", "min_support"),
    ("/pipelines/telemetry/explanations?min_support=", "min_support"),
    ("/pipelines/telemetry/explanations?min_ratio=-1", "min_ratio"),
    ("/pipelines/telemetry/explanations?min_ratio=inf", "min_ratio"),
    ("/pipelines/telemetry/explanations?min_ratio=1e999", "min_ratio"),
    ("/pipelines/telemetry/explanations?max_order=4", "max_order"),
    ("/pipelines/telemetry/explanations?max_order=1.5", "max_order"),
    ("/pipelines/telemetry/explanations?limit=0", "limit"),
    ("/pipelines/telemetry/explanations?limit=99999999999999999999", "limit"),
    ("/pipelines/telemetry/explanations?limit=1&limit=2", "limit"),
    ("/pipelines/telemetry/explanations?min_suport=0.1", "min_suport"),
    ("/pipelines/telemetry/history?since=yesterday", "since"),
    ("/pipelines/telemetry/history?since=2026-13-01", "since"),
    ("/pipelines/telemetry/history?since=9999-12-31T23:59:59-01:00", "since"),
    ("/pipelines/telemetry/history?limit=-3", "limit"),
    ("/pipelines/telemetry/history?limit=100000", "limit"),
    ("/pipelines/telemetry/dead_letters?limit=x", "limit"),
    ("/pipelines?verbose=1", "verbose"),
]


@pytest.mark.parametrize("url, parameter", BAD_GETS)
def test_bad_read_parameters_are_400_naming_the_parameter(client, url, parameter):
    r = client.get(API_PREFIX + url)
    assert r.status_code == 400, r.get_data(as_text=True)
    doc = body(r)
    assert doc["parameter"] == parameter and parameter in doc["error"]


def test_unknown_parameter_gets_a_suggestion(client):
    doc = body(client.get(f"{API_PREFIX}/pipelines/telemetry/explanations?min_suport=0.1"))
    assert "did you mean min_support?" in doc["error"]


EXPLAIN = f"{API_PREFIX}/explain"
CSV = "m,a\n1,x\n2,x\n3,y\n"
BAD_POSTS = [
    ("", CSV, "text/csv", 400, "metric"),
    ("?metric=m", CSV, "text/csv", 400, "attributes"),
    ("?metric=m&attributes=,", CSV, "text/csv", 400, "attributes"),
    ("?metric=nope&attributes=a", CSV, "text/csv", 400, "metric"),
    ("?metric=m&attributes=a,zz", CSV, "text/csv", 400, "attributes"),
    ("?metric=m&attributes=a&classifier=lof", CSV, "text/csv", 400, "classifier"),
    ("?metric=m&attributes=a&percentile=120", CSV, "text/csv", 400, "percentile"),
    ("?metric=m&attributes=a&percentile=0", CSV, "text/csv", 400, "percentile"),
    ("?metric=m&attributes=a&percentile=100", CSV, "text/csv", 400, "percentile"),
    ("?metric=m&attributes=a&percentile=99&score_cutoff=3&classifier=mad", CSV, "text/csv", 400, "percentile"),
    ("?metric=m&attributes=a&score_cutoff=3", CSV, "text/csv", 400, "score_cutoff"),
    ("?metric=m&attributes=a&score_cutoff=-1&classifier=mad", CSV, "text/csv", 400, "score_cutoff"),
    ("?metric=m&attributes=a&classifier=predicate", CSV, "text/csv", 400, "predicate"),
    ("?metric=m&attributes=a&classifier=predicate&predicate=about%203", CSV, "text/csv", 400, "predicate"),
    ("?metric=m&attributes=a&predicate=%3E%3D3", CSV, "text/csv", 400, "predicate"),
    ("?metric=m&attributes=a&classifier=mcd", CSV, "text/csv", 400, "metric"),
    ("?metric=m,a&attributes=a", CSV, "text/csv", 400, "metric"),
    ("?metric=m&attributes=a&tail=up", CSV, "text/csv", 400, "tail"),
    ("?metric=m&attributes=a&min_support=0", CSV, "text/csv", 400, "min_support"),
    ("?metric=m&attributes=a&min_support=2", CSV, "text/csv", 400, "min_support"),
    ("?metric=m&attributes=a&min_ratio=0", CSV, "text/csv", 400, "min_ratio"),
    ("?metric=m&attributes=a&ratio_metric=odds", CSV, "text/csv", 400, "ratio_metric"),
    ("?metric=m&attributes=a&max_order=0", CSV, "text/csv", 400, "max_order"),
    ("?metric=m&attributes=a&mode=maximal", CSV, "text/csv", 400, "mode"),
    ("?metric=m&attributes=a&format=table", CSV, "text/csv", 400, "format"),
    ("?metric=m&attributes=a", "m,a\n1,2,3\n", "text/csv", 400, "body"),
    ("?metric=m&attributes=a", b"\xff\xfe\x00", "text/csv", 400, "body"),
    ("?metric=m&attributes=a", "[{", "application/json", 400, "body"),
    ("?metric=m&attributes=a", '{"m": 1}', "application/json", 400, "body"),
    ("?metric=m&attributes=a", "[1, 2]", "application/json", 400, "body"),
    ("?metric=m&attributes=a", '[{"a": 1}]', "application/json", 400, "metric"),
    ("?metric=m&attributes=a", '{"m": 1, "a": 2}\nnope\n', "application/x-ndjson", 400, "body"),
    ("?metric=m&attributes=a", CSV, "text/plain", 415, "Content-Type"),
    ("?metric=m&attributes=a", CSV, None, 415, "Content-Type"),
    ("?metric=m&attributes=a", CSV, "application/xml", 415, "Content-Type"),
]


@pytest.mark.parametrize("query, data, ctype, status, parameter", BAD_POSTS)
def test_bad_explain_requests_are_4xx_naming_the_parameter(client, query, data, ctype, status, parameter):
    headers = {} if ctype is None else {"Content-Type": ctype}
    r = client.post(EXPLAIN + query, data=data, headers=headers)
    assert r.status_code == status, r.get_data(as_text=True)
    doc = body(r)
    assert doc["parameter"] == parameter and doc["error"]
    assert "Traceback" not in doc["error"]


def test_rows_the_classifier_cannot_use_are_422_not_500(client):
    # mcd on two perfectly collinear metrics: a singular covariance is a data problem
    data = "x,y,a\n" + "".join(f"{i},{2 * i},g{i % 3}\n" for i in range(50))
    r = client.post(EXPLAIN + "?metric=x,y&attributes=a&classifier=mcd", data=data, content_type="text/csv")
    assert r.status_code < 500, r.get_data(as_text=True)


def test_body_over_the_limit_is_413(store_path):
    c = create_app(StoreSource(store_path), max_body_bytes=100).test_client()
    big = "m,a\n" + "1,x\n" * 100
    r = c.post(EXPLAIN + "?metric=m&attributes=a", data=big, content_type="text/csv")
    assert r.status_code == 413 and body(r)["parameter"] == "body"
    # a chunked body has no Content-Length: the limit is enforced while reading
    r = c.post(EXPLAIN + "?metric=m&attributes=a", input_stream=io.BytesIO(big.encode()), content_type="text/csv",
               headers={"Transfer-Encoding": "chunked"}, environ_overrides={"wsgi.input_terminated": True})
    assert r.status_code == 413 and body(r)["parameter"] == "body"
    small = c.post(EXPLAIN + "?metric=m&attributes=a", data="m,a\n1,x\n", content_type="text/csv")
    assert small.status_code == 200


def test_unexpected_errors_are_generic_json_500(store_path, monkeypatch):
    from macrobase.store import ResultStore

    def broken(self, pipeline):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(ResultStore, "latest", broken)
    r = create_app(StoreSource(store_path)).test_client().get(f"{API_PREFIX}/pipelines/telemetry/explanations")
    assert r.status_code == 500
    assert body(r) == {"error": "internal error", "parameter": None}


def test_store_errors_are_503(tmp_path):
    path = tmp_path / "garbage.db"
    path.write_bytes(b"this is not a database" * 100)
    c = create_app(StoreSource(path)).test_client()
    r = c.get(f"{API_PREFIX}/pipelines")
    assert r.status_code == 503 and body(r)["error"]
    assert c.get("/healthz").status_code == 503


def test_unknown_routes_and_methods_are_json(client):
    r = client.get(f"{API_PREFIX}/nothing")
    assert r.status_code == 404 and "no such route" in body(r)["error"]
    r = client.put(f"{API_PREFIX}/pipelines")
    assert r.status_code == 405 and "GET" in r.headers["Allow"] and body(r)["error"]


# ----------------------------------------------------------------------------- POST /explain


@pytest.fixture(scope="module")
def planted():
    table, causes = planted_table(50_000, seed=3)  # enough rows for D00042's support
    rows = table.select(["power_drain", *ATTRS]).to_pylist()
    df = table.select(["power_drain", *ATTRS]).to_pandas().astype({a: object for a in ATTRS})
    return rows, df, causes


def _compare(doc, want):
    assert [e["attributes"] for e in doc["explanations"]] == [w["attributes"] for w in want]
    assert [(e["outlier_count"], e["count"]) for e in doc["explanations"]] == [
        (w["outlier_count"], w["count"]) for w in want]
    for e, w in zip(doc["explanations"], want):
        assert e["support"] == pytest.approx(w["support"])
        ratio = e["risk_ratio"]
        assert (ratio == "inf") if math.isinf(w["ratio"]) else ratio == pytest.approx(w["ratio"])


@pytest.mark.parametrize("mode", ["refined", "minimal"])
def test_explain_json_body_matches_reference(client, planted, mode):
    rows, df, causes = planted
    r = client.post(f"{EXPLAIN}?metric=power_drain&attributes={','.join(ATTRS)}&classifier=predicate"
                    f"&predicate=%3E%3D%20150&mode={mode}", json=rows)
    assert r.status_code == 200, r.get_data(as_text=True)
    doc = body(r)
    want_df = df.assign(outlier=df["power_drain"] >= 150)
    assert (doc["total"], doc["outliers"], doc["dropped"]) == (len(df), int(want_df["outlier"].sum()), 0)
    _compare(doc, reference_explain(want_df, ATTRS, mode=mode))
    if mode == "refined":  # the three planted causes are found
        found = [e["attributes"] for e in doc["explanations"]]
        assert all(cause in found for cause in causes)


def test_explain_csv_body_percentile_matches_reference_and_counts_drops(client, planted):
    rows, df, _ = planted
    lines = ["power_drain," + ",".join(ATTRS)]
    lines += [",".join([repr(r["power_drain"]), *[r[a] for a in ATTRS]]) for r in rows]
    lines += [",region-0,0.1,M100,carrier-00,D00000", "abc,region-0,0.1,M100,carrier-00,D00000",
              "inf,region-0,0.1,M100,carrier-00,D00000"]
    r = client.post(f"{EXPLAIN}?metric=power_drain&attributes={','.join(ATTRS)}&percentile=98&min_ratio=4"
                    "&ratio_metric=risk_ratio&max_order=2", data="\n".join(lines) + "\n",
                    content_type="text/csv; charset=utf-8")
    assert r.status_code == 200, r.get_data(as_text=True)
    doc = body(r)
    cut = np.percentile(df["power_drain"].to_numpy(), 98)
    want_df = df.assign(outlier=df["power_drain"] >= cut)
    assert doc["dropped"] == 3 and doc["total"] == len(df)
    assert doc["thresholds"]["power_drain"]["high"] == pytest.approx(cut)
    _compare(doc, reference_explain(want_df, ATTRS, min_ratio=4, max_order=2))


def test_explain_returns_the_same_document_as_the_cli(client, planted, tmp_path):
    from macrobase import cli

    rows, _, _ = planted
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = ["--metric", "power_drain", "--attributes", "region,firmware,device_model", "--classifier", "mad",
              "--score-cutoff", "3.5", "--tail", "both", "--min-support", "0.02", "--ratio-metric", "global_ratio",
              "--mode", "minimal"]
    out = io.StringIO()
    with redirect_stdout(out):
        assert cli.main(["explain", str(path), *params, "--format", "json"]) == 0
    query = "&".join(f"{params[i][2:].replace('-', '_')}={params[i + 1]}" for i in range(0, len(params), 2))
    r = client.post(f"{EXPLAIN}?{query}", data=path.read_bytes(), content_type="application/x-ndjson")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert body(r) == strict_loads(out.getvalue())


def test_explain_empty_body_is_an_empty_document(client):
    r = client.post(f"{EXPLAIN}?metric=m&attributes=a", json=[])
    assert body(r) == {"total": 0, "outliers": 0, "dropped": 0, "thresholds": {}, "explanations": []}


# ----------------------------------------------------------------------------- auth


def _post(c, token=None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return c.post(f"{EXPLAIN}?metric=m&attributes=a", data=CSV, content_type="text/csv", headers=headers)


def test_loopback_needs_no_token(store_path):
    c = create_web_app(store_path=store_path, server=ServerConfig(host="127.0.0.1", token="s3cret")).test_client()
    assert _post(c).status_code == 200 and c.get(f"{API_PREFIX}/pipelines").status_code == 200


def test_non_loopback_post_needs_the_token_reads_stay_open(store_path, monkeypatch):
    monkeypatch.setenv("MACROBASE_TOKEN", "from-env")
    c = create_web_app(store_path=store_path, server=ServerConfig(host="0.0.0.0")).test_client()
    r = _post(c)
    assert r.status_code == 401 and body(r)["parameter"] == "Authorization" and "Bearer" in r.headers["WWW-Authenticate"]
    assert _post(c, "wrong").status_code == 401
    assert c.post(f"{EXPLAIN}?metric=m&attributes=a", data=CSV, content_type="text/csv",
                  headers={"Authorization": "Basic from-env"}).status_code == 401
    assert _post(c, "from-env").status_code == 200
    assert c.get(f"{API_PREFIX}/pipelines").status_code == 200
    assert c.get("/metrics").status_code == 200
    doc = body(c.get(f"{API_PREFIX}/openapi.json"))  # the document says so too
    assert doc["paths"]["/api/v1/explain"]["post"]["security"] == [{"bearer": []}]
    assert "security" not in doc["paths"]["/api/v1/pipelines"]["get"]


def test_auth_reads_protects_reads_but_not_healthz(store_path):
    c = create_web_app(store_path=store_path, server=ServerConfig(host="10.1.2.3", token="t0k", auth_reads=True)).test_client()
    for url in [f"{API_PREFIX}/pipelines", f"{API_PREFIX}/pipelines/telemetry/explanations", "/metrics",
                f"{API_PREFIX}/openapi.json"]:
        assert c.get(url).status_code == 401
        assert c.get(url, headers={"Authorization": "Bearer t0k"}).status_code == 200
    assert c.get("/healthz").status_code == 200


def test_exposed_server_without_token_refuses_posts(store_path, monkeypatch):
    monkeypatch.delenv("MACROBASE_TOKEN", raising=False)
    c = create_web_app(store_path=store_path, server=ServerConfig(host="0.0.0.0")).test_client()
    r = _post(c, "anything")
    assert r.status_code == 403 and "token" in body(r)["error"]


def test_auth_policy_loopback_detection():
    assert not AuthPolicy.for_server("127.0.0.2").writes and not AuthPolicy.for_server("::1").writes
    assert AuthPolicy.for_server("0.0.0.0").writes and AuthPolicy.for_server("example.org").writes
    assert AuthPolicy.for_server("", None).writes  # empty host binds every interface


# ----------------------------------------------------------------------------- metrics


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*)\} (\S+)$')


def parse_prometheus(text: str) -> dict:
    """A strict reading of the text exposition format: HELP/TYPE before samples, valid names and values."""
    samples, typed = {}, set()
    assert text.endswith("\n")
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            parts = line.split(" ", 3)
            if parts[1] == "TYPE":
                assert parts[3] in ("counter", "gauge"), line
                typed.add(parts[2])
            continue
        m = _SAMPLE.match(line)
        assert m, f"bad sample line {line!r}"
        assert m.group(1) in typed, f"sample before its TYPE: {line!r}"
        labels = tuple(sorted(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"', m.group(2))))
        samples[(m.group(1), labels)] = float(m.group(3))
    return samples


def test_metrics_in_prometheus_text_format(client):
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s = parse_prometheus(r.get_data(as_text=True))
    t = (("pipeline", "telemetry"),)
    assert s[("macrobase_events_total", t)] == 4321
    assert s[("macrobase_outliers_total", t)] == 99
    assert s[("macrobase_dead_letters_total", t)] == 6
    assert s[("macrobase_events_per_second", t)] == 812.5
    assert s[("macrobase_consumer_lag", t)] == 17
    assert s[("macrobase_emit_latency_seconds", t)] == pytest.approx(0.00425)
    assert s[("macrobase_pipeline_state", (("pipeline", "telemetry"), ("state", "degraded")))] == 1
    assert ("macrobase_consumer_lag", (("pipeline", "idle"),)) not in s  # unknown is absent, not 0 or NaN
    assert s[("macrobase_events_total", (("pipeline", "legacy"),))] == 1000


# ----------------------------------------------------------------------------- OpenAPI


def _flask_path(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule)


def test_openapi_document_matches_the_routes(client):
    app = client.application
    rules = {}
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        rules.setdefault(_flask_path(rule.rule), set()).update(m.lower() for m in rule.methods - {"HEAD", "OPTIONS"})
    doc = body(client.get(f"{API_PREFIX}/openapi.json"))
    documented = {path: set(item) for path, item in doc["paths"].items()}
    api_rules = {p: m for p, m in rules.items() if p.startswith(API_PREFIX)}
    assert {p: m for p, m in documented.items() if p.startswith(API_PREFIX)} == api_rules
    assert set(documented) <= set(rules)  # /healthz and /metrics too
    assert doc == openapi_document()


def test_openapi_parameters_match_the_code():
    from macrobase.api import explain_defaults

    doc = openapi_document()
    params = {p["name"]: p for p in doc["paths"][f"{API_PREFIX}/explain"]["post"]["parameters"]}
    assert set(params) == set(explain_defaults())
    for name, default in explain_defaults().items():
        assert params[name]["schema"].get("default") == default, name


# ----------------------------------------------------------------------------- dashboard hook


def test_dashboard_attach_hook_is_called_with_the_server(store_path):
    calls = []
    attach = lambda server, store_factory: calls.append((server, store_factory()))  # noqa: E731
    app = create_web_app(store_path=store_path, attach=attach)
    assert calls and calls[0][0] is app and calls[0][1].path == store_path
    assert app.test_client().get(f"{API_PREFIX}/pipelines").status_code == 200


# ----------------------------------------------------------------------------- real gunicorn


def _http(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {}, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.headers, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def test_gunicorn_serves_the_api(store_path, tmp_path, planted):
    config = tmp_path / "c.yaml"
    config.write_text(
        "pipelines:\n  - name: telemetry\n    source: {type: generator}\n"
        "    schema: {metrics: [power_drain], attributes: [region]}\n"
        f"    sink: {{type: sqlite, path: '{store_path}'}}\n"
        "server: {max_body_bytes: 200000}\n")
    with WebServer(["--config", str(config), "--no-dashboard", "--workers", "1", "--threads", "4"]) as srv:
        status, headers, raw = _http(srv.url + f"{API_PREFIX}/pipelines")
        assert status == 200 and headers["Content-Type"] == "application/json"
        names = [p["name"] for p in strict_loads(raw.decode())["pipelines"]]
        assert names[0] == "telemetry" and set(names) == {"telemetry", "idle", "legacy"}
        status, _, raw = _http(srv.url + f"{API_PREFIX}/pipelines/telemetry/explanations?max_order=1")
        assert status == 200 and [e["attributes"] for e in strict_loads(raw.decode())["explanations"]] == [
            {"device_id": "D00042"}, {"carrier": "carrier-01"}]
        status, _, raw = _http(srv.url + f"{API_PREFIX}/pipelines/telemetry/explanations?max_order=9")
        assert status == 400 and strict_loads(raw.decode())["parameter"] == "max_order"
        rows, df, _ = planted
        small = rows[:1000]
        status, _, raw = _http(srv.url + f"{EXPLAIN}?metric=power_drain&attributes=region,firmware&classifier=predicate"
                               "&predicate=%3E%3D150&min_support=0.05", json.dumps(small).encode(),
                               {"Content-Type": "application/json"})
        assert status == 200, raw
        want_df = df.iloc[:1000].assign(outlier=df["power_drain"].iloc[:1000] >= 150)
        _compare(strict_loads(raw.decode()), reference_explain(want_df, ["region", "firmware"], min_support=0.05))
        status, _, raw = _http(srv.url + f"{EXPLAIN}?metric=power_drain&attributes=region",
                               json.dumps(rows[:5000]).encode(), {"Content-Type": "application/json"})
        assert status == 413 and strict_loads(raw.decode())["parameter"] == "body"
        status, _, raw = _http(srv.url + f"{EXPLAIN}?metric=power_drain&attributes=region", b"x",
                               {"Content-Type": "text/html"})
        assert status == 415
        status, _, raw = _http(srv.url + "/metrics")
        assert status == 200 and parse_prometheus(raw.decode())[
            ("macrobase_events_total", (("pipeline", "telemetry"),))] == 4321


# ----------------------------------------------------------------------------- status table


def test_write_status_merges_fields_and_validates(tmp_path):
    from macrobase.store import ResultStore

    path = tmp_path / "s.db"
    with SqliteSink(path) as sink, ResultStore(path) as store:
        assert store.statuses() == [] and store.status("p") is None
        sink.write_status({"pipeline": "p", "state": "running", "events": np.int64(10), "outliers": 2,
                           "events_per_second": float("nan"), "consumer_lag": 5, "last_error": None,
                           "updated_at": "2026-01-01T01:00:00+01:00"})
        first = store.status("p")
        # Not updated since 2026-01-01: a "running" pipeline that went silent reads as degraded.
        assert first.pop("last_error").startswith("no status from the pipeline for ")
        assert first == {"pipeline": "p", "state": "degraded", "updated_at": "2026-01-01T00:00:00.000000Z",
                         "events": 10, "outliers": 2, "events_per_second": None, "consumer_lag": 5,
                         "dead_letters": None, "emit_latency_ms": None, "restarts": None}
        sink.write_status({"pipeline": "p", "state": "running", "last_error": None})
        assert store.status("p")["state"] == "running" and store.status("p")["last_error"] is None
        sink.write_status({"pipeline": "p", "state": "restarting", "restarts": 1, "last_error": "boom",
                           "consumer_lag": None})
        second = store.status("p")
        assert (second["state"], second["events"], second["restarts"], second["last_error"]) == (
            "restarting", 10, 1, "boom")  # counters kept, given fields replaced
        assert second["consumer_lag"] is None and second["updated_at"] > first["updated_at"]
        sink.write_status({"pipeline": "a", "state": "stopped"})
        assert [s["pipeline"] for s in store.statuses()] == ["a", "p"]
        for bad in [{"pipeline": "p", "state": "runing"}, {"pipeline": "p", "state": "running", "evnts": 1},
                    {"pipeline": "", "state": "running"}, {"pipeline": "p", "state": "running", "events": "many"}]:
            with pytest.raises(ValueError):
                sink.write_status(bad)


def test_metrics_show_each_partition_so_a_stalled_one_is_visible():
    from macrobase.api import prometheus_text

    text = prometheus_text([{"name": "t", "status": "running", "partitions": {
        "topic/0": {"lag": 0, "last_read_at": "2026-01-01T00:00:00.000Z", "healthy": True, "error": None},
        "topic/1": {"lag": 5000, "last_read_at": "2025-12-31T23:00:00.000Z", "healthy": True, "error": None}}}])
    lines = text.splitlines()
    assert 'macrobase_partition_lag{pipeline="t",partition="topic/1"} 5000' in lines
    assert 'macrobase_partition_last_read_timestamp_seconds{pipeline="t",partition="topic/0"} 1767225600' in lines
    assert 'macrobase_partition_last_read_timestamp_seconds{pipeline="t",partition="topic/1"} 1767222000' in lines


def test_metrics_export_the_latest_explanations(client):
    s = parse_prometheus(client.get("/metrics").get_data(as_text=True))
    latest = _explanations(len(TIMES) - 1)

    def key(metric, attributes):
        return (metric, (("explanation", " AND ".join(f"{k}={v}" for k, v in attributes.items())),
                         ("pipeline", "telemetry")))

    for e in latest:
        assert s[key("macrobase_explanation_support", e["attributes"])] == e["support"]
        assert s[key("macrobase_explanation_outliers", e["attributes"])] == e["outlier_count"]
        assert s[key("macrobase_explanation_ratio", e["attributes"])] == float(e["risk_ratio"])  # "inf" -> +Inf
    exported = [k for k in s if k[0] == "macrobase_explanation_ratio"]
    assert len(exported) == len(latest)   # legacy's latest document has none


def test_explanation_metrics_are_capped_escaped_and_skip_resolved():
    from macrobase.api import MAX_METRIC_EXPLANATIONS, prometheus_text

    items = [{"attributes": {"k": f"v{i}"}, "support": 0.5, "global_ratio": i + 1.0, "outlier_count": i}
             for i in range(MAX_METRIC_EXPLANATIONS + 10)]
    resolved = {"attributes": {"k": "gone"}, "support": 0.9, "global_ratio": 9.0, "outlier_count": 9,
                "status": "resolved"}
    odd = {"attributes": {"path": 'C:\\x "q"\nz'}, "support": 0.1, "global_ratio": 2.0, "outlier_count": 1}
    text = prometheus_text([], {"a": [resolved, *items], "b": [odd]})
    s = parse_prometheus(text)
    kept = sorted(dict(labels)["explanation"] for metric, labels in s
                  if metric == "macrobase_explanation_ratio" and dict(labels)["pipeline"] == "a")
    assert kept == sorted(f"k=v{i}" for i in range(MAX_METRIC_EXPLANATIONS))   # the first 50, in document order
    assert 'macrobase_explanation_ratio{pipeline="b",explanation="path=C:\\\\x \\"q\\"\\nz"} 2' in text.splitlines()
