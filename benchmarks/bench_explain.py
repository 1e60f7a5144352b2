"""Batch explanation speed against pandas and mlxtend, side by side in one run.

Data: ``macrobase.synthetic.planted_table`` (3M events x 6 attributes, cardinalities
5..5000), written once as Parquet and CSV to a cache directory and reused.

Cases (each reported as a ratio against its peer, measured in the same run):

1. whole process vs whole process: ``macrobase explain FILE.parquet ... --format json``
   against a standalone pandas script (``python -m benchmarks.bench_explain
   --pandas-reference FILE``: pandas reads the Parquet file, NumPy classifies at the 99th
   percentile, ``tests.reference.reference_explain`` explains). Goal: >= 10x faster.
2. in process: mlxtend FP-growth on the outlier rows, those itemsets counted among all
   rows with pandas codes, then our rules; against our Percentile + BatchExplainer.
3. in process, one core: classify+explain throughput. Goal: >= 10M events/s
   (MacroBase published ~2M events/s per core).

Every peer's explanations are compared with ours (same attribute sets, same counts).

Example (a small, quick run)::

    python -m benchmarks.bench_explain --rows 200000 --repeats 1
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.common import (
    best_of, format_table, json_line, machine_info, one_core, peak_rss_mb, ratio, run_process,
)

METRIC = "power_drain"
PERCENTILE = 99.0
MIN_SUPPORT = 0.01
MIN_RATIO = 3.0
MAX_ORDER = 3
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("MACROBASE_BENCH_CACHE", "/tmp/macrobase-bench-cache"))
COLUMNS = ["case", "seconds", "events/s", "ratio vs peer", "peer", "goal", "met?"]


# --------------------------------------------------------------------------- data

def prepare_data(rows: int, seed: int, cache_dir: Path) -> dict[str, Any]:
    """Write (or reuse) the planted table as Parquet and CSV; return paths and facts."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    from macrobase.synthetic import ATTRIBUTES, planted_table

    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = cache_dir / f"planted-{rows}-seed{seed}"
    parquet, csv = stem.with_suffix(".parquet"), stem.with_suffix(".csv")
    reused = parquet.exists() and csv.exists()
    t0 = time.perf_counter()
    if not reused:
        table, _ = planted_table(rows, seed=seed)
        # Write to a temporary name first so an interrupted run never leaves half a file.
        tmp = parquet.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp)
        tmp.replace(parquet)
        # CSV has no dictionary type: write the attribute values as plain strings.
        plain = pa.table({name: (col.cast(pa.string()) if pa.types.is_dictionary(col.type) else col)
                          for name, col in zip(table.column_names, table.columns)})
        tmp = csv.with_suffix(".csv.tmp")
        pcsv.write_csv(plain, tmp)
        tmp.replace(csv)
    return {
        "rows": rows, "seed": seed, "attributes": list(ATTRIBUTES),
        "cardinalities": {a: len(v) for a, v in ATTRIBUTES.items()},
        "parquet": str(parquet), "csv": str(csv), "reused_cache": reused,
        "parquet_mb": round(parquet.stat().st_size / 2**20, 1),
        "csv_mb": round(csv.stat().st_size / 2**20, 1),
        "prepare_seconds": round(time.perf_counter() - t0, 2),
    }


# --------------------------------------------------------------------------- pandas reference (peer, subprocess)

def drop_infrequent_values(df, attributes: Sequence[str], outlier_col: str, min_support: float):
    """Set values whose own support is below ``min_support`` to missing.

    Exact for DESIGN.md's rules: an itemset holding such a value has support below
    ``min_support`` too (support only shrinks as items are added), and neither rule ever
    looks at an infrequent itemset; the counts of every other itemset are unchanged.
    """
    out = df[outlier_col].to_numpy()
    n_out = int(out.sum())
    for a in attributes:
        o = df.loc[out, a].value_counts()
        keep = o.index[(o / n_out >= min_support).to_numpy()] if n_out else o.index[:0]
        col = df[a].where(df[a].isin(keep))
        df[a] = col.cat.remove_unused_categories() if hasattr(col, "cat") else col
    return df


def pandas_reference(path: str, metric: str, attributes: Sequence[str], reference: str) -> dict[str, Any]:
    """The peer: pandas + NumPy + ``tests.reference.reference_explain``; returns a result doc."""
    import pandas as pd

    from tests.reference import reference_explain

    df = pd.read_parquet(path, columns=[metric, *attributes])
    x = df[metric].to_numpy(dtype=np.float64)
    high = float(np.percentile(x, PERCENTILE))      # same rule as our Percentile: x >= p99
    df["outlier"] = x >= high
    if reference == "pruned":
        df = drop_infrequent_values(df, attributes, "outlier", MIN_SUPPORT)
    rows = reference_explain(df, list(attributes), "outlier", min_support=MIN_SUPPORT,
                             min_ratio=MIN_RATIO, max_order=MAX_ORDER, mode="refined")
    return {
        "total": len(df), "outliers": int(df["outlier"].sum()), "thresholds": {metric: {"high": high}},
        "explanations": [
            {"attributes": r["attributes"], "outlier_count": r["outlier_count"], "count": r["count"],
             "risk_ratio": r["ratio"]}
            for r in rows
        ],
    }


# --------------------------------------------------------------------------- mlxtend FP-growth (peer, in process)

def mlxtend_explain(df, x: np.ndarray, attributes: Sequence[str]) -> list[tuple]:
    """FP-growth over the outliers' one-hot items, exact counts over all rows, our rules.

    ``df`` holds the attributes as pandas categoricals (pandas' encoded form, the
    counterpart of our Arrow dictionary codes).
    """
    import pandas as pd
    from mlxtend.frequent_patterns import fpgrowth

    from explain.metrics import risk_ratio
    from explain.rules import apply_rules

    outlier = x >= np.percentile(x, PERCENTILE)
    O, N = int(outlier.sum()), len(x)
    onehot = pd.get_dummies(df.loc[outlier, list(attributes)], prefix_sep="\x1f", dtype=bool)
    frequent = fpgrowth(onehot, min_support=MIN_SUPPORT, use_colnames=True, max_len=MAX_ORDER)

    pos = {a: j for j, a in enumerate(attributes)}
    codes = [df[a].cat.codes.to_numpy() for a in attributes]
    categories = [df[a].cat.categories for a in attributes]
    masks: dict[tuple[int, int], np.ndarray] = {}

    def item(column_name: str) -> tuple[int, int]:
        a, value = column_name.split("\x1f", 1)
        j = pos[a]
        return j, int(categories[j].get_loc(value))

    counts = {}
    for support, names in zip(frequent["support"].to_numpy(), frequent["itemsets"]):
        itemset = tuple(sorted(item(c) for c in names))
        mask = None
        for it in itemset:
            if it not in masks:
                masks[it] = codes[it[0]] == it[1]
            mask = masks[it] if mask is None else mask & masks[it]
        counts[itemset] = (int(round(support * O)), int(np.count_nonzero(mask)))
    found = apply_rules(counts, O, N, min_support=MIN_SUPPORT, min_ratio=MIN_RATIO, ratio=risk_ratio,
                        max_order=MAX_ORDER, mode="refined",
                        item_key=lambda it: (it[0], str(categories[it[0]][it[1]])))
    return [(tuple((attributes[j], str(categories[j][c])) for j, c in f.itemset), f.outliers, f.rows)
            for f in found]


# --------------------------------------------------------------------------- ours (in process)

def ours_on_codes(encoded, x: np.ndarray):
    from explain import BatchExplainer
    from operators import Percentile

    outlier = Percentile(percentile=PERCENTILE).fit(x).predict(x)
    return BatchExplainer(min_support=MIN_SUPPORT, min_ratio=MIN_RATIO, max_order=MAX_ORDER).explain(
        encoded, outlier)


def ours_from_table(table, attributes: Sequence[str]):
    from macrobase.columns import encode_arrow, metric_matrix

    return ours_on_codes(encode_arrow(table, attributes), metric_matrix(table, [METRIC]))


def phase_breakdown(table, attributes: Sequence[str], repeats: int) -> dict[str, float]:
    """Best seconds of each in-process phase, to see where classify+explain spends its time."""
    from explain import BatchExplainer
    from macrobase.columns import encode_arrow, metric_matrix
    from operators import Percentile

    x = metric_matrix(table, [METRIC])
    encoded = encode_arrow(table, attributes)
    clf = Percentile(percentile=PERCENTILE)
    outlier = clf.fit(x).predict(x)
    explainer = BatchExplainer(min_support=MIN_SUPPORT, min_ratio=MIN_RATIO, max_order=MAX_ORDER)
    return {
        "encode_arrow": best_of(lambda: encode_arrow(table, attributes), repeats)[0],
        "percentile_fit": best_of(lambda: clf.fit(x), repeats)[0],
        "percentile_predict": best_of(lambda: clf.predict(x), repeats)[0],
        "explain": best_of(lambda: explainer.explain(encoded, outlier), repeats)[0],
    }


# --------------------------------------------------------------------------- agreement

def signature_of_doc(doc: dict[str, Any]) -> list[tuple]:
    """(attribute items, outlier count, count) per explanation, in reported order."""
    return [(tuple((k, str(v)) for k, v in e["attributes"].items()), int(e["outlier_count"]), int(e["count"]))
            for e in doc["explanations"]]


def signature_of_explanations(found) -> list[tuple]:
    return [(tuple((k, str(v)) for k, v in e.attributes), int(e.outlier_count), int(e.count)) for e in found]


def same(a: list[tuple], b: list[tuple]) -> bool:
    """Same explanations: identical attribute sets and counts (attribute order ignored)."""
    def norm(sig):
        return [(tuple(sorted(items)), o, n) for items, o, n in sig]
    return norm(a) == norm(b)


# --------------------------------------------------------------------------- runner

def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    # Run from the project root with it on the path, like `python -m benchmarks`.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _macrobase_cmd(path: str, attributes: Sequence[str]) -> list[str]:
    script = Path(sys.executable).with_name("macrobase")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "macrobase.cli"]
    return head + ["explain", path, "--metric", METRIC, "--attributes", ",".join(attributes),
                   "--classifier", "percentile", "--percentile", str(PERCENTILE), "--format", "json"]


def _check(run, what: str) -> dict[str, Any]:
    if run.returncode != 0:
        raise RuntimeError(f"{what} exited with {run.returncode}: {run.stderr.strip()[-2000:]}")
    return json.loads(run.stdout)


def _row(case, seconds, events, peer_seconds=None, peer=None, goal=None, met=None) -> dict[str, Any]:
    return {"case": case, "seconds": seconds, "events/s": events / seconds if seconds else None,
            "ratio vs peer": ratio(peer_seconds, seconds) if peer_seconds else None,
            "peer": peer, "goal": goal, "met?": met}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    data = prepare_data(args.rows, args.seed, Path(args.cache_dir))
    attributes = data["attributes"]
    N = args.rows
    env = _env()
    notes: list[str] = []
    print(f"data: {N:,} events x {len(attributes)} attributes (cardinalities "
          f"{', '.join(str(c) for c in data['cardinalities'].values())}); "
          f"{'reused' if data['reused_cache'] else 'wrote'} {data['parquet']} ({data['parquet_mb']} MB) "
          f"and .csv ({data['csv_mb']} MB)", flush=True)

    # ---- 1. whole process vs whole process
    warm = run_process(_macrobase_cmd(data["parquet"], attributes), env=env, cwd=str(ROOT))
    ours_doc = _check(warm, "macrobase explain (warm-up)")
    notes.append(f"one untimed `macrobase explain` run first warmed the Numba cache and the OS file cache "
                 f"({warm.seconds:.2f} s)")
    cli_runs = [run_process(_macrobase_cmd(data["parquet"], attributes), env=env, cwd=str(ROOT))
                for _ in range(args.repeats)]
    for r in cli_runs:
        _check(r, "macrobase explain")
    cli = min(cli_runs, key=lambda r: r.seconds)
    print(f"macrobase explain (parquet): best {cli.seconds:.2f} s of {[round(r.seconds, 2) for r in cli_runs]}",
          flush=True)

    ref_cmd = [sys.executable, "-m", "benchmarks.bench_explain", "--pandas-reference", data["parquet"],
               "--attributes", ",".join(attributes), "--reference", args.reference]
    ref_runs = []
    for _ in range(args.reference_repeats):
        ref_runs.append(run_process(ref_cmd, env=env, cwd=str(ROOT), timeout=args.reference_timeout))
        print(f"pandas reference ({args.reference}): {ref_runs[-1].seconds:.2f} s", flush=True)
    ref = min(ref_runs, key=lambda r: r.seconds)
    ref_doc = _check(ref, "pandas reference")
    agree_process = (same(signature_of_doc(ours_doc), signature_of_doc(ref_doc))
                     and ours_doc["total"] == ref_doc["total"] and ours_doc["outliers"] == ref_doc["outliers"])
    if args.reference == "pruned":
        notes.append("pandas reference: values whose own support is < min_support are set to missing before "
                     "tests.reference.reference_explain (exact: no infrequent itemset can be reported or "
                     "matter to the rules). Unpruned, it builds ~17M groups on 3M rows through iterrows: "
                     "~400 s and ~9 GB here, too slow to run by default; --reference full runs it")

    csv_run = run_process(_macrobase_cmd(data["csv"], attributes), env=env, cwd=str(ROOT))
    csv_doc = _check(csv_run, "macrobase explain (csv)")
    agree_csv = same(signature_of_doc(ours_doc), signature_of_doc(csv_doc))

    # ---- 2./3. in process, one core, same data in memory
    import pyarrow.parquet as pq

    from macrobase.columns import encode_arrow, metric_matrix

    table = pq.read_table(data["parquet"], columns=[METRIC, *attributes])
    encoded = encode_arrow(table, attributes)
    x = metric_matrix(table, [METRIC])
    df = table.to_pandas()                      # categoricals: pandas' dictionary codes
    x_pd = df[METRIC].to_numpy(dtype=np.float64)
    with one_core() as cpu:
        t_codes, codes_times, found = best_of(lambda: ours_on_codes(encoded, x), args.repeats, warmup=1)
        t_full, full_times, found_full = best_of(lambda: ours_from_table(table, attributes), args.repeats,
                                                 warmup=1)
        t_mlx, mlx_times, mlx_found = best_of(lambda: mlxtend_explain(df, x_pd, attributes),
                                              args.peer_repeats, warmup=0)
        breakdown = phase_breakdown(table, attributes, args.repeats)
    notes.append(f"in-process cases pinned to CPU {cpu}, best of {args.repeats} after one warm-up "
                 f"(mlxtend: best of {args.peer_repeats}, no warm-up); Parquet read excluded")
    ours_sig = signature_of_explanations(found)
    agree_mlx = same(ours_sig, mlx_found)
    agree_inproc = same(ours_sig, signature_of_explanations(found_full)) and same(ours_sig, signature_of_doc(ours_doc))
    outlier_rate = ours_doc["outliers"] / ours_doc["total"]
    planted_rate = float(np.asarray(pq.read_table(data["parquet"], columns=["anomalous"])
                                    .column("anomalous").to_numpy()).mean())

    goal_process = ratio(ref.seconds, cli.seconds) >= 10
    goal_rate = N / t_codes >= 10e6
    rows = [
        _row("macrobase explain FILE.parquet (process)", cli.seconds, N, ref.seconds, "pandas reference",
             ">= 10x", goal_process),
        _row(f"pandas reference, {args.reference} (process)", ref.seconds, N),
        _row("macrobase explain FILE.csv (process, 1 run)", csv_run.seconds, N),
        _row("classify+explain on encoded codes", t_codes, N, t_mlx, "mlxtend FP-growth", ">= 10M ev/s",
             goal_rate),
        _row("encode+classify+explain", t_full, N, t_mlx, "mlxtend FP-growth"),
        _row("mlxtend FP-growth + pandas counts", t_mlx, N),
    ]
    print()
    print(format_table(rows, COLUMNS))
    print(f"explanations agree: macrobase vs pandas reference: {'yes' if agree_process else 'no'}; "
          f"vs mlxtend: {'yes' if agree_mlx else 'no'}; parquet vs csv: {'yes' if agree_csv else 'no'}; "
          f"in-process vs CLI: {'yes' if agree_inproc else 'no'} ({len(ours_sig)} explanations)")
    print("in-process phases (best of %d, one core): %s" % (
        args.repeats, ", ".join(f"{k} {v:.3f} s" for k, v in breakdown.items())))
    print(f"outliers: {ours_doc['outliers']:,} of {ours_doc['total']:,} ({outlier_rate:.2%}, percentile "
          f"{PERCENTILE:g}); planted anomalous rate {planted_rate:.2%}")
    for n in notes:
        print(f"note: {n}")

    result = {
        "benchmark": "explain",
        "data": {**data, "outlier_rate": outlier_rate, "planted_anomalous_rate": planted_rate},
        "cases": rows,
        "goals": [
            {"goal": "macrobase explain >= 10x faster than the pandas reference (whole process)",
             "value": ratio(ref.seconds, cli.seconds), "target": 10.0, "met": goal_process},
            {"goal": "classify+explain >= 10M events/s on one core (encoded codes)",
             "value": N / t_codes, "target": 10e6, "met": goal_rate},
        ],
        "agreement": {"pandas_reference": agree_process, "mlxtend": agree_mlx, "csv": agree_csv,
                      "in_process_vs_cli": agree_inproc},
        "explanations": [{"attributes": dict(a), "outlier_count": o, "count": n} for a, o, n in ours_sig],
        "timings": {
            "cli_runs": [r.seconds for r in cli_runs], "cli_warmup": warm.seconds,
            "reference_runs": [r.seconds for r in ref_runs], "csv_run": csv_run.seconds,
            "codes_runs": codes_times, "encode_runs": full_times, "mlxtend_runs": mlx_times,
            "in_process_phases": breakdown,
        },
        "peak_rss_mb": {"macrobase_explain": cli.peak_rss_mb, "pandas_reference": ref.peak_rss_mb,
                        "benchmark_process": peak_rss_mb()},
        "reference_mode": args.reference,
        "notes": notes,
        "machine": machine_info(),
        "seconds": time.perf_counter() - started,
    }
    print(json_line(result))
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_explain", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=3_000_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    p.add_argument("--repeats", type=int, default=3, help="timed runs of our cases (best reported)")
    p.add_argument("--reference-repeats", type=int, default=2, help="timed runs of the pandas reference")
    p.add_argument("--peer-repeats", type=int, default=3, help="timed runs of the mlxtend pipeline")
    p.add_argument("--reference", choices=["pruned", "full"], default="pruned",
                   help="pruned: infrequent values set missing first (exact); full: plain brute force")
    p.add_argument("--reference-timeout", type=float, default=900.0)
    # Peer mode: this module is also the standalone pandas reference script.
    p.add_argument("--pandas-reference", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--attributes", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = _parser().parse_args(argv)
    if args.pandas_reference:
        doc = pandas_reference(args.pandas_reference, METRIC, args.attributes.split(","), args.reference)
        print(json_line(doc))
        return doc
    return run_benchmark(args)


if __name__ == "__main__":
    main()
