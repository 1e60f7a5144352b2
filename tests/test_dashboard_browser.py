"""The dashboard in a real headless Chromium, fed by a separate process writing a live stream.

A writer process appends a snapshot every 0.4 s to a SQLite result store (events keep
growing; dead letters trickle in; a planted explanation appears a few seconds in, once the
test has seen the table without it, signalled by a trigger file); a real HTTP
server (werkzeug, in a thread) serves ``create_app``; Selenium drives Debian's
``/usr/bin/chromium`` through ``/usr/bin/chromedriver``. The test checks that the planted
explanation shows up in the table, that the KPIs move without a page reload, that
selecting the row plots it over time, and that the browser console has no SEVERE entry.
The page is opened before the writer starts, so the "no pipelines yet" state is checked
too. It saves a screenshot to docs/dashboard.png (and the test's tmp dir).

Run as a script, this file is the writer: ``python tests/test_dashboard_browser.py DB [SECONDS [PLANT_AFTER]]``
(the planted explanation appears after PLANT_AFTER seconds or when ``DB.plant`` exists).
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
PLANTED = "device_model=M101 and firmware=0.4"
PLANT_AFTER_S = 3.0  # standalone default; the test plants through the trigger file instead
EMIT_EVERY_S = 0.4
BACKFILL = 90  # snapshots of "earlier" stream written at start, so the charts have a history


# --------------------------------------------------------------------------- the writer (separate process)


def _snapshot(i: int, emitted_at: str, events: int, outliers: int, planted: bool) -> dict:
    """Snapshot number i of the simulated stream (deterministic wave in throughput)."""
    explanations = [{"attributes": {"region": "eu-west"}, "support": 0.2, "risk_ratio": 3.4,
                     "outlier_count": outliers // 5, "count": events // 10}]
    if planted:
        explanations.insert(0, {"attributes": {"device_model": "M101", "firmware": "0.4"}, "support": 0.43,
                                "risk_ratio": 12.1 + 0.2 * (i % 4), "outlier_count": int(outliers * 0.43),
                                "count": int(outliers * 0.43 * 1.6)})
    edges = [200.0 + 25.0 * k for k in range(25)]
    counts = [int(3000 * math.exp(-((k - 8) ** 2) / 12)) + (i % 3) for k in range(24)]
    return {"pipeline": "telemetry", "emitted_at": emitted_at, "total": events, "outliers": outliers,
            "dropped": i // 3, "thresholds": {"power_drain": {"high": 612.5}},
            "distribution": {"power_drain": {"edges": edges, "counts": counts}},
            "explanations": explanations, "events_per_second": round(5000.0 + 900 * math.sin(i / 9) + 97 * (i % 5)),
            "dead_letters": i // 4}


def write_stream(path: str, seconds: float = 120.0, plant_after: float = PLANT_AFTER_S,
                 backfill: int = BACKFILL) -> None:
    """Write ``backfill`` past snapshots (one a second, as if the pipeline had been running),
    then append one snapshot (and status) every EMIT_EVERY_S until killed or ``seconds`` pass."""
    from datetime import datetime, timedelta, timezone

    from macrobase.store import SqliteSink

    events = outliers = 0
    with SqliteSink(path) as sink:
        now = datetime.now(timezone.utc)
        for i in range(backfill):
            events += 5000
            outliers += 60 + (40 if 40 <= i < 55 else 0)  # an earlier burst of outliers
            moment = (now - timedelta(seconds=backfill - i)).isoformat()
            sink.write(_snapshot(i, moment, events, outliers, planted=False))
        start = time.monotonic()
        i = backfill
        while time.monotonic() - start < seconds:
            events += 2000 + 37 * (i % 7)
            outliers += 24 + i % 5
            planted = time.monotonic() - start >= plant_after or os.path.exists(path + ".plant")
            doc = _snapshot(i, datetime.now(timezone.utc).isoformat(), events, outliers, planted)
            letters = ([{"reason": "invalid_json", "detail": "Expecting value: line 1 column 2 (char 1)",
                         "raw": b"{power_drain: oops", "partition": 0, "offset": 4000 + i}] if i % 4 == 3 else [])
            if i % 6 == 5:
                letters.append({"reason": "missing_metric", "detail": "no 'power_drain' field",
                                "raw": b'{"device_model": "M3", "region": "us-east"}', "partition": 1,
                                "offset": 900 + i})
            sink.write(doc, dead_letters=letters)
            if hasattr(sink, "write_status"):  # the pipeline_status table (newer sinks)
                sink.write_status({"pipeline": "telemetry", "state": "running", "events": events,
                                   "outliers": outliers, "events_per_second": doc["events_per_second"],
                                   "consumer_lag": 120 + 13 * (i % 10), "dead_letters": i // 4, "restarts": 0})
            i += 1
            time.sleep(EMIT_EVERY_S)


if __name__ == "__main__":
    write_stream(sys.argv[1], *(float(a) for a in sys.argv[2:4]))
    sys.exit(0)


# --------------------------------------------------------------------------- fixtures


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: run `bash scripts/install_test_tools.sh` (installs Debian's "
                    "chromium and chromium-driver with apt-get), then rerun this test", pytrace=False)


class Writer:
    """The writer process, started on demand (after the page shows its empty state)."""

    def __init__(self, path: Path):
        self.path = path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.process = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), str(self.path), "90", "1e9"],
                                        cwd=str(ROOT), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

    def plant(self) -> None:
        Path(str(self.path) + ".plant").touch()

    def output(self) -> str:
        return (self.process.stdout.read() or b"").decode(errors="replace")[-2000:] if self.process else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)


@pytest.fixture
def writer(tmp_path):
    w = Writer(tmp_path / "results.db")
    try:
        yield w
    finally:
        w.stop()


@pytest.fixture
def server(writer):
    from werkzeug.serving import make_server

    from dashboard import create_app

    app = create_app(writer.path)
    httpd = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, name="dashboard-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}/"
    finally:
        httpd.shutdown()
        thread.join(timeout=10)


@pytest.fixture
def browser():
    if not all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER)):
        yield None  # the test itself fails with the install hint (a failure, not a setup error or skip)
        return
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
                 "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--window-size=1440,1200",
                 "--hide-scrollbars"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


# --------------------------------------------------------------------------- the test


def _text(driver, element_id: str) -> str:
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def _points(driver, graph_id: str, trace_name: str) -> int:
    """Non-null points of a named trace in the browser's live Plotly figure."""
    return driver.execute_script(
        "const g = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');"
        "const t = g && g.data && g.data.find(t => t.name === arguments[1]);"
        "return t ? t.y.filter(v => v !== null).length : 0;", graph_id, trace_name)


def test_dashboard_live_in_headless_chromium(writer, server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    _require_browser()
    started = time.monotonic()
    browser.get(server)
    browser.execute_script("window.__notReloaded = true;")
    wait = WebDriverWait(browser, 25, poll_frequency=0.2)

    # before any pipeline wrote anything: a friendly empty state, not an error
    wait.until(lambda d: "No pipelines yet" in _text(d, "no-pipelines"))
    writer.start()

    # the first snapshot arrives: the pipeline is picked and the KPIs fill in
    wait.until(lambda d: _text(d, "kpi-eps").endswith("/s"))
    first_events = _text(browser, "kpi-eps-note")
    first_lag = _text(browser, "kpi-lag")
    assert not browser.find_element(By.ID, "no-pipelines").is_displayed()
    assert _text(browser, "status-badge").lower() in ("running", "live")

    # the table shows the stream's explanation, then the planted one appears as a plain sentence
    wait.until(lambda d: "region=eu-west: 3.4x more likely, 20% of outliers" in _text(d, "explanations-table"))
    assert PLANTED not in _text(browser, "explanations-table")
    writer.plant()
    wait.until(lambda d: PLANTED in _text(d, "explanations-table"))
    table = _text(browser, "explanations-table")
    assert f"{PLANTED}: 12." in table and "43% of outliers" in table

    # KPIs keep changing and the throughput chart grows (appended points) while the writer
    # appends, all without a page reload
    history = _points(browser, "history-graph", "events/s")
    wait.until(lambda d: _text(d, "kpi-eps-note") != first_events)
    wait.until(lambda d: _points(d, "history-graph", "events/s") > history)
    assert browser.execute_script("return window.__notReloaded === true;")
    assert first_lag != "—" or not _has_status_table(writer.path)

    # select the planted row: its ratio and support are plotted over time
    rows = browser.find_elements(By.CSS_SELECTOR, "#explanations-table tr")
    radio = next(r for r in rows if PLANTED in r.text).find_element(By.CSS_SELECTOR, "input[type=radio]")
    radio.click()
    wait.until(lambda d: _points(d, "series-graph", "ratio") >= 1)
    # ...and the plot follows the stream: more emits of the planted explanation keep arriving
    seen = _points(browser, "series-graph", "ratio")
    wait.until(lambda d: _points(d, "series-graph", "ratio") >= max(seen + 3, 8))

    # the distribution shows the learned threshold; dead letters are listed with their reason
    wait.until(lambda d: "threshold high ≥ 612.5" in _text(d, "distribution-graph"))
    wait.until(lambda d: "invalid_json" in _text(d, "dead-table"))

    time.sleep(1.0)  # let the last tick's figures finish drawing before the picture
    shot = browser.get_screenshot_as_png()
    (tmp_path / "dashboard.png").write_bytes(shot)
    (ROOT / "docs").mkdir(exist_ok=True)
    (ROOT / "docs" / "dashboard.png").write_bytes(shot)

    # sorting (server-side, on the raw ratio) and filtering from the table's controls
    def first_row(d) -> str:
        rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#explanations-table tbody tr") if r.text.strip()]
        return rows[1] if rows and "EXPLANATION" in rows[0].upper() else (rows[0] if rows else "")

    header = next(h for h in browser.find_elements(By.CSS_SELECTOR, "#explanations-table th")
                  if h.text.strip().upper().endswith("RATIO"))
    header.find_element(By.CSS_SELECTOR, ".column-header--sort").click()  # ascending
    wait.until(lambda d: first_row(d).startswith("region=eu-west"))
    header = next(h for h in browser.find_elements(By.CSS_SELECTOR, "#explanations-table th")
                  if h.text.strip().upper().endswith("RATIO"))
    header.find_element(By.CSS_SELECTOR, ".column-header--sort").click()  # descending
    wait.until(lambda d: first_row(d).startswith(PLANTED))
    ratio_filter = browser.find_element(By.ID, "filter-ratio")
    ratio_filter.clear()
    ratio_filter.send_keys("5", Keys.ENTER)
    wait.until(lambda d: "region=eu-west" not in _text(d, "explanations-table") and PLANTED in _text(d, "explanations-table"))
    assert "1 shown by the filters" in _text(browser, "explanations-summary")

    severe = [entry for entry in browser.get_log("browser") if entry.get("level") == "SEVERE"]
    assert severe == [], f"browser console errors: {severe}"
    assert writer.process.poll() is None, "the writer process died: " + writer.output()
    assert time.monotonic() - started < 60


def _has_status_table(path) -> bool:
    from macrobase.store import ResultStore

    with ResultStore(path) as store:
        return hasattr(store, "status") and store.status("telemetry") is not None
