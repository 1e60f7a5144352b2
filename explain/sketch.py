"""Amortized Maintenance Counter (AMC): a bounded heavy-hitter sketch of ``(o, n)`` pairs.

MacroBase keeps streaming itemset counts in an AMC: count every key exactly while there is
room, let the table grow to twice its budget, then evict the smallest entries down to the
budget in one go (amortised O(1) per update). Like Space-Saving, a key first seen after an
eviction starts from the largest evicted counts (``floor_o``, ``floor_n``): its counts are
upper bounds from then on. Entries rank by outlier count ``o``, then row count ``n``,
because explanations only ever need itemsets that are frequent among outliers.

While nothing has been evicted (``evicted`` False) every count is exact.

>>> import numpy as np
>>> s = AmcSketch(budget=2)
>>> s.add(np.array([7, 8, 9], np.int64), np.array([3.0, 0, 1]), np.array([5.0, 1, 1]))
>>> s.size, s.evicted
(3, False)
>>> s.prune(); sorted(s.keys.tolist()), s.evicted, s.floor_n
([7, 9], True, 1.0)
"""
from __future__ import annotations

import numpy as np

from explain import _stream_kernels as k
from operators.domains import Interval
from operators.estimator import Estimator

_MIN_CAPACITY = 64


class AmcSketch(Estimator):
    """At most ``2 * budget`` entries ``key -> (o, n)`` (``budget`` after :meth:`prune`)."""

    _constraints = {"budget": Interval(1, integer=True)}

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self._check_params()
        self.floor_o = 0.0
        self.floor_n = 0.0
        self.evicted = False
        self._size = 0
        self._alloc(min(_MIN_CAPACITY, 2 * self.budget))

    # -- storage ------------------------------------------------------------------------
    def _alloc(self, capacity: int) -> None:
        self._keys = np.zeros(capacity, np.int64)
        self._o = np.zeros(capacity, np.float64)
        self._n = np.zeros(capacity, np.float64)
        # Index table at most half full keeps linear probing short.
        self._index = np.full(1 << max(3, (2 * capacity - 1).bit_length()), -1, np.int32)

    def _reserve(self, capacity: int) -> None:
        keys, o, n, size = self.keys, self.o, self.n, self._size
        self._alloc(capacity)
        self._keys[:size], self._o[:size], self._n[:size] = keys, o, n
        k.rebuild_index(self._keys, size, self._index)

    def _make_room(self) -> None:
        """Called when the entry arrays are full: grow up to 2x budget, then evict."""
        cap = len(self._keys)
        if cap < 2 * self.budget:
            self._reserve(min(2 * cap, 2 * self.budget))
        else:
            self.prune()

    @property
    def size(self) -> int:
        return self._size

    @property
    def keys(self) -> np.ndarray:
        return self._keys[: self._size]

    @property
    def o(self) -> np.ndarray:
        return self._o[: self._size]

    @property
    def n(self) -> np.ndarray:
        return self._n[: self._size]

    # -- updates ------------------------------------------------------------------------
    def count_rows(self, cols: np.ndarray, is_out: np.ndarray, combo_attrs: np.ndarray,
                   combo_shifts: np.ndarray, kbits: int, dense=None, play=None) -> None:
        """Count each row's combination keys (see ``_stream_kernels.count_rows``).

        ``dense`` is ``(offsets, o, n)`` of combinations counted in dense arrays instead;
        sketched combinations read ``play`` (default ``cols``).
        """
        if dense is None:
            dense = (np.full(len(combo_attrs), -1, np.int64), np.zeros(0), np.zeros(0))
        row, combo = 0, 0
        while True:
            row, combo, self._size = k.count_rows(
                cols, cols if play is None else play, is_out, combo_attrs, combo_shifts, kbits, *dense, row, combo,
                self._keys, self._o, self._n, self._size, self._index, self.floor_o, self.floor_n)
            if combo >= len(combo_attrs):
                return
            self._make_room()

    def add(self, keys: np.ndarray, o: np.ndarray, n: np.ndarray) -> None:
        """Add counts for distinct ``keys`` (merging sketches)."""
        keys = np.ascontiguousarray(keys, np.int64)
        o = np.ascontiguousarray(o, np.float64)
        n = np.ascontiguousarray(n, np.float64)
        i = 0
        while True:
            i, self._size = k.add_entries(keys, o, n, i, self._keys, self._o, self._n,
                                          self._size, self._index, self.floor_o, self.floor_n)
            if i >= len(keys):
                return
            self._make_room()

    def scale(self, factor: float) -> None:
        """Decay: every count and both floors times ``factor``."""
        self._o[: self._size] *= factor
        self._n[: self._size] *= factor
        self.floor_o *= factor
        self.floor_n *= factor

    def prune(self) -> None:
        """Evict the smallest entries (by o, then n) down to ``budget``."""
        size = self._size
        if size <= self.budget:
            return
        # Rank by o, then n, in one float score: argpartition is O(size), a sort is not.
        score = self.o * (float(self.n.max()) + 1.0) + self.n
        order = np.argpartition(score, size - self.budget - 1)
        gone, keep = order[: size - self.budget], np.sort(order[size - self.budget:])
        self.floor_o = max(self.floor_o, float(self.o[gone].max()))
        self.floor_n = max(self.floor_n, float(self.n[gone].max()))
        self.evicted = True
        keys, o, n = self.keys[keep], self.o[keep], self.n[keep]
        self.replace(keys, o, n)

    def replace(self, keys: np.ndarray, o: np.ndarray, n: np.ndarray) -> None:
        """Set the entries to distinct ``keys`` (e.g. after re-keying); keeps floors/flags."""
        size = len(keys)
        cap = max(min(_MIN_CAPACITY, 2 * self.budget), len(self._keys))
        while cap < size:
            cap *= 2
        self._alloc(cap)
        self._keys[:size], self._o[:size], self._n[:size] = keys, o, n
        self._size = size
        k.rebuild_index(self._keys, size, self._index)
        if size > 2 * self.budget:
            self.prune()

    def find(self, query: np.ndarray) -> np.ndarray:
        """Entry position of each key in ``query``, -1 when absent."""
        return k.lookup(np.ascontiguousarray(query, np.int64), self._keys, self._index)

    # -- state --------------------------------------------------------------------------
    def to_state(self, prefix: str) -> dict:
        return {
            f"{prefix}keys": self.keys.copy(), f"{prefix}o": self.o.copy(), f"{prefix}n": self.n.copy(),
            f"{prefix}floors": np.array([self.floor_o, self.floor_n]),
            f"{prefix}evicted": np.array(self.evicted),
        }

    @classmethod
    def from_state(cls, state, prefix: str, budget: int) -> "AmcSketch":
        s = cls(budget)
        s.floor_o, s.floor_n = (float(x) for x in np.asarray(state[f"{prefix}floors"]))
        s.evicted = bool(np.asarray(state[f"{prefix}evicted"]))
        s.replace(np.asarray(state[f"{prefix}keys"], np.int64), np.asarray(state[f"{prefix}o"], np.float64),
                  np.asarray(state[f"{prefix}n"], np.float64))
        return s
