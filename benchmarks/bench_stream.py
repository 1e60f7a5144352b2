"""Streaming benchmarks of ``macrobase run`` against its peers, side by side in one run.

1. Throughput: N JSON events (default 500,000, ~160 bytes, the planted telemetry) in a
   4-partition topic on the embedded broker, produced once with confluent-kafka. Per
   client (kafka-python, confluent-kafka) the peers are *bare consumers of the same
   client* reading all four partitions with the project's manual-assignment reader
   (``open_partition_reader``, 5,000 records per poll, round robin) and decoding every
   poll: ``pyarrow.json`` over the newline-joined values (the goal's peer: the same
   decoding strategy as the pipeline), ``json.loads`` per message, and the pipeline's
   own decoder (``decode_json_messages``, for attribution). The pipeline is ``macrobase
   run`` as a subprocess with the default in-process runner (start_from earliest, MAD,
   explainer defaults, emit_every 1 s, 6 attributes), drained until the stored document
   reports ``events == N``.
   *Steady state* is the rate between the first stored document that saw events and
   the last one before the drain finished (their ``emitted_at`` stamps: full emit
   intervals only, so process start-up, Beam set-up, Numba loading and the first-model
   hold are excluded; fewer than two such documents: unknown, "-");
   *whole run* is N over the time from ``Popen`` to the first document with N events.
   Goals: steady state >= 0.9x the bare pyarrow-decoding consumer with confluent-kafka
   (issue 7), >= 0.85x with kafka-python.
2. Runner scaling: the same topic drained the same way with confluent-kafka, per Beam
   runner: the in-process runner (``runner: {type: direct}``, "1 worker"), the same
   runner with ``direct_num_workers: 2, direct_running_mode: multi_processing`` ("2
   worker processes") and, unless
   ``--no-portable``, the PortableRunner (embedded job service, ``streaming: true``) on
   an EXTERNAL SDK worker pool (``worker_pool_main`` started by this benchmark from the
   project root, its process group killed at the end). The runners take turns, twice
   (``--scaling-repeats``), and each one's best steady state is reported, as ratios to
   "1 worker". Goal: 2 worker processes >= 1.5x 1 worker. On a 2-core machine the two
   workers share those cores with the broker and the pipeline's own process, so the
   ratio is bounded well below 2x there.
   At ~150k events/s a 500,000-event drain is 3-4 stored documents, the first of which
   already holds a large backlog, so its steady state rests on one or two emit
   intervals: ``--events 2000000`` gives ten or more (scaling then takes about 3
   minutes, throughput about 4).
3. Freshness: the pipeline (kafka-python, start_from latest) reads a 4-partition topic
   fed live at ~5k events/s with anomaly-free scenario rows; then, at a recorded
   wall-clock instant, 5% of the traffic becomes a newly planted cause
   (device_model AND carrier with power_drain ~ N(200, 10)). Freshness is the time from
   sending its first event to the store first holding a document whose explanations
   name both items (polled every 20 ms; ``emitted_at`` reported too). Three different
   causes, one after the other in one run. Goal: max <= 2 x emit_every + 1 s = 3 s.
4. Memory: peak RSS (``wait4`` of the ``macrobase run`` child) over a Parquet file of N
   events (default 2,000,000) whose device_id has N/2 distinct values (default 1M)
   versus 1k (otherwise identical), plain string columns as decoded JSON would give. A
   run still going after ``--memory-timeout`` seconds is killed: its peak so far is a
   lower bound, which can fail the goal but never pass it. Goal: within 1.5x.

``--decay X`` sets the explainer's decay for every run (default: the explainer's own);
``--decay 0`` skips the per-interval decay of the counts, which costs little next to
classifying and counting, and lets the benchmark run when that decay step is broken.

``--quick`` uses 100,000 events for throughput and scaling and 200,000 (100k distinct
ids) for memory: a smoke run, its ratios say little (a drain with fewer than two stored
documents before its last event has no steady state: "-" in the table, no verdict).

    python -m benchmarks.bench_stream            # full size (about 4 minutes on 2 cores)
    python -m benchmarks.bench_stream --quick    # smoke run (small sizes, under 2 minutes)
    python -m benchmarks.bench_stream --only scaling --no-portable --events 2000000
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.json as pj
import pyarrow.parquet as pq

from benchmarks.common import format_table, json_line, machine_info, run_process
from tests.runners import sdk_worker_pool

ATTRS = ["region", "firmware", "device_model", "carrier", "app_version", "device_id"]
CLIENTS = ("kafka-python", "confluent-kafka")
# Steady state over the bare pyarrow-decoding consumer; issue 7 asks 0.9x of confluent-kafka.
STEADY_GOAL = {"kafka-python": 0.85, "confluent-kafka": 0.9}
SCALING_CLIENT = "confluent-kafka"  # the faster client: the runner, not the consumer, is measured
SCALING_GOAL = 1.5                  # 2 worker processes over 1 worker
RUNNERS = {
    "1 worker": {"type": "direct"},
    "2 worker processes": {"type": "direct",
                           "options": {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}},
    # environment_config (the pool's address) is added once the pool is up
    "PortableRunner, EXTERNAL pool": {"type": "PortableRunner", "options": {
        "job_endpoint": "embed", "environment_type": "EXTERNAL", "streaming": True}},
}
PARTITIONS = 4
POLL_RECORDS = 5000  # the pipeline's default poll_max_records
EMIT_EVERY_S = 1.0
# Explainer settings beyond the defaults, for every pipeline of the run (``--decay``);
# empty unless asked, so the benchmark measures the defaults.
EXPLAINER_OVERRIDES: dict[str, Any] = {}
FRESH_CAUSES = (("M103", "carrier-11"), ("M106", "carrier-17"), ("M109", "carrier-21"))
PIPELINE = "bench"
ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers


def json_lines(table: pa.Table) -> list[bytes]:
    """Compact JSON objects, one per row (what a producer sends); nulls stay null.

    Column-at-a-time string pieces joined per row: ~5x faster than
    :func:`macrobase.synthetic.to_json_lines` for the same output.
    """
    pieces = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_floating(col.type):
            vals = [f'"{name}":{v!r}' for v in col.to_pylist()]
        elif pa.types.is_integer(col.type):
            vals = [f'"{name}":{v}' for v in col.to_pylist()]
        else:
            vals = [f'"{name}":null' if v is None else f'"{name}":"{v}"' for v in col.to_pylist()]
        pieces.append(vals)
    return [("{" + ",".join(row) + "}").encode() for row in zip(*pieces)]


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def macrobase_cmd(config_path: Path) -> list[str]:
    return [sys.executable, "-c", "import sys; from macrobase.cli import main; sys.exit(main())",
            "run", str(config_path)]


def pipeline_config(source: dict, sink_path: Path, classifier: dict | None = None,
                    runner: dict | None = None) -> dict:
    pipe = {
        "name": PIPELINE,
        "source": source,
        "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
        "classifier": classifier or {"type": "mad"},
        "explainer": {"emit_every": f"{EMIT_EVERY_S:g}s", **EXPLAINER_OVERRIDES},
        "sink": {"type": "sqlite", "path": str(sink_path)},
    }
    cfg: dict[str, Any] = {"pipelines": [pipe]}
    if runner is not None:
        cfg["runner"] = runner
    return cfg


def write_config(cfg: dict, path: Path) -> Path:
    from macrobase.config import parse_config

    parse_config(cfg, str(path))  # fail here, not in the child
    path.write_text(json.dumps(cfg, indent=1))  # JSON is YAML
    return path


def slug(label: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in label.lower())


def ratio_of(value: float | None, peer: float | None) -> float | None:
    """``value / peer``, None when either is unknown (a steady state too short to measure)."""
    return None if value is None or not peer else value / peer


def at_least(ratio: float | None, goal: float) -> bool | None:
    return None if ratio is None else ratio >= goal


def fmt_ratio(value: float | None) -> str | None:
    """Two decimals: the table's one-decimal ratios would print 0.86x as "0.9x"."""
    return None if value is None else "inf" if value == float("inf") else f"{value:.2f}x"


def epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def stop_child(proc: subprocess.Popen, timeout: float = 30.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)  # run_pipelines: stop sources, final snapshot
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


def wait_for_doc(store, pred: Callable[[dict], bool], proc: subprocess.Popen, timeout: float,
                 interval: float = 0.05) -> tuple[dict | None, float]:
    """Poll the store until ``pred(latest)``; (document or None, wall time seen)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        doc = store.latest(PIPELINE)
        if doc is not None and pred(doc):
            return doc, time.time()
        if proc.poll() is not None:
            break
        time.sleep(interval)
    return None, time.time()


# -------------------------------------------------------------------------- throughput


def planted_json(n: int, seed: int = 1) -> list[bytes]:
    from macrobase.synthetic import planted_table

    table, _ = planted_table(n, seed=seed)
    return json_lines(table.select(["power_drain", *ATTRS]))


def _decode_arrow(values: list[bytes]) -> int:
    joined = b"\n".join(values)
    t = pj.read_json(io.BytesIO(joined),
                     read_options=pj.ReadOptions(use_threads=True, block_size=max(1 << 20, len(joined) + 1)))
    return t.num_rows


def _decode_loads(values: list[bytes]) -> int:
    return len([json.loads(v) for v in values])


def _decode_pipeline(values: list[bytes]) -> int:
    from connectors.decode import decode_json_messages

    return decode_json_messages(values, ["power_drain"], ATTRS).batch.num_rows


DECODERS = {"pyarrow.json": _decode_arrow, "json.loads": _decode_loads, "decode_json_messages": _decode_pipeline}


def bare_consume(client: str, bootstrap: str, topic: str, total: int, decode: Callable[[list[bytes]], int],
                 timeout: float = 120.0) -> float:
    """Events/s of one client's readers on every partition, decoding each poll."""
    from connectors.kafka_client import open_partition_reader

    readers = [open_partition_reader(client, [bootstrap], topic, p, None) for p in range(PARTITIONS)]
    try:
        ends = [r.end_offset() for r in readers]
        for r in readers:  # connect + metadata outside the timing, then rewind
            r.seek(0)
            while not len(r.poll(1, 1.0)):
                pass
            r.seek(0)
        n = 0
        positions = [0] * len(readers)
        t0 = time.perf_counter()
        while n < total:
            for i, r in enumerate(readers):
                if positions[i] >= ends[i]:
                    continue  # drained: a bare consumer does not wait on an idle partition
                poll = r.poll(POLL_RECORDS, 0.2)
                if len(poll):
                    n += decode(poll.values)
                    positions[i] = int(poll.offsets[-1]) + 1
            if time.perf_counter() - t0 > timeout:
                raise RuntimeError(f"bare {client} consumer read {n} of {total} events in {timeout} s")
        seconds = time.perf_counter() - t0
    finally:
        for r in readers:
            r.close()
    if n != total:
        raise RuntimeError(f"bare {client} consumer decoded {n} events, expected {total}")
    return n / seconds


def pipeline_drain(client: str, bootstrap: str, topic: str, total: int, workdir: Path,
                   runner: dict | None = None, label: str | None = None,
                   timeout: float = 180.0) -> dict[str, Any]:
    """``macrobase run`` from the earliest offset until the store reports ``total`` events.

    ``runner``: the config's ``runner:`` block (None: the default in-process runner).
    """
    from macrobase.store import ResultStore

    name = slug(label or client)
    db = workdir / f"drain-{name}.db"
    cfg = pipeline_config({"type": "kafka", "bootstrap_servers": [bootstrap], "topic": topic, "client": client,
                           "start_from": "earliest", "group_id": f"bench-{name}-{os.getpid()}"}, db,
                          runner=runner)
    path = write_config(cfg, workdir / f"drain-{name}.yaml")
    # stderr to a file, not a pipe: Beam's worker processes log enough to fill a pipe
    # nobody reads until the end, which would stall the run being measured.
    err_path = workdir / f"drain-{name}.err"
    with open(err_path, "wb") as err_file:
        started = time.time()
        proc = subprocess.Popen(macrobase_cmd(path), env=child_env(), cwd=str(workdir),
                                stdout=subprocess.DEVNULL, stderr=err_file)
    store = ResultStore(db)
    try:
        doc, seen = wait_for_doc(store, lambda d: d["events"] >= total, proc, timeout)
        if doc is None:
            latest = store.latest(PIPELINE) or {}
            state = (f"exited with status {proc.returncode}" if proc.poll() is not None
                     else "still running")
            err = err_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pipeline ({label or client}) did not reach {total} events in {timeout} s "
                               f"(process {state}, last stored events: {latest.get('events')}); {err}")
        history = store.history(PIPELINE, limit=10_000)
    finally:
        stop_child(proc)
        store.close()
    with_events = [(epoch(d["emitted_at"]), d["events"]) for d in history if d["events"] > 0]
    first_t, first_n = with_events[0]
    done_t = next(t for t, n in with_events if n >= total)
    # Steady state: between the first document that saw events and the last one before
    # the drain finished, i.e. whole emit intervals spent processing only.
    before_done = [(t, n) for t, n in with_events if n < total]
    last_t, last_n = before_done[-1] if before_done else (done_t, total)
    # Fewer than two such documents (small --quick sizes): unknown, not the tail rate, which
    # mostly measures the wait for the next emit after the last event.
    steady = (last_n - first_n) / (last_t - first_t) if last_t - first_t >= 0.5 * EMIT_EVERY_S else None
    return {
        "steady_eps": steady,
        "whole_eps": total / (done_t - started),
        "startup_s": first_t - started,  # Popen -> first document with events (incl. warm-up)
        "drain_s": done_t - first_t,
        "documents": len(history),
        "final_events": doc["events"],
        # (seconds since Popen, events) per stored document: how the steady state was found
        "timeline": [[round(epoch(d["emitted_at"]) - started, 2), d["events"]] for d in history],
    }


def produce_topic(bootstrap: str, n: int) -> tuple[str, dict[str, Any]]:
    """A 4-partition topic of ``n`` planted events, produced once with confluent-kafka and
    drained by both the throughput and the scaling sections (the same bytes for both)."""
    from connectors.kafka_client import create_topic, produce_json

    values = planted_json(n)
    topic = f"bench-throughput-{os.getpid()}"
    create_topic([bootstrap], topic, PARTITIONS)
    t0 = time.perf_counter()
    produce_json([bootstrap], topic, values, client="confluent-kafka")
    produce_s = time.perf_counter() - t0
    return topic, {"events": n, "partitions": PARTITIONS, "bytes_per_event": sum(map(len, values)) / n,
                   "produce_eps": n / produce_s}


def bench_throughput(bootstrap: str, topic: str, info: dict[str, Any], workdir: Path) -> dict[str, Any]:
    n = info["events"]
    out: dict[str, Any] = dict(info)
    for client in CLIENTS:
        for name, decode in DECODERS.items():
            # The goal's peer gets the best of two runs: the machine is shared and noisy.
            tries = 2 if name == "pyarrow.json" else 1
            out[f"{client}/bare[{name}]_eps"] = max(bare_consume(client, bootstrap, topic, n, decode)
                                                     for _ in range(tries))
        run = pipeline_drain(client, bootstrap, topic, n, workdir)
        for k, v in run.items():
            out[f"{client}/pipeline_{k}"] = v
        peer = out[f"{client}/bare[pyarrow.json]_eps"]
        out[f"{client}/ratio_steady_vs_bare_arrow"] = ratio_of(run["steady_eps"], peer)
        out[f"{client}/ratio_whole_vs_bare_arrow"] = run["whole_eps"] / peer
        out[f"{client}/ratio_steady_vs_bare_loads"] = ratio_of(run["steady_eps"],
                                                               out[f"{client}/bare[json.loads]_eps"])
    return out


# ----------------------------------------------------------------------------- scaling


def scaling_runners(portable: bool) -> dict[str, dict[str, Any]]:
    """The ``runner:`` blocks to compare (copies: the portable one gets the pool's address)."""
    return {label: {"type": r["type"], "options": dict(r.get("options", {}))} for label, r in RUNNERS.items()
            if portable or r["type"] != "PortableRunner"}


def best_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the highest steady state (the machine is shared: slower runs measure the
    neighbours), with every run's steady state beside it."""
    measured = [r for r in runs if r.get("steady_eps") is not None]
    best = dict(max(measured, key=lambda r: r["steady_eps"]) if measured else runs[-1])
    best["steady_all"] = [r.get("steady_eps") for r in runs]
    return best


def bench_scaling(bootstrap: str, topic: str, info: dict[str, Any], workdir: Path,
                  portable: bool, repeats: int, timeout: float) -> dict[str, Any]:
    """Steady-state events/s of ``macrobase run`` per Beam runner over the same topic.

    The runners take turns (1 worker, 2 workers, portable, then again) so that each ratio
    compares neighbouring minutes of a noisy machine; each runner's best run is reported.
    The PortableRunner is optional: a failure there is recorded, not raised, so the
    required pair is still reported.
    """
    n = info["events"]
    runners = scaling_runners(portable)
    runs: dict[str, list[dict[str, Any]]] = {label: [] for label in runners}
    errors: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        for rep in range(repeats):
            for label, runner in runners.items():
                optional = runner["type"] == "PortableRunner"
                if label in errors:
                    continue
                try:
                    if runner["options"].get("environment_type") == "EXTERNAL" and rep == 0:
                        runner["options"]["environment_config"] = stack.enter_context(sdk_worker_pool(child_env()))
                    # A store per run: a second run must not see the first one's documents.
                    runs[label].append(pipeline_drain(SCALING_CLIENT, bootstrap, topic, n, workdir, runner=runner,
                                                      label=f"scaling {label} {rep}", timeout=timeout))
                except RuntimeError as exc:
                    if not optional:
                        raise
                    errors[label] = str(exc).splitlines()[0][:500]
    out: dict[str, Any] = {**info, "client": SCALING_CLIENT, "repeats": repeats, "runners": {}}
    for label, runner in runners.items():
        if label in errors:
            out["runners"][label] = {"runner": runner, "error": errors[label]}
        else:
            out["runners"][label] = {"runner": runner, **best_run(runs[label])}
    base = out["runners"]["1 worker"]["steady_eps"]
    for run in out["runners"].values():
        if "steady_eps" in run:
            run["ratio_steady_vs_1_worker"] = ratio_of(run["steady_eps"], base)
    out["ratio_2_workers_vs_1"] = out["runners"]["2 worker processes"]["ratio_steady_vs_1_worker"]
    return out


# --------------------------------------------------------------------------- freshness


class LiveProducer(threading.Thread):
    """~``rate`` anomaly-free scenario events/s; ``plant(cause)`` turns 5% of them into it."""

    TICK_S = 0.02
    SHARE = 0.05

    def __init__(self, bootstrap: str, topic: str, rate: float, seed: int = 7):
        super().__init__(daemon=True, name="live-producer")
        from confluent_kafka import Producer

        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, "log_level": 3})
        self.topic, self.rate = topic, rate
        self.rng = np.random.default_rng(seed)
        self.cause: tuple[str, str] | None = None
        self.first_sent: dict[tuple[str, str], float] = {}
        self.sent = 0
        self.halt = threading.Event()
        self._buffer: list[tuple[bytes, bool]] = []
        self._lock = threading.Lock()

    def plant(self, cause: tuple[str, str] | None) -> None:
        with self._lock:
            self.cause = cause
            self._buffer.clear()  # rows generated before the switch must not be sent as "new"

    def _refill(self, n: int) -> None:
        from macrobase.synthetic import scenario_batch

        now = time.time()
        batch = scenario_batch(self.rng, n, 0.0, n / self.rate, epoch_ms=int(now * 1000))
        cols = {name: batch.column(name) for name in batch.schema.names}
        drain = self.rng.normal(100.0, 10.0, n).round(3)  # no anomaly of the scenario's own
        planted = np.zeros(n, bool)
        model = cols["device_model"].to_pylist()
        carrier = cols["carrier"].to_pylist()
        if self.cause is not None:
            planted = self.rng.random(n) < self.SHARE
            drain = np.where(planted, self.rng.normal(200.0, 10.0, n).round(3), drain)
            for i in np.flatnonzero(planted):
                model[i], carrier[i] = self.cause
        table = pa.table({"ts": cols["ts"], "power_drain": pa.array(drain),
                          **{a: (pa.array(model) if a == "device_model" else pa.array(carrier)
                                 if a == "carrier" else cols[a]) for a in ATTRS}})
        self._buffer = list(zip(json_lines(table), planted.tolist()))

    def run(self) -> None:
        per_tick = max(1, int(self.rate * self.TICK_S))
        next_at = time.monotonic()
        while not self.halt.is_set():
            with self._lock:
                if len(self._buffer) < per_tick:
                    self._refill(int(self.rate))
                rows, self._buffer = self._buffer[:per_tick], self._buffer[per_tick:]
                cause = self.cause
                for value, planted in rows:
                    if planted and cause not in self.first_sent:
                        self.first_sent[cause] = time.time()  # just before its first send
                    self.producer.produce(self.topic, value)
            self.sent += len(rows)
            self.producer.poll(0)
            next_at += self.TICK_S
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.producer.flush(10)


def names(doc: dict, cause: tuple[str, str]) -> bool:
    model, carrier = cause
    return any(e["attributes"].get("device_model") == model and e["attributes"].get("carrier") == carrier
               for e in doc.get("explanations", []))


def bench_freshness(bootstrap: str, workdir: Path, rate: float, warm_s: float,
                    timeout_s: float = 20.0) -> dict[str, Any]:
    from connectors.kafka_client import create_topic
    from macrobase.store import ResultStore

    topic = f"bench-fresh-{os.getpid()}"
    create_topic([bootstrap], topic, PARTITIONS)
    producer = LiveProducer(bootstrap, topic, rate)
    producer.start()
    db = workdir / "fresh.db"
    cfg = pipeline_config({"type": "kafka", "bootstrap_servers": [bootstrap], "topic": topic,
                           "client": "kafka-python", "start_from": "latest",
                           "group_id": f"bench-fresh-{os.getpid()}"}, db)
    path = write_config(cfg, workdir / "fresh.yaml")
    proc = subprocess.Popen(macrobase_cmd(path), env=child_env(), cwd=str(workdir),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    store = ResultStore(db)
    stored: list[float] = []
    emitted: list[float] = []
    try:
        doc, _ = wait_for_doc(store, lambda d: d["events"] > 0, proc, 60.0)
        if doc is None:
            err = proc.stderr.read().decode(errors="replace")[-2000:] if proc.poll() is not None else ""
            raise RuntimeError(f"live pipeline produced no results in 60 s; {err}")
        time.sleep(warm_s)  # a few intervals of normal traffic: a trained model, stable lag
        for cause in FRESH_CAUSES:
            producer.plant(cause)
            doc, seen = wait_for_doc(store, lambda d, c=cause: names(d, c), proc, timeout_s, interval=0.02)
            producer.plant(None)
            sent = producer.first_sent.get(cause)
            if doc is None or sent is None:
                stored.append(float("inf"))
                emitted.append(float("inf"))
            else:
                stored.append(seen - sent)
                emitted.append(epoch(doc["emitted_at"]) - sent)
            time.sleep(2.0)
        last = store.latest(PIPELINE) or {}
    finally:
        stop_child(proc)
        producer.halt.set()
        producer.join(15)
        store.close()
    return {
        "rate_target": rate,
        "rate_produced": last.get("events_per_second"),
        "stored_s": stored,
        "emitted_s": emitted,
        "max_s": max(stored),
        "median_s": statistics.median(stored),
        "goal_s": 2 * EMIT_EVERY_S + 1.0,
    }


# ------------------------------------------------------------------------------ memory


def write_memory_file(path: Path, n: int, distinct_ids: int, seed: int = 3) -> None:
    """n planted-telemetry events; device_id drawn from ``distinct_ids`` values (each
    appears at least once when distinct_ids <= n). Plain string columns, as decoded JSON."""
    from macrobase.synthetic import planted_table

    rng = np.random.default_rng(seed)
    table, _ = planted_table(n, seed=seed)
    ids = rng.permutation(n) % distinct_ids  # same event count, every id used
    width = len(str(max(distinct_ids - 1, 1)))
    id_values = pa.array([f"D{i:0{width}d}" for i in range(distinct_ids)])
    cols = {"power_drain": table.column("power_drain")}
    for a in ATTRS:
        if a == "device_id":
            cols[a] = pa.DictionaryArray.from_arrays(pa.array(ids.astype(np.int32)), id_values).cast(pa.string())
        else:
            cols[a] = table.column(a).cast(pa.string())
    pq.write_table(pa.table(cols), path, row_group_size=1 << 20)


def bench_memory(n: int, workdir: Path, timeout_s: float) -> dict[str, Any]:
    """Peak RSS of ``macrobase run`` over the two files. A run still going after
    ``timeout_s`` is killed (its peak so far is a lower bound) so the benchmark stays
    within its time budget; ``*_events`` says how far it got."""
    from macrobase.store import ResultStore

    out: dict[str, Any] = {"events": n}
    for label, distinct in (("low", 1000), ("high", n // 2)):
        data = workdir / f"mem-{label}.parquet"
        write_memory_file(data, n, distinct)
        db = workdir / f"mem-{label}.db"
        cfg = pipeline_config({"type": "file", "path": str(data)}, db)
        path = write_config(cfg, workdir / f"mem-{label}.yaml")
        run = run_process(macrobase_cmd(path), env=child_env(), cwd=str(workdir), timeout=timeout_s)
        with ResultStore(db) as store:
            final = store.latest(PIPELINE) or {}
        timed_out = run.seconds >= timeout_s
        if run.returncode != 0 and not timed_out:
            raise RuntimeError(f"memory run ({label}) failed ({run.returncode}): {run.stderr[-2000:]}")
        if not timed_out and final.get("events") != n:
            raise RuntimeError(f"memory run ({label}) classified {final.get('events')} of {n} events")
        out[f"{label}_distinct_ids"] = distinct
        out[f"{label}_peak_rss_mb"] = run.peak_rss_mb
        out[f"{label}_seconds"] = run.seconds
        out[f"{label}_events"] = final.get("events", 0)  # stored by the last snapshot
        out[f"{label}_timed_out"] = timed_out
        out[f"{label}_eps"] = out[f"{label}_events"] / run.seconds  # incl. process start-up
        data.unlink()
    out["ratio_peak_rss"] = out["high_peak_rss_mb"] / out["low_peak_rss_mb"]
    out["ratio_seconds"] = out["high_seconds"] / out["low_seconds"]
    return out


# -------------------------------------------------------------------------------- main


def throughput_rows(tp: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows, goals = [], []
    for c in CLIENTS:
        peer = tp[f"{c}/bare[pyarrow.json]_eps"]
        ratio = tp[f"{c}/ratio_steady_vs_bare_arrow"]
        ok = at_least(ratio, STEADY_GOAL[c])
        rows += [
            {"case": f"throughput {c}: pipeline steady (ev/s)", "value": tp[f"{c}/pipeline_steady_eps"],
             "peer": peer, "ratio": fmt_ratio(ratio), "goal": f">= {STEADY_GOAL[c]:g}x", "met": ok},
            {"case": f"throughput {c}: pipeline whole run (ev/s)", "value": tp[f"{c}/pipeline_whole_eps"],
             "peer": peer, "ratio": fmt_ratio(tp[f"{c}/ratio_whole_vs_bare_arrow"]), "goal": "-", "met": None},
            {"case": f"  peer: bare {c} + json.loads (ev/s)", "value": tp[f"{c}/bare[json.loads]_eps"],
             "peer": None, "ratio": fmt_ratio(tp[f"{c}/ratio_steady_vs_bare_loads"]), "goal": "-", "met": None},
            {"case": f"  peer: bare {c} + decode_json_messages", "value":
                tp[f"{c}/bare[decode_json_messages]_eps"], "peer": None, "ratio": None, "goal": "-", "met": None},
        ]
        goals.append({"goal": f"{c} pipeline (in-process runner) >= {STEADY_GOAL[c]:g}x bare consumer "
                              "(pyarrow.json)", "met": ok, "ratio": ratio})
    return rows, goals


def scaling_rows(sc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    rows = []
    base = sc["runners"]["1 worker"]["steady_eps"]
    for label, run in sc["runners"].items():
        case = f"scaling {sc['client']}: {label} steady (ev/s)"
        if "error" in run:
            rows.append({"case": case + " FAILED", "value": None, "peer": base, "ratio": None,
                         "goal": "-", "met": None})
            continue
        two = label == "2 worker processes"
        rows.append({"case": case, "value": run["steady_eps"], "peer": None if label == "1 worker" else base,
                     "ratio": fmt_ratio(run["ratio_steady_vs_1_worker"]),
                     "goal": f">= {SCALING_GOAL:g}x" if two else "-",
                     "met": at_least(run["ratio_steady_vs_1_worker"], SCALING_GOAL) if two else None})
    ratio = sc["ratio_2_workers_vs_1"]
    goals = [{"goal": f"2 worker processes >= {SCALING_GOAL:g}x 1 worker (steady, {sc['client']})",
              "met": at_least(ratio, SCALING_GOAL), "ratio": ratio}]
    return rows, goals


def freshness_rows(fr: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    ok = fr["max_s"] <= fr["goal_s"]
    rows = [
        {"case": "freshness max (s)", "value": fr["max_s"], "peer": fr["goal_s"],
         "ratio": fmt_ratio(fr["max_s"] / fr["goal_s"]), "goal": f"<= {fr['goal_s']:g} s", "met": ok},
        {"case": "freshness median (s)", "value": fr["median_s"], "peer": fr["goal_s"],
         "ratio": fmt_ratio(fr["median_s"] / fr["goal_s"]), "goal": "-", "met": None},
    ]
    return rows, [{"goal": f"freshness max <= {fr['goal_s']:g} s", "met": ok}]


def memory_rows(mem: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    # A killed run's peak is a lower bound: it can fail the goal, never pass it.
    ok = mem["ratio_peak_rss"] <= 1.5 and not mem["high_timed_out"]
    cut = " (killed at time limit)" if mem["high_timed_out"] else ""
    sizes = f"{mem['high_distinct_ids']:,} vs 1k device ids, {mem['events']:,} events"
    rows = [
        {"case": f"peak RSS {sizes} (MB){cut}", "value": mem["high_peak_rss_mb"], "peer": mem["low_peak_rss_mb"],
         "ratio": fmt_ratio(mem["ratio_peak_rss"]), "goal": "<= 1.5x", "met": ok},
        {"case": f"  run time {sizes} (s){cut}", "value": mem["high_seconds"], "peer": mem["low_seconds"],
         "ratio": fmt_ratio(mem["ratio_seconds"]), "goal": "-", "met": None},
    ]
    return rows, [{"goal": f"peak RSS {mem['high_distinct_ids']:,}/1k distinct ids <= 1.5x", "met": ok,
                   "ratio": mem["ratio_peak_rss"]}]


def scaling_note(label: str, run: dict[str, Any]) -> str:
    if "error" in run:
        return f"{label}: {run['error']}"
    steady = "/".join("-" if v is None else f"{v:,.0f}" for v in run["steady_all"])
    return (f"{label}: start-up {run['startup_s']:.1f} s, drain {run['drain_s']:.1f} s, "
            f"whole run {run['whole_eps']:,.0f} ev/s, steady per run {steady} ev/s")


def print_notes(result: dict[str, Any]) -> None:
    """What the table cannot say: sizes, start-up and drain times, per-cause freshness."""
    tp = result.get("throughput")
    if tp:
        print(f"throughput: {tp['events']:,} events of {tp['bytes_per_event']:.0f} B in {PARTITIONS} partitions; "
              "bare consumers poll 5,000 records round robin; pipeline steady state = whole emit "
              "intervals between the first and last stored documents before the drain finished; "
              + "; ".join(f"{c} start-up {tp[f'{c}/pipeline_startup_s']:.1f} s, drain "
                          f"{tp[f'{c}/pipeline_drain_s']:.1f} s" for c in CLIENTS))
    sc = result.get("scaling")
    if sc:
        print(f"scaling: {sc['events']:,} events in {PARTITIONS} partitions, {sc['client']}, runners taking "
              f"turns, best of {sc['repeats']} on {os.cpu_count()} CPUs; "
              + "; ".join(scaling_note(label, r) for label, r in sc["runners"].items()))
    if any(v is None for k, v in (tp or {}).items() if k.endswith("steady_eps")) or any(
            r.get("steady_eps", 0) is None for r in (sc or {}).get("runners", {}).values()):
        print("steady state '-': fewer than two stored documents before the drain finished (too few "
              "events for a steady state; no verdict)")
    fr = result.get("freshness")
    if fr:
        print("freshness per cause (stored / emitted_at, s): "
              + ", ".join(f"{s:.2f}/{e:.2f}" for s, e in zip(fr["stored_s"], fr["emitted_s"])))
    mem = result.get("memory")
    if mem:
        print(f"memory: {mem['events']:,} events, device_id with {mem['high_distinct_ids']:,} (N/2) vs "
              f"{mem['low_distinct_ids']:,} distinct values; events stored "
              f"{mem['high_events']:,} / {mem['low_events']:,}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    parser.add_argument("--only", choices=["throughput", "scaling", "freshness", "memory"], action="append",
                        help="run only this part (repeatable)")
    parser.add_argument("--events", type=int, default=None,
                        help="events in the throughput/scaling topic (default 500,000; 100,000 with --quick)")
    parser.add_argument("--no-portable", action="store_true",
                        help="scaling without the PortableRunner on an external SDK worker pool")
    parser.add_argument("--scaling-repeats", type=int, default=None,
                        help="runs per runner in the scaling part, taking turns (default 2, 1 with --quick)")
    parser.add_argument("--drain-timeout", type=float, default=240.0,
                        help="seconds a scaling run may take to drain the topic (default 240)")
    parser.add_argument("--memory-timeout", type=float, default=150.0,
                        help="seconds before a memory run is stopped (default 150)")
    parser.add_argument("--decay", type=float, default=None,
                        help="explainer decay per emit interval for every run (default: the explainer's)")
    args = parser.parse_args(argv)
    EXPLAINER_OVERRIDES.clear()
    if args.decay is not None:
        EXPLAINER_OVERRIDES["decay"] = args.decay
    parts = args.only or ["throughput", "scaling", "freshness", "memory"]
    n_tp, n_mem, warm = (100_000, 200_000, 3.0) if args.quick else (500_000, 2_000_000, 6.0)
    n_tp = args.events or n_tp

    from connectors.broker import EmbeddedBroker

    result: dict[str, Any] = {"benchmark": "stream", "quick": args.quick, "emit_every_s": EMIT_EVERY_S,
                              "explainer_overrides": dict(EXPLAINER_OVERRIDES)}
    rows: list[dict[str, Any]] = []
    goals: list[dict[str, Any]] = []
    t_start = time.perf_counter()

    def add(part: str, value: dict[str, Any], to_rows) -> None:
        result[part] = value
        new_rows, new_goals = to_rows(value)
        rows.extend(new_rows)
        goals.extend(new_goals)

    with tempfile.TemporaryDirectory(prefix="bench-stream-") as tmp, EmbeddedBroker(port=0) as broker:
        workdir = Path(tmp)
        if "throughput" in parts or "scaling" in parts:
            topic, info = produce_topic(broker.bootstrap, n_tp)
        if "throughput" in parts:
            add("throughput", bench_throughput(broker.bootstrap, topic, info, workdir), throughput_rows)
        if "scaling" in parts:
            repeats = args.scaling_repeats or (1 if args.quick else 2)
            add("scaling", bench_scaling(broker.bootstrap, topic, info, workdir, portable=not args.no_portable,
                                         repeats=repeats, timeout=args.drain_timeout), scaling_rows)
        if "freshness" in parts:
            add("freshness", bench_freshness(broker.bootstrap, workdir, rate=5000.0, warm_s=warm), freshness_rows)
        if "memory" in parts:
            add("memory", bench_memory(n_mem, workdir, timeout_s=args.memory_timeout), memory_rows)
    result["goals"] = goals
    result["seconds"] = time.perf_counter() - t_start

    print(format_table(rows, ["case", "value", "peer", "ratio", "goal", "met"]))
    print_notes(result)
    result["machine"] = machine_info()
    print(json_line(result))
    return result


if __name__ == "__main__":
    main()
