"""Exact counts of every frequent itemset (support >= min_support) up to ``max_order``.

Both explanation modes only look at itemsets whose support passes, and support is
anti-monotone, so Apriori-style pruning is exact: values are first counted among the
outliers (few rows) and only the frequent ones take part in combinations.

Counting all rows then takes one pass: when the joint table over every attribute's
frequent values (plus one "other" slot each) is small, one Numba pass fills it and every
pair and triple is a marginal of it. Otherwise each combination is counted in its own
pass, only for the combinations frequent among the outliers.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from explain._counting import joint_counts, multipliers, tally
from explain.encoding import EncodedAttributes

Item = tuple[int, int]            # (attribute index, value code)
Itemset = tuple[Item, ...]        # items sorted by attribute index

JOINT_CELL_LIMIT = 1 << 21


@dataclass(frozen=True)
class ItemsetCounts:
    """Outlier and row counts ``(o, n)`` per frequent itemset, with the totals ``O`` and ``N``."""

    counts: dict[Itemset, tuple[float, float]]
    outliers: float
    total: float


def count_frequent_itemsets(
    encoded: EncodedAttributes, is_outlier: np.ndarray, min_support: float, max_order: int
) -> ItemsetCounts:
    """Count every itemset of 1..max_order items whose support is at least ``min_support``."""
    is_outlier = np.asarray(is_outlier, dtype=bool)
    N = int(len(is_outlier))
    out_rows = np.flatnonzero(is_outlier)
    O = int(len(out_rows))
    counts: dict[Itemset, tuple[float, float]] = {}
    if O == 0:
        return ItemsetCounts(counts, 0, N)

    # Frequent values per attribute, from the outliers alone.
    live, luts, freq_codes, out_idx = [], [], [], []
    for j, codes in enumerate(encoded.codes):
        card = len(encoded.values[j])
        out_codes = codes[out_rows]
        o = np.bincount(out_codes[out_codes >= 0], minlength=card)
        freq = np.flatnonzero(o / O >= min_support)
        if len(freq) == 0:
            continue
        lut = np.full(card + 1, len(freq), dtype=np.int32)   # last slot: missing -> other
        lut[freq] = np.arange(len(freq), dtype=np.int32)
        live.append(j)
        luts.append(lut)
        freq_codes.append(freq)
        out_idx.append(lut[out_codes])  # missing (-1) reads the lut's last slot: "other"
    if not live:
        return ItemsetCounts(counts, O, N)

    cols = tuple(encoded.codes[j] for j in live)
    luts_t = tuple(luts)
    sizes = [len(f) for f in freq_codes]
    out_idx = np.stack(out_idx)  # frequent-value index per outlier and live attribute
    dims = [s + 1 for s in sizes]
    max_k = min(max_order, len(live))
    if np.prod(dims, dtype=np.float64) <= JOINT_CELL_LIMIT:
        joint_n = joint_counts(cols, luts_t, dims)
        joint_o = np.zeros(dims, dtype=np.int64)
        np.add.at(joint_o, tuple(out_idx), 1)
        marginals = _Marginals(joint_o, joint_n)
        for k in range(1, max_k + 1):
            for combo in combinations(range(len(live)), k):
                o, n = marginals.of(combo)
                cut = tuple(slice(0, sizes[a]) for a in combo)  # drop the "other" slot
                o, n = o[cut], n[cut]
                for cell in np.argwhere(o / O >= min_support):
                    itemset = tuple((live[a], int(freq_codes[a][i])) for a, i in zip(combo, cell))
                    counts[itemset] = (int(o[tuple(cell)]), int(n[tuple(cell)]))
        return ItemsetCounts(counts, O, N)

    for k in range(1, max_k + 1):
        for combo in combinations(range(len(live)), k):
            _count_combination(combo, live, cols, luts_t, sizes, freq_codes, out_idx, O, min_support, counts)
    return ItemsetCounts(counts, O, N)


def count_outlier_itemsets(encoded: EncodedAttributes, is_outlier: np.ndarray, max_order: int) -> int:
    """How many distinct itemsets of 1..max_order items the outliers carry (missing is no item).

    Every one of them is looked at (frequent or not): the family of tests for
    Benjamini–Hochberg. One ``np.unique`` per attribute combination over the outliers only.
    """
    rows = np.flatnonzero(is_outlier)
    cols = np.stack([codes[rows] for codes in encoded.codes])
    seen = 0
    for k in range(1, min(max_order, len(cols)) + 1):
        for combo in combinations(range(len(cols)), k):
            sub = cols[list(combo)]
            sub = sub[:, (sub >= 0).all(axis=0)]
            seen += len(np.unique(sub, axis=1).T) if sub.shape[1] else 0
    return seen


class _Marginals:
    """Outlier and row counts summed over every axis but ``combo``, each summed from an
    already computed marginal one axis larger (so no sum runs over the whole table twice)."""

    def __init__(self, joint_o: np.ndarray, joint_n: np.ndarray) -> None:
        self._cache = {tuple(range(joint_o.ndim)): (joint_o, joint_n)}
        self._axes = joint_o.ndim

    def of(self, combo: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        found = self._cache.get(combo)
        if found is None:
            extra = next(a for a in range(self._axes) if a not in combo)
            parent = tuple(sorted((*combo, extra)))
            o, n = self.of(parent)
            axis = parent.index(extra)
            found = self._cache[combo] = (o.sum(axis=axis), n.sum(axis=axis))
        return found


def _count_combination(combo, live, cols, luts, sizes, freq_codes, out_idx, O, min_support, counts) -> None:
    sub_sizes = [sizes[a] for a in combo]
    sub = out_idx[list(combo)]
    ok = (sub < np.asarray(sub_sizes)[:, None]).all(axis=0)
    if not ok.any():
        return
    mults = multipliers(sub_sizes)
    keys, o = np.unique((sub[:, ok].astype(np.int64) * mults[:, None]).sum(axis=0), return_counts=True)
    keep = o / O >= min_support
    keys, o = keys[keep], o[keep]
    if len(keys) == 0:
        return
    n = tally(tuple(cols[a] for a in combo), tuple(luts[a] for a in combo), sub_sizes, keys)
    digits = (keys[:, None] // mults[None, :]) % np.asarray(sub_sizes, dtype=np.int64)[None, :]
    for key_digits, oc, nc in zip(digits.tolist(), o.tolist(), n.tolist()):
        counts[tuple((live[a], int(freq_codes[a][d])) for a, d in zip(combo, key_digits))] = (oc, nc)
