"""Key layout of the streaming explainer's counts: which attribute combinations are
counted in the dense tier (direct index) and how a combination's codes pack into one
int64 sketch key."""
from __future__ import annotations

import numpy as np

#: Packed keys stay positive int64.
MAX_KEY_BITS = 62

# Dense tier: combinations whose packed codes span at most 2**dense_bits cells, smallest
# first, until _DENSE_CELLS cells per order (16 bytes each, 16 MiB) are used.
_DENSE_CELLS = 1 << 20


def dense_layout(shifts: np.ndarray, order: int, max_bits: int) -> tuple[np.ndarray, int]:
    """(cell offset per combination or -1, total cells) for one itemset order."""
    offsets = np.full(len(shifts), -1, np.int64)
    if order < 2 or len(shifts) == 0:
        return offsets, 0
    widths = shifts.sum(axis=1)
    used = 0
    for k in np.argsort(widths, kind="stable").tolist():
        cells = 1 << int(widths[k])
        if widths[k] > max_bits or used + cells > _DENSE_CELLS:
            break
        offsets[k] = used
        used += cells
    return offsets, used


def member(col: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``np.isin(col, values)`` for small sorted ``values``: a lookup table when codes are small."""
    if len(values) == 0:
        return np.zeros(len(col), bool)
    top = int(values[-1])
    if top < (1 << 20):
        lut = np.zeros(top + 2, bool)
        lut[values] = True
        # -1 (missing) and codes above the table land in the last, False, slot.
        return lut[np.where((col >= 0) & (col <= top), col, top + 1)]
    return np.isin(col, values)


def pack(combo: np.ndarray, codes: np.ndarray, attrs: np.ndarray, shifts: np.ndarray,
          kbits: int) -> np.ndarray:
    """int64 keys ``(... (c0 << s1 | c1) << s2 ...) << kbits | combo`` (as the kernel packs)."""
    combo = np.asarray(combo, np.int64)
    codes = np.asarray(codes, np.int64)
    key = np.zeros(len(combo), np.int64)
    sh = shifts[combo]
    for j in range(codes.shape[1]):
        key = (key << sh[:, j]) | codes[:, j]
    return (key << kbits) | combo


def unpack(keys: np.ndarray, attrs: np.ndarray, shifts: np.ndarray,
            kbits: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`_pack`: (combination index, codes matrix)."""
    keys = np.asarray(keys, np.int64)
    combo = keys & ((1 << kbits) - 1)
    rest = keys >> kbits
    order = attrs.shape[1]
    codes = np.empty((len(keys), order), np.int64)
    sh = shifts[combo] if len(keys) else np.zeros((0, order), np.int64)
    for j in range(order - 1, -1, -1):
        codes[:, j] = rest & ((np.int64(1) << sh[:, j]) - 1)
        rest = rest >> sh[:, j]
    return combo, codes
