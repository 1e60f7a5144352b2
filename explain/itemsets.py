"""Exact counts of every frequent itemset (support >= min_support) up to ``max_order``.

Both explanation modes only look at itemsets whose support passes, and support is
anti-monotone, so Apriori-style pruning is exact: singletons are counted first, only
their frequent values take part in pairs, and pairs/triples are first counted among the
outliers (few rows) and then, for the frequent ones only, among all rows.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np

from explain._counting import tally
from explain.encoding import EncodedAttributes

Item = tuple[int, int]            # (attribute index, value code)
Itemset = tuple[Item, ...]        # items sorted by attribute index


@dataclass(frozen=True)
class ItemsetCounts:
    """Outlier and row counts ``(o, n)`` per frequent itemset, with the totals ``O`` and ``N``."""

    counts: dict[Itemset, tuple[float, float]]
    outliers: float
    total: float


def is_frequent(o: float, outliers: float, min_support: float) -> bool:
    """support = o / O >= min_support (the single definition every counter uses)."""
    return outliers > 0 and o / outliers >= min_support


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

    # Singletons: bincount over code+1 keeps missing (-1) in bin 0, then drops it.
    remapped: list[np.ndarray] = []
    frequent_codes: list[np.ndarray] = []
    for j, codes in enumerate(encoded.codes):
        card = len(encoded.values[j])
        o = np.bincount(codes[out_rows] + 1, minlength=card + 1)[1:]
        freq = np.flatnonzero(o / O >= min_support)
        lut = np.full(card + 1, -1, dtype=np.int32)
        lut[freq + 1] = np.arange(len(freq), dtype=np.int32)
        remapped.append(lut[codes + 1] if len(freq) else np.empty(0, np.int32))
        frequent_codes.append(freq)
        if len(freq):
            n = np.bincount(codes + 1, minlength=card + 1)[1:]
            for c in freq.tolist():
                counts[((j, c),)] = (int(o[c]), int(n[c]))

    live = [j for j in range(len(encoded.codes)) if len(frequent_codes[j])]
    for order in range(2, min(max_order, len(live)) + 1):
        for attrs in combinations(live, order):
            _count_combination(attrs, remapped, frequent_codes, out_rows, O, min_support, counts)
    return ItemsetCounts(counts, O, N)


def _count_combination(attrs, remapped, frequent_codes, out_rows, O, min_support, counts) -> None:
    sizes = [len(frequent_codes[j]) for j in attrs]
    mults = np.ones(len(attrs), dtype=np.int64)
    for i in range(len(attrs) - 2, -1, -1):
        mults[i] = mults[i + 1] * sizes[i + 1]
    n_cells = int(mults[0]) * sizes[0]

    # Outliers first: a handful of rows, plain NumPy.
    sub = np.stack([remapped[j][out_rows] for j in attrs])
    ok = (sub >= 0).all(axis=0)
    if not ok.any():
        return
    out_keys = (sub[:, ok].astype(np.int64) * mults[:, None]).sum(axis=0)
    keys, o = np.unique(out_keys, return_counts=True)
    keep = o / O >= min_support
    keys, o = keys[keep], o[keep]
    if len(keys) == 0:
        return
    # Sub-itemsets must be frequent too (Apriori); a frequent key implies that already.
    n = tally(tuple(remapped[j] for j in attrs), mults, n_cells, keys)
    digits = (keys[:, None] // mults[None, :]) % np.asarray(sizes, dtype=np.int64)[None, :]
    for key_digits, oc, nc in zip(digits.tolist(), o.tolist(), n.tolist()):
        itemset = tuple(
            (j, int(frequent_codes[j][d])) for j, d in zip(attrs, key_digits)
        )
        counts[itemset] = (oc, nc)
