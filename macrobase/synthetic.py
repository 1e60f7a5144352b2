"""Synthetic device telemetry with planted anomaly causes (demo, tests, benchmarks).

A fleet of devices reports ``power_drain``. Healthy events are N(100, 10); events of a
planted cause are N(200, 10) with the cause's probability, so the ground truth is known:

>>> table, causes = planted_table(20_000, seed=1)
>>> sorted(causes[1].items())
[('device_model', 'M101'), ('firmware', '0.4')]
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

ATTRIBUTES: dict[str, list[str]] = {
    "region": [f"region-{i}" for i in range(5)],
    "firmware": [f"0.{i}" for i in range(1, 9)],
    "device_model": [f"M{100 + i}" for i in range(12)],
    "carrier": [f"carrier-{i:02d}" for i in range(25)],
    "app_version": [f"5.{i // 20}.{i % 20}" for i in range(200)],
    "device_id": [f"D{i:05d}" for i in range(5000)],
}


@dataclass(frozen=True)
class Cause:
    """Events matching ``items`` are anomalous with probability ``probability``."""

    items: dict[str, str]
    probability: float


# One device (order 1), a pair of common values (order 2), a triple (order 3).
PLANTED = (
    Cause({"device_id": "D00042"}, 1.0),
    Cause({"device_model": "M101", "firmware": "0.4"}, 0.4),
    Cause({"region": "region-2", "firmware": "0.2", "carrier": "carrier-07"}, 0.9),
)
BACKGROUND_RATE = 0.005   # healthy devices still misbehave now and then
MISSING_APP_VERSION = 0.01


def planted_table(
    n_rows: int, seed: int = 0, causes: tuple[Cause, ...] = PLANTED
) -> tuple[pa.Table, list[dict[str, str]]]:
    """A table of ``n_rows`` events (dictionary-encoded attributes) and the planted causes."""
    rng = np.random.default_rng(seed)
    codes = {a: rng.integers(0, len(v), n_rows, dtype=np.int32) for a, v in ATTRIBUTES.items()}
    anomalous = rng.random(n_rows) < BACKGROUND_RATE
    for cause in causes:
        match = np.ones(n_rows, dtype=bool)
        for attr, value in cause.items.items():
            match &= codes[attr] == ATTRIBUTES[attr].index(value)
        anomalous |= match & (rng.random(n_rows) < cause.probability)
    drain = np.where(anomalous, rng.normal(200.0, 10.0, n_rows), rng.normal(100.0, 10.0, n_rows))
    columns = {"power_drain": pa.array(drain), "anomalous": pa.array(anomalous)}
    for attr, values in ATTRIBUTES.items():
        mask = None
        if attr == "app_version":
            mask = rng.random(n_rows) < MISSING_APP_VERSION
        columns[attr] = pa.DictionaryArray.from_arrays(
            pa.array(codes[attr], mask=mask), pa.array(values)
        )
    return pa.table(columns), [dict(c.items) for c in causes]
