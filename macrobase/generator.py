"""The ``generator`` source: live synthetic telemetry (the demo scenario) at a set rate.

Used in-process as a pipeline source, and by the demo to feed a Kafka topic.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from connectors.chunks import Chunk, EventSchema
from macrobase.synthetic import scenario_batch

TICK_S = 0.1


@dataclass(frozen=True)
class GeneratorSpec:
    """Events of ``scenario`` at ``rate`` per second, from position ``start_offset``."""

    rate: float
    seed: int
    scenario: str
    schema: EventSchema
    start_offset: int = 0
    partition: int = 0

    @property
    def key(self) -> str:
        return f"generator-{self.seed}"

    @property
    def offset_key(self) -> tuple[str, int]:
        return (self.key, 0)

    def open(self, position: int) -> "GeneratorReader":
        return GeneratorReader(self, position)


class GeneratorReader:
    def __init__(self, spec: GeneratorSpec, position: int) -> None:
        self.spec = spec
        self.position = position
        self.rng = np.random.default_rng([spec.seed, position])
        self.started = time.monotonic() - position / spec.rate
        self.epoch_ms = int(time.time() * 1000) - int(position / spec.rate * 1000)

    def read(self, timeout_s: float) -> Chunk | None:
        """The events due by now (at most one second's worth), pacing to ``rate``."""
        now = time.monotonic()
        due = int((now - self.started) * self.spec.rate)
        if due <= self.position:
            time.sleep(min(timeout_s, TICK_S))
            return None
        n = min(due - self.position, int(self.spec.rate) + 1)
        r = self.spec.rate
        batch = scenario_batch(self.rng, n, self.position / r, (self.position + n) / r, self.epoch_ms)
        start, self.position = self.position, self.position + n
        wanted = list(self.spec.schema.metrics) + list(self.spec.schema.attributes)
        return Chunk(self.spec.key, 0, self.position, batch.select(wanted), start_offset=start)

    def heartbeat(self) -> Chunk:
        return Chunk(self.spec.key, 0, self.position)

    def close(self) -> None:
        pass
