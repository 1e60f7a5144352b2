"""Read a database query or table as Arrow record batches, with MacroBase's column conventions.

Drivers are Arrow-native, so rows never pass through Python one by one:

* ``postgresql://user:password@host:port/db`` (or ``postgres://``): ADBC's PostgreSQL
  driver (libpq's URI, so its options such as ``?sslmode=require`` work; a
  ``connect_timeout`` of 10 s is added unless the URL sets one);
* ``sqlite:///path/to.db``: ADBC's SQLite driver, opened read-only;
* ``duckdb:///path/to.duckdb``: the ``duckdb`` package, opened read-only.

As with SQLAlchemy, the part after ``sqlite:///`` / ``duckdb:///`` is the path, so
``sqlite:///data/x.db`` is relative to the working directory and ``sqlite:////tmp/x.db``
absolute. The drivers are imported only when a URL is opened: ``macrobase explain`` on
a file never pays for them.

A source is a ``table`` (``SELECT <wanted columns> FROM "table"``; a dot separates a
schema: ``sales.events``) or a ``query`` (run as a subquery, so only the wanted columns
are transferred). Rows are normalised exactly as files are
(:func:`connectors.files.normalize_columns`): metrics become finite float64 (other rows
are dropped and counted), attributes keep their database types, nulls stay null.

:class:`SqlInput` runs the query once and spools its raw batches to a temporary Arrow IPC
file, so a multi-pass reader replays exactly the same rows (a query using ``now()`` or a
table being written to would change between runs). :class:`SqlSpec` is the pipeline
source (``source: {type: sql, ...}``): a bounded replay like a file; a restarted reader
runs the query again and skips the rows already covered, so its row order must be
deterministic (an ``ORDER BY`` is advised).

Every failure is one :class:`SqlSourceError` line (a ValueError) naming the URL with its
password masked: unsupported URL, unreachable server, bad credentials, missing database
file, SQL errors, and missing columns (naming the columns the result has).

Example (SQLite needs no server):
    >>> import os, tempfile, pyarrow as pa, adbc_driver_sqlite.dbapi as sqlite
    >>> path = os.path.join(tempfile.mkdtemp(), "d.db")
    >>> with sqlite.connect(path) as con, con.cursor() as cur:
    ...     _ = cur.adbc_ingest("events", pa.table({"m": [1.5, None, 3.0], "region": ["a", "b", None]}))
    ...     con.commit()
    >>> d = read_sql("sqlite:///" + path, ["m"], ["region"], table="events")
    >>> d.table.to_pydict(), d.dropped, d.total_read
    ({'m': [1.5, 3.0], 'region': ['a', None]}, 1, 3)
"""
from __future__ import annotations

import os
import re
import tempfile
import time as _time
import weakref
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence
from urllib.parse import quote

import pyarrow as pa

from connectors.chunks import Chunk, EventSchema, PartitionFailed
from connectors.files import DEFAULT_BATCH_ROWS, FileBatch, FileData, normalize_columns

__all__ = [
    "SqlSourceError",
    "SqlInput",
    "SqlSpec",
    "SqlChunkReader",
    "is_database_url",
    "looks_like_url",
    "mask_url",
    "read_sql",
    "SCHEMES",
]

# URL scheme -> dialect
SCHEMES = {"postgresql": "postgresql", "postgres": "postgresql", "sqlite": "sqlite", "duckdb": "duckdb"}
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_CONNECT_TIMEOUT_S = 10
_ALIAS = "macrobase_source"


class SqlSourceError(ValueError):
    """A database source that cannot be read; ``str(err)`` is one line without secrets."""


def looks_like_url(text: str) -> bool:
    """Whether ``text`` has the form ``scheme://...`` (supported scheme or not).

    >>> looks_like_url("mysql://h/db"), looks_like_url("data/t.csv")
    (True, False)
    """
    return bool(_URL.match(text))


def is_database_url(text: str) -> bool:
    """Whether ``text`` is a URL of a supported database (postgresql, postgres, sqlite, duckdb).

    >>> is_database_url("postgresql://u:p@h:5432/db"), is_database_url("sqlite:///t.db")
    (True, True)
    >>> is_database_url("mysql://h/db"), is_database_url("t.parquet")
    (False, False)
    """
    m = _URL.match(text)
    return bool(m) and m.group(1).lower() in SCHEMES


def mask_url(url: str) -> str:
    """``url`` with its password (in the authority or a ``password=`` option) replaced by ``***``.

    Only the password changes (string surgery, not a parse and rebuild, which would turn
    ``duckdb:////tmp/x`` into ``duckdb://tmp/x``).

    >>> mask_url("postgresql://ann:s3cret@db:5432/sales?password=x&sslmode=require")
    'postgresql://ann:***@db:5432/sales?password=***&sslmode=require'
    >>> mask_url("duckdb:////tmp/x.duckdb")
    'duckdb:////tmp/x.duckdb'
    """
    m = _URL.match(url)
    if not m:
        return url
    rest = url[m.end():]
    cut = min([i for i in (rest.find(c) for c in "/?#") if i >= 0], default=len(rest))
    authority, tail = rest[:cut], rest[cut:]
    if "@" in authority:
        userinfo, host = authority.rsplit("@", 1)
        if ":" in userinfo:
            authority = f"{userinfo.split(':', 1)[0]}:***@{host}"
    tail = re.sub(r"(?i)([?&]password=)[^&#]*", r"\1***", tail)
    return url[:m.end()] + authority + tail


# ------------------------------------------------------------------------ targets and connections


@dataclass(frozen=True)
class _Target:
    dialect: str   # postgresql | sqlite | duckdb
    url: str       # as given
    shown: str     # the URL with its password masked: what messages echo
    where: str     # a libpq URI, or a file path

    def error(self, message: str) -> SqlSourceError:
        return SqlSourceError(f"{self.shown}: {message}")


def _target(url: str) -> _Target:
    """Parse and check ``url`` (no connection yet)."""
    if not isinstance(url, str) or not looks_like_url(url):
        raise SqlSourceError(f"{url!r}: not a database URL; expected postgresql://user:password@host:port/db, "
                             "sqlite:///path/to.db or duckdb:///path/to.duckdb")
    scheme = _URL.match(url).group(1).lower()
    shown = mask_url(url)
    if scheme not in SCHEMES:
        raise SqlSourceError(f"{shown}: unsupported database URL scheme {scheme + '://'!r}; expected one of "
                             "postgresql://, postgres://, sqlite:///, duckdb:///")
    dialect = SCHEMES[scheme]
    if dialect == "postgresql":
        return _Target(dialect, url, shown, _with_connect_timeout(url))
    path = url[len(scheme) + 3:]
    if not path.startswith("/") or len(path) < 2:
        raise SqlSourceError(f"{shown}: expected {scheme}:///path/to/file (relative) or "
                             f"{scheme}:////absolute/path")
    return _Target(dialect, url, shown, path[1:])


def _with_connect_timeout(url: str) -> str:
    # libpq waits for an unanswering host as long as the OS does (minutes): bound it.
    if re.search(r"[?&]connect_timeout=", url):
        return url
    return f"{url}{'&' if '?' in url else '?'}connect_timeout={_CONNECT_TIMEOUT_S}"


class _Connection:
    """One open database connection that streams a query's record batches."""

    def __init__(self, target: _Target) -> None:
        self.target = target
        self._con = None
        self._cursor = None
        with _driver_errors(target, "cannot connect"):
            self._con = self._connect()

    def _connect(self):
        t = self.target
        if t.dialect == "postgresql":
            import adbc_driver_postgresql.dbapi as postgresql  # lazily: only for URLs

            # autocommit: reading needs no transaction, and a failed statement would
            # otherwise abort the transaction the column probe then runs in.
            return postgresql.connect(t.where, autocommit=True)
        if not os.path.isfile(t.where):
            raise t.error(f"no such database file {t.where!r} (relative to {os.getcwd()!r}; use "
                          f"{t.url.split('://')[0]}:////absolute/path for an absolute path)")
        if t.dialect == "sqlite":
            import adbc_driver_sqlite.dbapi as sqlite

            return sqlite.connect(f"file:{quote(os.path.abspath(t.where))}?mode=ro")
        import duckdb

        return duckdb.connect(t.where, read_only=True)

    def quote(self, name: str) -> str:
        """``name`` as an identifier. SQLite reads an unknown "double-quoted" column as a
        string literal; a `backquoted` one is always an identifier."""
        if self.target.dialect == "sqlite":
            return "`" + name.replace("`", "``") + "`"
        return '"' + name.replace('"', '""') + '"'

    def stream(self, sql: str, batch_rows: int) -> pa.RecordBatchReader:
        """Run ``sql``; its result as a reader (SqlSourceError if the statement fails)."""
        with _driver_errors(self.target, "query failed"):
            if self.target.dialect == "duckdb":
                return self._con.sql(sql).to_arrow_reader(batch_rows)
            self._close_cursor()
            self._cursor = self._con.cursor()
            self._cursor.execute(sql)
            return self._cursor.fetch_record_batch()

    def columns(self, sql: str) -> list[str]:
        """The result columns of ``sql`` without running it; a SqlSourceError about ``sql``
        itself (syntax, missing table) otherwise."""
        with _driver_errors(self.target, "query failed"):
            if self.target.dialect == "duckdb":
                return list(self._con.sql(sql).columns)  # a relation: bound, not run
            cursor = self._con.cursor()
            try:
                if self.target.dialect == "postgresql":
                    return cursor.adbc_execute_schema(sql).names  # described, not run
                cursor.adbc_prepare(sql)  # SQLite: checked; it cannot describe a result unrun
            finally:
                cursor.close()
        return self.stream(f"SELECT * FROM ({sql}\n) AS {_ALIAS} LIMIT 0", 1).schema.names

    def _close_cursor(self) -> None:
        if self._cursor is not None:
            cursor, self._cursor = self._cursor, None
            try:
                cursor.close()
            except Exception:  # a cursor of a failed statement may not close cleanly
                pass

    def close(self) -> None:
        self._close_cursor()
        if self._con is not None:
            con, self._con = self._con, None
            try:
                con.close()
            except Exception:  # closing a broken connection: nothing left to release
                pass


class _driver_errors:
    """Turn any driver exception into one SqlSourceError line: ``<url>: <what>: <reason>``."""

    def __init__(self, target: _Target, what: str) -> None:
        self.target, self.what = target, what

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is None or isinstance(exc, SqlSourceError) or not isinstance(exc, Exception):
            return False
        raise self.target.error(f"{self.what}: {_reason(exc, self.target)}") from None


_PREFIXES = re.compile(
    r"^(?:[A-Z_]+: |\[(?:libpq|SQLite|PostgreSQL|Postgres)\] |Failed to (?:prepare query|execute query|connect): "
    r"|ERROR: +|FATAL: +)")


def _reason(exc: BaseException, target: _Target) -> str:
    """The useful first line of a driver's message: status codes, driver tags, the echoed
    query and SQLSTATE footers dropped; the raw URL (with its password) never appears."""
    text = str(exc)
    if target.dialect == "postgresql":  # only there do URLs carry passwords
        text = text.replace(target.where, target.shown).replace(target.url, target.shown)
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "") or type(exc).__name__
    while True:
        shorter = _PREFIXES.sub("", line, count=1)
        if shorter == line:
            break
        line = shorter
    line = re.sub(r"\bFATAL: +", "", line)
    return " ".join(line.split())[:300]


# ------------------------------------------------------------------------ running a query


def _wanted(metrics: Sequence[str], attributes: Sequence[str], time: str | None) -> list[str]:
    seen: dict[str, None] = {}
    for c in [*metrics, *attributes, *([time] if time else [])]:
        seen.setdefault(c, None)
    return list(seen)


def _check_source(query: str | None, table: str | None, shown: str) -> None:
    if (query is None) == (table is None):
        raise SqlSourceError(f"{shown}: give exactly one of a query or a table, got "
                             + ("both" if query is not None else "neither"))
    if query is not None and not _strip(query):
        raise SqlSourceError(f"{shown}: the query is empty")
    if table is not None and not table.strip():
        raise SqlSourceError(f"{shown}: the table name is empty")


def _strip(query: str) -> str:
    return query.strip().rstrip(";").strip()


def _from(con: _Connection, query: str | None, table: str | None) -> str:
    if table is not None:
        return ".".join(con.quote(part) for part in table.split("."))
    return f"({_strip(query)}\n) AS {_ALIAS}"  # the newline ends a trailing -- comment


class _Result:
    """One run of the query: its raw record batches re-cut to ``batch_rows`` rows."""

    def __init__(self, url: str, wanted: list[str], query: str | None, table: str | None,
                 batch_rows: int) -> None:
        self.target = _target(url)
        _check_source(query, table, self.target.shown)
        self.wanted = wanted
        self._con = _Connection(self.target)
        try:
            columns = ", ".join(self._con.quote(c) for c in wanted)
            try:
                self.reader = self._con.stream(f"SELECT {columns} FROM {_from(self._con, query, table)}", batch_rows)
            except SqlSourceError:
                self._raise_if_missing(query, table)
                raise
            if self.reader.schema.names != wanted:  # a driver that renamed or guessed columns
                self._raise_if_missing(query, table)
                raise self.target.error(f"the result has columns {', '.join(self.reader.schema.names)}; "
                                        f"expected {', '.join(wanted)}")
            self.schema = self.reader.schema
            self.batches = _rebatched(self.reader, batch_rows, self.target)
        except BaseException:
            self.close()
            raise

    def _raise_if_missing(self, query: str | None, table: str | None) -> None:
        """After a failed select: the query's own error (about the text the user wrote, not
        our wrapper around it), or the wanted columns it lacks and those it has."""
        source = _strip(query) if query is not None else f"SELECT * FROM {_from(self._con, None, table)}"
        present = self._con.columns(source)
        missing = [c for c in self.wanted if c not in present]
        if missing:
            raise self.target.error(f"column(s) {', '.join(map(repr, missing))} not found; the result has: "
                                    + (", ".join(present) if present else "(no columns)"))

    def close(self) -> None:
        self._con.close()


def _rebatched(reader: pa.RecordBatchReader, batch_rows: int, target: _Target) -> Iterator[pa.RecordBatch]:
    """``reader``'s batches re-cut to ``batch_rows`` rows (the last may be shorter): SQLite
    hands out 1,024 rows at a time and PostgreSQL about 16 MB, neither what callers want."""
    pending: list[pa.RecordBatch] = []
    count = 0
    with _driver_errors(target, "reading the result failed"):
        for batch in reader:
            while batch.num_rows:
                take = min(batch_rows - count, batch.num_rows)
                pending.append(batch.slice(0, take))
                count += take
                batch = batch.slice(take)
                if count == batch_rows:
                    yield _concat(pending)
                    pending, count = [], 0
    if pending:
        yield _concat(pending)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    return batches[0] if len(batches) == 1 else pa.concat_batches(batches)


def _normalised(raw: pa.RecordBatch, metrics: Sequence[str], attributes: Sequence[str],
                time: str | None) -> FileBatch:
    table, dropped = normalize_columns(pa.Table.from_batches([raw]), metrics, attributes, time)
    batches = table.combine_chunks().to_batches()
    batch = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
    return FileBatch(batch=batch, dropped=dropped)


def read_sql(url: str, metrics: Sequence[str], attributes: Sequence[str], *, query: str | None = None,
             table: str | None = None, time: str | None = None) -> FileData:
    """The whole result of ``query`` (or ``table``) in memory, normalised like a file.

    Example:
        >>> import os, tempfile, duckdb
        >>> path = os.path.join(tempfile.mkdtemp(), "d.duckdb")
        >>> with duckdb.connect(path) as con:
        ...     _ = con.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, 'x'), (NULL, 'y'), (7, 'y')) v(m, a)")
        >>> d = read_sql("duckdb:///" + path, ["m"], ["a"], query="SELECT * FROM t WHERE a = 'y'")
        >>> d.table.to_pydict(), d.dropped
        ({'m': [7.0], 'a': ['y']}, 1)
        >>> read_sql("duckdb:///" + path, ["m"], ["b"], table="t")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        connectors.sql.SqlSourceError: duckdb:///...: column(s) 'b' not found; the result has: m, a
    """
    metrics, attributes = list(metrics), list(attributes)
    result = _Result(url, _wanted(metrics, attributes, time), query, table, DEFAULT_BATCH_ROWS)
    try:
        with _driver_errors(result.target, "reading the result failed"):
            raw = result.reader.read_all()
    finally:
        result.close()
    normal, dropped = normalize_columns(raw, metrics, attributes, time)
    return FileData(table=normal, dropped=dropped, total_read=raw.num_rows)


# ------------------------------------------------------------------------ multi-pass input


class SqlInput:
    """A query's result for readers that need several passes: run once, replayed from a spool.

    The first :meth:`batches` call runs the query and streams its batches while writing
    the raw batches to a temporary Arrow IPC file (in :func:`tempfile.gettempdir`);
    every later call replays that file memory-mapped, so every pass sees exactly the same
    rows in the same batches, even if the data changed meanwhile. A later call made
    before the first pass finished reads the rest of the result into the spool first.
    :meth:`close` (or leaving the ``with`` block) deletes the spool. Not thread-safe.

    Example:
        >>> import os, tempfile, pyarrow as pa, adbc_driver_sqlite.dbapi as sqlite
        >>> path = os.path.join(tempfile.mkdtemp(), "d.db")
        >>> with sqlite.connect(path) as con, con.cursor() as cur:
        ...     _ = cur.adbc_ingest("t", pa.table({"m": [1.0, 2.0, float("nan")], "a": ["x", "y", "z"]}))
        ...     con.commit()
        >>> with SqlInput("sqlite:///" + path, ["m"], ["a"], query="SELECT * FROM t", batch_rows=2) as src:
        ...     first = [b.batch.num_rows for b in src.batches()]
        ...     again = [b.batch.num_rows for b in src.batches()]
        >>> first, again, src.total_read, src.dropped
        ([2, 0], [2, 0], 3, 1)
    """

    def __init__(self, url: str, metrics: Sequence[str], attributes: Sequence[str], *,
                 query: str | None = None, table: str | None = None, time: str | None = None,
                 batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        target = _target(url)  # a bad URL or source fails here, before anything runs
        _check_source(query, table, target.shown)
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
        self.url, self.query, self.table, self.time = url, query, table, time
        self.metrics, self.attributes = list(metrics), list(attributes)
        self.batch_rows = batch_rows
        self.total_read = 0  # rows read by the latest pass
        self.dropped = 0     # rows of it dropped (bad metrics)
        self._result: _Result | None = None
        self._sink = self._writer = None
        self._spool: str | None = None
        self._written = 0
        self._complete = False
        self._cleanup: Callable[[], None] | None = None
        self._closed = False

    def __enter__(self) -> "SqlInput":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[FileBatch]:
        """The result's batches, normalised; the first call runs the query (errors raise here).

        ``columns`` is accepted for the multi-pass readers' protocol (``FileInput``) and
        ignored: replays memory-map the spool, so unread columns cost nothing."""
        if self._closed:
            raise ValueError("SqlInput is closed")
        if self._spool is None:
            self._start()
            return self._live()
        self._finish()
        return self._replay(0, fresh=True)

    def close(self) -> None:
        """Close the connection and delete the spool (idempotent)."""
        self._closed = True
        if self._cleanup is not None:
            self._cleanup()

    # -- internals

    def _start(self) -> None:
        wanted = _wanted(self.metrics, self.attributes, self.time)
        self._result = _Result(self.url, wanted, self.query, self.table, self.batch_rows)
        fd, self._spool = tempfile.mkstemp(prefix="macrobase-sql-", suffix=".arrow")
        os.close(fd)
        # Uncompressed on purpose: replays memory-map the file instead of decoding it.
        self._sink = pa.OSFile(self._spool, "wb")
        self._writer = pa.ipc.new_file(self._sink, self._result.schema)
        self._cleanup = weakref.finalize(self, _discard, self._result, self._writer, self._sink, self._spool)

    def _pull(self) -> pa.RecordBatch | None:
        """The next raw batch of the running query, spooled; None once it is all read."""
        if self._complete:
            return None
        raw = next(self._result.batches, None)
        if raw is None:
            self._writer.close()
            self._sink.close()
            self._result.close()
            self._complete = True
            return None
        self._writer.write_batch(raw)
        self._written += 1
        return raw

    def _finish(self) -> None:
        while self._pull() is not None:
            pass

    def _live(self) -> Iterator[FileBatch]:
        self.total_read = self.dropped = 0
        done = 0
        while True:
            if done < self._written:  # a later call read on meanwhile: the rest is spooled
                yield from self._replay(done, fresh=False)
                return
            raw = self._pull()
            if raw is None:
                return
            done += 1
            yield self._count(_normalised(raw, self.metrics, self.attributes, self.time), raw)

    def _replay(self, start: int, fresh: bool) -> Iterator[FileBatch]:
        if not self._complete:
            raise SqlSourceError(f"{mask_url(self.url)}: the result was not read completely; "
                                 "run the query again with a new SqlInput")
        if fresh:
            self.total_read = self.dropped = 0
        with pa.memory_map(self._spool) as mm:
            spool = pa.ipc.open_file(mm)
            for i in range(start, spool.num_record_batches):
                raw = spool.get_batch(i)
                yield self._count(_normalised(raw, self.metrics, self.attributes, self.time), raw)

    def _count(self, fb: FileBatch, raw: pa.RecordBatch) -> FileBatch:
        self.total_read += raw.num_rows
        self.dropped += fb.dropped
        return fb


def _discard(result: _Result, writer, sink, path: str) -> None:
    """Release what a SqlInput holds: on close() or when it is garbage-collected."""
    result.close()
    for closable in (writer, sink):
        try:
            closable.close()
        except Exception:  # already closed
            pass
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


# ------------------------------------------------------------------------ pipeline source


@dataclass(frozen=True)
class SqlSpec:
    """A bounded query (or table) replayed as a stream, optionally at ``rate`` events per second.

    Holds only what is needed to run the query again, so it pickles (Beam ships it to
    workers); :meth:`open` connects. Positions are rows of the result: a reader opened
    at a position re-runs the query and skips that many rows.

    >>> import pickle
    >>> s = SqlSpec("postgresql://u:pw@h/db", EventSchema(("m",), ("a",)), table="events")
    >>> pickle.loads(pickle.dumps(s)) == s, s.key
    (True, 'postgresql://u:***@h/db table events')
    """

    url: str
    schema: EventSchema
    query: str | None = None
    table: str | None = None
    rate: float | None = None
    batch_rows: int = 20_000
    start_offset: int = 0

    @property
    def key(self) -> str:
        # Shown in the API and stored with offsets: never the password.
        return f"{mask_url(self.url)} " + (f"table {self.table}" if self.table is not None else "query")

    @property
    def offset_key(self) -> tuple[str, int]:
        return (self.key, 0)

    def open(self, position: int) -> "SqlChunkReader":
        return SqlChunkReader(self, position)


class SqlChunkReader:
    """Reads a :class:`SqlSpec` from ``position`` on (mirrors ``FileChunkReader``).

    A failure is a :class:`~connectors.chunks.PartitionFailed` with the one-line reason,
    so the run stops with that line.
    """

    def __init__(self, spec: SqlSpec, position: int) -> None:
        self.spec = spec
        self.position = 0
        self._skip = position
        self._started = _time.monotonic()
        self._done = False
        s = spec.schema
        self._columns = (list(s.metrics), list(s.attributes), s.time)
        try:
            self._result = _Result(spec.url, _wanted(*self._columns), spec.query, spec.table,
                                   self._batch_rows(spec))
        except SqlSourceError as exc:
            raise self._failed(exc) from None

    def read(self, timeout_s: float) -> Chunk | None:
        if self._done:
            return None
        try:
            for raw in self._result.batches:
                start, self.position = self.position, self.position + raw.num_rows
                if self.position <= self._skip:
                    continue  # already covered by stored results
                if start < self._skip:  # resume inside a batch: cut the raw rows, then normalise
                    raw = raw.slice(self._skip - start)
                fb = _normalised(raw, *self._columns)
                self._pace()
                return Chunk(self.spec.key, 0, self.position, fb.batch, dropped=fb.dropped,
                             start_offset=max(start, self._skip))
        except SqlSourceError as exc:
            raise self._failed(exc) from None
        self.close()
        return Chunk(self.spec.key, 0, self.position, end=True)

    def _failed(self, exc: SqlSourceError) -> PartitionFailed:
        return PartitionFailed(f"source {self.spec.key}: {exc}")

    @staticmethod
    def _batch_rows(spec: SqlSpec) -> int:
        # As for files: a paced replay hands out about a tenth of a second at a time.
        return spec.batch_rows if not spec.rate else max(1, min(spec.batch_rows, int(spec.rate / 10)))

    def _pace(self) -> None:
        if self.spec.rate:
            delay = self._started + (self.position - self._skip) / self.spec.rate - _time.monotonic()
            if delay > 0:
                _time.sleep(delay)

    def heartbeat(self) -> Chunk:
        return Chunk(self.spec.key, 0, self.position)

    def close(self) -> None:
        self._done = True
        self._result.close()
