"""HTTP API latency under load while a pipeline runs at full speed, and what the load costs it.

As in production, in separate processes: the *pipeline* is ``macrobase run`` replaying a
Parquet file of planted telemetry (``type: file``, no rate limit; plain string attribute
columns, as decoded JSON gives) into a SQLite store, kept busy for the whole window; the
*server* is ``python -m macrobase.webserver`` (gunicorn, threaded workers) reading that
store; the *load generator* sends ``GET /api/v1/pipelines/{name}/explanations`` at a fixed
rate (open loop: request i is due at start + i/rate, whether or not earlier ones have
answered) over keep-alive connections.

The pipeline runs several times in one benchmark run, alternately without and with the
API load (order U L L U ...: a drift of the shared machine's load affects both sides
alike). Each run's throughput is its *steady state* over a fixed window that starts a few
seconds after its first stored document (start-up, Beam set-up and Numba loading excluded):
events between the first and the last document emitted inside the window, over their
``emitted_at`` difference. Under load, the window lies entirely inside the load.

Reported per loaded run: p50/p99/max latency measured from each request's send, the p99
measured from its *due* time (includes queueing in the generator, so a slow server cannot
hide behind a slow client: "coordinated omission"), errors, and the achieved rate; per run
the pipeline's events/s and the 1-minute load average. Goals: p99 < 50 ms (worst loaded
run), zero errors, loaded/unloaded throughput >= 0.90 (means over the runs). Latency peer:
the same query answered in process by ``ResultStore.latest`` + JSON encoding on the
pipeline's store (ratio = API p50 / floor p50).

``api_load(store_path, ...)`` is the reusable part: a context manager that serves a store
and loads it from another process.

Example::

    python -m benchmarks.bench_api --quick          # 10 s windows
    python -m benchmarks.bench_api                  # 60 s windows (the default)
"""
from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from benchmarks.common import format_table, json_line, machine_info

PIPELINE = "bench"  # benchmarks.bench_stream.PIPELINE: the name its pipeline configs use
GOAL_P99_MS = 50.0
GOAL_THROUGHPUT_RATIO = 0.90
# Size of the replayed file: enough rows for the fastest rate seen on this machine
# (~1.5M events/s on 2 busy cores; 2.2M assumed) over start-up, lead and window.
MAX_EPS = 2.2e6
BASE_ROWS = 2_000_000
LEAD_S = 3.0  # after the load (or, unloaded, the first document) before the window opens
EXTRA_S = 15.0  # start-up, web server start, lead and slack, in file rows


# --------------------------------------------------------------------------- load process


def generate_load(url: str, path: str, rate: float, seconds: float, connections: int = 16) -> dict:
    """Open-loop GETs of ``url + path`` at ``rate``/s for ``seconds``; latency and error stats."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    due: queue.Queue[float | None] = queue.Queue()
    results: list[tuple[float, float, int]] = []  # (sent - due, latency, status)
    errors: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        while True:
            when = due.get()
            if when is None:
                break
            sent = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Connection": "keep-alive"})
                response = conn.getresponse()
                body = response.read()
                status = response.status
                if status == 200:
                    json.loads(body)
            except (OSError, http.client.HTTPException, ValueError) as exc:
                status = 0
                with lock:
                    errors.append(f"{type(exc).__name__}: {exc}")
                conn.close()
                conn = http.client.HTTPConnection(host, int(port), timeout=10)
            done = time.perf_counter()
            with lock:
                results.append((sent - when, done - sent, status))
        conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for t in threads:
        t.start()
    start = time.perf_counter()
    n = int(rate * seconds)
    for i in range(n):
        when = start + i / rate
        pause = when - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
        due.put(when)
    for _ in threads:
        due.put(None)
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    usage = os.times()  # this process's CPU: the generator's own share of the 2 cores
    waits = np.array([r[0] for r in results]) * 1e3
    latency = np.array([r[1] for r in results]) * 1e3
    bad = [r for r in results if r[2] != 200]
    return {
        "requests": len(results),
        "generator_cpu_cores": (usage.user + usage.system) / elapsed,
        "achieved_rate": len(results) / elapsed,
        "p50_ms": float(np.percentile(latency, 50)),
        "p99_ms": float(np.percentile(latency, 99)),
        "max_ms": float(latency.max()),
        "p99_from_due_ms": float(np.percentile(waits + latency, 99)),
        "errors": len(bad),
        "error_samples": sorted({e for e in errors})[:3] + sorted({f"HTTP {r[2]}" for r in bad if r[2]})[:3],
    }


# --------------------------------------------------------------------------- orchestration


def _python(*args: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bench_api", *args]


def _env() -> dict[str, str]:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
    env.setdefault("NUMBA_CACHE_DIR", os.path.join(root, ".numba_cache"))
    return env


@contextlib.contextmanager
def api_load(store_path: str, pipeline: str = PIPELINE, rate: float = 200.0, seconds: float = 60.0,
             workers: int = 2, threads: int = 8) -> Iterator["_Load"]:
    """Serve ``store_path`` with gunicorn and load /explanations from another process.

    ``with api_load(path, seconds=60) as load: ...run a pipeline...; stats = load.result()``.
    :func:`pipeline_window` runs a pipeline inside this context or outside it, for the
    "within 10% of unloaded" throughput comparison.
    """
    from macrobase.webserver import WebServer

    server = WebServer(["--store", store_path, "--no-dashboard", "--workers", str(workers),
                        "--threads", str(threads)], env=_env())
    server.start()
    try:
        process = subprocess.Popen(
            _python("--load", server.url, "--path", f"/api/v1/pipelines/{pipeline}/explanations",
                    "--rate", str(rate), "--seconds", str(seconds)),
            stdout=subprocess.PIPE, text=True, env=_env())
        load = _Load(process, server.process.pid)
        try:
            yield load
        finally:
            load.result()
    finally:
        server.stop()


class _Load:
    def __init__(self, process: subprocess.Popen, server_pid: int):
        self.process = process
        self.server_pid = server_pid  # gunicorn's arbiter; its workers are its children
        self._result: dict | None = None

    def result(self) -> dict:
        """Wait for the load generator; its statistics."""
        if self._result is None:
            out, _ = self.process.communicate()
            if self.process.returncode != 0:
                raise RuntimeError(f"load generator failed with status {self.process.returncode}")
            self._result = json.loads(out.strip().splitlines()[-1])
        return self._result


def _floor(store_path: str, pipeline: str = PIPELINE, repeats: int = 2000) -> dict:
    """The same answer without HTTP: ResultStore.latest + strict JSON encoding, in process."""
    from macrobase.store import ResultStore, strict_json

    times = []
    with ResultStore(store_path) as store:
        for _ in range(repeats):
            t0 = time.perf_counter()
            json.dumps(strict_json(store.latest(pipeline)), allow_nan=False)
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


# --------------------------------------------------------------------------- pipeline


def cpu_seconds(pid: int, children: bool = False) -> float | None:
    """User + system CPU seconds of a live process (and its live children) from /proc;
    None where /proc is unavailable."""
    def own(p: int) -> float:
        with open(f"/proc/{p}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    try:
        total = own(pid)
    except OSError:
        return None
    if children:
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                    if ppid == pid:
                        total += own(int(entry))
                except (OSError, ValueError):
                    continue  # exited meanwhile
    return total


def _cores(before: float | None, after: float | None, seconds: float) -> float | None:
    return None if before is None or after is None else (after - before) / seconds


def write_data(path: Path, rows: int, seed: int = 1) -> int:
    """Planted telemetry, ``rows`` rounded up to whole copies of a 2M-row table (generating
    2M rows once and writing them repeatedly keeps this to seconds); rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.bench_stream import ATTRS
    from macrobase.synthetic import planted_table

    table, _ = planted_table(BASE_ROWS, seed=seed)
    table = pa.table({"power_drain": table.column("power_drain"),
                      **{a: table.column(a).cast(pa.string()) for a in ATTRS}})
    copies = -(-rows // BASE_ROWS)
    with pq.ParquetWriter(path, table.schema) as writer:
        for _ in range(copies):
            writer.write_table(table, row_group_size=1 << 20)
    return copies * BASE_ROWS


def pipeline_window(data: Path, total: int, workdir: Path, tag: str, window: float,
                    load: dict[str, Any] | None = None, startup_timeout: float = 90.0) -> dict[str, Any]:
    """Run ``macrobase run`` over ``data``; its steady events/s over ``window`` seconds,
    with ``load`` (kwargs of :func:`api_load`) on its store during the window if given."""
    from benchmarks.bench_stream import (epoch, macrobase_cmd, pipeline_config, child_env, stop_child,
                                         wait_for_doc, write_config)
    from macrobase.store import ResultStore

    db = workdir / f"{tag}.db"
    path = write_config(pipeline_config({"type": "file", "path": str(data)}, db), workdir / f"{tag}.yaml")
    with tempfile.TemporaryFile("w+") as err:
        # stderr to a file, not a pipe: a full pipe would stall the pipeline being measured
        proc = subprocess.Popen(macrobase_cmd(path), env=child_env(), cwd=str(workdir),
                                stdout=subprocess.DEVNULL, stderr=err)
        store = None
        stats = None
        try:
            deadline = time.monotonic() + startup_timeout
            while not db.exists() and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            store = ResultStore(db)
            doc, _ = wait_for_doc(store, lambda d: d["events"] > 0, proc, max(1.0, deadline - time.monotonic()))
            if doc is None:
                err.seek(0)
                raise RuntimeError(f"pipeline {tag}: no results within {startup_timeout:g} s; {err.read()[-2000:]}")
            with (api_load(str(db), **load, seconds=LEAD_S + window + 1.0) if load is not None
                  else contextlib.nullcontext()) as loader:
                opened = time.time() + LEAD_S
                closed = opened + window
                time.sleep(max(0.0, opened - time.time()))
                server_pid = loader.server_pid if loader is not None else None
                cpu0 = cpu_seconds(proc.pid), server_pid and cpu_seconds(server_pid, children=True)
                time.sleep(max(0.0, closed - time.time()))
                cpu1 = cpu_seconds(proc.pid), server_pid and cpu_seconds(server_pid, children=True)
                running = proc.poll() is None
                load_avg = os.getloadavg()[0]
                if loader is not None:
                    stats = loader.result()
            history = store.history(PIPELINE, limit=100_000)
        finally:
            stop_child(proc)
            if store is not None:
                store.close()
    points = sorted((epoch(d["emitted_at"]), d["events"]) for d in history)
    inside = [(t, n) for t, n in points if opened <= t <= closed]
    if any(n >= total for _, n in inside):
        raise RuntimeError(f"pipeline {tag}: the file ({total:,} rows) ran out before the window closed; "
                           "raise MAX_EPS")
    if not running:
        raise RuntimeError(f"pipeline {tag} exited during the window (status {proc.returncode})")
    if len(inside) < 2:
        raise RuntimeError(f"pipeline {tag}: {len(inside)} documents inside the {window:g} s window")
    (t0, n0), (t1, n1) = inside[0], inside[-1]
    return {"run": tag, "loaded": load is not None, "events_per_s": (n1 - n0) / (t1 - t0),
            "measured_s": t1 - t0, "documents": len(inside), "load_average_1m": load_avg,
            # CPU cores used during the window (2 on this machine, shared with others)
            "pipeline_cpu_cores": _cores(cpu0[0], cpu1[0], window),
            "server_cpu_cores": _cores(cpu0[1], cpu1[1], window) if load is not None else None,
            "api": stats, "store": str(db)}


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_api", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="measurement window per run (default 60)")
    p.add_argument("--quick", action="store_true", help="10 s windows")
    p.add_argument("--pairs", type=int, default=2, help="unloaded/loaded pairs, order U L L U ... (default 2)")
    p.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    # internal role of the load generator's process
    p.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.load:
        result = generate_load(args.load, args.path, args.rate, args.seconds)
        print(json.dumps(result))
        return result

    window = 10.0 if args.quick else args.seconds
    # ABBA order: U L L U (U L L U U L L U for more pairs)
    order = [loaded for i in range(args.pairs) for loaded in ((False, True) if i % 2 == 0 else (True, False))]
    load_kwargs = {"pipeline": PIPELINE, "rate": args.rate, "workers": args.workers, "threads": args.threads}
    t_start = time.perf_counter()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        workdir = Path(tmp)
        data = workdir / "telemetry.parquet"
        t0 = time.perf_counter()
        total = write_data(data, int(MAX_EPS * (window + EXTRA_S)))
        data_s = time.perf_counter() - t0
        for i, loaded in enumerate(order):
            tag = f"{i + 1}-{'loaded' if loaded else 'unloaded'}"
            runs.append(pipeline_window(data, total, workdir, tag, window, load_kwargs if loaded else None))
        last_loaded = next(r for r in reversed(runs) if r["loaded"])
        floor = _floor(last_loaded["store"])

    unloaded = [r["events_per_s"] for r in runs if not r["loaded"]]
    loaded = [r for r in runs if r["loaded"]]
    throughput_ratio = float(np.mean([r["events_per_s"] for r in loaded]) / np.mean(unloaded))
    worst_p99 = max(r["api"]["p99_ms"] for r in loaded)
    errors = sum(r["api"]["errors"] for r in loaded)
    api_p50 = float(np.median([r["api"]["p50_ms"] for r in loaded]))

    columns = ["case", "events/s", "load_1m", "cpu_pipe", "cpu_srv", "cpu_gen", "requests", "achieved_rate", "p50_ms", "p99_ms", "max_ms",
               "p99_from_due_ms", "errors"]
    rows: list[dict[str, Any]] = []
    for r in runs:
        row = {"case": f"run {r['run']}" + (f" + GET /explanations @ {args.rate:g}/s" if r["loaded"] else ""),
               "events/s": r["events_per_s"], "load_1m": r["load_average_1m"],
               "cpu_pipe": r["pipeline_cpu_cores"], "cpu_srv": r["server_cpu_cores"]}
        if r["loaded"]:
            row["cpu_gen"] = r["api"].get("generator_cpu_cores")
            row.update({k: r["api"][k] for k in columns[6:]})
        rows.append(row)
    rows.append({"case": "floor: ResultStore.latest + JSON, in process", "p50_ms": floor["p50_ms"],
                 "p99_ms": floor["p99_ms"]})
    print(format_table(rows, columns))
    goals = [
        {"goal": f"API p99 < {GOAL_P99_MS:g} ms under pipeline load (worst run {worst_p99:.1f} ms)",
         "met": worst_p99 < GOAL_P99_MS},
        {"goal": f"zero API errors ({errors})", "met": errors == 0},
        {"goal": f"pipeline throughput loaded/unloaded >= {GOAL_THROUGHPUT_RATIO:.2f} ({throughput_ratio:.3f})",
         "met": throughput_ratio >= GOAL_THROUGHPUT_RATIO},
    ]
    print(f"window {window:g} s per run, {total:,}-row Parquet file ({data_s:.0f} s to write); "
          f"throughput loaded/unloaded = {throughput_ratio:.3f} (goal >= {GOAL_THROUGHPUT_RATIO:.2f}); "
          f"worst p99 {worst_p99:.1f} ms (goal < {GOAL_P99_MS:g}); errors {errors}; "
          f"API p50 / floor p50 = {api_p50 / floor['p50_ms']:.1f}x; cpu_* = cores used in the window by "
          "the pipeline, gunicorn (arbiter + workers) and the load generator")
    for r in runs:
        r.pop("store")
    result = {
        "benchmark": "api",
        "quick": args.quick,
        "window_s": window,
        "rate": args.rate,
        "file_rows": total,
        "server": {"workers": args.workers, "threads": args.threads, "worker_class": "gthread"},
        "runs": runs,
        "unloaded_events_per_s": unloaded,
        "loaded_events_per_s": [r["events_per_s"] for r in loaded],
        "ratio_throughput_loaded_vs_unloaded": throughput_ratio,
        "api_worst_p99_ms": worst_p99,
        "api_errors": errors,
        "floor": floor,
        "ratio_p50_vs_floor": api_p50 / floor["p50_ms"] if floor["p50_ms"] > 0 else None,
        "goal_p99_ms": GOAL_P99_MS,
        "goal_throughput_ratio": GOAL_THROUGHPUT_RATIO,
        "goals": goals,
        "goal_met": all(g["met"] for g in goals),
        "seconds": time.perf_counter() - t_start,
        "machine": machine_info(),
    }
    print(json_line(result))
    return result


if __name__ == "__main__":
    main()
