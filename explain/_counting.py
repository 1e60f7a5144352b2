"""Private Numba kernels that count rows per attribute-value combination.

Values are first mapped through a per-attribute lookup table ``lut`` to their index
among the attribute's *frequent* values (0..f-1), every other value (infrequent or
missing) to ``f``. A combination of attributes is then a mixed-radix key, so tables
scale with the surviving values and never with the product of raw cardinalities.
The kernels release the GIL: chunks of rows are counted on several threads at once.
"""
from __future__ import annotations

import numpy as np
from numba import njit

# Above this many cells a dense table would waste memory: look keys up by binary search.
DENSE_CELL_LIMIT = 1 << 22


@njit(cache=True, nogil=True)
def _joint_counts(cols, luts, mults, counts):
    """counts[key(row)] += 1 over all rows; key over every attribute (f = other)."""
    n_rows = cols[0].shape[0]
    k = len(cols)
    for r in range(n_rows):
        key = 0
        for j in range(k):
            c = cols[j][r]
            # The lut's last slot (one past the largest code) holds the "other" index.
            v = luts[j][c] if c >= 0 else luts[j][luts[j].shape[0] - 1]
            key += v * mults[j]
        counts[key] += 1


@njit(cache=True, nogil=True, inline="always")
def _frequent_key(cols, luts, mults, r):
    """Mixed-radix key of row ``r``, or -1 if one of its values is missing or infrequent."""
    key = 0
    for j in range(len(cols)):
        c = cols[j][r]
        if c < 0:
            return -1
        v = luts[j][c]
        if v == luts[j][luts[j].shape[0] - 1]:
            return -1
        key += v * mults[j]
    return key


@njit(cache=True, nogil=True)
def _tally_dense(cols, luts, mults, slot, counts):
    """counts[slot[key(row)]] += 1 for rows whose values are all frequent and whose key is kept."""
    for r in range(cols[0].shape[0]):
        key = _frequent_key(cols, luts, mults, r)
        if key >= 0:
            s = slot[key]
            if s >= 0:
                counts[s] += 1


@njit(cache=True, nogil=True)
def _tally_sorted(cols, luts, mults, keys, counts):
    """Like `_tally_dense` but finds each key in the sorted kept ``keys``."""
    n_keys = keys.shape[0]
    for r in range(cols[0].shape[0]):
        key = _frequent_key(cols, luts, mults, r)
        if key >= 0:
            i = np.searchsorted(keys, key)
            if i < n_keys and keys[i] == key:
                counts[i] += 1


def joint_counts(cols: tuple, luts: tuple, dims: list[int]) -> np.ndarray:
    """Rows per cell of the joint table over all ``cols`` (shape ``dims``)."""
    mults = multipliers(dims)
    counts = np.zeros(int(np.prod(dims, dtype=np.int64)), dtype=np.int64)
    _joint_counts(cols, luts, mults, counts)
    return counts.reshape(dims)


def tally(cols: tuple, luts: tuple, sizes: list[int], keys: np.ndarray) -> np.ndarray:
    """Rows carrying each sorted mixed-radix ``keys`` over frequent-value indices ``sizes``."""
    counts = np.zeros(len(keys), dtype=np.int64)
    if len(keys) == 0:
        return counts
    mults = multipliers(sizes)
    n_cells = int(np.prod(sizes, dtype=np.int64))
    if n_cells <= DENSE_CELL_LIMIT:
        slot = np.full(n_cells, -1, dtype=np.int32)
        slot[keys] = np.arange(len(keys), dtype=np.int32)
        _tally_dense(cols, luts, mults, slot, counts)
    else:
        _tally_sorted(cols, luts, mults, keys, counts)
    return counts


def multipliers(dims) -> np.ndarray:
    """Mixed-radix place values: key = sum(index[j] * mults[j]) over dimensions ``dims``."""
    mults = np.ones(len(dims), dtype=np.int64)
    for i in range(len(dims) - 2, -1, -1):
        mults[i] = mults[i + 1] * dims[i + 1]
    return mults


@njit(cache=True, nogil=True)
def remap_codes(local, lut):
    """lut[code] per row, -1 (missing) kept: one batch's codes into a shared code space."""
    out = np.empty(local.shape[0], dtype=np.int32)
    for i in range(local.shape[0]):
        c = local[i]
        out[i] = lut[c] if c >= 0 else -1
    return out
