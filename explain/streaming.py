"""The streaming explainer: DESIGN.md's explanations over exponentially decayed counts.

Rows arrive in batches of int32 code columns in a *global* code space per attribute (the
caller keeps codes stable across batches; new values get new, larger codes; -1 is
missing). The explainer keeps decayed counts ``o`` (outliers) and ``n`` (rows) of
itemsets plus the totals ``O`` and ``N``; :meth:`StreamingExplainer.advance` multiplies
all of them by ``1 - decay`` at the end of each emit interval, and
:meth:`StreamingExplainer.explanations` applies the batch explainer's rules
(:func:`explain.rules.apply_rules`) to them. Counts are additive, so explainers fed
disjoint rows :meth:`~StreamingExplainer.merge` by summation.

What is counted (MacroBase-style, bounded memory):

* Singletons: codes below ``dense_values`` exactly in dense arrays (16 bytes per code);
  larger codes (a million device ids) in an order-1 AMC heavy-hitter sketch
  (:mod:`explain.sketch`) of at most ``2 * sketch_size`` entries.
* Pairs and triples of attributes whose codes pack into a small key space (at most
  2**dense_bits cells per attribute combination, 2**20 per order) are counted for **every** row
  in a dense tier: a direct index, exact, never evicted, memory fixed by the layout.
* Other combinations (those involving a high-cardinality attribute) go to one AMC sketch
  per order, keyed by an int64 packing of the global codes, and count only rows whose
  values are all *in play*: frequent among outliers (support >= ``min_support``, checked
  after each batch's singletons are added and before its pairs are counted). Values whose
  support falls below ``min_support / 4`` leave play again (one outlier makes an id
  frequent early in a stream), as do, when more than ``2 / min_support`` are in play,
  those below ``min_support / 2``.

Exactness guarantee: the dense tier counts every row from the first, so with ``decay=0``,
nothing evicted and no *late* value, :meth:`explanations` equals ``BatchExplainer().explain``
on the concatenated rows (same itemsets, counts and ratios). A value is late when it
comes into play after rows of it were seen (typically an id that only later turns
anomalous, or any value when a combination leaves the dense tier as codes grow): its
sketched pairs/triples miss those rows. A sketched itemset's true outlier count is at
most its counted ``o`` plus the outliers its late values missed, so ``exact_`` is True
iff nothing was evicted and that bound stays below min_support for every itemset holding
a frequent late value; when it is False the answer is approximate (short ``n`` for late
values; after an eviction, Space-Saving upper bounds: new entries start from the largest
evicted counts). With ``decay > 0`` the same holds for the decayed sums; merged
explainers mark values in play on one side only as late.

Memory: dense singletons at most ``16 * dense_values`` bytes per attribute, the dense
tier at most 2**20 cells (16 MiB) per order, each sketch at most ``2 * sketch_size``
entries; what grows is the list of late values (16 bytes each). Keys pack the codes of
a combination into 62 bits: codes wider than that raise ``ValueError``.

Code: this module holds the parameters, the counting and the answers; the key layout is
in :mod:`explain._stream_layout`, the in-play bookkeeping and ``exact_`` in
:mod:`explain._stream_play`, merging and checkpoints in :mod:`explain._stream_state`.

Throughput: per batch a few NumPy passes per attribute plus one Numba pass per itemset
order that indexes (dense tier) or hashes (sketch) every counted combination of every
row; no per-row Python.

>>> import numpy as np
>>> ex = StreamingExplainer(["model", "region"], min_ratio=2.0)
>>> model = np.array([0] * 50 + [1] * 950, np.int32)
>>> region = np.arange(1000, dtype=np.int32) % 2
>>> ex = ex.update([model, region], np.arange(1000) < 40)  # returns self
>>> [e.attributes for e in ex.explanations()], ex.totals, ex.exact_
([(('model', 0),)], (40.0, 1000.0), True)
"""
from __future__ import annotations

from itertools import combinations
from typing import Any, Callable, Sequence

import numpy as np

from explain._stream_layout import MAX_KEY_BITS, dense_layout, member, pack, unpack
from explain._stream_play import PlayBookkeeping
from explain._stream_state import MergeAndCheckpoint
from explain.params import CONSTRAINTS, DEFAULTS
from explain.itemsets import Item, Itemset
from explain.metrics import ratio_function
from explain.result import Explanation, explanations_from, value_item_key
from explain.rules import apply_rules
from explain.sketch import AmcSketch
from operators.domains import Interval
from operators.estimator import Estimator, ParameterError



class _CodesAsValues:
    """``values[attribute][code] == code``: explanations in codes when no values are given."""

    class _Codes:
        def __getitem__(self, code: int) -> int:
            return int(code)

    def __getitem__(self, attribute: int) -> "_CodesAsValues._Codes":
        return self._Codes()


class _DistinctNames:
    def check(self, name: str, value: Any) -> Any:
        if isinstance(value, str) or len(value) == 0 or len(set(value)) != len(value):
            raise ParameterError(name, f"{name}: expected distinct attribute names, got {value!r}")
        return value


class StreamingExplainer(PlayBookkeeping, MergeAndCheckpoint, Estimator):
    """Decayed, mergeable itemset counts and the explanations they support (DESIGN.md).

    Parameters are those of :class:`explain.BatchExplainer` plus ``decay`` (per
    :meth:`advance`, 0 keeps all history), ``sketch_size`` (entries kept per itemset
    order after a prune; up to twice as many between prunes), ``dense_values`` (codes
    per attribute whose singleton counts are kept in dense arrays) and ``dense_bits``
    (an attribute combination is in the exact dense tier while its packed codes need at
    most this many bits, i.e. 2**dense_bits cells; 0 sends every pair/triple to the sketch).
    """

    def __init__(
        self,
        names: Sequence[str],
        min_support: float = DEFAULTS.min_support,
        min_ratio: float = DEFAULTS.min_ratio,
        ratio_metric: str = DEFAULTS.ratio_metric,
        max_order: int = DEFAULTS.max_order,
        mode: str = DEFAULTS.mode,
        decay: float = 0.0,
        sketch_size: int = 100_000,
        dense_values: int = 1 << 16,
        dense_bits: int = 18,
        max_p_value: float | None = DEFAULTS.max_p_value,
    ) -> None:
        self.names = names
        self.min_support = min_support
        self.min_ratio = min_ratio
        self.ratio_metric = ratio_metric
        self.max_order = max_order
        self.mode = mode
        self.decay = decay
        self.sketch_size = sketch_size
        self.dense_values = dense_values
        self.dense_bits = dense_bits
        self.max_p_value = max_p_value
        self._check_params()

    # -- parameters and lazily built state ------------------------------------------------
    _constraints = {
        "names": _DistinctNames(),
        **CONSTRAINTS,
        "decay": Interval(0, 1, high_open=True),
        "sketch_size": Interval(1, integer=True),
        "dense_values": Interval(0, integer=True),
        "dense_bits": Interval(0, 20, integer=True),
    }

    def _validate(self):
        self._check_params()
        return ratio_function(self.ratio_metric)

    def _ensure_state(self) -> None:
        if hasattr(self, "outliers_"):
            return
        self._validate()
        n_attrs = len(self.names)
        self.outliers_ = 0.0
        self.total_ = 0.0
        self.dense_o_ = [np.zeros(0) for _ in range(n_attrs)]
        self.dense_n_ = [np.zeros(0) for _ in range(n_attrs)]
        self.bits_ = np.ones(n_attrs, np.int64)
        self.sketches_ = {r: AmcSketch(self.sketch_size) for r in range(1, self.max_order + 1)}
        self.in_play_ = [np.zeros(0, np.int64) for _ in range(n_attrs)]
        self.late_ = [np.zeros(0, np.int64) for _ in range(n_attrs)]
        self.late_o_ = [np.zeros(0) for _ in range(n_attrs)]
        self._build_layout()
        self.tier_ = self._empty_tier()

    def _empty_tier(self) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """Zeroed dense (o, n) cells per order for the combinations the layout makes dense."""
        return {r: (np.zeros(self._dense_cells[r]), np.zeros(self._dense_cells[r]))
                for r in range(2, self.max_order + 1)}

    def _build_layout(self) -> None:
        """Attribute combinations per order, key shifts, dense tier, sketched attributes."""
        n_attrs = len(self.names)
        self._combos = {}
        self._dense_off: dict[int, np.ndarray] = {}
        self._dense_cells: dict[int, int] = {}
        self._sketched = np.zeros(n_attrs, bool)     # attribute in some sketched combination
        for r in range(1, self.max_order + 1):
            attrs = np.array(list(combinations(range(n_attrs), r)), np.int64).reshape(-1, r)
            kbits = max(1, (len(attrs) - 1).bit_length())
            shifts = self.bits_[attrs] if len(attrs) else attrs.copy()
            if len(attrs) and int(shifts.sum(axis=1).max()) + kbits > MAX_KEY_BITS:
                raise ValueError(
                    f"codes too large to pack {r} of them into an int64 key "
                    f"(bits per attribute: {self.bits_.tolist()})")
            self._combos[r] = (attrs, np.ascontiguousarray(shifts), kbits)
            self._dense_off[r], self._dense_cells[r] = dense_layout(shifts, r, self.dense_bits)
            if r > 1:
                self._sketched[np.unique(attrs[self._dense_off[r] < 0])] = True

    @property
    def totals(self) -> tuple[float, float]:
        """(O, N): decayed outlier and row totals."""
        self._ensure_state()
        return float(self.outliers_), float(self.total_)

    # -- updates ------------------------------------------------------------------------
    def update(self, codes: Sequence[np.ndarray], is_outlier: np.ndarray) -> "StreamingExplainer":
        """Add one batch: ``codes[j]`` int32 codes of attribute ``j`` (-1 missing) per row."""
        self._ensure_state()
        cols, is_out = self._check_batch(codes, is_outlier)
        if cols.shape[1] == 0:
            return self
        self._grow_bits(cols.max(axis=1))       # may refuse codes too wide to pack: nothing counted yet
        self.outliers_ += float(np.count_nonzero(is_out))
        self.total_ += float(cols.shape[1])

        high = cols >= self.dense_values
        any_high = bool(high.any())
        for j in range(cols.shape[0]):
            self._count_dense(j, cols[j], is_out, high[j] if any_high else None)
        if any_high:
            attrs, shifts, kbits = self._combos[1]
            self.sketches_[1].count_rows(np.where(high, cols, -1), is_out, attrs, shifts, kbits)
        if self.max_order < 2:
            return self
        play = cols
        if self._sketched.any():
            play = cols.copy()
            for j in np.flatnonzero(self._sketched).tolist():
                self._admit_batch(j, cols[j], is_out)
                self._retire(j)
                play[j][~member(cols[j], self.in_play_[j])] = -1
        for r in range(2, self.max_order + 1):
            attrs, shifts, kbits = self._combos[r]
            if len(attrs):
                dense = (self._dense_off[r], *self.tier_[r])
                self.sketches_[r].count_rows(cols, is_out, attrs, shifts, kbits, dense, play)
        return self

    def _check_batch(self, codes, is_outlier) -> tuple[np.ndarray, np.ndarray]:
        if len(codes) != len(self.names):
            raise ValueError(f"codes: expected {len(self.names)} columns (one per name), got {len(codes)}")
        is_out = np.ascontiguousarray(is_outlier, dtype=np.bool_)
        if is_out.ndim != 1:
            raise ValueError(f"is_outlier: expected a 1-d array, got shape {is_out.shape}")
        lengths = {len(c) for c in codes}
        if lengths != {len(is_out)}:
            raise ValueError(f"codes and is_outlier differ in length: {sorted(lengths | {len(is_out)})}")
        cols = np.empty((len(codes), len(is_out)), np.int32)
        for j, c in enumerate(codes):
            cols[j] = c
        if cols.size and cols.min() < -1:
            raise ValueError("codes: expected codes >= -1 (-1 = missing)")
        return cols, is_out

    def _grow_bits(self, max_codes: np.ndarray) -> None:
        need = np.maximum(self.bits_, [max(1, int(m).bit_length()) for m in max_codes])
        if (need > self.bits_).any():
            self._rekey(need.astype(np.int64))

    def _rekey(self, new_bits: np.ndarray) -> None:
        """Repack every key for wider code fields (rare: at most ~20 times per attribute)."""
        old_layout = {r: self._combos[r] for r in self._combos}
        was_sketched = self._sketched.copy()
        entries = {r: self._entries(r) for r in self.sketches_}
        old_bits, self.bits_ = self.bits_, new_bits
        try:
            self._build_layout()
        except ValueError:
            self.bits_ = old_bits
            self._build_layout()
            raise
        self.tier_ = self._empty_tier()
        for r, (keys, o, n) in entries.items():
            combo, codes = unpack(keys, *old_layout[r])
            self._route(r, pack(combo, codes, *self._combos[r]), o, n, replace=True)
        # Combinations that leave the dense tier were counted for every row so far: their
        # currently frequent values come into play on time, not late.
        for j in np.flatnonzero(self._sketched & ~was_sketched).tolist():
            self._admit_frequent(j, late=False)

    def _entries(self, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every counted combination of order ``r`` as (keys, o, n): dense cells, then sketch."""
        sketch = self.sketches_[r]
        if r == 1 or self._dense_cells[r] == 0:
            return sketch.keys.copy(), sketch.o.copy(), sketch.n.copy()
        dense_o, dense_n = self.tier_[r]
        cells = np.flatnonzero(dense_n > 0)
        offsets = self._dense_off[r]
        order = np.flatnonzero(offsets >= 0)
        order = order[np.argsort(offsets[order])]
        combo = order[np.searchsorted(offsets[order], cells, side="right") - 1]
        keys = ((cells - offsets[combo]) << self._combos[r][2]) | combo
        return (np.concatenate([keys, sketch.keys]), np.concatenate([dense_o[cells], sketch.o]),
                np.concatenate([dense_n[cells], sketch.n]))

    def _route(self, r: int, keys, o, n, replace: bool) -> None:
        """Store entries in the dense tier or the sketch; ``replace`` sets, else adds (merge)."""
        sketch = self.sketches_[r]
        kbits = self._combos[r][2]
        combo = keys & ((1 << kbits) - 1)
        dense = self._dense_off[r][combo] >= 0 if r > 1 else np.zeros(len(keys), bool)
        if dense.any():
            cells = self._dense_off[r][combo[dense]] + (keys[dense] >> kbits)
            dense_o, dense_n = self.tier_[r]
            np.add.at(dense_o, cells, o[dense])
            np.add.at(dense_n, cells, n[dense])
        if replace:
            sketch.replace(keys[~dense], o[~dense], n[~dense])
        elif (~dense).any():
            sketch.add(keys[~dense], o[~dense], n[~dense])

    def _count_dense(self, j: int, col: np.ndarray, is_out: np.ndarray, high) -> None:
        # bincount over code + 1 keeps missing in bin 0; codes >= dense_values are sketched.
        shifted = col + 1 if high is None else np.where(high, 0, col + 1)
        n = np.bincount(shifted)[1:]
        o = np.bincount(shifted[is_out], minlength=len(n) + 1)[1:]
        if len(n) > len(self.dense_n_[j]):
            size = min(self.dense_values, max(len(n), 2 * len(self.dense_n_[j])))
            for store in (self.dense_o_, self.dense_n_):
                store[j] = np.concatenate([store[j], np.zeros(size - len(store[j]))])
        self.dense_n_[j][: len(n)] += n
        self.dense_o_[j][: len(o)] += o

    def advance(self) -> "StreamingExplainer":
        """End of an emit interval: every count (o, n, O, N) times ``1 - decay``."""
        self._ensure_state()
        if self.decay == 0:
            return self
        f = 1.0 - self.decay
        self.outliers_ *= f
        self.total_ *= f
        for store in (self.dense_o_, self.dense_n_, self.late_o_):
            for arr in store:
                arr *= f
        for sketch in self.sketches_.values():
            sketch.scale(f)
        for dense_o, dense_n in self.tier_.values():
            dense_o *= f
            dense_n *= f
        return self

    # -- answers ------------------------------------------------------------------------
    def frequent_counts(self) -> dict[Itemset, tuple[float, float]]:
        """``{itemset: (o, n)}`` for every counted itemset with support >= min_support."""
        self._ensure_state()
        counts: dict[Itemset, tuple[float, float]] = {}
        if self.outliers_ <= 0:
            return counts
        for j, (o, n) in enumerate(zip(self.dense_o_, self.dense_n_)):
            for c in np.flatnonzero(self._frequent(o)).tolist():
                counts[((j, c),)] = (float(o[c]), float(n[c]))
        for r in self.sketches_:
            for itemset, on in zip(*self._frequent_entries(r)):
                counts[itemset] = on
        return counts

    def _frequent_entries(self, r: int):
        """(itemsets, (o, n) pairs) of the frequent entries of order ``r``."""
        keys, o, n = self._entries(r)
        keep = self._frequent(o)
        if not keep.any():
            return [], []
        combo, codes = unpack(keys[keep], *self._combos[r])
        attrs = self._combos[r][0]
        itemsets = [tuple(zip(attrs[k].tolist(), cs)) for k, cs in zip(combo.tolist(), codes.tolist())]
        return itemsets, list(zip(o[keep].tolist(), n[keep].tolist()))

    def explanations(self, values: Sequence[Sequence[Any]] | None = None,
                     item_key: Callable[[Item], tuple] | None = None) -> list[Explanation]:
        """Explanations of the current decayed counts, the same type as
        :meth:`explain.BatchExplainer.explain` returns.

        ``values[j]`` are attribute ``j``'s values by code (None: the codes themselves);
        tied items are ordered by ``item_key`` (default: attribute position, then the
        value's text, as in ``BatchExplainer``; without values, the codes).
        """
        ratio = self._validate()
        self._ensure_state()
        if item_key is None:
            item_key = (lambda item: item) if values is None else value_item_key(values)
        if values is None:
            values = _CodesAsValues()
        found = apply_rules(
            self.frequent_counts(), self.outliers_, self.total_,
            min_support=self.min_support, min_ratio=self.min_ratio, ratio=ratio,
            max_order=self.max_order, mode=self.mode, item_key=item_key,
            max_p_value=self.max_p_value,
            tested=None if self.max_p_value is None else self._outlier_itemsets(),
        )
        return explanations_from(found, self.names, values, self.outliers_, self.ratio_metric)

    def _outlier_itemsets(self) -> int:
        """Counted itemsets with outliers (o > 0): the Benjamini–Hochberg family.

        The dense singletons and tier see every row, as the batch explainer does; sketched
        combinations only values in play, so the family is then smaller than batch's.
        """
        seen = sum(int(np.count_nonzero(o)) for o in self.dense_o_)
        return seen + sum(int(np.count_nonzero(self._entries(r)[1])) for r in self.sketches_)

    @property
    def n_entries_(self) -> dict[int, int]:
        """Sketch entries per itemset order (order 1: codes >= dense_values only; the dense
        tier of small attribute combinations, fixed in size, is not included)."""
        self._ensure_state()
        return {r: s.size for r, s in self.sketches_.items()}
