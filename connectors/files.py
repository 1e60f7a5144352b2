"""Read CSV, JSON lines and Parquet files into Arrow with MacroBase's column conventions.

* metrics become ``float64`` with only finite values; a row whose metric is missing,
  empty, non-numeric or not finite is dropped and counted, never an error for the file;
* attributes keep their values as they appear in the data: CSV has no types, so CSV
  attributes are read as strings (firmware ``"0.40"`` stays ``"0.40"``); JSON and Parquet
  keep native types, and a JSON column mixing types falls back to strings; missing values
  stay null;
* the time column, if asked, is kept as read (strings for CSV);
* malformed rows (a CSV row with the wrong number of fields, a JSON line that is not an
  object) are dropped and counted like bad metrics. A ``.json`` file may also hold one
  JSON array of objects.

A missing column raises :class:`MissingColumnError` naming the columns that exist; an
unknown extension or unreadable file raises :class:`FileReadError`. Both are ValueErrors.
A progress bar is drawn on stderr only when stderr is a terminal.

Example:
    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "d.csv")
    >>> _ = open(p, "w").write("m,fw\\n1.5,0.40\\nx,0.5\\n")
    >>> d = read_file(p, ["m"], ["fw"])
    >>> d.table.to_pydict(), d.dropped, d.total_read
    ({'m': [1.5], 'fw': ['0.40']}, 1, 2)
"""

from __future__ import annotations

import io
import json
import os
import sys
from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.json as pj
import pyarrow.parquet as pq

from connectors.decode import OK, python_column, metric_to_float64

__all__ = [
    "FileData",
    "FileBatch",
    "FileInput",
    "FileReadError",
    "MissingColumnError",
    "read_file",
    "iter_file_batches",
    "file_format",
    "DEFAULT_BATCH_ROWS",
]

DEFAULT_BATCH_ROWS = 65_536
_JSON_CHUNK_BYTES = 1 << 24  # JSON lines are parsed this many bytes of whole lines at a time
_FORMATS = {".csv": "csv", ".jsonl": "json", ".ndjson": "json", ".json": "json",
            ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSION = (".gz", ".bz2", ".zst", ".lz4")


class FileReadError(ValueError):
    """The file cannot be read: unknown extension, missing, or malformed."""


class MissingColumnError(FileReadError):
    """A requested metric, attribute or time column is not in the file."""


@dataclass(frozen=True)
class FileData:
    """A whole file: the kept rows, how many were dropped, how many were read."""

    table: pa.Table
    dropped: int
    total_read: int


@dataclass(frozen=True)
class FileBatch:
    """One batch of a file replayed as a stream; ``dropped`` counts this batch's drops."""

    batch: pa.RecordBatch
    dropped: int


def file_format(path: str | os.PathLike) -> str:
    """``"csv"``, ``"json"`` or ``"parquet"`` from the file name (compression suffix allowed).

    >>> file_format("x.ndjson.gz")
    'json'
    """
    name = os.fspath(path).lower()
    for c in _COMPRESSION:
        if name.endswith(c):
            name = name[: -len(c)]
            break
    ext = os.path.splitext(name)[1]
    if ext not in _FORMATS:
        raise FileReadError(
            f"{os.fspath(path)}: unknown file type {ext or '(none)'!r}; expected one of "
            + ", ".join(sorted(_FORMATS)))
    fmt = _FORMATS[ext]
    if fmt == "parquet" and name != os.fspath(path).lower():
        raise FileReadError(f"{os.fspath(path)}: Parquet files are compressed internally; remove the suffix")
    return fmt


def read_file(
    path: str | os.PathLike,
    metrics: Sequence[str],
    attributes: Sequence[str],
    time: str | None = None,
) -> FileData:
    """Read a whole CSV / JSON-lines / Parquet file.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "d.jsonl")
        >>> _ = open(p, "w").write('{"m": 2, "a": 7}\\n{"m": null, "a": 8}\\n')
        >>> d = read_file(p, ["m"], ["a"])
        >>> d.table.to_pydict(), d.dropped
        ({'m': [2.0], 'a': [7]}, 1)
    """
    tables, dropped, total = [], 0, 0
    for table, n_dropped, n_read in _iter(path, metrics, attributes, time, 1 << 62):
        tables.append(table)
        dropped += n_dropped
        total += n_read
    tables = _unify(tables)
    table = pa.concat_tables(tables) if tables else _empty_table(metrics, attributes, time)
    return FileData(table=table, dropped=dropped, total_read=total)


def iter_file_batches(
    path: str | os.PathLike,
    metrics: Sequence[str],
    attributes: Sequence[str],
    time: str | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: bool = True,
) -> Iterator[FileBatch]:
    """Replay a file as a stream of record batches of about ``batch_rows`` input rows
    (with a bar of bytes read on a terminal's stderr unless ``progress`` is False).

    Column types can differ between batches of a JSON file (a column that mixes types
    only in a later batch falls back to strings there); use :func:`read_file` for one
    consistent table.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "d.csv")
        >>> _ = open(p, "w").write("m\\n" + "\\n".join(map(str, range(5))))
        >>> [b.batch.num_rows for b in iter_file_batches(p, ["m"], [], batch_rows=2)]
        [2, 2, 1]
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    for table, dropped, _ in _iter(path, metrics, attributes, time, batch_rows, progress):
        batches = table.combine_chunks().to_batches()
        batch = batches[0] if batches else pa.RecordBatch.from_pylist([], schema=table.schema)
        yield FileBatch(batch=batch, dropped=dropped)


class FileInput:
    """A file read pass after pass, for readers bigger than memory: every call to
    :meth:`batches` reads the file again from the start, in batches of ``batch_rows``.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "d.csv")
        >>> _ = open(p, "w").write("m,a\\n1,x\\n2,y\\nbad,z\\n")
        >>> src = FileInput(p, ["m"], ["a"], batch_rows=2)
        >>> [b.batch.num_rows for b in src.batches()], [b.batch.column_names for b in src.batches(["m"])][0]
        ([2, 0], ['m'])
    """

    def __init__(self, path: str | os.PathLike, metrics: Sequence[str], attributes: Sequence[str],
                 batch_rows: int = 1 << 20) -> None:
        self.path, self.metrics, self.attributes, self.batch_rows = os.fspath(path), list(metrics), list(attributes), batch_rows
        file_format(self.path)  # an unknown file type fails here, before any pass

    def batches(self, columns: Sequence[str] | None = None) -> Iterator[FileBatch]:
        """One pass; ``columns`` (metrics only, say) limits what is read. Rows with a bad
        metric are dropped in every pass alike, so all passes see the same rows."""
        attributes = self.attributes if columns is None else [c for c in columns if c not in self.metrics]
        # No bar per pass: a reader of several passes shows one over them all.
        return iter_file_batches(self.path, self.metrics, attributes, batch_rows=self.batch_rows, progress=False)

    def decoded_bytes(self) -> int:
        """About how much memory the wanted columns take once read whole (Parquet: from
        its metadata; text files: their size, five times a compressed one's)."""
        fmt = file_format(self.path)
        size = os.path.getsize(self.path)
        if fmt != "parquet":
            return size * (5 if _codec(self.path) else 1)
        meta = pq.ParquetFile(self.path).metadata
        wanted = set(_wanted(self.metrics, self.attributes, None))
        return sum(rg.column(i).total_uncompressed_size for r in range(meta.num_row_groups)
                   for rg in [meta.row_group(r)] for i in range(rg.num_columns)
                   if rg.column(i).path_in_schema in wanted)


# ------------------------------------------------------------------------ internals


def _iter(path, metrics, attributes, time, batch_rows, progress=True) -> Iterator[tuple[pa.Table, int, int]]:
    """Yields (normalised table, rows dropped, rows read) per part of at most batch_rows."""
    path = os.fspath(path)
    metrics, attributes = list(metrics), list(attributes)
    fmt = file_format(path)
    if not os.path.isfile(path):
        raise FileReadError(f"{path}: no such file")
    wanted = _wanted(metrics, attributes, time)
    reader = {"csv": _csv_batches, "json": _json_batches, "parquet": _parquet_batches}[fmt]
    size = os.path.getsize(path)
    bar = terminal_bar(total=size, unit="B", unit_scale=True, desc=os.path.basename(path)) if progress else None
    try:
        for raw, pos, bad in reader(path, wanted, batch_rows):
            # ``bad``: malformed rows (CSV rows with the wrong field count, JSON lines that
            # are not objects) skipped by the reader; counted as dropped and as read.
            for start in range(0, max(raw.num_rows, 1), batch_rows):
                part = raw.slice(start, batch_rows)
                table, dropped = normalize_columns(part, metrics, attributes, time)
                yield table, dropped + bad, part.num_rows + bad
                bad = 0
            if bar is not None:
                bar.update(max(0, min(pos, size) - bar.n))
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OSError, UnicodeDecodeError) as e:
        raise FileReadError(f"{path}: cannot read as {fmt}: {_one_line(e)}") from e
    finally:
        if bar is not None:
            bar.close()


def _wanted(metrics, attributes, time) -> list[str]:
    seen: dict[str, None] = {}
    for c in [*metrics, *attributes, *([time] if time else [])]:
        seen.setdefault(c, None)
    return list(seen)


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())[:300]


def _missing(path: str, wanted: list[str], present: Sequence[str]) -> MissingColumnError:
    missing = [c for c in wanted if c not in present]
    return MissingColumnError(
        f"{path}: column(s) {', '.join(map(repr, missing))} not found; the file has: "
        + (", ".join(present) if present else "(no columns)"))


def terminal_bar(**options):
    """A tqdm bar on stderr when stderr is a terminal (``options`` go to tqdm), else None."""
    if not (hasattr(sys.stderr, "isatty") and sys.stderr.isatty()):
        return None
    from tqdm import tqdm  # imported lazily: only needed on a terminal

    return tqdm(file=sys.stderr, leave=False, **options)


def _open(path: str):
    return pa.input_stream(path, compression="detect")


def _py_open(path: str):
    codec = _codec(path)
    if codec == "gzip":
        import gzip
        return gzip.open(path, "rb")
    if codec == "bz2":
        import bz2
        return bz2.open(path, "rb")
    if codec is not None:
        return io.BufferedReader(pa.input_stream(path, compression=codec), buffer_size=1 << 20)
    return open(path, "rb", buffering=1 << 20)


def _csv_batches(path: str, wanted: list[str], batch_rows: int):
    # Every wanted column is read as a string: CSV has no types, and Arrow's typed
    # conversion would fail the whole block on one bad metric value.
    raw = pa.OSFile(path)
    stream = pa.CompressedInputStream(raw, _codec(path)) if _codec(path) else raw
    read_opts = pcsv.ReadOptions(block_size=1 << 22)
    skipped = [0]

    def skip_row(row) -> str:  # a row with the wrong number of fields loses only itself
        skipped[0] += 1
        return "skip"

    parse = pcsv.ParseOptions(invalid_row_handler=skip_row)
    conv = pcsv.ConvertOptions(column_types={c: pa.string() for c in wanted}, include_columns=wanted,
                               # only an empty field is missing: "NA" may be a region, "null" a value
                               strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=False)
    try:
        reader = pcsv.open_csv(stream, read_options=read_opts, parse_options=parse, convert_options=conv)
    except (pa.ArrowInvalid, pa.ArrowKeyError) as e:
        if "include_columns" in str(e) or "does not exist" in str(e):
            raw.close()
            with _open(path) as f:
                header = pcsv.open_csv(f, read_options=pcsv.ReadOptions(block_size=1 << 16)).schema.names
            raise _missing(path, wanted, header) from None
        raise
    with raw:
        for b in reader:
            bad, skipped[0] = skipped[0], 0
            yield b, raw.tell(), bad
        if skipped[0]:
            yield pa.table({c: pa.array([], pa.string()) for c in wanted}), raw.tell(), skipped[0]


def _codec(path: str) -> str | None:
    low = path.lower()
    return {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd", ".lz4": "lz4"}.get(os.path.splitext(low)[1])


def _json_batches(path: str, wanted: list[str], batch_rows: int):
    # JSON lines are parsed in chunks of whole lines; each chunk goes through Arrow's
    # parser, falling back to json.loads for a chunk whose columns mix types.
    seen: set[str] = set()
    good = bad_total = 0
    with _py_open(path) as buf:
        head = buf.peek(64)[:64] if hasattr(buf, "peek") else b""
        if head.lstrip()[:1] == b"[":
            chunks = _json_array_chunks(buf)  # a .json file holding one array of objects
        else:
            chunks = iter(lambda: buf.readlines(_JSON_CHUNK_BYTES), [])
        pos = 0
        for lines in chunks:
            pos += sum(len(x) for x in lines)
            lines = [ln for ln in lines if ln.strip()]
            if not lines:
                continue
            table, names, bad = _json_chunk(lines, wanted)
            seen.update(names)
            good += table.num_rows
            bad_total += bad
            yield table, pos, bad
    if bad_total and not good:
        raise FileReadError(f"{path}: no line is a JSON object ({bad_total} malformed lines)")
    missing = [c for c in wanted if c not in seen]
    if missing:
        raise _missing(path, wanted, sorted(seen))


def _json_array_chunks(buf) -> Iterator[list[bytes]]:
    try:
        items = json.load(buf)
    except ValueError as e:
        raise pa.ArrowInvalid(f"not a JSON array: {e}") from None
    if not isinstance(items, list):
        raise pa.ArrowInvalid("not a JSON array")
    for i in range(0, len(items), 100_000):
        yield [json.dumps(x).encode() for x in items[i:i + 100_000]]


def _json_chunk(lines: list[bytes], wanted: list[str]) -> tuple[pa.Table, set[str], int]:
    data = b"".join(ln if ln.endswith(b"\n") else ln + b"\n" for ln in lines)
    try:
        t = pj.read_json(io.BytesIO(data), read_options=pj.ReadOptions(block_size=len(data) + 1))
        ok = t.num_rows == len(lines) and not any(
            c in t.column_names and pa.types.is_nested(t.column(c).type) for c in wanted)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        ok = False
    if ok:
        names = set(t.column_names)
        cols = {c: (t.column(c) if c in names else pa.nulls(t.num_rows)) for c in wanted}
        return (pa.table(cols) if cols else t.select([])), names, 0
    objs, names, bad = [], set(), 0
    for ln in lines:
        try:
            o = json.loads(ln)
        except ValueError:
            o = None
        if not isinstance(o, dict):  # malformed line: dropped like a bad metric
            bad += 1
            continue
        names.update(o)
        objs.append(o)
    return pa.table({c: python_column([o.get(c) for o in objs]) for c in wanted}), names, bad


def _parquet_batches(path: str, wanted: list[str], batch_rows: int):
    try:
        # No pre-buffering: it reads ahead whole column chunks, so a pass over a big file
        # in batches would hold far more than a batch (and it is no faster on local files).
        pf = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowInvalid, OSError) as e:
        raise FileReadError(f"{path}: cannot read as parquet: {_one_line(e)}") from None
    names = pf.schema_arrow.names
    if any(c not in names for c in wanted):
        raise _missing(path, wanted, names)
    size = os.path.getsize(path)
    done = 0
    total = max(pf.metadata.num_rows, 1)
    if batch_rows >= pf.metadata.num_rows:
        yield pf.read(columns=wanted), size, 0  # one multi-threaded read: fastest
        return
    for b in pf.iter_batches(batch_size=batch_rows, columns=wanted):
        done += b.num_rows
        yield b, int(size * done / total), 0


def normalize_columns(part: pa.Table, metrics: Sequence[str], attributes: Sequence[str],
                      time: str | None = None) -> tuple[pa.Table, int]:
    """Keep the wanted columns, metrics as finite float64; drop (and count) other rows.

    Shared by files and HTTP request bodies so both see the same rows. Columns stay
    chunked (no copy of large string columns); only metrics are rebuilt.
    """
    n = part.num_rows
    keep = np.ones(n, dtype=bool)
    cols: dict[str, pa.Array] = {}
    for name in metrics:
        vals, codes = metric_to_float64(part.column(name))
        keep &= codes == OK
        cols[name] = vals
    for name in [*attributes, *([time] if time else [])]:
        if name in cols:
            continue
        col = part.column(name)
        if pa.types.is_null(col.type):
            col = pa.nulls(n, pa.string())
        cols[name] = col
    dropped = int(n - keep.sum())
    table = pa.table(cols) if cols else pa.table({})
    if dropped:
        table = table.filter(pa.array(keep))
    return table, dropped


def _unify(batches: list[pa.Table]) -> list[pa.Table]:
    """Make all tables share one schema (JSON chunks may disagree: fall back to strings)."""
    if len({b.schema for b in batches}) <= 1:
        return batches
    names = batches[0].schema.names
    target = []
    for i, name in enumerate(names):
        types = {b.schema.field(i).type for b in batches} - {pa.null()}
        if len(types) == 1:
            target.append(pa.field(name, types.pop()))
        elif types and all(pa.types.is_integer(t) or pa.types.is_floating(t) for t in types):
            target.append(pa.field(name, pa.float64()))
        else:
            target.append(pa.field(name, pa.string()))
    schema = pa.schema(target)
    out = []
    for b in batches:
        arrays = []
        for i, f in enumerate(schema):
            a = b.column(i)
            if a.type == f.type:
                arrays.append(a)
            elif pa.types.is_string(f.type) and not pa.types.is_null(a.type):
                arrays.append(pa.array([None if v is None else v if isinstance(v, str) else json.dumps(v)
                                        for v in a.to_pylist()], pa.string()))
            else:
                arrays.append(pc.cast(a, f.type))
        out.append(pa.Table.from_arrays(arrays, schema=schema))
    return out


def _empty_table(metrics, attributes, time) -> pa.Table:
    fields = [pa.field(m, pa.float64()) for m in metrics]
    fields += [pa.field(a, pa.string()) for a in _wanted([], attributes, time) if a not in metrics]
    return pa.schema(fields).empty_table()
