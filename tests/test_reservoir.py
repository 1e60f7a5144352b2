"""DampedReservoir: uniform without decay, recency-biased with decay."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

from operators import DampedReservoir


def test_fills_then_keeps_capacity_rows():
    r = DampedReservoir(capacity=50, decay=0.0, random_state=0)
    assert r.sample().shape[0] == 0
    r.insert(np.arange(30.0).reshape(15, 2))
    assert r.sample().shape == (15, 2)
    np.testing.assert_array_equal(r.sample(), np.arange(30.0).reshape(15, 2))
    r.insert(np.arange(2000.0).reshape(1000, 2))
    s = r.sample()
    assert s.shape == (50, 2) and len(r) == 50
    # rows are kept whole (never mixed across inserts)
    assert np.all(s[:, 1] == s[:, 0] + 1)
    assert r.total_weight == pytest.approx(1015.0)


def test_decay_zero_is_uniform_sample():
    # Inclusion counts of each of N items over many independent runs, items arriving in
    # batches of uneven sizes. Each count is Binomial(T, k/N) if sampling is uniform.
    N, k, T = 300, 30, 3000
    batches = np.split(np.arange(N, dtype=float), [1, 7, 40, 41, 150, 290])
    counts = np.zeros(N)
    for seed in range(T):
        r = DampedReservoir(capacity=k, decay=0.0, random_state=seed)
        for b in batches:
            r.insert(b)
        counts[r.sample()[:, 0].astype(int)] += 1
    p = k / N
    expected = T * p
    sd = np.sqrt(T * p * (1 - p))
    z = (counts - expected) / sd
    assert np.abs(z).max() < 5.5  # generous: 300 items, each |z| > 5.5 has p ~ 4e-8
    stat = float((z**2).sum())
    assert stat < scipy.stats.chi2.ppf(0.9999, N)
    # no drift between early and late arrivals
    early, late = counts[: N // 3].mean(), counts[-N // 3 :].mean()
    assert abs(early - late) < 0.05 * expected


def test_decay_makes_recent_data_dominate_after_shift():
    rng = np.random.default_rng(1)
    decayed = DampedReservoir(capacity=500, decay=0.5, random_state=0)
    uniform = DampedReservoir(capacity=500, decay=0.0, random_state=0)
    for _ in range(20):  # 20 periods of the old regime
        b = rng.normal(0.0, 1.0, size=(1000, 2))
        decayed.insert(b)
        uniform.insert(b)
        decayed.advance()
        uniform.advance()
    for _ in range(3):  # 3 periods after the shift
        b = rng.normal(10.0, 1.0, size=(1000, 2))
        decayed.insert(b)
        uniform.insert(b)
        decayed.advance()
        uniform.advance()
    new_decayed = (decayed.sample()[:, 0] > 5).mean()
    new_uniform = (uniform.sample()[:, 0] > 5).mean()
    assert new_decayed > 0.8
    assert new_uniform == pytest.approx(3 / 23, abs=0.06)  # uniform over all 23 periods


def test_deterministic_given_random_state():
    data = np.random.default_rng(2).normal(size=(5000, 3))
    a = DampedReservoir(100, 0.1, random_state=42)
    b = DampedReservoir(100, 0.1, random_state=42)
    for r in (a, b):
        r.insert(data[:2000])
        r.advance()
        r.insert(data[2000:])
    np.testing.assert_array_equal(a.sample(), b.sample())


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"capacity": 0}, "capacity"),
        ({"capacity": 2.5}, "capacity"),
        ({"capacity": 10, "decay": 1.0}, "decay"),
        ({"capacity": 10, "decay": -0.1}, "decay"),
        ({"capacity": 10, "random_state": "x"}, "random_state"),
    ],
)
def test_bad_parameters(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DampedReservoir(**kwargs)


def test_column_mismatch_raises():
    r = DampedReservoir(10, random_state=0)
    r.insert(np.zeros((5, 2)))
    with pytest.raises(ValueError, match="columns"):
        r.insert(np.zeros((5, 3)))
