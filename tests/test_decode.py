"""Message decoding against an independent per-message reference (json + datetime)."""

from __future__ import annotations

import datetime as dt
import json
import math
import random

import numpy as np
import pyarrow as pa
import pytest

import connectors.decode as decode_mod
from connectors.decode import DEAD_LETTER_REASONS, decode_json_messages, event_time_to_ms


def ref_decode(values, metric, attrs):
    """Reference: (kept rows as dicts, [(index, reason)]) using only the json module."""
    rows, dead = [], []
    for i, v in enumerate(values):
        try:
            o = json.loads(v)
        except ValueError:
            dead.append((i, "invalid_json"))
            continue
        if not isinstance(o, dict):
            dead.append((i, "not_an_object"))
            continue
        m = o.get(metric)
        if m is None or (isinstance(m, str) and not m.strip()):
            dead.append((i, "missing_metric"))
            continue
        if isinstance(m, bool) or not isinstance(m, (int, float, str)):
            dead.append((i, "non_numeric_metric"))
            continue
        try:
            f = float(m)
        except ValueError:
            dead.append((i, "non_numeric_metric"))
            continue
        if not math.isfinite(f):
            dead.append((i, "non_finite_metric"))
            continue
        rows.append({metric: f, **{a: o.get(a) for a in attrs}})
    return rows, dead


CASES = {
    "invalid_json": (b'{"power": 1.0,', "not valid JSON"),
    "not_an_object": (b"[1, 2, 3]", "array"),
    "missing_metric": (b'{"model": "M1"}', "'power'"),
    "non_numeric_metric": (b'{"power": "high", "model": "M1"}', "'power'"),
    "non_finite_metric": (b'{"power": NaN, "model": "M1"}', "'power'"),
}


@pytest.mark.parametrize("reason", DEAD_LETTER_REASONS)
def test_each_dead_letter_reason(reason):
    bad, needle = CASES[reason]
    good = [b'{"power": %d, "model": "M%d"}' % (i, i) for i in range(4)]
    values = good[:2] + [bad] + good[2:]
    d = decode_json_messages(values, ["power"], ["model"], offsets=[10, 11, 12, 13, 14],
                             timestamps_ms=[1, 2, 3, 4, 5])
    assert d.batch.column("power").to_pylist() == [0.0, 1.0, 2.0, 3.0]
    assert d.batch.column("model").to_pylist() == ["M0", "M1", "M2", "M3"]
    assert d.batch.column("event_time_ms").to_pylist() == [1, 2, 4, 5]
    (dl,) = d.dead_letters
    assert dl.reason == reason and dl.offset == 12
    assert needle in dl.detail
    assert dl.raw == bad.decode()


def test_more_metric_problems_and_raw_prefix():
    long_bad = b'{"power": "' + b"x" * 2000 + b'"}'
    values = [b'{"power": ""}', b'{"power": null}', b'{"power": true}', b'{"power": {"a": 1}}',
              b'{"power": "Infinity"}', b'{"power": 1e999}', b'{"power": "1e999"}', long_bad,
              b"", b"   ", b'{"power": 1}{"power": 2}', b"\xff\xfe{", b'"power"', b"null", b"3.5"]
    d = decode_json_messages(values, ["power"], [], offsets=list(range(len(values))))
    reasons = [x.reason for x in d.dead_letters]
    assert [x.offset for x in d.dead_letters] == list(range(len(values)))
    assert reasons == ["missing_metric", "missing_metric", "non_numeric_metric", "non_numeric_metric",
                       "non_finite_metric", "non_finite_metric", "non_finite_metric", "non_numeric_metric",
                       "invalid_json", "invalid_json", "invalid_json", "invalid_utf8",
                       "not_an_object", "not_an_object", "not_an_object"]
    assert len(d.dead_letters[7].raw) == 500
    assert d.dead_letters[11].raw.startswith("\ufffd")
    assert d.batch.num_rows == 0 and d.batch.schema.field("power").type == pa.float64()


@pytest.mark.parametrize("seed", range(5))
def test_mixed_polls_lose_nothing(seed):
    rng = random.Random(seed)
    values = []
    for i in range(500):
        k = rng.random()
        if k < 0.8:
            o = {"power": rng.choice([rng.gauss(0, 1), rng.randint(-5, 5), str(rng.random())]),
                 "model": rng.choice(["M1", "M2", None]), "fw": rng.choice(["0.40", "0.4"]), "z": i}
            if rng.random() < 0.1:
                del o["model"]
            values.append(json.dumps(o, indent=rng.choice([None, 2])).encode())
        else:
            values.append(rng.choice([b"{oops", b'{"power": "abc"}', b'{"model": "M1"}', b"[]",
                                      b'{"power": NaN}', b"", b'{"power": 1}\n{"power": 2}']))
    offsets = np.arange(1000, 1500)
    d = decode_json_messages(values, ["power"], ["model", "fw"], offsets=offsets,
                             timestamps_ms=np.arange(500) * 10)
    rows, dead = ref_decode(values, "power", ["model", "fw"])
    assert d.batch.num_rows + len(d.dead_letters) == len(values)
    assert d.batch.to_pylist() == [{**r, "event_time_ms": None} | {"event_time_ms": e}
                                   for r, e in zip(rows, d.batch.column("event_time_ms").to_pylist())]
    assert [(x.offset - 1000, x.reason) for x in d.dead_letters] == dead
    kept_idx = sorted(set(range(500)) - {i for i, _ in dead})
    assert d.batch.column("event_time_ms").to_pylist() == [i * 10 for i in kept_idx]


def test_clean_poll_uses_one_arrow_parse_not_json_loads(monkeypatch):
    calls = []
    real = json.loads
    monkeypatch.setattr(decode_mod.json, "loads", lambda s, *a, **k: calls.append(1) or real(s, *a, **k))
    values = [json.dumps({"power": i, "model": f"M{i % 3}", "k": i % 2}, indent=2).encode() for i in range(200)]
    d = decode_json_messages(values, ["power"], ["model", "k"])
    assert calls == []  # pretty-printed (raw newlines) still took the fast path
    assert d.batch.column("k").type == pa.int64()
    assert d.batch.column("power").to_pylist() == [float(i) for i in range(200)]
    decode_json_messages(values + [b"{bad"], ["power"], ["model", "k"])
    assert len(calls) == 201  # a bad message: per-message fallback


def test_types_do_not_depend_on_bad_neighbours():
    good = [b'{"m": 1, "n": 3, "b": true}', b'{"m": 2, "n": 4, "b": false}']
    clean = decode_json_messages(good, ["m"], ["n", "b"], timestamps_ms=[5, 6])
    dirty = decode_json_messages(good + [b"{"], ["m"], ["n", "b"], timestamps_ms=[5, 6, 7])
    assert clean.batch.schema == dirty.batch.schema
    assert clean.batch.to_pylist() == dirty.batch.to_pylist()
    mixed = decode_json_messages([b'{"m": 1, "n": 3}', b'{"m": 1, "n": "0.40"}', b'{"m": 1}'], ["m"], ["n"])
    assert mixed.batch.column("n").to_pylist() == ["3", "0.40", None]


def test_event_time_from_field_iso_and_epoch_ms():
    iso = ["2024-03-01T12:00:00Z", "2024-03-01T12:00:00.250+02:00", "2024-03-01 12:00:00", None, "garbage"]
    values = [json.dumps({"m": 1, "ts": t}).encode() for t in iso]
    d = decode_json_messages(values, ["m"], [], time="ts", timestamps_ms=[7, 8, 9, 10, 11])

    def ref(s):
        x = dt.datetime.fromisoformat(s)
        x = x if x.tzinfo else x.replace(tzinfo=dt.timezone.utc)
        return round(x.timestamp() * 1000)

    assert d.batch.column("event_time_ms").to_pylist() == [ref(iso[0]), ref(iso[1]), ref(iso[2]), 10, 11]
    assert d.batch.column("ts").to_pylist() == iso
    nums = decode_json_messages([b'{"m": 1, "ts": 1700000000123}', b'{"m": 1, "ts": 1.7e12}'], ["m"], [],
                                time="ts", timestamps_ms=[0, 0])
    assert nums.batch.column("event_time_ms").to_pylist() == [1700000000123, 1700000000000]
    ms, ok = event_time_to_ms(pa.array(["2024-01-01T00:00:00Z", "1700000000000", "x"]))
    assert ok.tolist() == [True, True, False] and ms[1] == 1700000000000


def test_empty_poll_and_argument_checks():
    d = decode_json_messages([], ["m"], ["a"], time="t")
    assert d.batch.num_rows == 0 and d.dead_letters == ()
    assert d.batch.schema.names == ["m", "a", "t", "event_time_ms"]
    with pytest.raises(ValueError, match="offsets"):
        decode_json_messages([b"{}"], ["m"], [], offsets=[1, 2])
