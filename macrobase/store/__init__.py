"""The result store: one package owns its SQLite tables, writer, reader and formats.

- :mod:`~macrobase.store.schema`: every table under ``SCHEMA_VERSION``, created and
  migrated together; the pipeline status vocabulary (``PIPELINE_STATES``, ``STATUS_FIELDS``).
- :mod:`~macrobase.store.writer`: :class:`SqliteSink` (the pipeline's writer) and
  :func:`make_sink` (any configured sink; JSON lines and Kafka are ``connectors.sinks``').
- :mod:`~macrobase.store.reader`: :class:`ResultStore`, read-only, for the API and the dashboard.
- :mod:`~macrobase.store.jsonutil` (strict JSON, ``canonical_attributes``),
  :mod:`~macrobase.store.timeutil` (``iso_utc``, ``parse_iso``, ``utc_datetime``) and
  :mod:`~macrobase.store.documents` (``RATIO_METRICS``, ``explanation_ratio``, and the
  library's wording, ``describe_attributes`` and ``describe``).

Import the names from here (``from macrobase.store import ResultStore, iso_utc``); the
dashboard imports nothing else of the product but this package and ``macrobase``.
"""

from macrobase.store.documents import RATIO_METRICS, describe, describe_attributes, explanation_ratio
from macrobase.store.jsonutil import canonical_attributes, dumps, strict_json
from macrobase.store.reader import ResultStore, SeriesPoint
from macrobase.store.schema import PIPELINE_STATES, SCHEMA_VERSION, STATUS_FIELDS
from macrobase.store.timeutil import iso_utc, parse_iso, utc_datetime
from macrobase.store.writer import SqliteSink, make_sink

__all__ = [
    "PIPELINE_STATES", "RATIO_METRICS", "SCHEMA_VERSION", "STATUS_FIELDS", "ResultStore", "SeriesPoint",
    "SqliteSink", "canonical_attributes", "describe", "describe_attributes", "dumps", "explanation_ratio",
    "iso_utc", "make_sink", "parse_iso", "strict_json", "utc_datetime",
]
