"""`macrobase explain` as a user runs it: a real subprocess on real files."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from scipy.stats import fisher_exact

from macrobase.synthetic import planted_table
from tests.reference import reference_explain

ATTRS = ["region", "firmware", "device_model", "carrier", "device_id"]


def macrobase(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "macrobase.cli", *args], capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=300)


@pytest.fixture(scope="module")
def telemetry(tmp_path_factory):
    table, causes = planted_table(200_000, seed=7)
    d = tmp_path_factory.mktemp("data")
    pq.write_table(table, d / "t.parquet")
    pacsv.write_csv(table, d / "t.csv")
    return d, table, causes


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_json_document_matches_reference(telemetry, fmt):
    d, table, _ = telemetry
    r = macrobase("explain", str(d / f"t.{fmt}"), "--metric", "power_drain", "--attributes", ",".join(ATTRS),
                  "--classifier", "predicate", "--predicate", ">= 150", "--format", "json", "--mode", "minimal")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    df = table.select(ATTRS + ["power_drain"]).to_pandas().astype({a: object for a in ATTRS})
    df["outlier"] = df["power_drain"] >= 150
    want = reference_explain(df, ATTRS, mode="minimal")
    assert doc["total"] == len(df) and doc["outliers"] == int(df["outlier"].sum()) and doc["dropped"] == 0
    assert [e["attributes"] for e in doc["explanations"]] == [w["attributes"] for w in want]
    assert [(e["outlier_count"], e["count"]) for e in doc["explanations"]] == [
        (w["outlier_count"], w["count"]) for w in want]
    assert doc["thresholds"] == {"power_drain": {">=": 150.0}}


def test_table_output_names_planted_causes(telemetry):
    d, _, causes = telemetry
    r = macrobase("explain", str(d / "t.parquet"), "--metric", "power_drain", "--attributes", ",".join(ATTRS),
                  "--classifier", "mad", "--score-cutoff", "4")
    assert r.returncode == 0, r.stderr
    for cause in causes:
        assert " and ".join(f"{k}={v}" for k, v in sorted(cause.items(), key=lambda kv: ATTRS.index(kv[0]))) in r.stdout


def test_mcd_takes_several_metrics(tmp_path):
    rng = np.random.default_rng(0)
    n = 20_000
    host = rng.integers(0, 20, n)
    X = rng.multivariate_normal([0, 0], [[1, 0.9], [0.9, 1]], n)
    bad = host == 3
    X[bad] = X[bad] * [1, -1] + [0, 0]  # breaks the correlation, not the marginals
    pq.write_table(pa.table({"cpu": X[:, 0], "mem": X[:, 1], "host": [f"h{h}" for h in host]}), tmp_path / "m.parquet")
    r = macrobase("explain", str(tmp_path / "m.parquet"), "--metric", "cpu,mem", "--attributes", "host",
                  "--classifier", "mcd", "--percentile", "97", "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["explanations"][0]["attributes"] == {"host": "h3"}


def test_dropped_rows_are_counted(tmp_path):
    (tmp_path / "d.csv").write_text("m,a\n1,x\n,x\nabc,y\ninf,y\n2,y\n")
    r = macrobase("explain", str(tmp_path / "d.csv"), "--metric", "m", "--attributes", "a", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["total"], doc["dropped"]) == (2, 3)


@pytest.mark.parametrize("args, words", [
    (["--metric", "nope", "--attributes", "region"], "nope"),
    (["--metric", "power_drain", "--attributes", "regoin"], "regoin"),
    (["--metric", "power_drain", "--attributes", "region", "--min-support", "2"], "min_support"),
    (["--metric", "power_drain", "--attributes", "region", "--classifier", "predicate", "--predicate", "about 3"], "predicate"),
    (["--metric", "power_drain", "--attributes", "region", "--classifier", "mcd"], "mcd"),
    (["--metric", "power_drain", "--attributes", "region", "--percentile", "120"], "percentile"),
    (["--metric", "power_drain", "--attributes", "region", "--max-p-value", "2"], "max_p_value"),
])
def test_bad_usage_is_one_line_and_exit_2(telemetry, args, words):
    d, _, _ = telemetry
    r = macrobase("explain", str(d / "t.parquet"), *args)
    assert r.returncode == 2
    assert words in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_max_p_value_keeps_the_causes_with_their_statistics(telemetry):
    d, table, causes = telemetry
    args = ("explain", str(d / "t.parquet"), "--metric", "power_drain", "--attributes", ",".join(ATTRS),
            "--classifier", "predicate", "--predicate", ">= 150")
    r = macrobase(*args, "--format", "json", "--max-p-value", "0.01")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    N, O = doc["total"], doc["outliers"]
    for cause in causes:
        assert cause in [e["attributes"] for e in doc["explanations"]]
    for e in doc["explanations"]:
        o, n = e["outlier_count"], e["count"]
        p = fisher_exact([[o, n - o], [O - o, N - n - O + o]], alternative="greater").pvalue
        assert e["p_value"] == pytest.approx(p, rel=1e-9) and len(e["ratio_ci"]) == 2
    r = macrobase(*args)
    assert r.returncode == 0, r.stderr
    assert "p-value" in r.stdout and "95% CI" in r.stdout


def test_missing_file_is_a_clean_error(tmp_path):
    r = macrobase("explain", str(tmp_path / "none.csv"), "--metric", "m", "--attributes", "a")
    assert r.returncode == 2 and "Traceback" not in r.stderr and "none.csv" in r.stderr
