"""A Beam splittable DoFn that streams :class:`~connectors.chunks.Chunk` objects.

One element per source (a Kafka (topic, partition), or a file); the restriction is an
``OffsetRange`` of positions (Kafka offsets or row indices). Each invocation polls for up
to ``slice_s`` seconds, claiming the last position of every chunk, then defers the rest,
so the runner checkpoints and resumes it. When a source is idle (or its broker is
unreachable) a heartbeat chunk without rows still flows, so results go out on time.

The in-process runner (FnApiRunner) cannot cancel an unbounded pipeline, so a run is
stopped from the source side: :func:`request_stop` makes every reader of that run emit
an ``end`` chunk and finish its restriction.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from typing import Any, Iterator

import connectors._quiet_beam  # noqa: F401  (before Beam)
import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider

from connectors.chunks import Chunk

END_OF_TIME = 2**63 - 2

# In-process registries: DoFns of importable modules are pickled by reference, so the
# runner's copies see the same objects as the thread that started the run.
_STOP: dict[str, threading.Event] = {}
_READERS: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()


def stop_event(run_id: str) -> threading.Event:
    with _LOCK:
        return _STOP.setdefault(run_id, threading.Event())


def request_stop(run_id: str) -> None:
    stop_event(run_id).set()


def release_run(run_id: str) -> None:
    """Close every reader a run left open and forget its stop flag."""
    with _LOCK:
        keys = [k for k in _READERS if k[0] == run_id]
        readers = [_READERS.pop(k) for k in keys]
        _STOP.pop(run_id, None)
    for r in readers:
        try:
            r.close()
        except Exception:  # closing a broken connection must not hide the real outcome
            pass


class _Positions(RestrictionProvider):
    def initial_restriction(self, spec) -> OffsetRange:
        return OffsetRange(spec.start_offset, END_OF_TIME)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return OffsetRestrictionTracker(restriction)

    def restriction_size(self, spec, restriction: OffsetRange) -> int:
        return 1

    def truncate(self, spec, restriction):  # drain: nothing left to read
        return None


class ReadChunks(beam.DoFn):
    """Splittable DoFn: source spec -> stream of chunks."""

    def __init__(self, run_id: str, slice_s: float = 1.0, poll_s: float = 0.05, heartbeat_s: float = 0.25,
                 idle_polls_before_yield: int = 3):
        self.run_id = run_id
        self.slice_s = slice_s
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.idle_polls_before_yield = idle_polls_before_yield

    @beam.DoFn.unbounded_per_element()
    def process(self, spec, tracker=beam.DoFn.RestrictionParam(_Positions()),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())
                ) -> Iterator[Chunk]:
        stop = stop_event(self.run_id)
        position = tracker.current_restriction().start
        reader = self._reader(spec, position)
        deadline = time.monotonic() + self.slice_s
        last_out = time.monotonic()
        idle_polls = 0
        while time.monotonic() < deadline:
            if stop.is_set():
                yield dataclasses.replace(reader.heartbeat(), end=True)
                self._finish(spec, tracker)
                return
            chunk = reader.read(self.poll_s)
            if chunk is not None and chunk.end:
                yield chunk
                self._finish(spec, tracker)
                return
            if chunk is None or chunk.batch is None:
                idle_polls += 1
                if chunk is not None or time.monotonic() - last_out >= self.heartbeat_s:
                    last_out = time.monotonic()
                    yield chunk or reader.heartbeat()
                if idle_polls >= self.idle_polls_before_yield:
                    yield reader.heartbeat()  # results still go out while every source idles
                    break  # and the runner serves other sources meanwhile
                continue
            idle_polls = 0
            # Positions only go back when the broker lost its log (e.g. a restarted
            # in-memory broker): the reader starts over; keep the claimed range as is.
            if chunk.next_offset > position:
                if not tracker.try_claim(chunk.next_offset - 1):
                    return
                position = chunk.next_offset
            last_out = time.monotonic()
            yield chunk
        tracker.defer_remainder()

    def _reader(self, spec, position: int):
        key = (self.run_id, spec.key)
        with _LOCK:
            reader = _READERS.get(key)
        # A cached reader knows its own position (it may be ahead of a deferred
        # restriction's start only by what it has already handed out).
        if reader is None:
            reader = spec.open(position)
            with _LOCK:
                _READERS[key] = reader
        return reader

    def _finish(self, spec, tracker) -> None:
        tracker.try_claim(tracker.current_restriction().stop - 1)
        with _LOCK:
            reader = _READERS.pop((self.run_id, spec.key), None)
        if reader is not None:
            reader.close()
