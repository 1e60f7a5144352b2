"""File readers against independent references (csv module, json module, pandas)."""

from __future__ import annotations

import csv
import gzip
import json
import math
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from connectors.files import (
    FileReadError,
    MissingColumnError,
    file_format,
    iter_file_batches,
    read_file,
)


def ref_metric(v):
    """Independent reference: a usable metric value or None (Python's float, finite only)."""
    if v is None or isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v) if math.isfinite(v) else None
    s = str(v).strip()
    if not s or "_" in s:
        return None
    try:
        f = float(s)
    except ValueError:
        return None
    return f if math.isfinite(f) else None


METRIC_TEXT = ["1.5", " 2 ", "", "abc", "nan", "inf", "-Infinity", "1e3", "-.5", "1e999", "NULL", "3,5", "+7", "0x10"]


def write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_csv_keeps_attribute_text_and_drops_bad_metrics(tmp_path):
    rows = []
    for i in range(300):
        rows.append([METRIC_TEXT[i % len(METRIC_TEXT)], ["0.40", "0.4", "007", "NA", ""][i % 5], f"M{i % 3}", i])
    p = tmp_path / "d.csv"
    write_csv(p, ["power", "firmware", "model", "ts"], rows)
    d = read_file(p, ["power"], ["firmware", "model"], time="ts")
    # reference with the csv module
    with open(p, newline="") as f:
        recs = list(csv.DictReader(f))
    keep = [r for r in recs if ref_metric(r["power"]) is not None]
    assert d.total_read == 300
    assert d.dropped == 300 - len(keep)
    assert d.table.column_names == ["power", "firmware", "model", "ts"]
    assert d.table.schema.field("power").type == pa.float64()
    assert d.table.column("power").to_pylist() == [ref_metric(r["power"]) for r in keep]
    assert d.table.column("firmware").to_pylist() == [r["firmware"] or None for r in keep]
    assert d.table.column("model").to_pylist() == [r["model"] for r in keep]
    assert d.table.column("ts").to_pylist() == [r["ts"] for r in keep]
    assert {"0.40", "0.4", "007", "NA"} <= set(d.table.column("firmware").to_pylist())


def test_csv_bad_value_late_in_a_large_file_loses_nothing(tmp_path):
    # Far past Arrow's first block (type inference) a bad metric must only drop its row.
    n = 400_000
    rng = np.random.default_rng(0)
    vals = rng.normal(size=n).round(6)
    p = tmp_path / "big.csv"
    with open(p, "w") as f:
        f.write("m,a\n")
        for i, v in enumerate(vals):
            f.write(f"{'oops' if i == n - 3 else v},{i % 10}\n")
    assert os.path.getsize(p) > 3 * (1 << 20)
    d = read_file(p, ["m"], ["a"])
    assert d.dropped == 1 and d.total_read == n
    expected = np.delete(vals, n - 3)
    np.testing.assert_array_equal(d.table.column("m").to_numpy(), expected)
    assert d.table.column("a").type == pa.string()
    batches = list(iter_file_batches(p, ["m"], ["a"], batch_rows=50_000))
    assert all(b.batch.num_rows <= 50_000 for b in batches)
    assert sum(b.dropped for b in batches) == 1
    np.testing.assert_array_equal(np.concatenate([b.batch.column("m").to_numpy() for b in batches]), expected)


def test_jsonl_native_types_mixed_fall_back_to_strings(tmp_path):
    recs = []
    for i in range(200):
        r = {"m": [1.5, "2.5", None, "x", {"z": 1}, 7, True][i % 7], "n": i % 4, "flag": i % 2 == 0,
             "mixed": [1, "0.40", 2.5][i % 3], "other": [1, "junk"][i % 2]}
        if i % 11 == 0:
            del r["n"]
        if i % 13 == 0:
            r.pop("m", None)
        recs.append(r)
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in recs) + "\n\n")
    d = read_file(p, ["m"], ["n", "flag", "mixed"])
    keep = [r for r in recs if ref_metric(r.get("m")) is not None]
    assert d.dropped == len(recs) - len(keep) and d.total_read == len(recs)
    assert d.table.column("m").to_pylist() == [ref_metric(r["m"]) for r in keep]
    assert d.table.schema.field("n").type == pa.int64()
    assert d.table.column("n").to_pylist() == [r.get("n") for r in keep]
    assert d.table.schema.field("flag").type == pa.bool_()
    assert d.table.schema.field("mixed").type == pa.string()
    assert d.table.column("mixed").to_pylist() == [
        v if isinstance(v, str) else json.dumps(v) for v in (r["mixed"] for r in keep)]


@pytest.mark.parametrize("name", ["d.ndjson", "d.json", "d.jsonl.gz"])
def test_json_extensions_and_compression(tmp_path, name):
    p = tmp_path / name
    body = "".join(json.dumps({"m": i, "a": f"v{i}"}) + "\n" for i in range(10)).encode()
    p.write_bytes(gzip.compress(body) if name.endswith(".gz") else body)
    d = read_file(p, ["m"], ["a"])
    assert d.table.column("m").to_pylist() == [float(i) for i in range(10)]
    assert d.table.column("a").to_pylist() == [f"v{i}" for i in range(10)]


@pytest.mark.parametrize("ext", [".parquet", ".pq"])
def test_parquet_native_types_and_drops(tmp_path, ext):
    rng = np.random.default_rng(1)
    n = 5000
    m = rng.normal(size=n)
    m[::17] = np.nan
    m[::29] = np.inf
    df = pd.DataFrame({"m": m, "k": rng.integers(0, 5, n), "s": rng.choice(["a", "b", None], n),
                       "txt": rng.choice(["1", "2.5", "bad", ""], n), "t": pd.date_range("2024", periods=n, freq="s")})
    df.loc[::31, "m"] = None
    p = tmp_path / f"d{ext}"
    df.to_parquet(p)
    d = read_file(p, ["m"], ["k", "s"], time="t")
    ok = np.isfinite(df["m"].to_numpy(dtype=float))
    assert d.dropped == n - ok.sum() and d.total_read == n
    np.testing.assert_array_equal(d.table.column("m").to_numpy(), df["m"].to_numpy(dtype=float)[ok])
    assert d.table.schema.field("k").type == pa.int64()
    assert d.table.column("k").to_pylist() == df["k"][ok].tolist()
    assert d.table.column("s").to_pylist() == [v if isinstance(v, str) else None for v in df["s"][ok]]
    assert pa.types.is_timestamp(d.table.schema.field("t").type)
    # a text metric column is converted value by value
    d2 = read_file(p, ["txt"], [])
    ref = [ref_metric(v) for v in df["txt"]]
    assert d2.table.column("txt").to_pylist() == [v for v in ref if v is not None]
    # batches replay the same rows
    bs = list(iter_file_batches(p, ["m"], ["k"], batch_rows=700))
    assert sum(b.batch.num_rows for b in bs) == ok.sum() and sum(b.dropped for b in bs) == d.dropped
    assert max(b.batch.num_rows for b in bs) <= 700


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_missing_column_lists_existing(tmp_path, fmt):
    p = tmp_path / f"d.{fmt}"
    df = pd.DataFrame({"power": [1.0, 2.0], "model": ["a", "b"]})
    if fmt == "csv":
        df.to_csv(p, index=False)
    elif fmt == "jsonl":
        df.to_json(p, orient="records", lines=True)
    else:
        df.to_parquet(p)
    with pytest.raises(MissingColumnError) as e:
        read_file(p, ["powr"], ["model", "regoin"])
    msg = str(e.value)
    assert isinstance(e.value, ValueError)
    assert "powr" in msg and "regoin" in msg and "power" in msg and "model" in msg and "\n" not in msg


def test_unknown_extension_and_unreadable_files(tmp_path):
    (tmp_path / "d.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unknown file type"):
        read_file(tmp_path / "d.xlsx", ["m"], [])
    with pytest.raises(FileReadError, match="no such file"):
        read_file(tmp_path / "nope.csv", ["m"], [])
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "bad.jsonl").write_text('no json here\nat all\n')
    for name in ("bad.parquet", "bad.jsonl"):
        with pytest.raises(ValueError) as e:
            read_file(tmp_path / name, ["m"], [])
        assert "\n" not in str(e.value) and name in str(e.value)
    assert file_format("X.PQ") == "parquet"


def test_no_progress_output_when_stderr_is_not_a_terminal(tmp_path, capsys):
    p = tmp_path / "d.csv"
    write_csv(p, ["m"], [[i] for i in range(1000)])
    read_file(p, ["m"], [])
    assert capsys.readouterr().err == ""


def test_empty_file_gives_typed_empty_table(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("m,a\n")
    d = read_file(p, ["m"], ["a"])
    assert d.table.num_rows == 0 and d.dropped == 0 and d.total_read == 0
    assert d.table.schema.field("m").type == pa.float64()


def test_malformed_rows_are_dropped_not_fatal(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("m,a\n1,x\n2,y,extra\n3,z\n4\n")
    d = read_file(p, ["m"], ["a"])
    assert d.table.to_pydict() == {"m": [1.0, 3.0], "a": ["x", "z"]}
    assert (d.dropped, d.total_read) == (2, 4)
    q = tmp_path / "d.jsonl"
    q.write_text('{"m": 1}\n{"m": \n[1]\n{"m": 2}\n')
    d = read_file(q, ["m"], [])
    assert d.table.column("m").to_pylist() == [1.0, 2.0]
    assert (d.dropped, d.total_read) == (2, 4)


def test_json_array_file(tmp_path):
    p = tmp_path / "d.json"
    p.write_text(json.dumps([{"m": i, "a": "0.40"} for i in range(5)], indent=1))
    d = read_file(p, ["m"], ["a"])
    assert d.table.column("m").to_pylist() == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert d.table.column("a").to_pylist() == ["0.40"] * 5


def test_json_chunks_with_different_types_are_unified(tmp_path, monkeypatch):
    import connectors.files as files_mod

    monkeypatch.setattr(files_mod, "_JSON_CHUNK_BYTES", 200)  # many chunks
    recs = [{"m": i, "a": i if i < 30 else f"s{i}", "b": i if i % 2 else float(i) + 0.5, "c": None}
            for i in range(60)]
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps(r) + "\n" for r in recs))
    d = read_file(p, ["m"], ["a", "b", "c"])
    assert d.table.column("a").to_pylist() == [str(i) if i < 30 else f"s{i}" for i in range(60)]
    assert d.table.column("b").to_pylist() == [float(i) if i % 2 else i + 0.5 for i in range(60)]
    assert d.table.column("c").null_count == 60
    assert len(list(iter_file_batches(p, ["m"], ["a"]))) > 5


def test_progress_bar_on_a_terminal(tmp_path, terminal_stderr):
    p = tmp_path / "d.csv"
    write_csv(p, ["m"], [[i] for i in range(1000)])
    with terminal_stderr() as written:
        d = read_file(p, ["m"], [])
        out = written()
    assert d.table.num_rows == 1000
    assert "d.csv" in out and "%" in out
