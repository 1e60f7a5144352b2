"""Merging streaming explainers and their checkpoints (``to_state``/``from_state``)."""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from explain._stream_layout import pack, unpack
from explain.sketch import AmcSketch


class MergeAndCheckpoint:
    """Mixed into :class:`explain.StreamingExplainer`: merge by summation, re-coding, and
    a plain-array state for checkpoints."""

    _PARAMS = ("min_support", "min_ratio", "ratio_metric", "max_order", "mode", "decay",
               "sketch_size", "dense_values", "dense_bits")

    def merge(self, other: "StreamingExplainer",
              recode: Sequence[np.ndarray] | None = None) -> "StreamingExplainer":
        """Add ``other``'s counts to this explainer's (parallel workers sum their counts).

        ``recode[j][c]`` is this explainer's code for ``other``'s code ``c`` of attribute
        ``j``, for explainers that encoded values independently (one per shard).
        """
        self._ensure_state()
        other._ensure_state()
        if recode is not None:
            other = other.translated(recode)
        if list(other.names) != list(self.names):
            raise ValueError(f"merge: attribute names differ: {list(self.names)} vs {list(other.names)}")
        for p in ("max_order", "dense_values", "dense_bits"):
            if getattr(self, p) != getattr(other, p):
                raise ValueError(f"merge: {p} differs: {getattr(self, p)!r} vs {getattr(other, p)!r}")
        bits = np.maximum(self.bits_, other.bits_)
        if (bits > self.bits_).any():
            self._rekey(bits)
        # Values in play on one side only missed the other side's rows in sketched pairs.
        for j in range(len(self.names)):
            mine, theirs = self.in_play_[j], other.in_play_[j]
            only_mine = np.setdiff1d(mine, theirs)
            only_theirs = np.setdiff1d(theirs, mine)
            for codes, absent_side in ((only_mine, other), (only_theirs, self)):
                if len(codes):
                    o, n = absent_side._singletons(j, codes)
                    seen = n > 0
                    self._mark_late(j, codes[seen], o[seen])
            self._mark_late(j, other.late_[j], other.late_o_[j])
            self.in_play_[j] = np.union1d(mine, theirs)
        self.outliers_ += other.outliers_
        self.total_ += other.total_
        for store, theirs in ((self.dense_o_, other.dense_o_), (self.dense_n_, other.dense_n_)):
            for j, arr in enumerate(theirs):
                if len(arr) > len(store[j]):
                    store[j] = np.concatenate([store[j], np.zeros(len(arr) - len(store[j]))])
                store[j][: len(arr)] += arr
        for r, sketch in self.sketches_.items():
            theirs = other.sketches_[r]
            keys, o, n = other._entries(r)
            combo, codes = unpack(keys, *other._combos[r])
            self._route(r, pack(combo, codes, *self._combos[r]), o, n, replace=False)
            # Space-Saving bounds add up; an eviction on either side loses exactness.
            sketch.floor_o += theirs.floor_o
            sketch.floor_n += theirs.floor_n
            sketch.evicted |= theirs.evicted
        # Values frequent only in the sum were in play on neither side: late.
        for j in np.flatnonzero(self._sketched).tolist():
            self._admit_frequent(j, late=True)
        return self

    def translated(self, recode: Sequence[np.ndarray]) -> "StreamingExplainer":
        """A copy in another code space: code ``c`` of attribute ``j`` becomes ``recode[j][c]``.

        ``recode[j]`` must map distinct codes to distinct codes (an encoder's lookup table).
        """
        self._ensure_state()
        if len(recode) != len(self.names):
            raise ValueError(f"recode: expected {len(self.names)} tables (one per name), got {len(recode)}")
        luts = [np.asarray(t, np.int64) for t in recode]
        out = type(self)(self.names, max_p_value=self.max_p_value,
                                 **{p: getattr(self, p) for p in self._PARAMS})
        out._ensure_state()
        out.outliers_, out.total_ = self.outliers_, self.total_
        out.bits_ = np.array([max(1, int(t.max()).bit_length()) if len(t) else 1 for t in luts], np.int64)
        out._build_layout()
        out.tier_ = out._empty_tier()
        attrs1, shifts1, kbits1 = self._combos[1]
        combo1, codes1 = unpack(self.sketches_[1].keys, attrs1, shifts1, kbits1)
        for j, lut in enumerate(luts):
            dense = np.flatnonzero(self.dense_n_[j] > 0)
            high = combo1 == j
            codes = lut[np.concatenate([dense, codes1[high, 0]])]
            o = np.concatenate([self.dense_o_[j][dense], self.sketches_[1].o[high]])
            n = np.concatenate([self.dense_n_[j][dense], self.sketches_[1].n[high]])
            low = codes < out.dense_values
            if low.any():
                size = int(codes[low].max()) + 1
                out.dense_o_[j], out.dense_n_[j] = np.zeros(size), np.zeros(size)
                out.dense_o_[j][codes[low]], out.dense_n_[j][codes[low]] = o[low], n[low]
            if (~low).any():
                out.sketches_[1].add(pack(np.full(int((~low).sum()), j), codes[~low][:, None], *out._combos[1]),
                                     o[~low], n[~low])
            out.in_play_[j] = np.unique(lut[self.in_play_[j]])
            out._mark_late(j, lut[self.late_[j]], self.late_o_[j])
        for r in range(2, self.max_order + 1):
            keys, o, n = self._entries(r)
            combo, codes = unpack(keys, *self._combos[r])
            attrs = self._combos[r][0][combo]
            for j, lut in enumerate(luts):
                at = attrs == j
                codes[at] = lut[codes[at]]
            out._route(r, pack(combo, codes, *out._combos[r]), o, n, replace=False)
        for r, sketch in self.sketches_.items():
            mine = out.sketches_[r]
            mine.floor_o, mine.floor_n, mine.evicted = sketch.floor_o, sketch.floor_n, sketch.evicted
        # Combinations dense here but sketched there were counted for every row: on time.
        for j in np.flatnonzero(out._sketched & ~self._sketched).tolist():
            out._admit_frequent(j, late=False)
        return out

    def to_state(self) -> dict[str, Any]:
        """Checkpoint as a flat dict of NumPy arrays (works with pickle and ``np.savez``)."""
        self._ensure_state()
        state: dict[str, Any] = {
            "names": np.array([str(n) for n in self.names]),
            "totals": np.array([self.outliers_, self.total_]),
            "bits": self.bits_.copy(),
        }
        for p in self._PARAMS:
            state[f"param_{p}"] = np.array(getattr(self, p))
        # NaN for "off": an object array (None) would need pickle to load from np.savez.
        state["param_max_p_value"] = np.array(np.nan if self.max_p_value is None else self.max_p_value)
        for key, arrays in (("dense_o", self.dense_o_), ("dense_n", self.dense_n_),
                            ("in_play", self.in_play_), ("late", self.late_), ("late_o", self.late_o_)):
            state[key] = np.concatenate(arrays)
            state[f"{key}_lengths"] = np.array([len(a) for a in arrays], np.int64)
        for r, sketch in self.sketches_.items():
            state.update(sketch.to_state(f"order{r}_"))
            if r > 1:   # the dense tier as its non-empty cells, so checkpoints stay small
                keys, o, n = self._entries(r)
                m = len(keys) - sketch.size
                state[f"order{r}_dense_keys"], state[f"order{r}_dense_o"], state[f"order{r}_dense_n"] = (
                    keys[:m], o[:m], n[:m])
        return state

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "StreamingExplainer":
        """Rebuild an explainer from :meth:`to_state` (or ``np.load`` of its ``np.savez``)."""
        params = {p: np.asarray(state[f"param_{p}"]).item() for p in cls._PARAMS}
        # Checkpoints written before max_p_value existed have none: off.
        max_p = float(np.asarray(state.get("param_max_p_value", np.nan)))
        params["max_p_value"] = None if np.isnan(max_p) else max_p
        ex = cls([str(n) for n in np.asarray(state["names"]).tolist()], **params)
        ex._validate()
        ex.outliers_, ex.total_ = (float(x) for x in np.asarray(state["totals"]))
        ex.bits_ = np.asarray(state["bits"], np.int64).copy()
        for key, dtype in (("dense_o", np.float64), ("dense_n", np.float64), ("in_play", np.int64),
                           ("late", np.int64), ("late_o", np.float64)):
            flat = np.asarray(state[key], dtype)
            ends = np.cumsum(np.asarray(state[f"{key}_lengths"], np.int64))
            setattr(ex, f"{key}_", [a.copy() for a in np.split(flat, ends[:-1])])
        ex.sketches_ = {r: AmcSketch.from_state(state, f"order{r}_", ex.sketch_size)
                        for r in range(1, ex.max_order + 1)}
        ex._build_layout()
        ex.tier_ = ex._empty_tier()
        for r in range(2, ex.max_order + 1):
            dense_o, dense_n = ex.tier_[r]
            keys = np.asarray(state[f"order{r}_dense_keys"], np.int64)
            kbits = ex._combos[r][2]
            cells = ex._dense_off[r][keys & ((1 << kbits) - 1)] + (keys >> kbits)
            dense_o[cells] = np.asarray(state[f"order{r}_dense_o"])
            dense_n[cells] = np.asarray(state[f"order{r}_dense_n"])
        return ex
