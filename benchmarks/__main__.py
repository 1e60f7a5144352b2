"""Run every ``benchmarks/bench_<topic>.py`` (or the named topics) and summarise.

    python -m benchmarks                 # all of them, in name order
    python -m benchmarks explain         # only bench_explain
    python -m benchmarks --list

Each module's ``main([])`` prints its own table and JSON line and returns a dict; this
runner prints an overall summary and writes ``benchmarks/results/latest.json`` (topics
not run this time keep their previous entry there).
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import benchmarks
from benchmarks.common import format_table, jsonable, machine_info

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"


def discover() -> dict[str, str]:
    """{topic: module name} for every benchmarks/bench_<topic>.py."""
    return {
        info.name[len("bench_"):]: f"benchmarks.{info.name}"
        for info in sorted(pkgutil.iter_modules(benchmarks.__path__), key=lambda i: i.name)
        if info.name.startswith("bench_")
    }


def _goals(result: Any) -> tuple[str, str]:
    """("2/3", "goal text; ...") from a result's optional ``goals`` list of {goal, met}."""
    goals = result.get("goals") if isinstance(result, dict) else None
    if not isinstance(goals, list) or not goals:
        # No graded goals: show the headline speed-ups instead (keys naming a speedup/ratio).
        heads = [f"{k}={v:.1f}x" for k, v in (result.items() if isinstance(result, dict) else ())
                 if isinstance(v, (int, float)) and not isinstance(v, bool)
                 and ("speedup" in k or k.startswith("ratio"))]
        return "-", "; ".join(heads)
    met = [g for g in goals if isinstance(g, dict) and g.get("met")]
    missed = [str(g.get("goal", "?")) for g in goals if isinstance(g, dict) and not g.get("met")]
    return f"{len(met)}/{len(goals)}", "; ".join(missed)


def main(argv: list[str] | None = None) -> int:
    found = discover()
    p = argparse.ArgumentParser(prog="python -m benchmarks", description="Run the benchmarks.")
    p.add_argument("topics", nargs="*", metavar="TOPIC", help=f"any of: {', '.join(found)} (default: all)")
    p.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    args = p.parse_args(argv)
    if args.list:
        print("\n".join(found))
        return 0
    unknown = [t for t in args.topics if t not in found]
    if unknown:
        p.error(f"unknown benchmark {', '.join(unknown)}; expected any of {', '.join(found)}")
    topics = args.topics or list(found)

    summary, results = [], {}
    for topic in topics:
        print(f"\n=== {topic} ({found[topic]}) ===", flush=True)
        t0 = time.perf_counter()
        try:
            result = importlib.import_module(found[topic]).main([])
            status = "ok"
        except Exception as exc:  # one broken benchmark must not hide the others' results
            traceback.print_exc()
            result = {"error": f"{type(exc).__name__}: {exc}"}
            status = "failed"
        seconds = time.perf_counter() - t0
        goals, missed = _goals(result)
        summary.append({"benchmark": topic, "status": status, "seconds": seconds, "goals met": goals,
                        "missed / headline": missed or "-"})
        results[topic] = {"finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                          "seconds": seconds, "status": status, "result": result}

    print("\n=== summary ===")
    print(format_table(summary, ["benchmark", "status", "seconds", "goals met", "missed / headline"]))

    previous: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            previous = json.loads(RESULTS.read_text()).get("results", {})
        except (OSError, ValueError):
            previous = {}
    document = {
        "written_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": machine_info(),
        "results": {**previous, **results},
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(jsonable(document), indent=2, allow_nan=False) + "\n")
    print(f"wrote {RESULTS}")
    return 0 if all(s["status"] == "ok" for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
