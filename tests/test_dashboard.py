"""Dashboard views against a real SQLite store written by SqliteSink (planted documents, no mocks).

Expected values are planted ground truth or computed independently here (plain Python
formatting of the planted numbers), never read back from the dashboard's own output.
"""

from __future__ import annotations

import json
import math
import threading
from datetime import datetime, timedelta, timezone

import flask
import plotly.graph_objects as go
import pytest
from dash import Patch, no_update

from dashboard import attach, create_app
from dashboard import callbacks as C
from dashboard import figures as F
from macrobase.store import ResultStore, SqliteSink, canonical_attributes

T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=timezone.utc)
PAIR = {"model": "M101", "firmware": "0.4"}
SINGLE = {"region": "eu"}
TRIPLE = {"model": "M7", "firmware": "1.1", "region": "ap"}
EDGES = [0.0, 10.0, 20.0, 30.0, 40.0]
COUNTS = [5, 40, 30, 2]


def _doc(i: int, with_pair: bool = True, pipeline: str = "telemetry") -> dict:
    """Snapshot i: 1000 events a snapshot, 20 outliers; the pair's ratio grows by 1 each emit."""
    explanations = [{"attributes": SINGLE, "support": 0.2, "risk_ratio": 3.5, "outlier_count": 4, "count": 100},
                    {"attributes": TRIPLE, "support": 0.05, "risk_ratio": "inf", "outlier_count": 1, "count": 1}]
    if with_pair:
        explanations.insert(0, {"attributes": PAIR, "support": 0.43, "risk_ratio": 12.1 + i,
                                "outlier_count": 9, "count": 20})
    return {"pipeline": pipeline, "emitted_at": (T0 + timedelta(seconds=i)).isoformat(),
            "total": 1000 * (i + 1), "outliers": 20 * (i + 1), "dropped": 0,
            "thresholds": {"power_drain": {"high": 31.5}},
            "distribution": {"power_drain": {"edges": EDGES, "counts": COUNTS}},
            "explanations": explanations, "events_per_second": 100.0 + i, "dead_letters": i}


@pytest.fixture
def db(tmp_path):
    path = tmp_path / "results.db"
    sink = SqliteSink(path)
    for i in range(3):
        sink.write(_doc(i, with_pair=i > 0),
                   dead_letters=[{"reason": "invalid_json", "detail": f"bad {i}", "raw": b"{oops", "partition": 0,
                                  "offset": i}])
    yield path, sink
    sink.close()


@pytest.fixture
def store(db):
    with ResultStore(db[0]) as s:
        yield s


# --------------------------------------------------------------------------- empty states


def test_empty_store_reads_as_friendly_messages(tmp_path):
    store = ResultStore(tmp_path / "not-yet.db")  # the pipeline has not created it
    options, value, empty_style, main_style = C.pipelines_view(store, [], None)
    assert options is no_update and value is no_update  # nothing to change
    assert empty_style == {} and main_style == {"display": "none"}
    assert C.version_view(store, None, None) == {"pipeline": None}
    data, selected, summary, message, empty, table, _ = C.table_view(store, None, [1, 2, 3], 0, 0, [], None, None)
    assert data == [] and empty == {} and table == {"display": "none"}
    assert "No snapshot yet" in message
    kpi = C.kpis_view(store, None, None)
    assert kpi[0] == "—" and kpi[8] == "waiting"
    figure, fp = C.history_view(store, None, None)
    assert "Waiting for the first snapshot" in figure.layout.annotations[0].text
    figure, *_ = C.distribution_view(store, None, None, None)
    assert figure.layout.annotations[0].text == "No metric distribution reported yet"


def test_no_explanations_yet_is_a_message_not_an_error(tmp_path):
    path = tmp_path / "r.db"
    with SqliteSink(path) as sink:
        doc = _doc(0)
        doc["explanations"] = []
        sink.write(doc)
    with ResultStore(path) as store:
        data, _, summary, message, empty, table, _ = C.table_view(store, "telemetry", [1, 2, 3], 0, 0, [], None, None)
    assert data == [] and empty == {} and table == {"display": "none"}
    assert message == "No explanations yet: nothing stands out among 20 outliers of 1,000 events."
    assert summary.startswith("0 explanations of 20 outliers")


def test_layout_and_app_build(tmp_path):
    app = create_app(tmp_path / "r.db")
    layout = app.layout() if callable(app.layout) else app.layout
    # the layout must serialise (what Dash sends to the browser) and carry every callback id
    text = json.dumps(layout.to_plotly_json(), cls=__import__("plotly").utils.PlotlyJSONEncoder)
    for component_id in ("pipeline-select", "status-badge", "kpi-eps", "history-graph", "distribution-graph",
                         "explanations-table", "series-graph", "dead-table", "tick"):
        assert f'"{component_id}"' in text


# --------------------------------------------------------------------------- pipelines and version


def test_pipelines_view_picks_first_and_keeps_choice(db, store):
    path, sink = db
    sink.write(_doc(0, pipeline="billing"))
    options, value, empty, main = C.pipelines_view(store, [], None)
    assert options == [{"label": "billing", "value": "billing"}, {"label": "telemetry", "value": "telemetry"}]
    assert value == "billing" and empty == {"display": "none"} and main == {}
    options2, value2, *_ = C.pipelines_view(store, options, "telemetry")
    assert options2 is no_update and value2 is no_update


def test_version_changes_only_with_new_data(db, store):
    path, sink = db
    now = T0 + timedelta(seconds=3)
    v1 = C.version_view(store, "telemetry", None, now=now)
    assert v1["snapshot"] == "2026-01-01T12:00:02.000000Z" and v1["stale"] is False
    assert C.version_view(store, "telemetry", v1, now=now) is no_update
    sink.write(_doc(3))
    v2 = C.version_view(store, "telemetry", v1, now=now)
    assert v2["snapshot"] == "2026-01-01T12:00:03.000000Z"
    # a pipeline that stops emitting turns stale, which changes the version once
    v3 = C.version_view(store, "telemetry", v2, now=now + timedelta(seconds=60))
    assert v3["stale"] is True


# --------------------------------------------------------------------------- KPIs and status


def test_kpis_from_latest_document_without_status(store):
    out = C.kpis_view(store, "telemetry", None, now=T0 + timedelta(seconds=3))
    eps, eps_note, rate, rate_note, lag, lag_note, dead, dead_note, badge, css, tip, fresh, fp = out
    # latest planted doc: i=2 -> total 3000, outliers 60, 102 events/s, 2 dead letters
    assert eps == "102/s" and eps_note == "3,000 events"
    assert rate == f"{60 / 3000:.2%}" == "2.00%" and rate_note == "60 outliers"
    assert lag == "—" and lag_note == "not reported"
    assert dead == "2"
    if not hasattr(store, "status"):
        assert (badge, css) == ("live", "badge badge-running")
    assert fresh == "snapshot 12:00:02 UTC"
    # nothing changed -> every output is no_update
    again = C.kpis_view(store, "telemetry", fp, now=T0 + timedelta(seconds=3))
    assert all(o is no_update for o in again)


def test_badge_goes_stale_without_status():
    doc = {"emitted_at": T0.isoformat()}
    assert F.status_badge(None, doc, now=T0 + timedelta(seconds=2))[:2] == ("live", "badge badge-running")
    assert F.status_badge(None, doc, now=T0 + timedelta(seconds=30))[:2] == ("stale", "badge badge-stopped")


@pytest.mark.parametrize("state", ["starting", "running", "degraded", "stopped", "crashed", "restarting"])
def test_status_row_drives_badge_and_live_kpis(db, state):
    path, sink = db
    if not hasattr(sink, "write_status"):
        pytest.fail("SqliteSink.write_status missing: the pipeline_status table has not landed")
    sink.write_status({"pipeline": "telemetry", "state": state, "events": 12345, "outliers": 10,
                       "events_per_second": 2500.0, "consumer_lag": 4200, "dead_letters": 7,
                       "last_error": "broker down" if state == "degraded" else None, "restarts": 1})
    with ResultStore(path) as store:
        eps, eps_note, rate, _, lag, lag_note, dead, _, badge, css, tip, fresh, _ = C.kpis_view(store, "telemetry", None)
    assert (eps, eps_note, lag, dead) == ("2,500/s", "12.3k events", "4,200", "7")
    assert lag_note == "messages behind the topic"
    assert badge == state and css == f"badge badge-{state}"
    assert "1 restart(s)" in tip
    if state == "degraded":
        assert "broker down" in tip and "broker down" in fresh


# --------------------------------------------------------------------------- explanations table


def test_table_rows_are_the_planted_explanations_with_sentences(store):
    data, selected, summary, message, empty, table, fp = C.table_view(store, "telemetry", [1, 2, 3], 0, 0, [], None, None)
    assert [json.loads(r["id"]) for r in data] == [PAIR, SINGLE, TRIPLE]  # document order kept
    assert [r["explanation"] for r in data] == [
        "model=M101 and firmware=0.4: 14.1x more likely, 43% of outliers",
        "region=eu: 3.5x more likely, 20% of outliers",
        "model=M7 and firmware=1.1 and region=ap: infinitely more likely, 5% of outliers",
    ]
    assert [r["ratio"] for r in data] == ["14.1×", "3.5×", "∞"]
    assert [r["order"] for r in data] == [2, 1, 3]
    assert summary == "3 explanations of 60 outliers among 3,000 events · ratio: risk ratio"
    assert empty == {"display": "none"} and table == {}


def _planted_table(orders, min_support, min_ratio):
    # independent reference: filter the planted explanations of the latest doc by hand
    latest = _doc(2)["explanations"]
    keep = []
    for e in latest:
        ratio = float(e["risk_ratio"])
        if len(e["attributes"]) in orders and e["support"] >= min_support and ratio >= min_ratio:
            keep.append(canonical_attributes(e["attributes"]))
    return keep


@pytest.mark.parametrize("orders,support_pct,min_ratio", [
    ([1, 2, 3], 0, 0), ([2], 0, 0), ([1, 3], 0, 0), ([1, 2, 3], 10, 0), ([1, 2, 3], 0, 5), ([1, 2, 3], 30, 20),
    ([], 0, 0),
])
def test_table_filters(store, orders, support_pct, min_ratio):
    data, *_ = C.table_view(store, "telemetry", orders, support_pct, min_ratio, [], None, None)
    assert [r["id"] for r in data] == _planted_table(orders, support_pct / 100, min_ratio)


@pytest.mark.parametrize("column,key", [
    ("ratio", lambda e: float(e["risk_ratio"])), ("support", lambda e: e["support"]),
    ("outliers", lambda e: e["outlier_count"]), ("order", lambda e: len(e["attributes"])),
])
@pytest.mark.parametrize("direction", ["asc", "desc"])
def test_table_sorts_on_raw_numbers(store, column, key, direction):
    data, *_ = C.table_view(store, "telemetry", [1, 2, 3], 0, 0, [{"column_id": column, "direction": direction}],
                            None, None)
    expected = sorted(_doc(2)["explanations"], key=key, reverse=direction == "desc")
    assert [r["id"] for r in data] == [canonical_attributes(e["attributes"]) for e in expected]


def test_table_keeps_the_selected_row_selected_when_rows_move(store):
    pair = canonical_attributes(PAIR)
    data, selected, *_ = C.table_view(store, "telemetry", [1, 2, 3], 0, 0, [{"column_id": "ratio", "direction": "asc"}],
                                      pair, None)
    assert data[selected[0]]["id"] == pair and selected == [1]  # 3.5 < 14.1 < inf


def test_table_sends_only_changed_outputs(db, store):
    path, sink = db
    first = C.table_view(store, "telemetry", [1, 2, 3], 0, 0, [], None, None)
    again = C.table_view(store, "telemetry", [1, 2, 3], 0, 0, [], None, first[-1])
    assert all(o is no_update for o in again)
    doc = _doc(3)
    sink.write(doc)  # the pair's ratio changes, the summary too; the empty message and styles do not
    data, selected, summary, message, empty, table, fp = C.table_view(store, "telemetry", [1, 2, 3], 0, 0, [], None,
                                                                      first[-1])
    assert data[0]["ratio"] == "15.1×" and summary.startswith("3 explanations of 80 outliers")
    assert selected is no_update and message is no_update and empty is no_update and table is no_update


def test_selection_from_radio_or_cell():
    pair = canonical_attributes(PAIR)
    assert C.selection_view("explanations-table.selected_row_ids", [pair], None, None) == pair
    assert C.selection_view("explanations-table.active_cell", None, {"row": 0, "row_id": pair}, None) == pair
    assert C.selection_view("explanations-table.active_cell", None, {"row": 0, "row_id": pair}, pair) is no_update
    assert C.selection_view("explanations-table.selected_row_ids", [], None, pair) is no_update


# --------------------------------------------------------------------------- figures


def test_history_figure_then_appends_only_new_points(db, store):
    path, sink = db
    figure, fp = C.history_view(store, "telemetry", None)
    assert isinstance(figure, go.Figure)
    assert list(figure.data[0].y) == [100.0, 101.0, 102.0]                      # events/s as planted
    assert list(figure.data[1].y) == pytest.approx([100 * 20 / 1000] * 3)        # outliers / total in %
    assert C.history_view(store, "telemetry", fp) == (no_update, no_update)
    sink.write(_doc(3))
    sink.write(_doc(4))
    patch, fp2 = C.history_view(store, "telemetry", fp)
    assert isinstance(patch, Patch)
    ops = {(tuple(op["location"]), op["operation"]): op["params"]["value"] for op in patch._operations}
    assert ops[(("data", 0, "y"), "Extend")] == [103.0, 104.0]
    assert len(ops[(("data", 1, "x"), "Extend")]) == 2
    assert fp2["count"] == 5 and fp2["last"] == "2026-01-01T12:00:04.000000Z"
    # another pipeline: a whole new figure, not a patch
    sink.write(_doc(0, pipeline="billing"))
    figure, _ = C.history_view(store, "billing", fp2)
    assert isinstance(figure, go.Figure) and list(figure.data[0].y) == [100.0]


def test_history_redraws_when_window_is_full(db, store, monkeypatch):
    path, sink = db
    monkeypatch.setattr(C, "HISTORY_POINTS", 4)
    _, fp = C.history_view(store, "telemetry", None)  # 2 points (HISTORY_POINTS // 2)
    sink.write(_doc(3))
    sink.write(_doc(4))
    sink.write(_doc(5))
    figure, fp = C.history_view(store, "telemetry", fp)  # 2 + 3 > 4: redraw from the newest 2
    assert isinstance(figure, go.Figure) and list(figure.data[0].y) == [104.0, 105.0]


def test_distribution_histogram_with_threshold_line(db, store):
    figure, options, value, fp = C.distribution_view(store, "telemetry", None, None)
    assert options == [{"label": "power_drain", "value": "power_drain"}] and value == "power_drain"
    bar = figure.data[0]
    assert list(bar.y) == COUNTS
    assert list(bar.x) == [5.0, 15.0, 25.0, 35.0] and list(bar.width) == [10.0] * 4
    lines = [s for s in figure.layout.shapes if s.type == "line"]
    assert [(s.x0, s.x1) for s in lines] == [(31.5, 31.5)]
    shaded = [s for s in figure.layout.shapes if s.type == "rect"]
    assert [(s.x0, s.x1) for s in shaded] == [(31.5, 40.0)]  # the outlier side of a high threshold
    assert any("threshold high ≥ 31.5" in a.text for a in figure.layout.annotations)
    assert all(o is no_update for o in C.distribution_view(store, "telemetry", "power_drain", fp))


def test_distribution_absent_states_the_threshold():
    doc = {"thresholds": {"x": {"low": 1.25, "high": 9.5}}}
    figure = F.distribution_figure(doc, "x")
    assert figure.layout.annotations[0].text == "x: threshold low ≤ 1.25, high ≥ 9.5 (no distribution reported)"
    assert F.threshold_lines(3.5) == [("cut-off 3.5", 3.5)]  # a bare number (older documents)
    assert F.threshold_lines({">=": 0.8}) == [(">= 0.8", 0.8)]  # predicate classifier


def test_series_of_selected_explanation(db, store):
    pair = canonical_attributes(PAIR)
    figure, fp = C.series_view(store, "telemetry", pair, None)
    ratio = figure.data[0]
    assert list(ratio.y) == pytest.approx([13.1, 14.1])  # planted at emits 1 and 2 (absent at 0)
    assert list(figure.data[-1].y) == pytest.approx([43.0, 43.0])  # support in %
    assert C.series_view(store, "telemetry", pair, fp) == (no_update, no_update)
    # an infinite ratio is a marker, not a gap without explanation
    figure, _ = C.series_view(store, "telemetry", canonical_attributes(TRIPLE), None)
    names = [t.name for t in figure.data]
    assert "ratio ∞" in names and all(y is None for y in figure.data[0].y)
    figure, _ = C.series_view(store, "telemetry", None, None)
    assert "Select an explanation" in figure.layout.annotations[0].text


def test_dead_letters_newest_first(store):
    data, empty, table, fp = C.dead_letters_view(store, "telemetry", None)
    assert [r["detail"] for r in data] == ["bad 2", "bad 1", "bad 0"]
    assert {r["reason"] for r in data} == {"invalid_json"} and data[0]["raw"] == "{oops"
    assert data[0]["where"] == "p0@2" and empty == {"display": "none"} and table == {}
    assert all(o is no_update for o in C.dead_letters_view(store, "telemetry", fp))


def test_format_count_reads_like_a_person_writes_counts():
    # exact with thousands separators up to 9,999; then three significant digits and a suffix
    expected = {0: "0", 7: "7", 999: "999", 1000: "1,000", 9999: "9,999", 10_000: "10k", 12345: "12.3k",
                -12345: "-12.3k", 987_654: "988k", 4_560_000: "4.56M", 9_999_999: "10M", 2.5e9: "2.5G",
                0.5: "0.5", 42.25: "42.2", 150.0: "150"}
    assert {value: F.format_count(value) for value in expected} == expected
    assert F.format_count(float("inf")) == "∞" and F.format_count(None) == "—"
    assert math.isinf(F._number("inf"))


# --------------------------------------------------------------------------- mounting on a Flask server


def test_attach_mounts_under_a_prefix_beside_existing_routes(db):
    path, _ = db
    server = flask.Flask("api")

    @server.route("/api/v1/ping")
    def ping():
        return {"ok": True}

    calls = []

    def factory():
        calls.append(ResultStore(path))
        return calls[-1]

    app = attach(server, factory, url_base_pathname="/dashboard/")
    client = server.test_client()
    assert client.get("/api/v1/ping").json == {"ok": True}
    page = client.get("/dashboard/")
    assert page.status_code == 200 and b"MacroBase" in page.data
    assert client.get("/dashboard/_dash-layout").status_code == 200
    assert app.config.url_base_pathname == "/dashboard/"
    # a real callback round trip through Flask: the pipelines callback reads the store
    body = {"output": "..pipeline-select.options...pipeline-select.value...no-pipelines.style...main.style..",
            "outputs": [{"id": "pipeline-select", "property": p} for p in ("options", "value")]
            + [{"id": "no-pipelines", "property": "style"}, {"id": "main", "property": "style"}],
            "inputs": [{"id": "tick", "property": "n_intervals", "value": 1}],
            "state": [{"id": "pipeline-select", "property": "options", "value": []},
                      {"id": "pipeline-select", "property": "value", "value": None}],
            "changedPropIds": ["tick.n_intervals"]}
    reply = client.post("/dashboard/_dash-update-component", json=body)
    assert reply.status_code == 200, reply.data
    response = reply.json["response"]
    assert response["pipeline-select"]["value"] == "telemetry"
    assert response["main"]["style"] == {}
    assert len(calls) == 1  # the store is made once and shared
    # requests from many short-lived threads (a thread-per-request server) share a bounded
    # number of SQLite connections
    threads = [threading.Thread(target=lambda: server.test_client().post("/dashboard/_dash-update-component",
                                                                         json=body)) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert 1 <= len(calls[0]._all) <= 2
    calls[0].close()
    with pytest.raises(ValueError, match="url_base_pathname"):
        attach(flask.Flask("other"), factory, url_base_pathname="/dashboard")


def test_a_pipeline_gone_silent_shows_a_degraded_badge(tmp_path):
    # A faulted store takes no status row: the badge must not keep saying "running".
    from macrobase.store import ResultStore

    path = tmp_path / "s.db"
    with SqliteSink(path) as sink:
        sink.write_status({"pipeline": "p", "state": "running", "updated_at": "2026-01-01T00:00:00Z"})
    with ResultStore(path) as store:
        label, css, tip = F.status_badge(store.status("p"), None)
    assert (label, css) == ("degraded", "badge badge-degraded")
    assert "no status from the pipeline for" in tip


def test_explanation_rows_show_since_and_a_resolved_status():
    from dashboard import figures as F
    doc = {"emitted_at": "2026-01-02T14:14:30.000Z", "explanations": [
        {"attributes": {"model": "M101"}, "support": 0.5, "risk_ratio": 4.0, "outlier_count": 5, "count": 9,
         "first_seen": "2026-01-02T14:02:00.000Z", "last_seen": "2026-01-02T14:14:30.000Z", "status": "ongoing"},
        {"attributes": {"model": "M7"}, "support": 0.2, "risk_ratio": 3.5, "outlier_count": 2, "count": 4,
         "first_seen": "2026-01-01T23:50:00.000Z", "last_seen": "2026-01-02T02:00:00.000Z", "status": "resolved"},
        {"attributes": {"model": "M9"}, "support": 0.1, "risk_ratio": 3.2, "outlier_count": 1, "count": 2}]}
    rows = F.explanation_rows(doc)
    assert [(r["since"], r["status"]) for r in rows] == [
        ("since 14:02 (12 min)", "ongoing"),
        ("since Jan 01 23:50 (2 h 10 min)", "resolved"),   # a resolved span ends at its last_seen
        ("—", ""),                                           # batch / older documents
    ]
    oldest_first = F.explanation_rows(doc, sort_by=[{"column_id": "since", "direction": "asc"}])
    assert [r["status"] for r in oldest_first] == ["resolved", "ongoing", ""]


def test_the_table_has_since_and_status_columns_and_greys_resolved_rows():
    from dashboard.layout import _explanations_panel
    table = next(c for c in _walk(_explanations_panel()) if getattr(c, "id", None) == "explanations-table")
    assert [c["id"] for c in table.columns][-2:] == ["since", "status"]
    assert any(s["if"].get("filter_query") == '{status} = "resolved"' for s in table.style_data_conditional)


def _walk(component):
    yield component
    children = getattr(component, "children", None)
    for child in children if isinstance(children, (list, tuple)) else [children] if children is not None else []:
        if hasattr(child, "children") or hasattr(child, "id"):
            yield from _walk(child)
