"""`macrobase serve` end to end: real processes, a real web server, SQLite, no mocks.

One ``macrobase serve`` subprocess runs two pipelines: ``gen`` (the live generator source,
5,000 events/s, unbounded) and ``batch`` (a small CSV file, bounded). The test checks the
HTTP surface (/healthz, /api/v1/pipelines, /metrics) while the stream runs, kills the
``gen`` pipeline process with SIGKILL and watches the supervisor report the crash and
bring it back (restarts counted), kills the web server (gunicorn's arbiter) and sees the
service start another, checks that the bounded pipeline finishes once and is not
"restarted", then stops the service with SIGTERM: exit status 0, no process left behind, and
the status rows in the SQLite file (read with the stdlib ``sqlite3``, not our store) say
``stopped``.

The process helpers here (``descendants``, ``alive``, ``free_port``, ``get``) are shared
with tests/test_demo.py.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ATTRS = ["region", "firmware", "device_model", "carrier", "device_id"]
BATCH_ROWS = 5_000


# --------------------------------------------------------------------------- processes and HTTP


def _stat(pid: int) -> tuple[int, str, int] | None:
    """(ppid, state, start time in clock ticks) of a live process, from /proc; None if gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # after "pid (comm) "; comm may contain spaces
    return int(fields[1]), fields[0], int(fields[19])


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def descendants(root: int) -> dict[int, tuple[int, str]]:
    """Every live descendant of ``root``: pid -> (start time, command line)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (st := _stat(int(entry))) is not None:
            table[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            out[child] = (table[child][2], _cmdline(child))
            todo.append(child)
    return out


def alive(pid: int, started: int) -> bool:
    """The same process (not a reused pid) still exists and is not a zombie."""
    st = _stat(pid)
    return st is not None and st[2] == started and st[1] != "Z"


def wait_gone(procs: dict[int, tuple[int, str]], timeout: float) -> dict[int, str]:
    """Wait until none of ``procs`` is alive; returns those still alive (pid -> command)."""
    deadline = time.monotonic() + timeout
    while True:
        left = {pid: cmd for pid, (started, cmd) in procs.items() if alive(pid, started)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def kill_all(process: subprocess.Popen, procs: dict[int, tuple[int, str]]) -> None:
    """Teardown after a failure: stop the service (SIGTERM, then SIGKILL) and every descendant recorded."""
    if process.poll() is None:
        procs = {**procs, **descendants(process.pid)}
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
    for pid, (started, _) in procs.items():
        if alive(pid, started):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str, timeout: float = 5.0) -> tuple[int | None, str]:
    """(status, body) of a GET; (None, error text) when the server does not answer."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except OSError as exc:
        return None, str(exc)


def wait_for(check, timeout: float, what: str, interval: float = 0.2, log: Path | None = None):
    """Poll ``check()`` until it returns something truthy; fail naming ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    tail = log.read_text(errors="replace")[-3000:] if log is not None and log.exists() else ""
    pytest.fail(f"{what}: not within {timeout:g}s\n--- service output ---\n{tail}")


def start(argv: list[str], log: Path) -> subprocess.Popen:
    """Start ``macrobase ARGV`` as a user would, output to ``log``.

    SIGINT is reset to its default in the child: a shell running pytest in the background
    leaves it ignored, and an ignored SIGINT survives exec (Python would then never raise
    KeyboardInterrupt, so Ctrl-C could not be tested).
    """
    env = {**os.environ, "NUMBA_CACHE_DIR": os.environ.get("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache")),
           "PYTHONUNBUFFERED": "1"}
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "macrobase.cli", *argv], cwd=str(ROOT), env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


# --------------------------------------------------------------------------- the test


def _pipeline(base: str, name: str) -> dict | None:
    status, body = get(base + "/api/v1/pipelines")
    if status != 200:
        return None
    return next((p for p in json.loads(body)["pipelines"] if p["name"] == name), None)


def _metrics(base: str) -> dict[str, float]:
    status, body = get(base + "/metrics")
    assert status == 200, body
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def _stored_status(db: Path) -> dict[str, tuple]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return {row[0]: row[1:] for row in conn.execute("SELECT pipeline, state, events, restarts FROM pipeline_status")}


def test_serve_supervises_restarts_and_stops_cleanly(tmp_path):
    from macrobase.synthetic import planted_table

    table, _ = planted_table(BATCH_ROWS, seed=4)
    plain = pa.schema([("power_drain", pa.float64())] + [(a, pa.string()) for a in ATTRS])
    pacsv.write_csv(table.select(["power_drain"] + ATTRS).cast(plain), tmp_path / "batch.csv")
    db = tmp_path / "results.db"
    port = free_port()
    schema = {"metrics": ["power_drain"], "attributes": ATTRS}
    config = {
        "pipelines": [
            {"name": "gen", "source": {"type": "generator", "rate": 5000}, "schema": schema,
             "classifier": {"type": "mad", "cutoff": {"score": 3.5}},
             "explainer": {"emit_every": "500ms"}, "sink": {"type": "sqlite", "path": str(db)}},
            {"name": "batch", "source": {"type": "file", "path": str(tmp_path / "batch.csv")}, "schema": schema,
             "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
             "explainer": {"decay": 0, "emit_every": "500ms"}, "sink": {"type": "sqlite", "path": str(db)}},
        ],
        "server": {"host": "127.0.0.1", "port": port},
    }
    (tmp_path / "serve.yaml").write_text(yaml.safe_dump(config))
    log = tmp_path / "serve.log"
    base = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    serve = start(["serve", str(tmp_path / "serve.yaml")], log)
    seen: dict[int, tuple[int, str]] = {}
    try:
        # The web server answers, and lists both configured pipelines.
        wait_for(lambda: get(base + "/healthz")[0] == 200, 60, "GET /healthz 200", log=log)
        assert {p["name"] for p in json.loads(get(base + "/api/v1/pipelines")[1])["pipelines"]} == {"gen", "batch"}

        # The live pipeline runs and its event count grows between two reads.
        first = wait_for(lambda: (p := _pipeline(base, "gen")) and p["status"] == "running" and p["events"]
                         and p, 60, "gen running with events", log=log)
        wait_for(lambda: (_pipeline(base, "gen") or {}).get("events", 0) > first["events"], 10,
                 "gen's events growing", log=log)

        # The bounded pipeline finishes once: every row counted, state stopped, not restarted.
        done = wait_for(lambda: (p := _pipeline(base, "batch")) and p["status"] == "stopped" and p, 60,
                        "batch pipeline stopped", log=log)
        assert done["events"] == BATCH_ROWS and done["restarts"] == 0 and done["last_error"] is None

        # Prometheus counters of the running pipeline.
        metrics = _metrics(base)
        assert metrics['macrobase_events_total{pipeline="gen"}'] > 0
        assert metrics['macrobase_pipeline_state{pipeline="gen",state="running"}'] == 1
        assert metrics['macrobase_restarts_total{pipeline="gen"}'] == 0
        assert metrics['macrobase_events_total{pipeline="batch"}'] == BATCH_ROWS

        # Exactly one pipeline process is left (gen's): kill it the hard way.
        def workers() -> list[int]:
            return [pid for pid, (_, cmd) in descendants(serve.pid).items() if "multiprocessing.spawn" in cmd]

        victim = wait_for(lambda: (w := workers()) and len(w) == 1 and w[0], 15,
                          "the finished pipeline's process exits, gen's remains", log=log)
        seen = descendants(serve.pid)
        os.kill(victim, signal.SIGKILL)

        rows: dict[str, dict] = {}  # first row seen in each state

        def back_running():
            p = _pipeline(base, "gen") or {}
            rows.setdefault(p.get("status"), p)
            return p.get("status") == "running" and p.get("restarts", 0) >= 1 and p

        after = wait_for(back_running, 30, "gen running again after SIGKILL", interval=0.05, log=log)
        # SIGKILL leaves the child no chance to say "crashed": the supervisor reports it, with the signal.
        assert "restarting" in rows, list(rows)
        assert rows["restarting"]["restarts"] == 1 and "-9" in rows["restarting"]["last_error"], rows["restarting"]
        assert len(workers()) == 1 and victim not in workers()
        # The restarted process keeps the count in every snapshot it reports, and streams again.
        events = after["events"] or 0
        for _ in range(4):
            time.sleep(0.6)
            p = _pipeline(base, "gen")
            assert p["status"] == "running" and p["restarts"] >= 1, p
        assert p["events"] > events
        assert _metrics(base)['macrobase_restarts_total{pipeline="gen"}'] >= 1
        assert _pipeline(base, "batch")["status"] == "stopped"  # the finished one stayed finished

        # The web server is supervised too: kill its gunicorn arbiter, the service starts another.
        def arbiters() -> list[int]:
            return [pid for pid, (_, cmd) in descendants(serve.pid).items()
                    if "macrobase.webserver" in cmd and (_stat(pid) or (0,))[0] == serve.pid]

        old_web = {pid: v for pid, v in descendants(serve.pid).items() if "macrobase.webserver" in v[1]}
        (arbiter,) = arbiters()
        os.kill(arbiter, signal.SIGKILL)
        # Orphaned workers answer until they notice their parent is gone (about a second);
        # only then can the new server bind, so wait for them first.
        assert not wait_gone(old_web, 15), "the killed server's workers outlived it"
        wait_for(lambda: (a := arbiters()) and arbiter not in a and get(base + "/healthz", 2)[0] == 200, 30,
                 "a new web server after SIGKILL of gunicorn's arbiter", log=log)
        assert "web server exited; restarting it" in log.read_text()
        assert _pipeline(base, "gen")["status"] == "running"

        # SIGTERM: clean exit 0, final snapshots stored, nothing left running.
        seen = {**seen, **descendants(serve.pid)}
        stop_at = time.monotonic()
        serve.send_signal(signal.SIGTERM)
        try:
            code = serve.wait(30)
        except subprocess.TimeoutExpired:
            pytest.fail("macrobase serve did not exit within 30 s of SIGTERM\n" + log.read_text()[-3000:])
        assert code == 0, log.read_text()[-3000:]
        assert time.monotonic() - stop_at < 30
        left = wait_gone(seen, 10)
        assert not left, f"processes left running after macrobase serve exited: {left}"
        stored = _stored_status(db)
        assert stored["gen"][0] == "stopped" and stored["gen"][1] > 0 and stored["gen"][2] >= 1, stored
        assert stored["batch"] == ("stopped", BATCH_ROWS, 0), stored
        assert "stopping" in log.read_text()
        assert time.monotonic() - started < 90
    finally:
        kill_all(serve, seen)


@pytest.mark.parametrize("command", ["serve", "demo"])
def test_busy_port_is_a_one_line_usage_error(tmp_path, command):
    """A port already taken: exit status 2 at once, naming the port, and nothing left running."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = {"pipelines": [{"name": "gen", "source": {"type": "generator"},
                                 "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
                                 "sink": {"type": "sqlite", "path": str(tmp_path / "r.db")}}],
                  "server": {"host": "127.0.0.1", "port": port}}
        (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))
        log = tmp_path / "out.log"
        argv = ["serve", str(tmp_path / "c.yaml")] if command == "serve" else ["demo", "--port", str(port)]
        process = start(argv, log)
        seen: dict[int, tuple[int, str]] = {}
        try:
            deadline = time.monotonic() + 20
            while process.poll() is None and time.monotonic() < deadline:
                seen.update(descendants(process.pid))
                time.sleep(0.1)
            assert process.poll() == 2, log.read_text()[-2000:]
            lines = log.read_text().strip().splitlines()
            assert lines[-1].startswith(f"macrobase {command}: error: server.port:") and f":{port}" in lines[-1], lines
            assert not wait_gone(seen, 10)
            assert not (tmp_path / "r.db").exists()  # no pipeline started
        finally:
            kill_all(process, seen)
