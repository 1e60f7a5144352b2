"""A Beam splittable DoFn that streams :class:`~connectors.chunks.Chunk` objects.

One element per source (a Kafka (topic, partition), or a file); the restriction is an
``OffsetRange`` of positions (Kafka offsets or row indices). Each invocation polls for up
to ``slice_s`` seconds, claiming the last position of every chunk, then defers the rest,
so the runner checkpoints and resumes it, possibly in another worker process. When a
source is idle (or its broker unreachable) a heartbeat chunk without rows still flows, so
results go out on time.

Nothing lives in module globals. Open readers are a per-instance cache: a reader is reused
only when this instance handed out everything up to the restriction's start; otherwise a
new one opens at that start, so a runner that moves the restriction between workers reads
every position exactly once. A run stops through :class:`StopCondition`, which every
worker can evaluate on its own: a wall-clock end time and a marker file.
"""
from __future__ import annotations

import dataclasses
import os
import time
from typing import Any, Iterator

import connectors._quiet_beam  # noqa: F401  (before Beam)
import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.transforms.core import RestrictionProvider

from connectors.chunks import Chunk

END_OF_TIME = 2**63 - 2
# A restriction position is epoch * EPOCH + offset; the epoch counts the times the
# partition's log was lost and read again from its beginning.
EPOCH = 1 << 40


@dataclasses.dataclass(frozen=True)
class StopCondition:
    """When readers end their restriction: at ``deadline`` (epoch seconds) or once
    ``marker`` exists. Both are visible from any worker process on the machine; on a
    distributed runner the runner's own cancel or drain stops the job."""

    deadline: float | None = None
    marker: str | None = None

    def reached(self) -> bool:
        if self.deadline is not None and time.time() >= self.deadline:
            return True
        return self.marker is not None and os.path.exists(self.marker)


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

    def __init__(self, stop: StopCondition = StopCondition(), slice_s: float = 1.0, poll_s: float = 0.05,
                 heartbeat_s: float = 0.25, idle_polls_before_yield: int = 3):
        self.stop = stop
        self.slice_s = slice_s
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self.idle_polls_before_yield = idle_polls_before_yield

    def setup(self) -> None:
        # spec key -> (reader, the position this instance deferred at)
        self._readers: dict[str, tuple[Any, int]] = {}

    @beam.DoFn.unbounded_per_element()
    def process(self, spec, tracker=beam.DoFn.RestrictionParam(_Positions()),
                watermark=beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())
                ) -> Iterator[Chunk]:
        position = tracker.current_restriction().start
        epoch, offset = divmod(position, EPOCH)
        reader = self._reader(spec, position, offset)
        deadline = time.monotonic() + self.slice_s
        last_out = time.monotonic()
        idle_polls = 0
        while time.monotonic() < deadline:
            if self.stop.reached():
                yield dataclasses.replace(reader.heartbeat(), end=True)
                self._finish(tracker, reader)
                return
            chunk = reader.read(self.poll_s)
            if chunk is not None and chunk.end:
                yield chunk
                self._finish(tracker, reader)
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
            # Offsets only go back when the broker lost its log (e.g. a restarted
            # in-memory broker) and the reader started over: a new epoch, so claimed
            # positions keep increasing and a resumption elsewhere seeks the new log.
            if chunk.start_offset is not None and chunk.start_offset < offset:
                epoch += 1
            offset = chunk.next_offset
            claimed = epoch * EPOCH + offset
            if claimed > position:
                if not tracker.try_claim(claimed - 1):
                    reader.close()  # the runner split here; the rest is read from ``position``
                    return
                position = claimed
            last_out = time.monotonic()
            yield chunk
        self._readers[spec.key] = (reader, position)
        tracker.defer_remainder()

    def _reader(self, spec, position: int, offset: int):
        cached = self._readers.pop(spec.key, None)
        if cached is not None:
            reader, deferred_at = cached
            if deferred_at == position:
                return reader  # this instance read everything before ``position``
            reader.close()    # another worker read on meanwhile: its position is stale
        return spec.open(offset)

    @staticmethod
    def _finish(tracker, reader) -> None:
        tracker.try_claim(tracker.current_restriction().stop - 1)
        reader.close()

    def teardown(self) -> None:
        for reader, _ in self._readers.values():
            try:
                reader.close()
            except Exception:  # closing a broken connection must not hide the real outcome
                pass
        self._readers.clear()
