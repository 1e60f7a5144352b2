"""Whole-process time of a small ``macrobase explain``: what a user waits for at the prompt.

Data: ``macrobase.synthetic.planted_table(20_000, seed=1)`` written once as Parquet to a
cache directory and reused. Case: ``macrobase explain FILE --metric power_drain
--attributes <the 6 attributes> --classifier mad --format json``, whole process (interpreter
start, imports, Numba's cache load, the work, exit), median of ``--runs`` runs after one
untimed warm-up run (which fills the Numba cache and the OS file cache). Goal: < 0.8 s.

Peers, timed in the same run and interleaved with ours run by run (the machine is shared,
so a busy moment slows every case alike): ``python -c pass`` (the interpreter alone),
``python -c "import numpy, pyarrow, numba"`` (the libraries we cannot do without) and,
when installed, ``python -c "import duckdb"`` (another analytical engine's import).

One more untimed run with ``-X importtime`` lists the packages the explain path must not
load (tests/test_startup.py asserts the same) and the biggest imports by cumulative time.

Example; ``--compare DIR`` adds the same command run from another checkout (e.g. the code
before a change, ``git archive``d to DIR) as one more interleaved case, a before/after figure
taken under the same load::

    python -m benchmarks.bench_startup --runs 9
    python -m benchmarks.bench_startup --runs 9 --compare /tmp/before
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from benchmarks.common import format_table, json_line, machine_info, run_process

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("MACROBASE_BENCH_CACHE", "/tmp/macrobase-bench-cache"))
METRIC = "power_drain"
GOAL_S = 0.8
#: Packages the explain path must not import (tests/test_startup.py).
FORBIDDEN = ("apache_beam", "pydantic", "dash", "kafka", "confluent_kafka", "pandas", "scipy")
COLUMNS = ["case", "median s", "min s", "max s", "runs", "ratio vs ours", "goal", "met?"]


def prepare_data(rows: int, seed: int, cache_dir: Path) -> Path:
    """Write (or reuse) the planted table as Parquet."""
    path = cache_dir / f"startup-planted-{rows}-seed{seed}.parquet"
    if not path.exists():
        import pyarrow.parquet as pq

        from macrobase.synthetic import planted_table

        cache_dir.mkdir(parents=True, exist_ok=True)
        table, _ = planted_table(rows, seed=seed)
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        tmp.replace(path)
    return path


def explain_cmd(path: Path, python: str = sys.executable, *flags: str) -> list[str]:
    from macrobase.synthetic import ATTRIBUTES

    return [python, *flags, "-m", "macrobase.cli", "explain", str(path), "--metric", METRIC,
            "--attributes", ",".join(ATTRIBUTES), "--classifier", "mad", "--format", "json"]


def _env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    # ``root`` first on the path: its packages, not the installed (editable) ones, are run.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(root), env.get("PYTHONPATH")) if p)
    return env


def _ok(run, what: str) -> None:
    if run.returncode != 0:
        raise RuntimeError(f"{what} exited with {run.returncode}: {run.stderr.strip()[-2000:]}")


#: Runs ``macrobase.cli`` as ``python -m`` does and prints, at exit, the modules loaded (JSON on
#: the last line of stderr). ``-X importtime`` alone cannot tell: it lists failed imports too.
MODULES_AT_EXIT = ("import atexit, json, runpy, sys; "
                   "atexit.register(lambda: print(json.dumps(sorted(sys.modules)), file=sys.stderr)); "
                   "sys.argv[0] = 'macrobase'; runpy.run_module('macrobase.cli', run_name='__main__', alter_sys=True)")


def import_report(cmd: list[str], env: dict[str, str], cwd: str, top: int = 8) -> dict[str, Any]:
    """One run of ``cmd`` (``python -m macrobase.cli ...``) under ``-X importtime``: the
    forbidden packages loaded and the biggest imports by cumulative time."""
    module = cmd.index("-m")
    run = run_process([cmd[0], "-X", "importtime", "-c", MODULES_AT_EXIT, *cmd[module + 2:]],
                      env=env, cwd=cwd, timeout=600)
    _ok(run, "macrobase explain -X importtime")
    lines = run.stderr.splitlines()
    loaded = set(json.loads(lines[-1]))
    outer = []
    for line in lines:
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line[len("import time:"):].split("|")
        if cumulative.strip().isdigit() and not name[1:].startswith(" ") and name.strip() in loaded:
            outer.append((name.strip(), int(cumulative) / 1e6))
    outer.sort(key=lambda r: -r[1])
    return {"modules": len(loaded),
            "forbidden_imported": sorted({m.split(".")[0] for m in loaded} & set(FORBIDDEN)),
            "top_level_imports_s": {n: round(s, 4) for n, s in outer[:top]}}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    root = Path(args.root).resolve()
    env = _env(root)
    cwd = str(root)
    path = prepare_data(args.rows, args.seed, Path(args.cache_dir))
    py = sys.executable
    cases = {"macrobase explain (whole process)": explain_cmd(path, py),
             "python -c pass": [py, "-c", "pass"],
             "python -c 'import numpy, pyarrow, numba'": [py, "-c", "import numpy, pyarrow, numba"]}
    if importlib.util.find_spec("duckdb") is not None:
        cases["python -c 'import duckdb'"] = [py, "-c", "import duckdb"]
    ours = next(iter(cases))
    where = {name: (env, cwd) for name in cases}
    if args.compare:
        other = Path(args.compare).resolve()
        name = f"macrobase explain from {other}"
        cases[name], where[name] = explain_cmd(path, py), (_env(other), str(other))
    load_before = os.getloadavg()

    warm = run_process(cases[ours], env=env, cwd=cwd, timeout=args.timeout)  # fills the Numba cache
    _ok(warm, "macrobase explain (warm-up)")
    doc = json.loads(warm.stdout)
    for name, cmd in cases.items():
        if name != ours:
            _ok(run_process(cmd, env=where[name][0], cwd=where[name][1], timeout=args.timeout), name)

    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.runs):  # interleaved: a busy moment slows every case alike
        for name, cmd in cases.items():
            run = run_process(cmd, env=where[name][0], cwd=where[name][1], timeout=args.timeout)
            _ok(run, name)
            times[name].append(run.seconds)
    imports = import_report(cases[ours], env, cwd)

    medians = {name: statistics.median(t) for name, t in times.items()}
    met = medians[ours] < GOAL_S
    rows = []
    for name, t in times.items():
        rows.append({"case": name, "median s": medians[name], "min s": min(t), "max s": max(t),
                     "runs": len(t),
                     "ratio vs ours": medians[name] / medians[ours] if name != ours else None,
                     "goal": f"< {GOAL_S:g} s" if name == ours else None,
                     "met?": met if name == ours else None})
    goals = [{"goal": f"macrobase explain of {args.rows:,} rows < {GOAL_S:g} s whole process (median)",
              "value": medians[ours], "target": GOAL_S, "met": met}]
    notes = [f"medians of {args.runs} interleaved runs after one warm-up; machine shared with other work, "
             f"load average {load_before[0]:.2f} at start, {os.getloadavg()[0]:.2f} at the end",
             f"run from {root} with NUMBA_CACHE_DIR={env['NUMBA_CACHE_DIR']}"]

    print(format_table(rows, COLUMNS))
    print(f"explain: {doc['total']:,} rows, {doc['outliers']:,} outliers, "
          f"{len(doc['explanations'])} explanations; {imports['modules']} modules imported; "
          f"forbidden packages imported: {', '.join(imports['forbidden_imported']) or 'none'}")
    print("biggest top-level imports: " + ", ".join(f"{n} {s:.3f} s"
                                                    for n, s in imports["top_level_imports_s"].items()))
    print(f"goal: median < {GOAL_S:g} s: {medians[ours]:.3f} s ({'met' if met else 'NOT met'})")
    for n in notes:
        print(f"note: {n}")

    result = {
        "benchmark": "startup",
        "rows": args.rows, "seed": args.seed, "file": str(path), "command": cases[ours],
        "explain_median_s": medians[ours],
        "python_pass_median_s": medians["python -c pass"],
        "libraries_import_median_s": medians["python -c 'import numpy, pyarrow, numba'"],
        "duckdb_import_median_s": medians.get("python -c 'import duckdb'"),
        "compare": args.compare,
        "compare_median_s": medians.get(f"macrobase explain from {Path(args.compare).resolve()}")
        if args.compare else None,
        "goal_s": GOAL_S, "met": met, "goals": goals,
        "times": times, "cases": rows, "imports": imports,
        "notes": notes, "machine": machine_info(), "seconds": time.perf_counter() - started,
    }
    print(json_line(result))
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_startup", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--runs", type=int, default=9, help="timed runs of every case (median reported)")
    p.add_argument("--root", default=str(ROOT), help="the checkout to run macrobase from (default: this one)")
    p.add_argument("--compare", metavar="DIR", help="also time macrobase explain run from this checkout")
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per process")
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    return run_benchmark(args)


if __name__ == "__main__":
    main()
