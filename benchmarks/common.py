"""Small helpers shared by the benchmarks: timing, subprocesses, tables, JSON, memory.

>>> seconds, times, value = best_of(lambda: sum(range(1000)), repeats=2, warmup=0)
>>> value, len(times)
(499500, 2)
>>> print(format_table([{"case": "a", "seconds": 1.5}], ["case", "seconds"]))
case  seconds
----  -------
a        1.50
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np


def best_of(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> tuple[float, list[float], Any]:
    """(best seconds, every timed run, last result) of ``fn()`` after ``warmup`` untimed calls.

    The best run is reported because the machine is shared: slower runs measure the
    neighbours, not the code.
    """
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return min(times), times, result


def median_of(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> tuple[float, list[float], Any]:
    """(median seconds, every timed run, last result) of ``fn()`` after ``warmup`` untimed calls.

    >>> seconds, times, value = median_of(lambda: 7, repeats=3, warmup=0)
    >>> value, len(times), seconds == sorted(times)[1]
    (7, 3, True)
    """
    _, times, result = best_of(fn, repeats, warmup)
    return statistics.median(times), times, result


@dataclass(frozen=True)
class ProcessRun:
    """One finished subprocess: wall time (including interpreter start) and its own peak RSS."""

    seconds: float
    returncode: int
    stdout: str
    stderr: str
    peak_rss_mb: float


def run_process(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None,
                timeout: float | None = None) -> ProcessRun:
    """Run ``cmd`` to completion; ``peak_rss_mb`` is this child's own peak RSS.

    ``os.wait4``'s ``ru_maxrss`` alone is not: Linux carries the high-water mark of the
    memory the child was forked from (ours) across ``exec``, so a child never reports less
    than our own peak so far. When it reports more, that is the child's true peak; when
    not, the child's real peak is the ``VmHWM`` of ``/proc/PID/status`` (its own address
    space after ``exec``), read while it runs.
    """
    parent_peak = peak_rss_mb()
    hwm = 0.0
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=err, env=env, cwd=cwd)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            hwm = max(hwm, _vm_hwm_mb(proc.pid))
            time.sleep(0.005)
        seconds = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)  # stop Popen from waiting again
        out.seek(0)
        err.seek(0)
        maxrss = usage.ru_maxrss / 1024.0
        peak = maxrss if maxrss > parent_peak or not hwm else hwm
        return ProcessRun(seconds, proc.returncode, out.read(), err.read(), peak)


def _vm_hwm_mb(pid: int) -> float:
    """The peak RSS (``VmHWM``) of a running process in MiB; 0 when unknown (not Linux,
    not yet exec'd into its own address space, or already gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@contextlib.contextmanager
def one_core() -> Iterator[int | None]:
    """Pin this process to a single CPU while timing "per core" numbers; restore afterwards."""
    if not hasattr(os, "sched_setaffinity"):
        yield None
        return
    before = os.sched_getaffinity(0)
    cpu = max(before)
    os.sched_setaffinity(0, {cpu})
    try:
        yield cpu
    finally:
        os.sched_setaffinity(0, before)


def ratio(peer_seconds: float, our_seconds: float) -> float:
    """How many times faster we are than the peer (> 1: faster)."""
    return peer_seconds / our_seconds if our_seconds > 0 else math.inf


def _cell(value: Any, column: str) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if math.isinf(value):
            return "inf"
        if column == "events/s":
            return f"{value / 1e6:.2f}M"
        if column.startswith("ratio"):
            return f"{value:.2f}x" if abs(value) < 1 else f"{value:.1f}x"
        return f"{value:.2f}"
    return str(value)


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table; numbers right-aligned, text left-aligned."""
    cells = [[_cell(r.get(c), c) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    numeric = [all(isinstance(r.get(c), (int, float)) and not isinstance(r.get(c), bool)
                   for r in rows if r.get(c) is not None) for c in columns]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.rjust(w) if num else v.ljust(w)
                         for v, w, num in zip(values, widths, numeric)).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def jsonable(value: Any) -> Any:
    """Strict-JSON form: NumPy scalars to Python, infinities and NaN to strings."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def json_line(result: dict[str, Any]) -> str:
    """One strict-JSON line (printed by every benchmark for machines to pick up)."""
    return json.dumps(jsonable(result), allow_nan=False, sort_keys=False)


def machine_info() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "executable": sys.executable,
    }
