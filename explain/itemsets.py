"""Exact counts of every frequent itemset (support >= min_support) up to ``max_order``.

Both explanation modes only look at itemsets whose support passes, and support is
anti-monotone, so Apriori-style pruning is exact: values are first counted among the
outliers (few rows) and only the frequent ones take part in combinations.

Counting is a few passes over chunks of rows (:class:`FrequentItemsetCounter`), so data
bigger than memory is counted exactly and chunks can be counted on several threads:

1. per attribute, each value's count among the outliers: the frequent values;
2. when the joint table over every attribute's frequent values (plus one "other" slot
   each) is small, one pass fills it for the outliers and for all rows, and every pair
   and triple is a marginal of it. Otherwise one pass counts each combination's keys
   among the outliers and a last pass counts the frequent ones among all rows.

Counts are integers, so the result does not depend on how rows are split into chunks.

>>> import numpy as np
>>> codes = (np.array([0, 0, 1, 1], np.int32), np.array([0, 1, 0, 1], np.int32))
>>> counter = FrequentItemsetCounter(min_support=0.5, max_order=2)
>>> chunk = CodedChunk(codes, np.array([True, True, False, False]))
>>> while not counter.done:
...     for part in [chunk]:
...         counter.add(counter.count(part))
...     counter.end_pass(cardinalities=(2, 2))
>>> counter.result().counts[((0, 0),)]
(2, 2)
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Any, Sequence

import numpy as np

from explain._counting import joint_counts, multipliers, tally

Item = tuple[int, int]            # (attribute index, value code)
Itemset = tuple[Item, ...]        # items sorted by attribute index

JOINT_CELL_LIMIT = 1 << 21


@dataclass(frozen=True)
class ItemsetCounts:
    """Outlier and row counts ``(o, n)`` per frequent itemset, with the totals ``O`` and ``N``."""

    counts: dict[Itemset, tuple[float, float]]
    outliers: float
    total: float


@dataclass(frozen=True)
class CodedChunk:
    """Some rows: int32 codes per attribute (-1 missing) in one code space for the whole
    input, and each row's outlier flag."""

    codes: tuple[np.ndarray, ...]
    is_outlier: np.ndarray


class FrequentItemsetCounter:
    """Counts every itemset of 1..max_order items with support >= ``min_support``.

    Driven pass by pass: ``count`` a chunk (pure, safe on several threads at once), ``add``
    its partial counts (one thread), and ``end_pass`` when every chunk of the pass was
    added, until ``done``; then ``result()``. ``count_tested`` also counts how many
    distinct itemsets the outliers carry (``tested_``, the Benjamini–Hochberg family).
    """

    def __init__(self, min_support: float, max_order: int, count_tested: bool = False) -> None:
        self.min_support = min_support
        self.max_order = max_order
        self.count_tested = count_tested
        self._stage = "values"
        self._N = self._O = 0
        self._value_counts: list[np.ndarray] = []
        self._tested: dict[tuple[int, ...], list[np.ndarray]] = {}
        self._counts: dict[Itemset, tuple[float, float]] = {}
        self.tested_: int | None = None

    @property
    def done(self) -> bool:
        return self._stage == "done"

    # ----------------------------------------------------------------- one chunk

    def count(self, chunk: CodedChunk) -> Any:
        """This pass's partial counts of one chunk."""
        out_rows = np.flatnonzero(chunk.is_outlier)
        if self._stage == "values":
            vals = [np.bincount(c[out_rows][c[out_rows] >= 0]) for c in chunk.codes]
            tested = _outlier_itemsets(chunk.codes, out_rows, self.max_order) if self.count_tested else None
            return len(chunk.is_outlier), len(out_rows), vals, tested
        cols = tuple(chunk.codes[j] for j in self._live)
        out_idx = np.stack([lut[c[out_rows]] for lut, c in zip(self._luts, cols)])
        if self._stage == "joint":
            joint_o = np.zeros(self._dims, dtype=np.int64)
            np.add.at(joint_o, tuple(out_idx), 1)
            return joint_o, joint_counts(cols, self._luts, self._dims)
        if self._stage == "outlier_keys":
            return {combo: _outlier_keys(out_idx, combo, self._sizes) for combo in self._combos}
        return {combo: tally(tuple(cols[a] for a in combo), tuple(self._luts[a] for a in combo),
                             [self._sizes[a] for a in combo], keys)
                for combo, (keys, _, _) in self._kept.items()}

    def add(self, partial: Any) -> None:
        """Fold one chunk's partial counts in (any order: counts are sums)."""
        if self._stage == "values":
            n, o, vals, tested = partial
            self._N += n
            self._O += o
            for j, v in enumerate(vals):
                if j == len(self._value_counts):
                    self._value_counts.append(np.zeros(0, dtype=np.int64))
                self._value_counts[j] = _add_padded(self._value_counts[j], v)
            for combo, keys in (tested or {}).items():
                self._tested.setdefault(combo, []).append(keys)
        elif self._stage == "joint":
            self._joint_o += partial[0]
            self._joint_n += partial[1]
        elif self._stage == "outlier_keys":
            for combo, keys in partial.items():
                self._outlier_keys[combo].append(keys)
        else:
            for combo, n in partial.items():
                self._kept[combo][1].append(n)

    # ----------------------------------------------------------------- between passes

    def end_pass(self, cardinalities: Sequence[int]) -> None:
        """Close a pass; ``cardinalities`` (values per attribute) are final after the first."""
        if self._stage == "values":
            self._plan(cardinalities)
        elif self._stage == "joint":
            self._from_joint()
            self._stage = "done"
        elif self._stage == "outlier_keys":
            self._keep_frequent_keys()
        else:
            self._from_tallies()
            self._stage = "done"

    def result(self) -> ItemsetCounts:
        if not self.done:
            raise RuntimeError("FrequentItemsetCounter: result() before the last pass ended")
        return ItemsetCounts(self._counts, self._O, self._N)

    def _plan(self, cardinalities: Sequence[int]) -> None:
        if self.count_tested:
            self.tested_ = sum(len(np.unique(np.concatenate(parts), axis=0)) for parts in self._tested.values())
            self._tested.clear()
        O = self._O
        self._live, self._luts, self._freq = [], [], []
        for j, card in enumerate(cardinalities):
            o = _add_padded(np.zeros(card, dtype=np.int64), self._value_counts[j] if j < len(self._value_counts)
                            else np.zeros(0, dtype=np.int64))
            freq = np.flatnonzero(o / O >= self.min_support) if O else np.zeros(0, dtype=np.int64)
            if len(freq) == 0:
                continue
            lut = np.full(card + 1, len(freq), dtype=np.int32)  # last slot: missing -> other
            lut[freq] = np.arange(len(freq), dtype=np.int32)
            self._live.append(j)
            self._luts.append(lut)
            self._freq.append(freq)
        if not self._live:
            self._stage = "done"
            return
        self._luts = tuple(self._luts)
        self._sizes = [len(f) for f in self._freq]
        self._dims = [s + 1 for s in self._sizes]
        max_k = min(self.max_order, len(self._live))
        self._combos = [c for k in range(1, max_k + 1) for c in combinations(range(len(self._live)), k)]
        if np.prod(self._dims, dtype=np.float64) <= JOINT_CELL_LIMIT:
            self._stage = "joint"
            self._joint_o = np.zeros(self._dims, dtype=np.int64)
            self._joint_n = np.zeros(self._dims, dtype=np.int64)
        else:
            self._stage = "outlier_keys"
            self._outlier_keys = {c: [] for c in self._combos}

    def _itemset(self, combo, cell) -> Itemset:
        return tuple((self._live[a], int(self._freq[a][i])) for a, i in zip(combo, cell))

    def _from_joint(self) -> None:
        marginals = _Marginals(self._joint_o, self._joint_n)
        for combo in self._combos:
            o, n = marginals.of(combo)
            cut = tuple(slice(0, self._sizes[a]) for a in combo)  # drop the "other" slot
            o, n = o[cut], n[cut]
            for cell in np.argwhere(o / self._O >= self.min_support):
                self._counts[self._itemset(combo, cell)] = (int(o[tuple(cell)]), int(n[tuple(cell)]))

    def _keep_frequent_keys(self) -> None:
        self._kept = {}
        for combo, parts in self._outlier_keys.items():
            keys = np.concatenate([k for k, _ in parts]) if parts else np.zeros(0, np.int64)
            o = np.concatenate([c for _, c in parts]) if parts else np.zeros(0, np.int64)
            keys, inverse = np.unique(keys, return_inverse=True)
            o = np.bincount(inverse, weights=o, minlength=len(keys)).astype(np.int64)
            keep = o / self._O >= self.min_support
            if keep.any():
                self._kept[combo] = (keys[keep], [], o[keep])
        self._outlier_keys.clear()
        self._stage = "rows" if self._kept else "done"

    def _from_tallies(self) -> None:
        for combo, (keys, parts, o) in self._kept.items():
            n = np.sum(parts, axis=0)
            sizes = [self._sizes[a] for a in combo]
            mults = multipliers(sizes)
            digits = (keys[:, None] // mults[None, :]) % np.asarray(sizes, dtype=np.int64)[None, :]
            for key_digits, oc, nc in zip(digits.tolist(), o.tolist(), n.tolist()):
                self._counts[self._itemset(combo, key_digits)] = (oc, nc)


def _add_padded(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(b) > len(a):
        a = np.concatenate([a, np.zeros(len(b) - len(a), dtype=np.int64)])
    a[: len(b)] += b
    return a


def _outlier_itemsets(codes, out_rows, max_order) -> dict[tuple[int, ...], np.ndarray]:
    """Distinct itemsets (all values, missing is no item) per attribute combination among
    the outlier rows of a chunk."""
    cols = np.stack([c[out_rows] for c in codes]) if codes else np.zeros((0, 0), np.int32)
    found = {}
    for k in range(1, min(max_order, len(cols)) + 1):
        for combo in combinations(range(len(cols)), k):
            sub = cols[list(combo)]
            sub = sub[:, (sub >= 0).all(axis=0)]
            found[combo] = np.unique(sub.T, axis=0) if sub.shape[1] else np.zeros((0, k), np.int32)
    return found


def _outlier_keys(out_idx: np.ndarray, combo, sizes) -> tuple[np.ndarray, np.ndarray]:
    """Mixed-radix keys of ``combo`` among a chunk's outliers (all values frequent), with counts."""
    sub_sizes = [sizes[a] for a in combo]
    sub = out_idx[list(combo)]
    ok = (sub < np.asarray(sub_sizes)[:, None]).all(axis=0)
    mults = multipliers(sub_sizes)
    return np.unique((sub[:, ok].astype(np.int64) * mults[:, None]).sum(axis=0), return_counts=True)


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
