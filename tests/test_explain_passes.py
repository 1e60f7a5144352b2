"""Explain pass after pass (bigger than memory) and on several threads: the same answer.

Every path is compared with the brute-force pandas reference on independently computed
outlier labels, so a bug shared by the in-memory and the streamed engine still fails.
"""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.files import FileBatch, FileInput
from macrobase.diff import DiffRequest, run_diff, run_diff_passes
from macrobase.synthetic import planted_table
from operators import MAD, Percentile, Predicate
from operators.selection import order_statistics, percentiles_of_passes
from tests.reference import reference_explain
from tests.test_explain import assert_same, tables

ATTRS = ("region", "firmware", "device_model", "carrier", "app_version", "device_id")


class ListSource:
    """An in-memory stand-in for FileInput: the same batches on every pass."""

    def __init__(self, table: pa.Table, batch_rows: int) -> None:
        self.batches_ = table.to_batches(max_chunksize=batch_rows) or [table.to_batches()]
        self.passes = 0

    def batches(self, columns=None):
        self.passes += 1
        return (FileBatch(b.select(columns) if columns else b, 0) for b in self.batches_)


def as_dicts(doc: dict) -> list[dict]:
    return [{"attributes": e["attributes"], "implies": e["implies"], "outlier_count": e["outlier_count"],
             "count": e["count"], "support": e["support"], "ratio": float(e["risk_ratio"])} for e in doc["explanations"]]


def mad_labels(x: np.ndarray, z: float = 3.5) -> np.ndarray:
    """The MAD rule written out with NumPy's median, independent of operators/."""
    med = np.median(x)
    mad = np.median(np.abs(x - med))
    return (x - med) / (1.4826 * mad) >= z


# --------------------------------------------------------------------- exact selection

@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=300),
       st.integers(1, 9), st.sampled_from([1, 2, 7, 1 << 22]), st.data())
def test_order_statistics_equal_sorting(values, parts, budget, data):
    x = np.array(values)
    ranks = data.draw(st.lists(st.integers(0, len(x) - 1), min_size=1, max_size=4))
    got = order_statistics(lambda: np.array_split(x, parts), ranks, budget=budget)
    assert np.array_equal(got, np.sort(x)[ranks])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=200),
       st.lists(st.floats(0, 100), min_size=1, max_size=3), st.integers(1, 5))
def test_percentiles_equal_numpy_to_the_bit(values, ps, parts):
    x = np.array(values)
    got = percentiles_of_passes(lambda: np.array_split(x, parts), len(x), ps)
    assert np.array_equal(np.array(got), np.percentile(x, ps))


@pytest.mark.parametrize("make", [
    lambda: MAD(), lambda: MAD(cutoff={"percentile": 97.5}, tail="both"),
    lambda: MAD(cutoff={"percentile": 90}, tail="low"), lambda: Percentile(95, tail="both"),
    lambda: Percentile(99.9), lambda: Predicate(">=", 110)])
def test_fit_by_passes_equals_fit_in_memory(make):
    rng = np.random.default_rng(7)
    for trial in range(30):
        x = rng.standard_t(3, size=int(rng.integers(2, 4000))) * 10 + 100
        if trial % 3 == 0:
            x = np.round(x)  # ties
        whole, passes = make().fit(x), make().fit_passes(lambda: np.array_split(x, 6), len(x))
        assert whole.thresholds(["m"]) == passes.thresholds(["m"])
        assert np.array_equal(whole.predict(x), passes.predict(x))


# --------------------------------------------------------------------- the engine

@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.integers(1, 50), st.sampled_from([1, 2]), st.sampled_from(["refined", "minimal"]))
def test_passes_and_threads_match_reference(case, batch_rows, threads, mode):
    df, attributes = case
    df = df.assign(m=np.where(df["outlier"], 100.0, 0.0))
    table = pa.Table.from_pandas(df[["m", *attributes]], preserve_index=False)
    req = DiffRequest(("m",), tuple(attributes), classifier="predicate", predicate=">= 50",
                      explainer={"min_support": 0.1, "min_ratio": 1.5, "mode": mode})
    want = reference_explain(df, attributes, min_support=0.1, min_ratio=1.5, mode=mode)
    streamed = run_diff_passes(ListSource(table, batch_rows), req, threads=threads)
    assert_same(as_dicts(streamed), want)
    assert streamed == run_diff(table, req, threads=threads)


@pytest.fixture(scope="module")
def planted():
    table, _ = planted_table(120_000, seed=11)
    return table


@pytest.mark.parametrize("joint_limit", [None, 0])  # 0: one pass per combination of attributes
def test_streamed_planted_telemetry_matches_reference(planted, monkeypatch, joint_limit):
    import explain.itemsets
    if joint_limit is not None:
        monkeypatch.setattr(explain.itemsets, "JOINT_CELL_LIMIT", joint_limit)
    req = DiffRequest(("power_drain",), ATTRS, classifier="mad", score_cutoff=3.5, explainer={"min_support": 0.01})
    df = planted.select(["power_drain", *ATTRS]).to_pandas().astype({a: object for a in ATTRS})
    df["outlier"] = mad_labels(df["power_drain"].to_numpy())
    want = reference_explain(df, list(ATTRS), min_support=0.01)
    assert want, "the planted causes must be found"
    answers = [run_diff(planted, req, threads=t) for t in (1, 2)]
    answers += [run_diff_passes(ListSource(planted, rows), req, threads=t) for rows in (7_000, 50_000) for t in (1, 2)]
    for doc in answers:
        assert doc == answers[0]
        assert doc["outliers"] == int(df["outlier"].sum())
    assert_same(as_dicts(answers[0]), want)


def test_rows_shared_by_two_longest_itemsets_are_merged_when_streamed():
    """origin is a function of carrier, so carrier=c AND dest=d AND hour=h and
    origin=o(c) AND dest=d AND hour=h can select the same rows: batch merges them, by
    an extra pass over the rows when streamed."""
    rng = np.random.default_rng(3)
    n = 60_000
    carrier = rng.choice(["AA", "BB", "CC", "DD"], n)
    origin = np.array([{"AA": "X", "BB": "Y", "CC": "Z", "DD": "W"}[c] for c in carrier])
    dest = rng.choice(["P", "Q", "R"], n)
    hour = rng.choice(["1", "2", "3"], n)
    hot = (carrier == "AA") & (dest == "P") & (hour == "1")
    m = np.where(hot & (rng.random(n) < 0.6), 100.0, rng.normal(0, 1, n))
    table = pa.table({"m": m, "carrier": carrier, "origin": origin, "dest": dest, "hour": hour})
    attrs = ("carrier", "dest", "hour", "origin")
    req = DiffRequest(("m",), attrs, classifier="predicate", predicate=">= 50",
                      explainer={"min_support": 0.01, "max_order": 3})
    df = table.to_pandas()
    df["outlier"] = df["m"] >= 50
    want = reference_explain(df, list(attrs), min_support=0.01)
    assert any(w["implies"] for w in want)
    streamed = run_diff_passes(ListSource(table, 5_000), req, threads=2)
    assert_same(as_dicts(streamed), want)
    assert streamed == run_diff(table, req)


def test_zscore_keeps_only_the_metric_in_memory_and_agrees(planted):
    req = DiffRequest(("power_drain",), ATTRS[:4], classifier="zscore")
    src = ListSource(planted, 9_000)
    assert run_diff_passes(src, req, threads=2) == run_diff(planted, req)


def test_bigger_than_memory_files_give_the_same_answer_on_the_command_line(tmp_path, planted):
    parquet, csv = tmp_path / "t.parquet", tmp_path / "t.csv"
    pq.write_table(planted, parquet, row_group_size=20_000)
    plain = pa.table({c: planted[c].cast(pa.string()) if pa.types.is_dictionary(planted[c].type) else planted[c]
                      for c in planted.column_names})
    pcsv.write_csv(plain, csv)
    docs = []
    for path in (parquet, csv):
        for read, threads in (("whole", "1"), ("stream", "1"), ("stream", "2")):
            out = subprocess.run(
                [sys.executable, "-m", "macrobase.cli", "explain", str(path), "--metric", "power_drain",
                 "--attributes", ",".join(ATTRS), "--classifier", "mad", "--format", "json",
                 "--read", read, "--threads", threads], capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stderr
            docs.append(json.loads(out.stdout))
    assert all(d == docs[0] for d in docs)
    assert docs[0]["explanations"]


def test_streamed_memory_is_bounded_by_the_batch_not_the_rows(tmp_path):
    """Peak Python and Arrow allocations of a streamed explain stay flat when the file
    grows 8x; read whole, they grow with it."""
    peaks = {}
    for rows in (250_000, 2_000_000):
        path = tmp_path / f"{rows}.parquet"
        pq.write_table(planted_table(rows, seed=2)[0], path, row_group_size=50_000)
        for read in ("stream", "whole"):
            code = (
                "import sys, tracemalloc, pyarrow as pa\n"
                "from connectors.files import FileInput, read_file\n"
                "from macrobase.diff import DiffRequest, run_diff, run_diff_passes\n"
                f"req = DiffRequest(('power_drain',), {ATTRS!r}, classifier='mad')\n"
                "tracemalloc.start()\n"
                f"if {read!r} == 'stream':\n"
                f"    run_diff_passes(FileInput({str(path)!r}, req.metrics, req.attributes, batch_rows=50_000), req)\n"
                "else:\n"
                f"    d = read_file({str(path)!r}, req.metrics, req.attributes)\n"
                "    run_diff(d.table, req)\n"
                "print(tracemalloc.get_traced_memory()[1] + pa.default_memory_pool().max_memory())\n")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
            assert out.returncode == 0, out.stderr
            peaks[(read, rows)] = int(out.stdout.split()[-1])
    assert peaks[("stream", 2_000_000)] < 1.5 * peaks[("stream", 250_000)], peaks
    assert peaks[("whole", 2_000_000)] > 2.5 * peaks[("whole", 250_000)], peaks


def test_each_pass_shows_a_bar_of_rows_on_a_terminal(planted, terminal_stderr):
    req = DiffRequest(("power_drain",), ATTRS[:3], classifier="mad")
    src = ListSource(planted, 9_000)
    with terminal_stderr() as written:
        assert run_diff_passes(src, req) == run_diff(planted, req)
        out = written()
    # every pass the source was read is labelled, and the later ones know the row count
    assert src.passes >= 3
    for k in range(1, src.passes + 1):
        assert f"pass {k}" in out
    assert planted.num_rows == 120_000 and "/120k [" in out


def test_bad_thread_count_is_one_line(tmp_path):
    out = subprocess.run([sys.executable, "-m", "macrobase.cli", "explain", "x.parquet", "--metric", "m",
                          "--attributes", "a", "--threads", "0"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 2
    assert "--threads" in out.stderr and "expected a whole number >= 1" in out.stderr
