"""Batch explain at warehouse scale (issue 9): against DuckDB, pandas and mlxtend, side by
side in one run, every case reported as a ratio against its peer.

Data: ``macrobase.synthetic.planted_table`` (6 attributes, cardinalities 5..5000),
written slice by slice as Parquet (row groups of 1M rows) to a cache directory and reused
(:func:`prepare_big`); one file per size (--rows, --big-rows, --huge-rows).

Every case explains the same DIFF: MAD classifier, outlier iff (x - median) /
(1.4826 * MAD) >= 3.5 (``--classifier mad --score-cutoff 3.5``; the benchmark checks
operators.mad's constants at run time), refined mode, orders up to 3, min support 0.01,
min ratio 3 (risk ratio).

Cases:

1. whole process vs DuckDB at --rows (3M) and --big-rows (20M):
   ``macrobase explain FILE.parquet ... --threads 2 --format json`` against a standalone
   DuckDB script (``python -m benchmarks.bench_explain --duckdb-reference FILE``, 2
   threads: :func:`duckdb_reference`, the median, the MAD, then one pruned GROUPING SETS
   query over every 1-3 attribute combination; our rules over its counts). Medians of
   --repeats runs (after one untimed run of ours per file), seconds and peak RSS; ratio of
   time and of peak memory. Goal at 20M: >= 5x faster and <= 0.5x DuckDB's peak memory.
   At 20M also ``--read stream`` (no goal).
2. whole process vs pandas at --rows: the pruned brute force (``--pandas-reference``:
   pandas reads, NumPy classifies, ``tests.reference.reference_explain`` explains).
   Goal: >= 10x faster.
3. --huge-rows (200M) from Parquet with ``--read stream``, one run (--huge-repeats):
   goal peak RSS < 3 GB. Skipped (with a note) when the file would not fit on the disk,
   or with --skip-huge.
4. thread scaling, rows/s of 2 threads over 1 (goal >= 1.7x): whole process on the
   --big-rows file (``--threads``; it includes ~0.5 s of one-threaded interpreter start-up),
   in process on the same file (``connectors.files.read_file`` + ``macrobase.diff.run_diff``,
   Arrow's decoding threads set alike: the work itself), and ``run_diff`` alone on the
   --rows table in memory (no goal).
5. in process, one thread, --rows table in memory: mlxtend FP-growth on the outlier rows,
   those itemsets counted among all rows with pandas codes, then our rules; against
   ``run_diff(..., threads=1)`` (skip with --skip-mlxtend).

Every peer's explanations are compared with ours (same attribute sets, same counts); for
DuckDB, our rules over its counts must give our explanations, and each of ours must be an
itemset it counted, with the same counts.

Example (a small, quick run, about a minute)::

    python -m benchmarks.bench_explain --rows 200000 --big-rows 400000 --huge-rows 1000000 --repeats 1
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import time
from itertools import combinations
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from benchmarks.common import (
    format_table, json_line, machine_info, median_of, peak_rss_mb, ratio, run_process,
)

METRIC = "power_drain"
MIN_SUPPORT = 0.01
MIN_RATIO = 3.0
MAX_ORDER = 3
#: The issue's classifier: MAD, outlier iff (x - median) / (1.4826 * MAD) >= 3.5 (tail high).
MAD_CUTOFF = 3.5
#: operators/mad.py's constants, repeated so the DuckDB peer never imports our package
#: (checked against operators.mad when the benchmark runs).
MAD_NORMAL = 1.4826
MEANAD_NORMAL = 1.253314
DUCKDB_THREADS = 2
RSS_GOAL_MB = 3 * 1024
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = Path(os.environ.get("MACROBASE_BENCH_CACHE", "/tmp/macrobase-bench-cache"))
COLUMNS = ["case", "seconds", "events/s", "peak MB", "ratio vs peer", "ratio RSS", "peer", "goal", "met?"]


# --------------------------------------------------------------------------- data

def write_planted_parquet(path: Path, rows: int, seed: int, slice_rows: int = 10_000_000,
                          row_group_rows: int = 1_000_000) -> None:
    """``rows`` planted events written slice by slice (``planted_table`` on ``slice_rows``
    rows, seed ``seed * 1000 + i`` for slice ``i``) through one ParquetWriter: row groups
    of ``row_group_rows``, dictionary-encoded attributes, memory bounded by one slice."""
    import pyarrow.parquet as pq

    from macrobase.synthetic import planted_table

    tmp = path.with_suffix(".parquet.tmp")
    writer = None
    try:
        for i, start in enumerate(range(0, rows, slice_rows)):
            table, _ = planted_table(min(slice_rows, rows - start), seed=seed * 1000 + i)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema)
            writer.write_table(table, row_group_size=row_group_rows)
            del table
    finally:
        if writer is not None:
            writer.close()
    tmp.replace(path)  # only a complete file gets the real name


def prepare_big(rows: int, seed: int, cache_dir: Path) -> dict[str, Any]:
    """Write (or reuse) a big sliced planted Parquet file; return its path and facts."""
    import pyarrow.parquet as pq

    cache_dir.mkdir(parents=True, exist_ok=True)
    path = cache_dir / f"planted-{rows}-seed{seed}-sliced.parquet"
    reused = path.exists()
    t0 = time.perf_counter()
    if not reused:
        write_planted_parquet(path, rows, seed)
    meta = pq.ParquetFile(path).metadata
    return {"rows": rows, "parquet": str(path), "reused_cache": reused, "row_groups": meta.num_row_groups,
            "parquet_mb": round(path.stat().st_size / 2**20, 1),
            "prepare_seconds": round(time.perf_counter() - t0, 2)}


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


def mad_outliers(x: np.ndarray) -> tuple[np.ndarray, float]:
    """operators/mad.py's rule in plain NumPy: (outlier flags, threshold in metric units).

    scale = 1.4826 * median |x - median|, or 1.253314 * mean |x - median| when that is 0;
    outlier iff (x - median) / scale >= 3.5 (tail high); with scale 0 too, iff x > median.
    """
    med = float(np.median(x))
    dev = np.abs(x - med)
    mad = float(np.median(dev))
    scale = MAD_NORMAL * mad if mad > 0 else MEANAD_NORMAL * float(dev.mean())
    if scale > 0:
        return (x - med) / scale >= MAD_CUTOFF, med + MAD_CUTOFF * scale
    return x > med, med


def pandas_reference(path: str, metric: str, attributes: Sequence[str], reference: str) -> dict[str, Any]:
    """The peer: pandas reads, NumPy classifies (MAD), ``tests.reference.reference_explain``
    explains; returns a result document like ``macrobase explain --format json``."""
    import pandas as pd

    from tests.reference import reference_explain

    df = pd.read_parquet(path, columns=[metric, *attributes])
    df = df[np.isfinite(df[metric].to_numpy(dtype=np.float64))]  # as our readers drop them
    outlier, high = mad_outliers(df[metric].to_numpy(dtype=np.float64))
    df["outlier"] = outlier
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


# --------------------------------------------------------------------------- DuckDB (peer, subprocess)

def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def duckdb_reference(path: str, metric: str, attributes: Sequence[str], threads: int) -> dict[str, Any]:
    """The peer: DuckDB classifies (MAD) and counts the DIFF's itemsets on the Parquet file.

    Four statements on one connection, each a scan of the file: the median; the MAD (and
    the mean absolute deviation, operators/mad.py's fallback when the MAD is 0); the
    outlier and row counts of every single value (GROUPING SETS ``()`` and each attribute);
    then one pruned GROUPING SETS query over every 1-, 2- and 3-attribute combination, with
    values whose own outlier support is below min_support replaced by NULL first (Apriori's
    first prune; exact, as in :func:`drop_infrequent_values`) and only itemsets of support
    >= min_support kept. Returns those counts; the rules are applied by the caller.
    """
    import duckdb

    t_start = time.perf_counter()
    con = duckdb.connect()
    con.execute(f"SET threads = {int(threads)}")
    src = f"read_parquet({_literal(path)})"
    x = _ident(metric)
    keep = f"isfinite({x})"          # our readers drop rows whose metric is missing or infinite
    timings: dict[str, float] = {}

    def query(name: str, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        t0 = time.perf_counter()
        rows = con.execute(sql, list(params)).fetchall()
        timings[name] = time.perf_counter() - t0
        return rows

    ((med,),) = query("median", f"SELECT median({x}) FROM {src} WHERE {keep}")
    ((mad, meanad),) = query("mad", f"SELECT median(abs({x} - ?)), avg(abs({x} - ?)) FROM {src} WHERE {keep}",
                             [med, med])
    # operators.mad: scale = 1.4826 * MAD, or 1.253314 * mean |x - median| when the MAD is 0;
    # signed score s = (x - median) / scale (+inf / -inf / 0 by the sign of x - median when
    # the scale is 0 too); tail high: outlier iff s >= 3.5. Bound as DOUBLE parameters.
    scale = MAD_NORMAL * mad if mad > 0 else MEANAD_NORMAL * meanad
    if scale > 0:
        outlier, oparams = f"(({x} - ?) / ? >= ?)", [med, scale, MAD_CUTOFF]
    else:
        outlier, oparams = f"({x} > ?)", [med]

    def grouping_query(name: str, attrs: Sequence[str], select: str, sets: str, having: str = "",
                params: Sequence[Any] = ()) -> list[tuple]:
        """Per grouping set: GROUPING() flags, the attributes, outliers and rows."""
        flags = ", ".join(f"GROUPING({_ident(a)})" for a in attrs)
        cols = ", ".join(_ident(a) for a in attrs)
        return query(name, f"SELECT {flags}, {cols}, sum(o), count(*) FROM "
                           f"(SELECT {select}, CAST({outlier} AS INTEGER) AS o FROM {src} WHERE {keep}) "
                           f"GROUP BY GROUPING SETS ({sets}){having}", [*oparams, *params])

    singles = grouping_query("singles", attributes, ", ".join(_ident(a) for a in attributes),
                      "(), " + ", ".join(f"({_ident(a)})" for a in attributes))
    k = len(attributes)
    ((O, N),) = [(int(r[-2]), int(r[-1])) for r in singles if all(r[:k])]
    frequent: dict[str, list[str]] = {a: [] for a in attributes}
    for r in singles:
        grouped = [j for j in range(k) if not r[j]]
        if len(grouped) == 1 and r[k + grouped[0]] is not None and O and int(r[-2]) / O >= MIN_SUPPORT:
            frequent[attributes[grouped[0]]].append(r[k + grouped[0]])
    live = [a for a in attributes if frequent[a]]

    counts: list[tuple[dict[str, str], int, int]] = []
    if live and O:
        pruned = ", ".join(f"CASE WHEN {_ident(a)} IN ({', '.join(_literal(v) for v in sorted(frequent[a]))}) "
                           f"THEN {_ident(a)} END AS {_ident(a)}" for a in live)
        sets = ", ".join("(" + ", ".join(_ident(a) for a in combo) + ")"
                         for order in range(1, MAX_ORDER + 1) for combo in combinations(live, order))
        present = " AND ".join(f"(GROUPING({_ident(a)}) = 1 OR {_ident(a)} IS NOT NULL)" for a in live)
        rows = grouping_query("grouping_sets", live, pruned, sets,
                       f" HAVING {present} AND CAST(sum(o) AS DOUBLE) / ? >= ?", [O, MIN_SUPPORT])
        m = len(live)
        for r in rows:
            items = {live[j]: r[m + j] for j in range(m) if not r[j]}
            counts.append((items, int(r[-2]), int(r[-1])))
    return {
        "total": N, "outliers": O, "median": med, "mad": mad, "scale": scale,
        "thresholds": {metric: {"high": med + MAD_CUTOFF * scale}},
        "frequent_values": {a: len(v) for a, v in frequent.items()},
        "counts": [{"attributes": items, "outlier_count": o, "count": n} for items, o, n in counts],
        "timings": timings, "seconds_in_script": time.perf_counter() - t_start,
        "threads": int(threads), "duckdb": duckdb.__version__,
    }


def rules_from_counts(doc: dict[str, Any], attributes: Sequence[str]) -> list[tuple]:
    """Our rules (``explain.rules.apply_rules``, refined, risk ratio) over the peer's counts,
    as (attribute items, outlier count, count) like :func:`signature_of_doc`."""
    from explain.metrics import risk_ratio
    from explain.rules import apply_rules

    pos = {a: j for j, a in enumerate(attributes)}
    counts = {tuple(sorted((pos[a], v) for a, v in c["attributes"].items())): (c["outlier_count"], c["count"])
              for c in doc["counts"]}
    found = apply_rules(counts, doc["outliers"], doc["total"], min_support=MIN_SUPPORT, min_ratio=MIN_RATIO,
                        ratio=risk_ratio, max_order=MAX_ORDER, mode="refined",
                        item_key=lambda it: (it[0], str(it[1])))
    return [(tuple((attributes[j], str(v)) for j, v in f.itemset), int(f.outliers), int(f.rows)) for f in found]


def counted_by_peer(ours: list[tuple], doc: dict[str, Any]) -> bool:
    """Every explanation of ours is an itemset the peer counted, with the same two counts."""
    peer = {(tuple(sorted((a, str(v)) for a, v in c["attributes"].items())), c["outlier_count"], c["count"])
            for c in doc["counts"]}
    return all((tuple(sorted(items)), o, n) in peer for items, o, n in ours)


# --------------------------------------------------------------------------- mlxtend FP-growth (peer, in process)

def mlxtend_explain(df, x: np.ndarray, attributes: Sequence[str]) -> list[tuple]:
    """NumPy's MAD rule (:func:`mad_outliers`), FP-growth over the outliers' one-hot items,
    exact counts of those itemsets over all rows, then our rules.

    ``df`` holds the attributes as pandas categoricals (pandas' encoded form, the
    counterpart of our Arrow dictionary codes).
    """
    import pandas as pd
    from mlxtend.frequent_patterns import fpgrowth

    from explain.metrics import risk_ratio
    from explain.rules import apply_rules

    outlier, _ = mad_outliers(x)
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


# --------------------------------------------------------------------------- agreement

def signature_of_doc(doc: dict[str, Any]) -> list[tuple]:
    """(attribute items, outlier count, count) per explanation, in reported order."""
    return [(tuple((k, str(v)) for k, v in e["attributes"].items()), int(e["outlier_count"]), int(e["count"]))
            for e in doc["explanations"]]


def same(a: list[tuple], b: list[tuple]) -> bool:
    """Same explanations: identical attribute sets and counts (attribute order ignored)."""
    def norm(sig):
        return [(tuple(sorted(items)), o, n) for items, o, n in sig]
    return norm(a) == norm(b)




def planted_found(doc: dict[str, Any]) -> bool:
    """Every planted cause (``macrobase.synthetic.PLANTED``) is among the explanations."""
    from macrobase.synthetic import PLANTED

    found = {frozenset((k, str(v)) for k, v in e["attributes"].items()) for e in doc["explanations"]}
    return all(frozenset(c.items.items()) in found for c in PLANTED)


def check_mad_constants() -> None:
    """The DuckDB and NumPy peers repeat operators/mad.py's rule: fail if it has changed."""
    from macrobase.diff import DiffRequest, build_classifier
    from operators import mad

    clf = build_classifier(DiffRequest(metrics=(METRIC,), attributes=("a",), classifier="mad",
                                       score_cutoff=MAD_CUTOFF))
    found = (mad.MAD_NORMAL, mad.MEANAD_NORMAL, clf.cutoff, clf.tail)
    if found != (MAD_NORMAL, MEANAD_NORMAL, {"score": MAD_CUTOFF}, "high"):
        raise RuntimeError(f"operators.mad changed: (MAD_NORMAL, MEANAD_NORMAL, cutoff, tail) = {found}; "
                           "update the peers' copy of the rule in benchmarks/bench_explain.py")


# --------------------------------------------------------------------------- runner

def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("NUMBA_CACHE_DIR", str(ROOT / ".numba_cache"))
    # Run from the project root with it on the path, like `python -m benchmarks`.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


def _macrobase_cmd(path: str, attributes: Sequence[str], threads: int, read: str = "auto") -> list[str]:
    script = Path(sys.executable).with_name("macrobase")
    head = [str(script)] if script.exists() else [sys.executable, "-m", "macrobase.cli"]
    # --score-cutoff is explicit: without it `--classifier mad` cuts at the 99th percentile of the scores.
    return head + ["explain", path, "--metric", METRIC, "--attributes", ",".join(attributes),
                   "--classifier", "mad", "--score-cutoff", str(MAD_CUTOFF), "--min-support", str(MIN_SUPPORT),
                   "--min-ratio", str(MIN_RATIO), "--max-order", str(MAX_ORDER), "--mode", "refined",
                   "--threads", str(threads), "--read", read, "--format", "json"]


def _peer_cmd(mode: str, path: str, attributes: Sequence[str], *extra: str) -> list[str]:
    return [sys.executable, "-m", "benchmarks.bench_explain", mode, path, "--attributes", ",".join(attributes),
            *extra]


def _check(run, what: str) -> dict[str, Any]:
    if run.returncode != 0:
        raise RuntimeError(f"{what} exited with {run.returncode}: {run.stderr.strip()[-2000:]}")
    return json.loads(run.stdout)


def _row(case, seconds, events, peak_mb=None, peer_seconds=None, peer_mb=None, peer=None, goal=None,
         met=None) -> dict[str, Any]:
    return {"case": case, "seconds": seconds, "events/s": events / seconds if seconds else None,
            "peak MB": peak_mb, "ratio vs peer": ratio(peer_seconds, seconds) if peer_seconds else None,
            "ratio RSS": peak_mb / peer_mb if peak_mb and peer_mb else None,
            "peer": peer, "goal": goal, "met?": met}


def _timed(cmd: list[str], repeats: int, what: str, env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run ``cmd`` ``repeats`` times: median seconds and median peak RSS, every run, last document."""
    runs = []
    for _ in range(repeats):
        runs.append(run_process(cmd, env=env, cwd=str(ROOT), timeout=timeout))
        doc = _check(runs[-1], what)
    out = {"seconds": statistics.median(r.seconds for r in runs),
           "peak_rss_mb": statistics.median(r.peak_rss_mb for r in runs),
           "runs": [{"seconds": r.seconds, "peak_rss_mb": r.peak_rss_mb} for r in runs], "doc": doc}
    print(f"{what}: median {out['seconds']:.2f} s, {out['peak_rss_mb']:.0f} MB of "
          f"{[(round(r.seconds, 2), round(r.peak_rss_mb)) for r in runs]}", flush=True)
    return out


def _label(rows: int) -> str:
    return f"{rows / 1e6:g}M" if rows >= 1e6 else f"{rows / 1e3:g}k"


def _vs_duckdb(ours: dict[str, Any], duck: dict[str, Any], attributes: Sequence[str]) -> dict[str, bool]:
    a, d = ours["doc"], duck["doc"]
    ours_sig = signature_of_doc(a)
    high_a, high_d = a["thresholds"][METRIC]["high"], d["thresholds"][METRIC]["high"]
    return {"totals": a["total"] == d["total"] and a["outliers"] == d["outliers"],
            "threshold": abs(high_a - high_d) <= 1e-9 * max(1.0, abs(high_d)),
            "rules_over_peer_counts": same(ours_sig, rules_from_counts(d, attributes)),
            "counted_by_peer": counted_by_peer(ours_sig, d)}


def run_benchmark(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    check_mad_constants()
    from macrobase.synthetic import ATTRIBUTES

    attributes = list(ATTRIBUTES)
    cache = Path(args.cache_dir)
    env = _env()
    t, timeout, R = args.threads, args.timeout, args.repeats
    notes = [f"machine shared with other work during the run; load average at start "
             f"{', '.join(f'{v:.2f}' for v in os.getloadavg())}; medians of {R} runs"]
    rows: list[dict[str, Any]] = []
    goals: list[dict[str, Any]] = []
    agreement: dict[str, Any] = {}
    timings: dict[str, Any] = {}

    def goal(text: str, value: float, target: float, met: bool) -> bool:
        goals.append({"goal": text, "value": value, "target": target, "met": met})
        return met

    small = prepare_big(args.rows, args.seed, cache)
    big = prepare_big(args.big_rows, args.seed, cache)
    data = {"attributes": attributes, "cardinalities": {a: len(v) for a, v in ATTRIBUTES.items()},
            "small": small, "big": big}
    for d in (small, big):
        print(f"data: {d['rows']:,} events x {len(attributes)} attributes; "
              f"{'reused' if d['reused_cache'] else 'wrote'} {d['parquet']} ({d['parquet_mb']} MB, "
              f"{d['row_groups']} row groups)", flush=True)

    # ---- 1./2. whole process vs DuckDB (both sizes) and pandas (small)
    per_size: dict[str, dict[str, Any]] = {}
    for name, d in (("small", small), ("big", big)):
        N, label, path = d["rows"], _label(d["rows"]), d["parquet"]
        warm = run_process(_macrobase_cmd(path, attributes, t), env=env, cwd=str(ROOT), timeout=timeout)
        _check(warm, "macrobase explain (warm-up)")
        notes.append(f"{label}: one untimed `macrobase explain` run first ({warm.seconds:.2f} s) warmed the "
                     f"Numba cache and the OS file cache for ours and the peers")
        ours = _timed(_macrobase_cmd(path, attributes, t), R, f"macrobase explain {label} --threads {t}", env,
                      timeout)
        duck = _timed(_peer_cmd("--duckdb-reference", path, attributes, "--duckdb-threads", str(DUCKDB_THREADS)),
                      R, f"duckdb {label} ({DUCKDB_THREADS} threads)", env, timeout)
        agreement[f"duckdb_{label}"] = _vs_duckdb(ours, duck, attributes)
        per_size[name] = {"ours": ours, "duck": duck}
        speed, mem = ratio(duck["seconds"], ours["seconds"]), ours["peak_rss_mb"] / duck["peak_rss_mb"]
        if name == "big":
            met_t = goal(f"macrobase explain >= 5x faster than DuckDB at {label} (whole process)", speed, 5.0,
                         speed >= 5)
            met_m = goal(f"macrobase explain peak RSS <= 0.5x DuckDB's at {label}", mem, 0.5, mem <= 0.5)
            g, met = ">= 5x, RSS <= 0.5x", met_t and met_m
        else:
            g = met = None
        rows.append(_row(f"macrobase explain {label} (process)", ours["seconds"], N, ours["peak_rss_mb"],
                         duck["seconds"], duck["peak_rss_mb"], f"DuckDB {label}", g, met))
        rows.append(_row(f"DuckDB GROUPING SETS {label} (process)", duck["seconds"], N, duck["peak_rss_mb"]))
        timings[f"duckdb_{label}_statements"] = duck["doc"]["timings"]
        if name == "small":
            pd_ref = _timed(_peer_cmd("--pandas-reference", path, attributes, "--reference", args.reference),
                            R, f"pandas reference {label} ({args.reference})", env, args.reference_timeout)
            sp = ratio(pd_ref["seconds"], ours["seconds"])
            met = goal(f"macrobase explain >= 10x faster than the pandas reference at {label} (whole process)",
                       sp, 10.0, sp >= 10)
            rows.append(_row(f"macrobase explain {label} (process)", ours["seconds"], N, ours["peak_rss_mb"],
                             pd_ref["seconds"], pd_ref["peak_rss_mb"], f"pandas {args.reference} {label}",
                             ">= 10x", met))
            rows.append(_row(f"pandas reference, {args.reference} {label} (process)", pd_ref["seconds"], N,
                             pd_ref["peak_rss_mb"]))
            a, b = ours["doc"], pd_ref["doc"]
            agreement[f"pandas_{label}"] = (same(signature_of_doc(a), signature_of_doc(b))
                                            and (a["total"], a["outliers"]) == (b["total"], b["outliers"]))
            per_size[name]["pandas"] = pd_ref
            if args.reference == "pruned":
                notes.append("pandas reference: values whose own outlier support is < min_support are set to "
                             "missing before tests.reference.reference_explain (exact: no infrequent itemset "
                             "can be reported or matter to the rules); --reference full runs it unpruned")

    # ---- 1b. 20M streamed, and 4. thread scaling (whole process, big file)
    N, label, path = big["rows"], _label(big["rows"]), big["parquet"]
    duck = per_size["big"]["duck"]
    stream = _timed(_macrobase_cmd(path, attributes, t, read="stream"), R,
                    f"macrobase explain {label} --threads {t} --read stream", env, timeout)
    rows.append(_row(f"macrobase explain {label} --read stream (process)", stream["seconds"], N,
                     stream["peak_rss_mb"], duck["seconds"], duck["peak_rss_mb"], f"DuckDB {label}"))
    agreement[f"stream_vs_whole_{label}"] = same(signature_of_doc(stream["doc"]),
                                                 signature_of_doc(per_size["big"]["ours"]["doc"]))
    one = _timed(_macrobase_cmd(path, attributes, 1), R, f"macrobase explain {label} --threads 1", env, timeout)
    ours_big = per_size["big"]["ours"]
    scale = ratio(one["seconds"], ours_big["seconds"])
    met = goal(f"rows/s --threads {t} over --threads 1 >= 1.7x at {label} (whole process)", scale, 1.7,
               scale >= 1.7)
    rows.append(_row(f"macrobase explain {label} --threads {t} (process)", ours_big["seconds"], N,
                     ours_big["peak_rss_mb"], one["seconds"], one["peak_rss_mb"], f"ours --threads 1 {label}",
                     ">= 1.7x", met))
    rows.append(_row(f"macrobase explain {label} --threads 1 (process)", one["seconds"], N, one["peak_rss_mb"]))
    agreement[f"threads_1_vs_{t}_{label}"] = same(signature_of_doc(one["doc"]), signature_of_doc(ours_big["doc"]))

    # ---- 3. huge, streamed
    huge = None
    if args.skip_huge:
        notes.append("huge case skipped (--skip-huge)")
    else:
        target = cache / f"planted-{args.huge_rows}-seed{args.seed}-sliced.parquet"
        need_mb = big["parquet_mb"] / big["rows"] * args.huge_rows * 1.1 + 1024
        free_mb = shutil.disk_usage(cache).free / 2**20
        if not target.exists() and free_mb < need_mb:
            notes.append(f"huge case ({args.huge_rows:,} rows) skipped: needs ~{need_mb:,.0f} MB of disk in "
                         f"{cache}, {free_mb:,.0f} MB free; give a smaller --huge-rows")
        else:
            huge = prepare_big(args.huge_rows, args.seed, cache)
            hl = _label(huge["rows"])
            print(f"data: {huge['rows']:,} events; {'reused' if huge['reused_cache'] else 'wrote'} "
                  f"{huge['parquet']} ({huge['parquet_mb']} MB, {huge['row_groups']} row groups, "
                  f"{huge['prepare_seconds']} s)", flush=True)
            data["huge"] = huge
            run = _timed(_macrobase_cmd(huge["parquet"], attributes, t, read="stream"), args.huge_repeats,
                         f"macrobase explain {hl} --threads {t} --read stream", env, args.huge_timeout)
            met = goal(f"macrobase explain --read stream peak RSS < {RSS_GOAL_MB} MB at {hl}", run["peak_rss_mb"],
                       RSS_GOAL_MB, run["peak_rss_mb"] < RSS_GOAL_MB)
            rows.append(_row(f"macrobase explain {hl} --read stream (process)", run["seconds"], huge["rows"],
                             run["peak_rss_mb"], goal=f"RSS < {RSS_GOAL_MB} MB", met=met))
            doc = run["doc"]
            agreement[f"stream_{hl}"] = {"total": doc["total"] == huge["rows"], "planted_found": planted_found(doc)}
            huge = {**run, "data": huge}

    # ---- 4a. in process, the big file: read + classify + explain by thread count (rows/s of
    # the work itself; the whole-process figures above also hold ~0.5 s of one-threaded start-up)
    import pyarrow as pa

    from connectors.files import read_file
    from macrobase.diff import DiffRequest, run_diff

    req = DiffRequest(metrics=(METRIC,), attributes=tuple(attributes), classifier="mad", score_cutoff=MAD_CUTOFF,
                      explainer=dict(min_support=MIN_SUPPORT, min_ratio=MIN_RATIO, max_order=MAX_ORDER,
                                     mode="refined"))

    def read_and_explain(threads: int) -> dict[str, Any]:
        pa.set_cpu_count(threads)  # as `macrobase explain --threads` does
        data = read_file(big["parquet"], (METRIC,), attributes)
        return run_diff(data.table, req, dropped=data.dropped, threads=threads)

    t_read1, read1_times, doc_read1 = median_of(lambda: read_and_explain(1), R, warmup=1)
    t_readn, readn_times, doc_readn = median_of(lambda: read_and_explain(t), R, warmup=1)
    pa.set_cpu_count(os.cpu_count() or 1)
    scale_in = ratio(t_read1, t_readn)
    met = goal(f"rows/s threads={t} over threads=1 >= 1.7x at {label} (in process: read + classify + explain)",
               scale_in, 1.7, scale_in >= 1.7)
    rows.append(_row(f"read+run_diff {label} threads={t} (in process)", t_readn, N, peer_seconds=t_read1,
                     peer=f"read+run_diff threads=1 {label}", goal=">= 1.7x", met=met))
    rows.append(_row(f"read+run_diff {label} threads=1 (in process)", t_read1, N))
    timings.update(read_run_diff_threads_1=read1_times, read_run_diff_threads_n=readn_times)
    agreement[f"in_process_threads_{label}"] = (same(signature_of_doc(doc_read1), signature_of_doc(doc_readn))
                                               and same(signature_of_doc(doc_read1), signature_of_doc(ours_big["doc"])))

    # ---- 4b./5. in process, the small table in memory
    import pyarrow.parquet as pq

    N, label = small["rows"], _label(small["rows"])
    # Read as `macrobase explain` does (chunks of its CHUNK_ROWS, not Parquet's 128k-row batches).
    table = read_file(small["parquet"], (METRIC,), attributes).table
    t_one, one_times, doc_one = median_of(lambda: run_diff(table, req, threads=1), R, warmup=1)
    t_two, two_times, doc_two = median_of(lambda: run_diff(table, req, threads=t), R, warmup=1)
    rows.append(_row(f"run_diff {label} threads={t} (in process)", t_two, N, peer_seconds=t_one,
                     peer=f"run_diff threads=1 {label}"))
    rows.append(_row(f"run_diff {label} threads=1 (in process)", t_one, N))
    timings.update(run_diff_threads_1=one_times, run_diff_threads_n=two_times)
    ours_sig = signature_of_doc(doc_one)
    agreement[f"in_process_vs_cli_{label}"] = (same(ours_sig, signature_of_doc(doc_two))
                                               and same(ours_sig, signature_of_doc(per_size["small"]["ours"]["doc"])))
    if args.skip_mlxtend:
        notes.append("mlxtend case skipped (--skip-mlxtend)")
    else:
        df = table.to_pandas()                      # categoricals: pandas' dictionary codes
        x_pd = df[METRIC].to_numpy(dtype=np.float64)
        t_mlx, mlx_times, mlx_found = median_of(lambda: mlxtend_explain(df, x_pd, attributes), R, warmup=0)
        rows[-1] = _row(f"run_diff {label} threads=1 (in process)", t_one, N, peer_seconds=t_mlx,
                        peer=f"mlxtend FP-growth {label}")
        rows.append(_row(f"mlxtend FP-growth + pandas counts {label} (in process)", t_mlx, N))
        timings["mlxtend"] = mlx_times
        agreement[f"mlxtend_{label}"] = same(ours_sig, mlx_found)
        del df
    notes.append(f"in-process cases: {label} table read first (connectors.files.read_file, not timed), one "
                 f"untimed warm-up of run_diff" + ("" if args.skip_mlxtend else
                                   " (mlxtend: none); run_diff threads=1 vs mlxtend is one thread each"))
    del table

    # ---- report
    small_doc = per_size["small"]["ours"]["doc"]
    planted_rate = float(np.asarray(pq.read_table(small["parquet"], columns=["anomalous"])
                                    .column("anomalous").to_numpy()).mean())
    outlier_rate = small_doc["outliers"] / small_doc["total"]
    print()
    print(format_table(rows, COLUMNS))
    print("explanations agree: " + "; ".join(
        f"{k}: {v if isinstance(v, bool) else ', '.join(f'{kk} {vv}' for kk, vv in v.items())}"
        for k, v in agreement.items()).replace("True", "yes").replace("False", "NO")
        + f" ({len(signature_of_doc(small_doc))} explanations at {label})")
    for size in ("small", "big"):
        d = per_size[size]["duck"]["doc"]
        print(f"DuckDB {_label(data[size]['rows'])} statements: "
              + ", ".join(f"{k} {v:.2f} s" for k, v in d["timings"].items())
              + f"; {len(d['counts'])} itemsets counted; frequent values {d['frequent_values']}")
    print(f"outliers at {label}: {small_doc['outliers']:,} of {small_doc['total']:,} ({outlier_rate:.2%}, MAD "
          f"score >= {MAD_CUTOFF:g}, threshold {small_doc['thresholds'][METRIC]['high']:.3f}); planted anomalous "
          f"rate {planted_rate:.2%}")
    print("goals: " + "; ".join(f"{g['goal']}: {g['value']:.2f} ({'met' if g['met'] else 'NOT met'})"
                                for g in goals))
    for n in notes:
        print(f"note: {n}")

    def brief(r: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if r is None else {k: v for k, v in r.items() if k != "doc"}

    result = {
        "benchmark": "explain",
        "data": {**data, "outlier_rate": outlier_rate, "planted_anomalous_rate": planted_rate},
        "cases": rows,
        "goals": goals,
        "agreement": agreement,
        "explanations": [{"attributes": dict(a), "outlier_count": o, "count": n}
                         for a, o, n in signature_of_doc(small_doc)],
        "runs": {f"{size}_{k}": brief(v) for size, cases in per_size.items() for k, v in cases.items()}
                | {"big_stream": brief(stream), "big_threads_1": brief(one), "huge_stream": brief(huge)},
        "timings": timings,
        "benchmark_process_peak_rss_mb": peak_rss_mb(),
        "threads": t, "duckdb_threads": DUCKDB_THREADS, "reference_mode": args.reference,
        "notes": notes,
        "machine": machine_info(),
        "seconds": time.perf_counter() - started,
    }
    line = json_line(result)
    print(line)
    if args.json_out:
        Path(args.json_out).write_text(line + "\n")
        print(f"wrote {args.json_out}")
    return result


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench_explain", description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=3_000_000, help="the small file: DuckDB, pandas, in process")
    p.add_argument("--big-rows", type=int, default=20_000_000, help="the big file: DuckDB, stream, threads")
    p.add_argument("--huge-rows", type=int, default=200_000_000, help="the --read stream memory case")
    p.add_argument("--skip-huge", action="store_true", help="leave out the huge case")
    p.add_argument("--skip-mlxtend", action="store_true", help="leave out the in-process mlxtend case")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", default=str(DEFAULT_CACHE))
    p.add_argument("--threads", type=int, default=2, help="macrobase explain --threads (DuckDB always uses 2)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs of every case (median reported)")
    p.add_argument("--huge-repeats", type=int, default=1, help="timed runs of the huge case")
    p.add_argument("--reference", choices=["pruned", "full"], default="pruned",
                   help="pruned: infrequent values set missing first (exact); full: plain brute force")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per process (small and big files)")
    p.add_argument("--reference-timeout", type=float, default=900.0)
    p.add_argument("--huge-timeout", type=float, default=3600.0)
    p.add_argument("--json-out", metavar="FILE", help="also write the JSON line to FILE")
    # Peer modes: this module is also the standalone pandas and DuckDB scripts.
    p.add_argument("--pandas-reference", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--duckdb-reference", metavar="FILE", help=argparse.SUPPRESS)
    p.add_argument("--duckdb-threads", type=int, default=DUCKDB_THREADS, help=argparse.SUPPRESS)
    p.add_argument("--attributes", help=argparse.SUPPRESS)
    return p


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = _parser()
    args = parser.parse_args(argv)
    if min(args.repeats, args.huge_repeats, args.threads) < 1:
        parser.error("--repeats, --huge-repeats and --threads must be at least 1")
    if args.pandas_reference:
        doc = pandas_reference(args.pandas_reference, METRIC, args.attributes.split(","), args.reference)
    elif args.duckdb_reference:
        doc = duckdb_reference(args.duckdb_reference, METRIC, args.attributes.split(","), args.duckdb_threads)
    else:
        return run_benchmark(args)
    print(json_line(doc))
    return doc


if __name__ == "__main__":
    main()
