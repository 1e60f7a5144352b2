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


# --------------------------------------------------------------------------- live scenario
# The demo's story, on a cycle of SCENARIO_PERIOD_S simulated seconds: one device is always
# broken; a firmware rollout goes bad in one region, then is rolled back; meanwhile a
# model/carrier combination starts misbehaving.
SCENARIO_PERIOD_S = 240.0
SCENARIO: tuple[tuple[float, float, Cause], ...] = (
    (0.0, SCENARIO_PERIOD_S, Cause({"device_id": "D00042"}, 1.0)),
    (10.0, 130.0, Cause({"region": "region-2", "firmware": "0.4"}, 0.7)),
    (80.0, 220.0, Cause({"device_model": "M107", "carrier": "carrier-03"}, 0.6)),
)


def scenario_batch(rng: np.random.Generator, n: int, t0: float, t1: float,
                   epoch_ms: int = 0) -> pa.RecordBatch:
    """``n`` events spread over simulated seconds [t0, t1) of the live scenario."""
    codes = {a: rng.integers(0, len(v), n, dtype=np.int32) for a, v in ATTRIBUTES.items()}
    t = np.sort(rng.uniform(t0, t1, n))
    anomalous = rng.random(n) < BACKGROUND_RATE
    phase = t % SCENARIO_PERIOD_S
    for start, end, cause in SCENARIO:
        match = (phase >= start) & (phase < end)
        for attr, value in cause.items.items():
            match &= codes[attr] == ATTRIBUTES[attr].index(value)
        anomalous |= match & (rng.random(n) < cause.probability)
    drain = np.where(anomalous, rng.normal(200.0, 10.0, n), rng.normal(100.0, 10.0, n)).round(3)
    columns = {"ts": pa.array(epoch_ms + (t * 1000).astype(np.int64)), "power_drain": pa.array(drain)}
    for attr, values in ATTRIBUTES.items():
        columns[attr] = pa.DictionaryArray.from_arrays(pa.array(codes[attr]), pa.array(values))
    return pa.RecordBatch.from_pydict(columns)


def to_json_lines(batch: pa.RecordBatch) -> list[bytes]:
    """One JSON object per event, as a Kafka producer would send them."""
    cols = batch.to_pydict()
    keys = list(cols)
    return [
        ("{" + ",".join(f'"{k}":{_json(v)}' for k, v in zip(keys, row)) + "}").encode()
        for row in zip(*(cols[k] for k in keys))
    ]


def _json(v) -> str:
    return f'"{v}"' if isinstance(v, str) else ("null" if v is None else repr(v))
