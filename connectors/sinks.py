"""Document sinks: where a pipeline's result documents go when they are not stored.

:class:`ResultSink` is the interface every sink follows (the result store's
``macrobase.store.SqliteSink`` too) and :class:`SinkError` what a failed write raises.
:class:`JsonlSink` appends each document as a JSON line, :class:`KafkaSink` produces it to
a topic; both only carry documents (``stores_state`` is False: a pipeline using them keeps
no resumable state). ``macrobase.store.make_sink`` builds the sink a configuration names.

A document reaches a sink as strict JSON data (DESIGN.md: an infinite ratio is already
``"inf"``); ``encode`` turns it into one line of text. The default refuses what strict JSON
cannot hold (``ValueError`` for inf or NaN); the product passes the result store's
``macrobase.store.dumps``, which also writes stray infinities, NumPy scalars and datetimes.

>>> import os, tempfile, pathlib
>>> path = os.path.join(tempfile.mkdtemp(), "r.jsonl")
>>> with JsonlSink(path) as sink:
...     sink.write({"pipeline": "t", "explanations": [{"risk_ratio": "inf"}]})
>>> pathlib.Path(path).read_text()
'{"pipeline":"t","explanations":[{"risk_ratio":"inf"}]}\\n'
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Mapping
from typing import Any, Callable

__all__ = ["ResultSink", "JsonlSink", "KafkaSink", "SinkError"]

#: ``encode`` of a document sink: a result document as one line of JSON text.
Encoder = Callable[[Mapping[str, Any]], str]


class SinkError(RuntimeError):
    """A result could not be stored or delivered."""


def _strict_dumps(document: Mapping[str, Any]) -> str:
    return json.dumps(document, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


class ResultSink:
    """Base of all sinks: ``write`` one result document, ``close``; usable as a context manager."""

    #: True when ``write`` persists offsets and checkpoints atomically with the document.
    stores_state = False

    def write(
        self,
        document: Mapping[str, Any],
        dead_letters: Iterable[Any] = (),
        offsets: Mapping[Any, int] | None = None,
        checkpoint: bytes | None = None,
    ) -> None:
        """Store one result document (and, where supported, dead letters, offsets, checkpoint)."""
        raise NotImplementedError

    def close(self) -> None:
        """Flush and release resources; idempotent."""

    def __enter__(self) -> "ResultSink":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()


# --------------------------------------------------------------------------- JSON lines


class JsonlSink(ResultSink):
    """Append each result document as one JSON line, flushed after every write."""

    def __init__(self, path: str | os.PathLike, encode: Encoder = _strict_dumps):
        self.path = os.fspath(path)
        self.encode = encode
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed in close()

    def write(self, document, dead_letters=(), offsets=None, checkpoint=None) -> None:
        """Append ``document``; dead letters, offsets and checkpoint are not stored by this sink."""
        line = self.encode(document) + "\n"
        with self._lock:
            if self._file is None:
                raise SinkError(f"{self.path}: sink is closed")
            self._file.write(line)
            self._file.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


# --------------------------------------------------------------------------- Kafka


class KafkaSink(ResultSink):
    """Produce each result document as JSON to a Kafka topic (key: pipeline name), with confluent-kafka.

    ``write`` waits until the broker acknowledged the document (up to ``timeout`` seconds)
    and raises SinkError otherwise, so offsets are never committed for undelivered results.
    """

    def __init__(self, bootstrap_servers: str | Iterable[str], topic: str, timeout: float = 10.0,
                 producer_config: Mapping[str, Any] | None = None, encode: Encoder = _strict_dumps):
        from confluent_kafka import Producer  # imported here: only this sink needs librdkafka

        servers = bootstrap_servers if isinstance(bootstrap_servers, str) else ",".join(bootstrap_servers)
        self.bootstrap_servers = servers
        self.topic = topic
        self.timeout = float(timeout)
        self.encode = encode
        config = {"bootstrap.servers": servers, "enable.idempotence": True, "linger.ms": 0}
        config.update(producer_config or {})
        self._producer = Producer(config)
        self._errors: list[str] = []

    def _delivered(self, err: Any, msg: Any) -> None:
        if err is not None:
            self._errors.append(str(err))

    def write(self, document, dead_letters=(), offsets=None, checkpoint=None) -> None:
        """Produce ``document`` and wait for its acknowledgement."""
        if self._producer is None:
            raise SinkError(f"kafka sink to {self.topic!r} is closed")
        from confluent_kafka import KafkaException

        key = str(document.get("pipeline", "")).encode()
        try:
            self._producer.produce(self.topic, value=self.encode(document).encode(), key=key,
                                   on_delivery=self._delivered)
            deadline = time.monotonic() + self.timeout
            while len(self._producer) and time.monotonic() < deadline:
                self._producer.flush(max(0.0, deadline - time.monotonic()))
        except (KafkaException, BufferError, SystemError) as exc:
            # SystemError: seen from flush() in an SDK worker while the broker was away.
            raise SinkError(f"kafka sink to {self.topic!r}: {type(exc).__name__}: {exc}") from exc
        if self._errors:
            errors, self._errors = self._errors, []
            raise SinkError(f"kafka sink to {self.topic!r}: delivery failed: {errors[0]}")
        if len(self._producer):
            raise SinkError(f"kafka sink to {self.topic!r}: not acknowledged within {self.timeout:g}s")

    def close(self) -> None:
        """Flush outstanding messages and drop the producer."""
        if self._producer is not None:
            self._producer.flush(self.timeout)
            self._producer = None
