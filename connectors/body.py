"""Rows sent in an HTTP request body (CSV, a JSON array, JSON lines) as Arrow, like a file.

The same column conventions as :mod:`connectors.files` (which ``macrobase explain`` uses),
so ``POST /api/v1/explain`` and the command line see the same rows: metrics become finite
``float64`` and a row whose metric is missing, empty, non-numeric or not finite is dropped
and counted; CSV attributes stay strings as written; JSON attributes keep native types
(a column mixing types falls back to strings); missing values stay null.

Errors are :class:`BodyError` (a ValueError) whose ``parameter`` says what to fix: the
``body`` itself, or the ``metric`` / ``attributes`` naming a column the body lacks.

Example:
    >>> d = read_body(b"m,fw\\n1.5,0.40\\nx,0.5\\n", "text/csv", ["m"], ["fw"])
    >>> d.table.to_pydict(), d.dropped, d.total_read
    ({'m': [1.5], 'fw': ['0.40']}, 1, 2)
    >>> read_body(b'[{"m": 2, "a": 7}, {"m": null, "a": 8}]', "application/json", ["m"], ["a"]).dropped
    1
"""

from __future__ import annotations

import io
import json
from typing import Any, Sequence

import pyarrow as pa
import pyarrow.csv as pcsv

from connectors.decode import python_column
from connectors.files import FileData, normalize_columns

__all__ = ["BodyError", "BODY_FORMATS", "body_format", "read_body"]

#: Media type -> body format.
BODY_FORMATS = {
    "text/csv": "csv",
    "application/csv": "csv",
    "application/json": "json",
    "application/x-ndjson": "jsonl",
    "application/jsonl": "jsonl",
}


class BodyError(ValueError):
    """The body cannot be used; ``parameter`` names what to fix ("body", "metric", "attributes")."""

    def __init__(self, message: str, parameter: str = "body"):
        super().__init__(message)
        self.parameter = parameter


def body_format(media_type: str | None) -> str | None:
    """``"csv"``, ``"json"``, ``"jsonl"`` for a media type (parameters such as charset ignored), else None.

    >>> body_format("text/csv; charset=utf-8"), body_format("text/plain")
    ('csv', None)
    """
    if not media_type:
        return None
    return BODY_FORMATS.get(media_type.split(";", 1)[0].strip().lower())


def read_body(data: bytes, media_type: str, metrics: Sequence[str], attributes: Sequence[str]) -> FileData:
    """Parse a request body into the kept rows, the dropped count and the rows read."""
    fmt = body_format(media_type)
    if fmt is None:
        raise BodyError(f"unsupported content type {media_type!r}; send one of {', '.join(BODY_FORMATS)}")
    metrics, attributes = list(metrics), list(attributes)
    wanted = list(dict.fromkeys([*metrics, *attributes]))
    try:
        raw = {"csv": _csv, "json": _json_array, "jsonl": _json_lines}[fmt](data, wanted)
    except (pa.ArrowException, UnicodeDecodeError, KeyError) as exc:  # malformed or duplicate columns
        raise BodyError(f"cannot read the body as {fmt}: {' '.join(str(exc).split())[:300]}") from None
    if raw is None:  # no rows at all: nothing to explain, nothing to complain about
        empty = [pa.field(c, pa.float64() if c in metrics else pa.string()) for c in wanted]
        return FileData(table=pa.schema(empty).empty_table(), dropped=0, total_read=0)
    table, present = raw
    missing = [c for c in wanted if c not in present]
    if missing:
        parameter = "metric" if any(c in metrics for c in missing) else "attributes"
        raise BodyError(
            f"column(s) {', '.join(map(repr, missing))} not found; the body has: "
            + (", ".join(sorted(present)) if present else "(no columns)"), parameter)
    table, dropped = normalize_columns(table, metrics, attributes)
    return FileData(table=table, dropped=dropped, total_read=table.num_rows + dropped)


def _objects(rows: list[Any], wanted: list[str], what: str) -> tuple[pa.Table, set[str]]:
    present: set[str] = set()
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise BodyError(f"expected {what}; element {i} is {_kind(row)}")
        present.update(row)
    return pa.table({c: python_column([row.get(c) for row in rows]) for c in wanted if c in present}), present


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null", dict: "an object"}.get(
        type(value), "a number")


def _csv(data: bytes, wanted: list[str]) -> tuple[pa.Table, set[str]] | None:
    if not data.strip():
        return None
    # Every column is read as text first, as connectors.files does: CSV has no types and
    # a typed read would fail the whole body on one bad metric value.
    header = pcsv.open_csv(io.BytesIO(data)).schema.names
    present = set(header)
    conv = pcsv.ConvertOptions(column_types={c: pa.string() for c in wanted if c in present},
                               include_columns=[c for c in wanted if c in present],
                               strings_can_be_null=True, null_values=[""], quoted_strings_can_be_null=False)
    table = pcsv.read_csv(io.BytesIO(data), convert_options=conv)
    return table, present


def _json_array(data: bytes, wanted: list[str]) -> tuple[pa.Table, set[str]] | None:
    try:
        rows = json.loads(data)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(rows, list):
        raise BodyError(f"expected a JSON array of objects, got {_kind(rows)}")
    return _objects(rows, wanted, "a JSON array of objects") if rows else None


def _json_lines(data: bytes, wanted: list[str]) -> tuple[pa.Table, set[str]] | None:
    rows = []
    for number, line in enumerate(data.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except ValueError as exc:
                raise BodyError(f"line {number} is not valid JSON: {exc}") from None
    return _objects(rows, wanted, "one JSON object per line") if rows else None
