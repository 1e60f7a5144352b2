"""Which values are *in play* for the streaming explainer's sketched combinations, and
whether its answer is still exact (explain/streaming.py's module docstring has the rules)."""
from __future__ import annotations

import numpy as np

from explain._stream_layout import pack, unpack


class PlayBookkeeping:
    """Mixed into :class:`explain.StreamingExplainer`: the in-play value sets, late values,
    and the ``exact_`` flag. Uses the explainer's counts, layout and parameters."""

    def _singletons(self, j: int, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Current (o, n) of values ``codes`` of attribute ``j``."""
        codes = np.asarray(codes, np.int64)
        o, n = np.zeros(len(codes)), np.zeros(len(codes))
        low = codes < len(self.dense_n_[j])
        o[low], n[low] = self.dense_o_[j][codes[low]], self.dense_n_[j][codes[low]]
        high = codes >= self.dense_values
        sketch = self.sketches_[1]
        if high.any() and sketch.size:
            attrs, shifts, kbits = self._combos[1]
            pos = sketch.find(pack(np.full(int(high.sum()), j), codes[high][:, None], attrs, shifts, kbits))
            hit = pos >= 0
            idx = np.flatnonzero(high)[hit]
            o[idx], n[idx] = sketch.o[pos[hit]], sketch.n[pos[hit]]
        return o, n

    def _frequent(self, o: np.ndarray, factor: float = 1.0) -> np.ndarray:
        # Same test as apply_rules (o / O >= min_support); a hair looser is harmless there.
        if self.outliers_ <= 0:
            return np.zeros(len(o), bool)
        return o / self.outliers_ >= factor * self.min_support * (1 - 1e-12)

    def _admit_batch(self, j: int, col: np.ndarray, is_out: np.ndarray) -> None:
        """Bring values of this batch's outliers that are now frequent into play.

        Called after the batch's singletons are counted and before its pairs are, so a
        value frequent in the batch where it first appears is on time.
        """
        fresh = np.unique(col[is_out]).astype(np.int64)
        fresh = fresh[(fresh >= 0) & ~np.isin(fresh, self.in_play_[j])]
        if len(fresh) == 0:
            return
        o, n = self._singletons(j, fresh)
        ok = self._frequent(o)
        if not ok.any():
            return
        codes, o, n = fresh[ok], o[ok], n[ok]
        batch_n = np.array([np.count_nonzero(col == c) for c in codes.tolist()], np.float64)
        batch_o = np.array([np.count_nonzero(col[is_out] == c) for c in codes.tolist()], np.float64)
        self._bring_into_play(j, codes, n - batch_n, o - batch_o)

    def _bring_into_play(self, j: int, codes, missed_n, missed_o) -> None:
        self.in_play_[j] = np.union1d(self.in_play_[j], codes)
        late = missed_n > 0
        if late.any():
            self._mark_late(j, codes[late], missed_o[late])

    def _mark_late(self, j: int, codes, missed_o) -> None:
        """Record values whose sketched pairs/triples missed rows (``missed_o`` outliers)."""
        all_codes = np.concatenate([self.late_[j], codes])
        all_o = np.concatenate([self.late_o_[j], missed_o])
        self.late_[j], inverse = np.unique(all_codes, return_inverse=True)
        # bincount of nothing is int64 even with float weights: keep the counts float.
        self.late_o_[j] = np.bincount(inverse.ravel(), weights=np.asarray(all_o, np.float64),
                                      minlength=len(self.late_[j])).astype(np.float64)

    def _admit_frequent(self, j: int, late: bool) -> None:
        """Bring every currently frequent value of attribute ``j`` into play."""
        dense = np.flatnonzero(self._frequent(self.dense_o_[j]))
        keys = self.sketches_[1].keys
        attrs, shifts, kbits = self._combos[1]
        combo, codes = unpack(keys, attrs, shifts, kbits)
        high = codes[combo == j, 0]
        cand = np.concatenate([dense, high[self._frequent(self._singletons(j, high)[0])]])
        cand = cand[~np.isin(cand, self.in_play_[j])]
        if len(cand):
            o, n = self._singletons(j, cand)
            self._bring_into_play(j, cand, n if late else np.zeros(len(cand)), o)

    def _retire(self, j: int) -> None:
        """Take values of attribute ``j`` whose support collapsed out of play.

        Early in a stream ``O`` is small and one outlier makes a value frequent; left in
        play, such ids would be hashed with every other value for the rest of the stream.
        Values below a quarter of min_support leave play (wide hysteresis: a value that
        really matters rarely falls that low, so it does not flap); when more than
        ``2 / min_support`` values are in play, those below half of min_support (then all
        infrequent ones) leave too. One that becomes frequent again comes back late.
        """
        if len(self.in_play_[j]) == 0 or self.outliers_ <= 0:
            return
        o = self._singletons(j, self.in_play_[j])[0]
        keep = self._frequent(o, factor=0.25)
        bound = int(np.ceil(2 / self.min_support))
        if keep.sum() > bound:
            keep = self._frequent(o, factor=0.5)
            if keep.sum() > bound:
                keep = self._frequent(o)
        if not keep.all():
            self.in_play_[j] = self.in_play_[j][keep]

    @property
    def exact_(self) -> bool:
        """True iff nothing was evicted and every frequent itemset was counted from its start.

        A sketched itemset S misses only rows from before one of its values came into play
        (a late value), so its true outlier count is at most its counted ``o`` plus the
        outliers its late values missed. Exact unless that bound reaches min_support for
        some S holding a frequent late value (counted or not).
        """
        self._ensure_state()
        if any(s.evicted for s in self.sketches_.values()):
            return False
        if self.max_order < 2 or not self._sketched.any():
            return True
        if any(self._frequent_values_out_of_play()):
            return False
        missed: dict[Item, float] = {}
        for j in np.flatnonzero(self._sketched).tolist():
            frequent = self._frequent(self._singletons(j, self.late_[j])[0])
            for code, o in zip(self.late_[j][frequent].tolist(), self.late_o_[j][frequent].tolist()):
                missed[(j, code)] = o
        if not missed:
            return True
        # Never counted: o(S) <= the outliers missed by its (at most max_order) late values.
        if self._frequent(np.array([sum(sorted(missed.values())[-self.max_order:])]))[0]:
            return False
        for r in range(2, self.max_order + 1):
            sketch = self.sketches_[r]
            if sketch.size == 0:
                continue
            combo, codes = unpack(sketch.keys, *self._combos[r])
            attrs = self._combos[r][0][combo]
            bound = sketch.o.copy()
            touched = np.zeros(len(bound), bool)
            for (j, code), o in missed.items():
                holds = ((attrs == j) & (codes == code)).any(axis=1)
                bound += o * holds
                touched |= holds
            if (touched & self._frequent(bound)).any():
                return False
        return True

    def _frequent_values_out_of_play(self):
        for j in np.flatnonzero(self._sketched).tolist():
            dense = np.flatnonzero(self._frequent(self.dense_o_[j]))
            if not np.isin(dense, self.in_play_[j]).all():
                yield j
            combo, codes = unpack(self.sketches_[1].keys, *self._combos[1])
            high = codes[combo == j, 0]
            high = high[self._frequent(self._singletons(j, high)[0])]
            if not np.isin(high, self.in_play_[j]).all():
                yield j

