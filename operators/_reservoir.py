"""The adaptable damped reservoir's insertion kernel (Chao's weighted sampling).

Private Numba kernels: inputs were checked by a public wrapper (contiguous float64
arrays, no NaN, sane parameters); keeping validation out keeps the kernels small and
lets Numba compile them once (``cache=True``).
"""

from __future__ import annotations

from numba import njit


@njit(cache=True)
def reservoir_insert(res, size, total_weight, batch, u, slots):
    """Chao's weighted reservoir sampling for unit-weight items, in arrival order.

    Item i raises the running weight W by 1 and enters a full reservoir with
    probability k / W (capped at 1), replacing the slot slots[i]. Decay is applied by
    the caller shrinking W between periods, which is what makes newer items heavier.
    u and slots are drawn by the caller so results are reproducible.
    """
    k = res.shape[0]
    for i in range(batch.shape[0]):
        total_weight += 1.0
        if size < k:
            res[size] = batch[i]
            size += 1
        elif u[i] * total_weight < k:
            res[slots[i]] = batch[i]
    return size, total_weight
