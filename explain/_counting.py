"""Private Numba kernels that count rows per attribute-value combination.

A combination of k attributes is addressed by a mixed-radix key over each attribute's
*frequent* values (remapped to 0..f-1), so tables scale with the surviving values and
never with the product of raw cardinalities.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Above this many cells a dense slot table would waste memory: look keys up by binary search.
DENSE_CELL_LIMIT = 1 << 22


@njit(cache=True)
def _tally_dense(cols, mults, slot, counts):
    """counts[slot[key(row)]] += 1 for every row whose key is frequent."""
    n_rows = cols[0].shape[0]
    k = len(cols)
    for r in range(n_rows):
        key = 0
        ok = True
        for j in range(k):
            c = cols[j][r]
            if c < 0:
                ok = False
                break
            key += c * mults[j]
        if ok:
            s = slot[key]
            if s >= 0:
                counts[s] += 1


@njit(cache=True)
def _tally_sorted(cols, mults, keys, counts):
    """Like `_tally_dense` but finds each key in the sorted frequent `keys`."""
    n_rows = cols[0].shape[0]
    k = len(cols)
    n_keys = keys.shape[0]
    for r in range(n_rows):
        key = 0
        ok = True
        for j in range(k):
            c = cols[j][r]
            if c < 0:
                ok = False
                break
            key += c * mults[j]
        if ok:
            i = np.searchsorted(keys, key)
            if i < n_keys and keys[i] == key:
                counts[i] += 1


def tally(cols: tuple[np.ndarray, ...], mults: np.ndarray, n_cells: int, keys: np.ndarray) -> np.ndarray:
    """Count, over all rows, how many rows carry each of the sorted combination ``keys``.

    ``cols`` are remapped code columns (-1: missing or infrequent), ``mults`` the
    mixed-radix multipliers and ``n_cells`` the number of possible keys.
    """
    counts = np.zeros(len(keys), dtype=np.int64)
    if len(keys) == 0:
        return counts
    if n_cells <= DENSE_CELL_LIMIT:
        slot = np.full(n_cells, -1, dtype=np.int32)
        slot[keys] = np.arange(len(keys), dtype=np.int32)
        _tally_dense(cols, mults, slot, counts)
    else:
        _tally_sorted(cols, mults, keys, counts)
    return counts
