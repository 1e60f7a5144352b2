"""Private Numba kernels of the streaming explainer's heavy-hitter sketch.

The sketch stores entries densely (``keys``, ``o``, ``n``, first ``size`` slots used) and
finds them through an open-addressing table ``index`` (entry position or -1, length a
power of two, at most half full). Kernels stop when the entry arrays are full and report
where they stopped, so the Python wrapper can grow or prune and resume: no entry is ever
dropped inside a kernel.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _slot_of(key, mask):
    # splitmix64 finaliser: int64 keys are packed codes, so low bits alone hash badly.
    x = np.uint64(key)
    x ^= x >> np.uint64(33)
    x *= np.uint64(0xFF51AFD7ED558CCD)
    x ^= x >> np.uint64(33)
    return np.int64(x & np.uint64(mask))


@njit(cache=True, inline="always")
def _find_or_add(key, keys, o, n, size, index, mask, floor_o, floor_n):
    """Position of ``key`` (appended with the floor counts when new) and the new size."""
    s = _slot_of(key, mask)
    while True:
        p = index[s]
        if p < 0:
            index[s] = size
            keys[size] = key
            o[size] = floor_o
            n[size] = floor_n
            return size, size + 1
        if keys[p] == key:
            return p, size
        s = (s + 1) & mask


@njit(cache=True)
def count_rows(cols, play, is_out, combo_attrs, combo_shifts, kbits, dense_off, dense_o, dense_n,
               row0, combo0, keys, o, n, size, index, floor_o, floor_n):
    """Add every row's combinations (all items present) to the dense tier or the sketch.

    ``cols`` is (attributes, rows) int32 with -1 for items not counted; combination ``k``
    over attributes ``combo_attrs[k]`` packs its codes as ``p = (c0 << s1 | c1) << s2 | c2``.
    When ``dense_off[k] >= 0`` it is counted exactly in cell ``dense_off[k] + p`` of
    ``dense_o``/``dense_n`` (small key spaces: a direct index is several times faster than
    hashing) from ``cols``; otherwise in the sketch under key ``p << kbits | k``, from
    ``play`` (the same columns with values not in play set to -1).
    Returns ``(row, combo, size)``; ``combo == n_combos`` when done, otherwise the entry
    arrays filled up and the wrapper resumes at ``(row, combo)``.
    """
    n_rows = cols.shape[1]
    n_combos, order = combo_attrs.shape
    cap = keys.shape[0]
    mask = index.shape[0] - 1
    # Combination-major: one combination's dense cells stay in cache for the whole batch.
    r0 = row0
    for k in range(combo0, n_combos):
        d = dense_off[k]
        src = cols if d >= 0 else play
        a0 = combo_attrs[k, 0]
        a1 = combo_attrs[k, order - 1] if order > 1 else a0
        a2 = combo_attrs[k, 1] if order > 2 else a0
        s1 = combo_shifts[k, order - 1]
        s2 = combo_shifts[k, 1]
        for r in range(r0, n_rows):
            # Packed codes (c0 [, c2], c1); any -1 makes the OR negative: skip the row.
            c0 = np.int64(src[a0, r])
            if order == 1:
                if c0 < 0:
                    continue
                key = c0
            elif order == 2:
                c1 = np.int64(src[a1, r])
                if (c0 | c1) < 0:
                    continue
                key = (c0 << s1) | c1
            else:
                c1 = np.int64(src[a1, r])
                c2 = np.int64(src[a2, r])
                if (c0 | c1 | c2) < 0:
                    continue
                key = (((c0 << s2) | c2) << s1) | c1
            if d >= 0:
                dense_n[d + key] += 1.0
                if is_out[r]:
                    dense_o[d + key] += 1.0
                continue
            if size == cap:
                return r, k, size
            key = (key << kbits) | k
            p, size = _find_or_add(key, keys, o, n, size, index, mask, floor_o, floor_n)
            n[p] += 1.0
            if is_out[r]:
                o[p] += 1.0
        r0 = 0
    return n_rows, n_combos, size


@njit(cache=True)
def add_entries(new_keys, new_o, new_n, start, keys, o, n, size, index, floor_o, floor_n):
    """Add aggregated entries (merge); returns ``(next entry to add, size)``."""
    cap = keys.shape[0]
    mask = index.shape[0] - 1
    for i in range(start, new_keys.shape[0]):
        if size == cap:
            return i, size
        p, size = _find_or_add(new_keys[i], keys, o, n, size, index, mask, floor_o, floor_n)
        o[p] += new_o[i]
        n[p] += new_n[i]
    return new_keys.shape[0], size


@njit(cache=True)
def rebuild_index(keys, size, index):
    """Refill ``index`` (all -1 on entry) from the first ``size`` entries."""
    mask = index.shape[0] - 1
    for p in range(size):
        s = _slot_of(keys[p], mask)
        while index[s] >= 0:
            s = (s + 1) & mask
        index[s] = p


@njit(cache=True)
def lookup(query, keys, index):
    """Entry position of each query key, or -1."""
    mask = index.shape[0] - 1
    out = np.full(query.shape[0], -1, dtype=np.int64)
    for i in range(query.shape[0]):
        s = _slot_of(query[i], mask)
        while True:
            p = index[s]
            if p < 0:
                break
            if keys[p] == query[i]:
                out[i] = p
                break
            s = (s + 1) & mask
    return out
