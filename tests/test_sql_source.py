"""SQL sources against real databases: a PostgreSQL server (Debian's binaries), SQLite and
DuckDB files. ``macrobase explain`` on a URL answers exactly as on a file of the same
rows; a ``type: sql`` pipeline ends with the batch answer; errors are one clean line."""
from __future__ import annotations

import doctest
import os
import pickle
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

import connectors.sql
from connectors.chunks import EventSchema, PartitionFailed
from connectors.sql import SqlInput, SqlSourceError, SqlSpec, read_sql
from macrobase.config import parse_config
from macrobase.diff import DiffRequest, run_diff
from macrobase.runner import PipelineRun
from macrobase.store import ResultStore
from macrobase.synthetic import planted_table
from tests.reference import reference_explain
from tests.runners import assert_same_answer

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "pw-Kq7!zx"  # appears in URLs; must never appear in an error
ATTRS = ["region", "firmware", "device_model", "carrier", "app_version", "device_id"]
EXPLAIN = ["--metric", "power_drain", "--attributes", ",".join(ATTRS), "--classifier", "mad",
           "--score-cutoff", "3", "--format", "json"]
WHERE = "region <> 'region-4' AND device_model <> 'M105'"
QUERY = f"SELECT * FROM events WHERE {WHERE}"


def macrobase(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "macrobase.cli", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.getcwd()}, timeout=300)


def explain_json(*args: str) -> dict:
    import json

    r = macrobase("explain", *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------- a real PostgreSQL


@dataclass(frozen=True)
class Postgres:
    port: int

    def url(self, password: str = PASSWORD, port: int | None = None) -> str:
        return f"postgresql://macrobase:{password}@127.0.0.1:{port or self.port}/postgres"


def _unprivileged() -> dict:
    """subprocess arguments running as the ``postgres`` user (or nobody) when we are root:
    initdb and postgres refuse to run as root."""
    if os.geteuid() != 0:
        return {}
    try:
        user = pwd.getpwnam("postgres")
    except KeyError:
        user = pwd.getpwnam("nobody")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


@pytest.fixture(scope="session")
def postgres():
    """A PostgreSQL 15 server on a free port: local socket trusted, TCP with a password."""
    missing = [b for b in ("initdb", "postgres", "pg_isready") if not (PG_BIN / b).exists()]
    if missing:
        pytest.fail(f"{', '.join(str(PG_BIN / b) for b in missing)} missing: run "
                    "`bash scripts/install_test_tools.sh` (installs Debian's postgresql)")
    as_user = _unprivileged()
    # Not pytest's tmp_path: it is private to the user running the tests.
    base = Path(tempfile.mkdtemp(prefix="macrobase-pg-"))
    (base / "pw").write_text(PASSWORD + "\n")
    if as_user:
        for path in (base, base / "pw"):
            os.chown(path, as_user["user"], as_user["group"])
    proc = None
    try:
        init = subprocess.run([str(PG_BIN / "initdb"), "-D", str(base / "data"), "-U", "macrobase",
                               "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={base / 'pw'}",
                               "--no-sync"], capture_output=True, text=True, cwd=base, **as_user)
        assert init.returncode == 0, init.stderr
        port = free_port()
        with open(base / "log", "wb") as log:
            proc = subprocess.Popen([str(PG_BIN / "postgres"), "-D", str(base / "data"), "-k", str(base),
                                     "-p", str(port), "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"],
                                    stdout=log, stderr=subprocess.STDOUT, cwd=base, **as_user)
        deadline = time.monotonic() + 60
        while subprocess.run([str(PG_BIN / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port)]).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"PostgreSQL did not start: {(base / 'log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield Postgres(port)
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGINT)  # PostgreSQL's fast shutdown
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        shutil.rmtree(base, ignore_errors=True)


# ----------------------------------------------------------------------------- the same rows everywhere


def planted_rows() -> pa.Table:
    """50,000 planted events, attributes as strings, every 997th metric missing, plus an id."""
    table, _ = planted_table(50_000, seed=3)
    table = table.drop_columns(["anomalous"])
    table = table.cast(pa.schema([pa.field(f.name, pa.string()) if pa.types.is_dictionary(f.type) else f
                                  for f in table.schema]))
    ids = pa.array(range(table.num_rows), pa.int64())
    missing = pa.array([i % 997 == 5 for i in range(table.num_rows)])
    drain = pc.if_else(missing, pa.scalar(None, pa.float64()), table["power_drain"].combine_chunks())
    return table.set_column(table.schema.get_field_index("power_drain"), "power_drain", drain).append_column("id", ids)


@pytest.fixture(scope="module")
def rows() -> pa.Table:
    return planted_rows()


@pytest.fixture(scope="module")
def databases(postgres, rows, tmp_path_factory) -> dict[str, str]:
    """The rows as table ``events`` in PostgreSQL, a SQLite file and a DuckDB file, and as
    Parquet and CSV files (also filtered by WHERE): {name: URL or path}."""
    import adbc_driver_postgresql.dbapi as pg
    import adbc_driver_sqlite.dbapi as sqlite
    import duckdb

    d = tmp_path_factory.mktemp("sql")
    with pg.connect(postgres.url()) as con, con.cursor() as cur:
        cur.adbc_ingest("events", rows, mode="replace")
        con.commit()
    with sqlite.connect(str(d / "t.db")) as con, con.cursor() as cur:
        cur.adbc_ingest("events", rows)
        con.commit()
    with duckdb.connect(str(d / "t.duckdb")) as con:
        con.from_arrow(rows).create("events")
    pq.write_table(rows, d / "t.parquet")
    pacsv.write_csv(rows, d / "t.csv")
    pq.write_table(filtered(rows), d / "where.parquet")
    pacsv.write_csv(filtered(rows), d / "where.csv")
    return {"postgresql": postgres.url(), "sqlite": f"sqlite:///{d / 't.db'}",  # an absolute path: 4 slashes
            "duckdb": f"duckdb:///{d / 't.duckdb'}", "dir": str(d)}


def filtered(rows: pa.Table) -> pa.Table:
    """WHERE, in pyarrow.compute."""
    return rows.filter(pc.and_(pc.not_equal(rows["region"], "region-4"), pc.not_equal(rows["device_model"], "M105")))


# ----------------------------------------------------------------------------- explain: URL == file


@pytest.fixture(scope="module")
def file_docs(databases) -> dict[str, dict]:
    """``macrobase explain`` on the Parquet files: {"table": all rows, "query": rows WHERE};
    the CSV files of the same rows give the same documents."""
    d = databases["dir"]
    docs = {}
    for kind, stem in (("table", "t"), ("query", "where")):
        docs[kind] = explain_json(f"{d}/{stem}.parquet", *EXPLAIN)
        assert explain_json(f"{d}/{stem}.csv", *EXPLAIN) == docs[kind], kind
    assert docs["table"]["dropped"] == 51 and docs["table"]["explanations"] and docs["query"]["explanations"]
    assert docs["query"]["total"] < docs["table"]["total"]
    return docs


@pytest.mark.parametrize("name", ["postgresql", "sqlite", "duckdb"])
def test_explain_on_a_database_equals_the_file(databases, file_docs, name):
    assert explain_json(databases[name], "--table", "events", *EXPLAIN) == file_docs["table"]
    assert explain_json(databases[name], "--query", QUERY, *EXPLAIN) == file_docs["query"]


def test_explain_on_a_file_loads_no_database_driver(databases):
    code = ("import sys; from macrobase.cli import main; main(sys.argv[1:]); "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('adbc_driver_manager', "
            "'adbc_driver_postgresql', 'adbc_driver_sqlite', 'duckdb', '_duckdb')), file=sys.stderr)")
    r = subprocess.run([sys.executable, "-c", code, "explain", f"{databases['dir']}/t.parquet", *EXPLAIN],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": os.getcwd()})
    assert r.returncode == 0 and r.stderr.strip().splitlines()[-1] == "[]", r.stderr


def test_explain_on_postgresql_matches_the_reference(databases, rows):
    attrs = ["region", "firmware", "device_model", "carrier", "device_id"]
    doc = explain_json(databases["postgresql"], "--query", QUERY + " ORDER BY id -- oldest first\n;", "--metric", "power_drain",
                       "--attributes", ",".join(attrs), "--classifier", "predicate", "--predicate", ">= 150",
                       "--mode", "minimal", "--format", "json")
    df = filtered(rows).select(attrs + ["power_drain"]).to_pandas().dropna(subset=["power_drain"])
    df["outlier"] = df["power_drain"] >= 150
    want = reference_explain(df, attrs, mode="minimal")
    assert (doc["total"], doc["outliers"]) == (len(df), int(df["outlier"].sum()))
    assert doc["dropped"] == filtered(rows)["power_drain"].null_count > 0
    assert want and [(e["attributes"], e["outlier_count"], e["count"]) for e in doc["explanations"]] == [
        (w["attributes"], w["outlier_count"], w["count"]) for w in want]
    assert doc["thresholds"] == {"power_drain": {">=": 150.0}}


def test_read_sql_keeps_native_attribute_types(databases):
    data = read_sql(databases["duckdb"], ["power_drain"], ["id", "region"], query="SELECT * FROM events")
    assert data.table.schema.types == [pa.float64(), pa.int64(), pa.string()]
    assert (data.total_read, data.dropped, data.table.num_rows) == (50_000, 51, 50_000 - 51)


# ----------------------------------------------------------------------------- errors: one clean line


def _one_clean_line(r: subprocess.CompletedProcess, *words: str) -> str:
    assert r.returncode == 2, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("macrobase explain: error: ") and "Traceback" not in r.stderr
    assert PASSWORD not in r.stderr and "wrong-" not in r.stderr and r.stdout == ""
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_database_errors_are_one_line_without_secrets(postgres, databases):
    url = postgres.url()
    cases = [
        (["mysql://macrobase:wrong-pw@127.0.0.1/db", "--table", "events"],
         ["unsupported database URL scheme 'mysql://'", "macrobase:***@"]),
        ([postgres.url(port=free_port()), "--table", "events"], ["Connection refused", "macrobase:***@"]),
        ([postgres.url(password="wrong-pw"), "--table", "events"],
         ["password authentication failed for user \"macrobase\"", "macrobase:***@"]),
        ([url, "--query", "SELEC power_drain FROM events"], ['syntax error at or near "SELEC"']),
        ([url, "--table", "nope"], ['relation "nope" does not exist']),
        ([url, "--query", "SELECT power_drain, region FROM events"],
         ["'firmware', 'device_model'", "not found; the result has: power_drain, region"]),
        ([url, "--table", "events", "--metric", "drain"], ["'drain' not found", "the result has: power_drain, region,"]),
        ([url], ["give --query SQL or --table NAME"]),
        ([databases["sqlite"].replace("t.db", "none.db"), "--table", "events"], ["no such database file"]),
        ([databases["duckdb"], "--query", "SELECT * FROM nope"], ["nope does not exist"]),
        ([databases["sqlite"], "--query", "SELECT 1 AS power_drain"], ["'region'", "the result has: power_drain"]),
        ([f"{databases['dir']}/t.parquet", "--table", "events"], ["--table applies to a database URL"]),
    ]
    for args, words in cases:
        metric = [] if "--metric" in args else ["--metric", "power_drain"]
        _one_clean_line(macrobase("explain", *args, *metric, "--attributes", ",".join(ATTRS)), *words)


# ----------------------------------------------------------------------------- spool replay


def test_sqlinput_replays_the_first_result(postgres, rows, tmp_path, monkeypatch):
    import adbc_driver_postgresql.dbapi as pg

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the spool goes
    part = rows.slice(0, 10_000)
    with pg.connect(postgres.url()) as con, con.cursor() as cur:
        cur.adbc_ingest("spooled", part, mode="replace")
        con.commit()
    src = SqlInput(postgres.url(), ["power_drain"], ATTRS, query="SELECT * FROM spooled ORDER BY id",
                   batch_rows=1_000)
    with src:
        first = src.batches()
        early = [next(first), next(first)]
        with pg.connect(postgres.url()) as con, con.cursor() as cur:
            cur.adbc_ingest("spooled", rows.slice(10_000, 5_000), mode="append")  # after the query ran
            con.commit()
        second = list(src.batches())  # before the first pass ended: the spool is finished first
        first = early + list(first)
        assert len(list(tmp_path.glob("macrobase-sql-*.arrow"))) == 1
        third = list(src.batches())
        assert (src.total_read, src.dropped) == (10_000, part["power_drain"].null_count)
    assert list(tmp_path.glob("macrobase-sql-*.arrow")) == []  # close() deleted it
    assert len(first) == 10 and [b.batch.num_rows + b.dropped for b in first] == [1_000] * 10
    for passes in (second, third):
        assert [(b.batch, b.dropped) for b in passes] == [(b.batch, b.dropped) for b in first]
    assert pa.Table.from_batches([b.batch for b in first]) == read_sql(
        postgres.url(), ["power_drain"], ATTRS, query="SELECT * FROM spooled WHERE id < 10000 ORDER BY id").table
    assert read_sql(postgres.url(), ["power_drain"], ATTRS, table="spooled").total_read == 15_000


# ----------------------------------------------------------------------------- pipelines


def pipeline(tmp_path, source: dict) -> dict:
    return {"pipelines": [{
        "name": "p", "source": source,
        "schema": {"metrics": ["power_drain"], "attributes": ATTRS},
        "classifier": {"type": "predicate", "cutoff": {"op": ">=", "value": 150}},
        "explainer": {"decay": 0, "emit_every": "300ms"},
        "sink": {"type": "sqlite", "path": str(tmp_path / "results.db")},
    }]}


def test_sql_pipeline_ends_with_the_batch_answer(postgres, databases, tmp_path):
    query = QUERY + " ORDER BY id"
    conf = parse_config(pipeline(tmp_path, {"type": "sql", "url": postgres.url(), "query": query}), "test")
    data = read_sql(postgres.url(), ["power_drain"], ATTRS, query=query)
    # A bounded source: the run ends with its input (the duration only guards a hang).
    result = PipelineRun(conf, conf.pipelines[0]).run(duration=240)
    final = ResultStore(tmp_path / "results.db").latest("p")
    assert result.documents >= 1 and final["events"] == data.table.num_rows and final.get("final", True)
    batch = run_diff(data.table, DiffRequest(("power_drain",), tuple(ATTRS), classifier="predicate",
                                             predicate=">= 150"), dropped=data.dropped)
    assert batch["explanations"] and batch["dropped"] > 0
    assert_same_answer(final, batch, ("total", "outliers", "dropped", "thresholds", "explanations"))


def test_sql_pipeline_failure_is_one_line_without_the_password(postgres, tmp_path):
    conf = parse_config(pipeline(tmp_path, {"type": "sql", "url": postgres.url(), "table": "nope"}), "test")
    with pytest.raises(PartitionFailed) as info:
        PipelineRun(conf, conf.pipelines[0]).run(duration=120)
    message = str(info.value)
    assert 'relation "nope" does not exist' in message and "macrobase:***@" in message
    assert PASSWORD not in message and "\n" not in message


def test_sqlspec_pickles_and_resumes_after_the_rows_covered(postgres, databases, rows):
    spec = SqlSpec(databases["sqlite"], EventSchema(("power_drain",), tuple(ATTRS)),
                   query="SELECT * FROM events ORDER BY id", batch_rows=4_000)
    spec = pickle.loads(pickle.dumps(spec))  # as Beam ships it to a worker
    assert spec.key == f"{databases['sqlite']} query" and spec.offset_key == (spec.key, 0)

    def read_from(position: int) -> list:
        reader, chunks = spec.open(position), []
        while not (chunk := reader.read(1.0)).end:
            chunks.append(chunk)
        reader.close()
        return chunks

    whole, resumed = read_from(0), read_from(10_005)
    assert whole[-1].next_offset == 50_000 and [c.start_offset for c in whole[:3]] == [0, 4_000, 8_000]
    assert resumed[0].start_offset == 10_005 and resumed[-1].next_offset == 50_000
    kept = pa.Table.from_batches([c.batch for c in whole])
    assert kept.num_rows == 50_000 - 51 and sum(c.dropped for c in whole) == 51
    tail = rows.slice(10_005)
    assert pa.Table.from_batches([c.batch for c in resumed]).column("device_id").to_pylist() == [
        v for v, m in zip(tail["device_id"].to_pylist(), tail["power_drain"].to_pylist()) if m is not None]
    assert sum(c.dropped for c in resumed) == tail["power_drain"].null_count
    pg = SqlSpec(postgres.url(), spec.schema, table="events")
    assert PASSWORD not in pg.key and pickle.loads(pickle.dumps(pg)) == pg


def test_sql_source_config_names_the_key(tmp_path):
    from macrobase.config import ConfigError

    def problem(source: dict) -> str:
        with pytest.raises(ConfigError) as info:
            parse_config(pipeline(tmp_path, source), "c.yaml")
        return str(info.value)

    assert problem({"type": "sql", "url": "sqlite:///x.db"}) == (
        "c.yaml: pipelines[0].source.query: required key missing: give query (SQL) or table (a name)")
    assert problem({"type": "sql", "url": "sqlite:///x.db", "table": "t", "query": "SELECT 1"}) == (
        "c.yaml: pipelines[0].source.table: give either query or table, not both")
    message = problem({"type": "sql", "url": "mysql://u:secret@h/db", "table": "t"})
    assert message.startswith("c.yaml: pipelines[0].source.url: expected a database URL") and "secret" not in message
    src = parse_config(pipeline(tmp_path, {"type": "sql", "url": "duckdb:///x.duckdb", "table": "t"}),
                       "c.yaml").pipelines[0].source
    assert (src.table, src.query, src.rate) == ("t", None, None)


def test_module_doctests():
    assert doctest.testmod(connectors.sql).failed == 0
