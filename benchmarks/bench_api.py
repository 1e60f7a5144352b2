"""HTTP API latency under load, against the real gunicorn server and a store being written.

Three processes, as in production: a *writer* appends one result document per second
(20 explanations, a status row, a few dead letters) with the real ``SqliteSink``; the
*server* is ``python -m macrobase.webserver`` (gunicorn, threaded workers) reading that
store; the *load generator* sends ``GET /api/v1/pipelines/{name}/explanations`` at a fixed
rate (open loop: request i is due at start + i/rate, whether or not earlier ones have
answered) over keep-alive connections.

Reported: p50/p99/max latency measured from each request's send, the p99 measured from its
*due* time (includes queueing in the generator, so a slow server cannot hide behind a slow
client: "coordinated omission"), errors, and the achieved rate. Goals: p99 < 50 ms, zero
errors. The peer is the floor: the same query answered in process by
``ResultStore.latest`` + JSON encoding, measured in the same run (ratio = API p50 / floor p50).

``api_load(store_path, ...)`` is the reusable part: a context manager that serves a store
and loads it, for measuring a pipeline's throughput with and without API load.

Example::

    python -m benchmarks.bench_api --quick          # 10 s
    python -m benchmarks.bench_api --seconds 60     # the default
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
from typing import Iterator, Sequence

import numpy as np

from benchmarks.common import format_table, json_line, machine_info

PIPELINE = "telemetry"
GOAL_P99_MS = 50.0


# --------------------------------------------------------------------------- writer process


def _document(i: int) -> dict:
    rng = np.random.default_rng(i)
    explanations = []
    for k in range(20):
        attrs = {"device_model": f"M{100 + k % 12}", "firmware": f"0.{1 + k % 8}"}
        if k % 3 == 0:
            attrs["region"] = f"region-{k % 5}"
        count = int(rng.integers(50, 5000))
        explanations.append({"attributes": attrs, "support": round(float(rng.random()), 4),
                             "risk_ratio": "inf" if k == 0 else round(float(rng.uniform(3, 50)), 3),
                             "outlier_count": count // 3, "count": count})
    explanations.sort(key=lambda e: -e["outlier_count"])
    return {"pipeline": PIPELINE, "emitted_at": time.time(), "total": 5000 * (i + 1), "outliers": 50 * (i + 1),
            "dropped": i, "thresholds": {"power_drain": {"high": 150.0 + rng.random()}},
            "events_per_second": 5000.0, "dead_letters": i, "explanations": explanations}


def write_forever(path: str, seconds: float, interval: float = 1.0) -> int:
    """Append a document every ``interval`` seconds for ``seconds``; return how many were written."""
    from connectors.sinks import SqliteSink

    written = 0
    start = time.monotonic()
    with SqliteSink(path, keep_snapshots=600) as sink:
        while time.monotonic() - start < seconds:
            t0 = time.perf_counter()
            sink.write(_document(written), dead_letters=[{"reason": "invalid_json", "raw": b"{oops", "offset": written}])
            sink.write_status({"pipeline": PIPELINE, "state": "running", "events": 5000 * (written + 1),
                               "events_per_second": 5000.0, "consumer_lag": 0,
                               "emit_latency_ms": (time.perf_counter() - t0) * 1e3})
            written += 1
            time.sleep(max(0.0, interval - (time.monotonic() - start) % interval))
    return written


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
    waits = np.array([r[0] for r in results]) * 1e3
    latency = np.array([r[1] for r in results]) * 1e3
    bad = [r for r in results if r[2] != 200]
    return {
        "requests": len(results),
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
    The pipeline throughput "within 10% of unloaded" comparison runs the pipeline once
    inside this context and once outside it.
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
        load = _Load(process)
        try:
            yield load
        finally:
            load.result()
    finally:
        server.stop()


class _Load:
    def __init__(self, process: subprocess.Popen):
        self.process = process
        self._result: dict | None = None

    def result(self) -> dict:
        """Wait for the load generator; its statistics."""
        if self._result is None:
            out, _ = self.process.communicate()
            if self.process.returncode != 0:
                raise RuntimeError(f"load generator failed with status {self.process.returncode}")
            self._result = json.loads(out.strip().splitlines()[-1])
        return self._result


def _floor(store_path: str, repeats: int = 2000) -> dict:
    """The same answer without HTTP: ResultStore.latest + strict JSON encoding, in process."""
    from macrobase.api import strict_json
    from macrobase.store import ResultStore

    times = []
    with ResultStore(store_path) as store:
        for _ in range(repeats):
            t0 = time.perf_counter()
            json.dumps(strict_json(store.latest(PIPELINE)), allow_nan=False)
            times.append(time.perf_counter() - t0)
    ms = np.array(times) * 1e3
    return {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99))}


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_api", description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="load duration (default 60)")
    p.add_argument("--quick", action="store_true", help="10 seconds")
    p.add_argument("--rate", type=float, default=200.0, help="requests per second (default 200)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    # internal roles of the child processes
    p.add_argument("--writer", metavar="STORE", help=argparse.SUPPRESS)
    p.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    p.add_argument("--path", help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.writer:
        print(json.dumps({"written": write_forever(args.writer, args.seconds)}))
        return {}
    if args.load:
        result = generate_load(args.load, args.path, args.rate, args.seconds)
        print(json.dumps(result))
        return result

    seconds = 10.0 if args.quick else args.seconds
    with tempfile.TemporaryDirectory(prefix="bench_api_") as tmp:
        store = os.path.join(tmp, "results.db")
        writer = subprocess.Popen(_python("--writer", store, "--seconds", str(seconds + 20)),
                                  stdout=subprocess.PIPE, text=True, env=_env())
        try:
            deadline = time.monotonic() + 30
            while not os.path.exists(store) and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(2.0)  # a few documents before the first request
            with api_load(store, rate=args.rate, seconds=seconds, workers=args.workers,
                          threads=args.threads) as load:
                stats = load.result()
            floor = _floor(store)
        finally:
            writer.terminate()
            writer.wait(timeout=30)

    rows = [
        {"case": f"GET /explanations via gunicorn @ {args.rate:g}/s", **{k: stats[k] for k in (
            "requests", "achieved_rate", "p50_ms", "p99_ms", "max_ms", "p99_from_due_ms", "errors")}},
        {"case": "floor: ResultStore.latest + JSON, in process", "p50_ms": floor["p50_ms"], "p99_ms": floor["p99_ms"]},
    ]
    print(format_table(rows, ["case", "requests", "achieved_rate", "p50_ms", "p99_ms", "max_ms", "p99_from_due_ms",
                              "errors"]))
    result = {
        "benchmark": "api",
        "seconds": seconds,
        "rate": args.rate,
        "server": {"workers": args.workers, "threads": args.threads, "worker_class": "gthread"},
        "api": stats,
        "floor": floor,
        "ratio_p50_vs_floor": stats["p50_ms"] / floor["p50_ms"] if floor["p50_ms"] > 0 else None,
        "goal_p99_ms": GOAL_P99_MS,
        "goal_met": stats["p99_ms"] < GOAL_P99_MS and stats["errors"] == 0,
        "machine": machine_info(),
    }
    print(json_line(result))
    return result


if __name__ == "__main__":
    main()
