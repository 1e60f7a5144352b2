"""Exact order statistics of data too big to hold, by a few passes over it.

A classifier fitted on a file bigger than memory still needs the exact median, MAD or
percentile. :func:`order_statistics` finds the k-th smallest values by radix selection on
the bits of the float64 values: each pass counts the values per bucket of the next
``_BITS`` bits (only among values whose higher bits already match), which locates the
bucket holding each wanted rank; once a bucket holds at most ``budget`` values, one more
pass collects them and a partition picks the exact value. Memory is the histogram
(``2**_BITS`` counts) plus ``budget`` values; typical data needs 2 or 3 passes.

``passes`` is a callable returning a fresh iterable of float64 arrays each time it is
called (e.g. re-reading the metric column of a Parquet file). No NaN may occur.

>>> import numpy as np
>>> x = np.random.default_rng(0).normal(size=10_001)
>>> chunks = lambda: np.array_split(x, 7)
>>> float(order_statistics(chunks, [5_000])[0]) == float(np.median(x))
True
>>> percentile_of_passes(chunks, len(x), 99.0) == float(np.percentile(x, 99.0))
True
"""
from __future__ import annotations

from typing import Any, Callable, Iterable, Sequence

import numpy as np
from numba import njit

Passes = Callable[[], Iterable[np.ndarray]]
Mapper = Callable[[Callable[[np.ndarray], Any], Iterable[np.ndarray]], Iterable[Any]]

_BITS = 16


@njit(cache=True, nogil=True)
def _keys(x):
    """Order-preserving uint64 keys of float64 values (-0.0 and 0.0 kept apart; no NaN)."""
    bits = x.view(np.uint64)
    out = np.empty(x.shape[0], dtype=np.uint64)
    for i in range(x.shape[0]):
        b = bits[i]
        out[i] = ~b if b >> np.uint64(63) else b | np.uint64(1 << 63)
    return out


@njit(cache=True, nogil=True)
def _histogram(keys, known_bits, prefix, hist):
    """hist[next 16 bits] += 1 for keys whose top ``known_bits`` bits equal ``prefix``."""
    shift = np.uint64(64 - known_bits - 16)
    for i in range(keys.shape[0]):
        k = keys[i]
        if known_bits == 0 or (k >> np.uint64(64 - known_bits)) == prefix:
            hist[(k >> shift) & np.uint64(0xFFFF)] += 1


@njit(cache=True, nogil=True)
def _collect(x, keys, known_bits, prefix, out, filled):
    """Append the values whose top ``known_bits`` key bits equal ``prefix`` to ``out``."""
    j = filled
    for i in range(keys.shape[0]):
        if (keys[i] >> np.uint64(64 - known_bits)) == prefix:
            out[j] = x[i]
            j += 1
    return j


def order_statistics(passes: Passes, ranks: Sequence[int], budget: int = 1 << 20,
                     mapper: Mapper = map) -> np.ndarray:
    """The ``ranks``-th smallest values (0-based) over every array ``passes()`` yields.

    ``mapper(fn, arrays)`` yields ``fn(array)`` in order, e.g. on a pool of threads (the
    kernels release the GIL); the answer does not depend on it."""
    # Per distinct rank: [bits of the key known, their value, rank among the matching values].
    search = {r: [0, 0, r] for r in {int(r) for r in ranks}}
    found: dict[int, float] = {}
    while len(found) < len(search):
        open_ = {r: s for r, s in search.items() if r not in found}
        wanted = {(s[0], s[1]) for s in open_.values()}
        hists = {g: np.zeros(1 << _BITS, dtype=np.int64) for g in wanted}
        for part in mapper(lambda x: _histograms(x, wanted), passes()):
            for g, h in part.items():
                hists[g] += h
        collect: dict[tuple[int, int], int] = {}  # bucket -> how many values it holds
        for r, s in open_.items():
            cum = np.cumsum(hists[(s[0], s[1])])
            bucket = int(np.searchsorted(cum, s[2], side="right"))
            below = int(cum[bucket - 1]) if bucket else 0
            s[:] = [s[0] + _BITS, (s[1] << _BITS) | bucket, s[2] - below]
            size = int(cum[bucket]) - below
            if size <= budget or s[0] == 64:
                collect[(s[0], s[1])] = size
        if collect:
            values = _collect_buckets(passes, collect, mapper)
            for r, s in open_.items():
                if (s[0], s[1]) in values:
                    buf = values[(s[0], s[1])]
                    buf.partition(s[2])
                    found[r] = float(buf[s[2]])
    return np.array([found[int(r)] for r in ranks], dtype=np.float64)


def _histograms(x: np.ndarray, wanted) -> dict[tuple[int, int], np.ndarray]:
    keys = _keys(np.ascontiguousarray(x, dtype=np.float64))
    out = {}
    for bits, prefix in wanted:
        out[(bits, prefix)] = h = np.zeros(1 << _BITS, dtype=np.int64)
        _histogram(keys, bits, np.uint64(prefix), h)
    return out


def _collect_buckets(passes: Passes, sizes: dict[tuple[int, int], int], mapper: Mapper) -> dict[tuple[int, int], np.ndarray]:
    def collect(x: np.ndarray) -> dict[tuple[int, int], np.ndarray]:
        x = np.ascontiguousarray(x, dtype=np.float64)
        keys = _keys(x)
        out = {}
        for (bits, prefix), n in sizes.items():
            buf = np.empty(min(n, len(x)), dtype=np.float64)
            out[(bits, prefix)] = buf[: _collect(x, keys, bits, np.uint64(prefix), buf, 0)]
        return out

    parts: dict[tuple[int, int], list[np.ndarray]] = {g: [] for g in sizes}
    for part in mapper(collect, passes()):
        for g, values in part.items():
            parts[g].append(values)
    return {g: np.concatenate(p) if p else np.zeros(0) for g, p in parts.items()}


def median_of_passes(passes: Passes, n: int, mapper: Mapper = map) -> float:
    """Exact median, the same value as ``np.median`` over all ``n`` values."""
    if n % 2:
        return float(order_statistics(passes, [n // 2], mapper=mapper)[0])
    lo, hi = order_statistics(passes, [n // 2 - 1, n // 2], mapper=mapper)
    return float((lo + hi) / 2.0)


def percentile_of_passes(passes: Passes, n: int, p: float, mapper: Mapper = map) -> float:
    """Exactly ``np.percentile(all values, p)`` (the default linear method), by selection."""
    return percentiles_of_passes(passes, n, [p], mapper)[0]


def percentiles_of_passes(passes: Passes, n: int, ps: Sequence[float], mapper: Mapper = map) -> list[float]:
    """Several percentiles with one selection: NumPy's linear rule, the same floating steps."""
    q = np.true_divide(np.asarray(ps, dtype=np.float64), 100)
    virtual = (n - 1) * q
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev_i = np.where(above, n - 1, prev).astype(np.int64)
    next_i = np.where(above | (nxt > n - 1), n - 1, nxt).astype(np.int64)
    values = order_statistics(passes, sorted({*prev_i.tolist(), *next_i.tolist()}), mapper=mapper)
    at = dict(zip(sorted({*prev_i.tolist(), *next_i.tolist()}), values))
    a = np.array([at[i] for i in prev_i.tolist()])
    b = np.array([at[i] for i in next_i.tolist()])
    gamma = virtual - prev
    # numpy's _lerp: a + (b - a) * t, or b - (b - a) * (1 - t) when t >= 0.5
    diff = b - a
    res = a + diff * gamma
    res = np.where(gamma >= 0.5, b - diff * (1 - gamma), res)
    return [float(v) for v in res]
