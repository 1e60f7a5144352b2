"""A result sink that waits out faults instead of failing the run.

A locked or read-only SQLite file, a full disk or an unreachable Kafka broker makes a
write fail. :class:`RetryingSink` then drops the broken sink, waits (doubling from
``backoff_s`` up to ``max_backoff_s``) and opens a new one, until a write succeeds. While it waits the caller is blocked, so the pipeline stops consuming
(back-pressure), and nothing after the failed result is stored or committed: offsets only
ever follow a stored result.

Only a stop gives up: once ``stopping()`` is true a failing write raises
:class:`~connectors.sinks.SinkError`, so the run ends with a clear error instead of
hanging; what was not stored is counted again from the last checkpoint on restart.
"""
from __future__ import annotations

import logging
import sqlite3
import threading
from typing import Any, Callable, Mapping

from connectors.kafka_client import BrokerUnavailable, KafkaClientError
from connectors.sinks import ResultSink, SinkError

log = logging.getLogger(__name__)

#: What a write can fail with when its store is faulted (rather than a bug in the caller).
SINK_FAULTS = (sqlite3.Error, OSError, SinkError, BrokerUnavailable, KafkaClientError)


class RetryingSink:
    """The sink ``open_sink()`` makes, with retries; ``on_fault(message)`` hears of every failure.

    >>> import functools, os, tempfile
    >>> from connectors.sinks import JsonlSink
    >>> path = os.path.join(tempfile.mkdtemp(), "r.jsonl")
    >>> sink = RetryingSink(functools.partial(JsonlSink, path))
    >>> sink.write({"pipeline": "p"})
    >>> sink.faults, sink.error
    (0, None)
    >>> sink.close()
    """

    def __init__(self, open_sink: Callable[[], ResultSink], on_fault: Callable[[str], None] = lambda message: None,
                 stopping: Callable[[], bool] = lambda: False,
                 backoff_s: float = 0.2, max_backoff_s: float = 5.0) -> None:
        self.open_sink = open_sink
        self.on_fault = on_fault
        self.stopping = stopping
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.faults = 0                 # failed writes, over the sink's life
        self.error: str | None = None   # the current fault; None once a write succeeded
        self._sink: ResultSink | None = None
        self._wake = threading.Event()

    def write(self, document: Mapping[str, Any], **kwargs: Any) -> None:
        """Store ``document`` (``ResultSink.write`` arguments), however long the fault lasts."""
        attempt = 0
        while True:
            try:
                self._open().write(document, **kwargs)
            except SINK_FAULTS as exc:
                attempt += 1
                self._fault(exc, attempt)
                if self.stopping():
                    raise SinkError(f"result store unavailable while stopping: {self.error}; the results "
                                    "since the last checkpoint are counted again on restart") from exc
                self._wake.wait(min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1)))
                continue
            if self.error is not None:
                log.warning("result store is back after %d failed writes", attempt)
                self.error = None
            return

    def write_status(self, status: Mapping[str, Any]) -> None:
        """Best effort: status is advisory, and a faulted store cannot take it either."""
        try:
            write_status = getattr(self._open(), "write_status", None)
            if write_status is not None:
                write_status(status)
        except SINK_FAULTS as exc:
            log.debug("status not stored: %s", exc)
            self._drop()

    def close(self) -> None:
        self._wake.set()
        self._drop()

    def _open(self) -> ResultSink:
        if self._sink is None:
            self._sink = self.open_sink()
        return self._sink

    def _fault(self, exc: BaseException, attempt: int) -> None:
        self.faults += 1
        message = f"result store: {type(exc).__name__}: {exc}; retrying"
        if message != self.error:
            log.warning("%s (attempt %d)", message, attempt)
        self.error = message
        self._drop()  # a connection that saw the fault may stay broken: start afresh
        self.on_fault(message)

    def _drop(self) -> None:
        sink, self._sink = self._sink, None
        if sink is not None:
            try:
                sink.close()
            except SINK_FAULTS:
                pass  # closing a faulted store may fail too; the next write opens a new one


__all__ = ["RetryingSink", "SINK_FAULTS"]
