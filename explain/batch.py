"""The exact batch explainer (MacroBase's DIFF) over integer-coded attributes.

>>> import numpy as np
>>> from explain import BatchExplainer, encode_columns
>>> model = ["M1"] * 50 + ["M2"] * 950
>>> outlier = np.array([True] * 40 + [False] * 10 + [True] * 10 + [False] * 940)
>>> [e.attributes for e in BatchExplainer().explain(encode_columns({"model": model}), outlier)]
[(('model', 'M1'),)]
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable, Sequence, TypeVar

import numpy as np

from explain.encoding import EncodedAttributes
from explain.itemsets import CodedChunk, FrequentItemsetCounter
from explain.metrics import ratio_function
from explain.result import Explanation, explanations_from, value_item_key
from explain.params import CONSTRAINTS, DEFAULTS
from operators.estimator import Estimator
from explain.rules import Found, apply_rules

T = TypeVar("T")


class BatchExplainer(Estimator):
    """Minimal or refined explanations of the outliers among all rows (DESIGN.md).

    ``max_p_value`` (None: off) keeps only explanations whose Benjamini–Hochberg adjusted
    Fisher p-value, over every itemset that occurs among the outliers, is at most this.
    Learned by ``explain``: ``outliers_`` and ``total_``, the rows counted.

    >>> from explain import encode_columns
    >>> enc = encode_columns({"model": ["a", "a", "b", "b", "b", "b"]})
    >>> [e.attributes for e in BatchExplainer(min_ratio=2).explain(enc, [True, True, False, False, False, False])]
    [(('model', 'a'),)]
    """

    _constraints = CONSTRAINTS

    def __init__(
        self,
        min_support: float = DEFAULTS.min_support,
        min_ratio: float = DEFAULTS.min_ratio,
        ratio_metric: str = DEFAULTS.ratio_metric,
        max_order: int = DEFAULTS.max_order,
        mode: str = DEFAULTS.mode,
        max_p_value: float | None = DEFAULTS.max_p_value,
    ) -> None:
        self.min_support = min_support
        self.min_ratio = min_ratio
        self.ratio_metric = ratio_metric
        self.max_order = max_order
        self.mode = mode
        self.max_p_value = max_p_value
        self._check_params()

    def explain(self, encoded: EncodedAttributes, is_outlier: np.ndarray) -> list[Explanation]:
        """Explanations sorted by outlier count, ratio, then attributes."""
        self.validate()
        is_outlier = np.asarray(is_outlier, dtype=bool)
        if is_outlier.ndim != 1 or len(is_outlier) != encoded.n_rows:
            raise ValueError(
                f"is_outlier: expected one flag per row ({encoded.n_rows}), got shape {is_outlier.shape}"
            )
        chunk = CodedChunk(encoded.codes, is_outlier)
        return self.explain_passes(lambda: [chunk], encoded.names, encoded.values)

    def explain_passes(
        self,
        passes: Callable[[], Iterable[T]],
        names: Sequence[str],
        values: Sequence[Sequence[Any]],
        chunk_of: Callable[[T], CodedChunk] = lambda chunk: chunk,
        mapper: Callable[[Callable[[T], Any], Iterable[T]], Iterable[Any]] = map,
    ) -> list[Explanation]:
        """The same explanations over rows read in chunks, pass after pass (bigger than memory).

        ``passes()`` returns a fresh iterable over the same rows each time; ``chunk_of``
        turns one of its items into a :class:`CodedChunk` (codes in one code space for the
        whole input). ``values[j]`` are attribute ``j``'s values by code, complete once the
        first pass has ended (they may grow during it). ``mapper(fn, items)`` yields
        ``fn(item)`` for every item in order, e.g. on a pool of threads: the counting
        kernels release the GIL. 2 or 3 passes, one more when explanations of equal counts
        must be compared row by row.
        """
        ratio = self.validate()
        counter = FrequentItemsetCounter(self.min_support, self.max_order, count_tested=self.max_p_value is not None)
        while not counter.done:
            for partial in mapper(lambda item: counter.count(chunk_of(item)), passes()):
                counter.add(partial)
            counter.end_pass([len(v) for v in values])
        counts = counter.result()
        self.outliers_, self.total_ = counts.outliers, counts.total
        item_key = value_item_key(values)
        found = apply_rules(
            counts.counts, counts.outliers, counts.total,
            min_support=self.min_support, min_ratio=self.min_ratio, ratio=ratio,
            max_order=self.max_order, mode=self.mode,
            item_key=item_key, max_p_value=self.max_p_value, tested=counter.tested_,
        )
        if self.mode == "refined":
            found = merge_same_rows(found, _same_row_pairs(found, passes, chunk_of, mapper), item_key)
        return explanations_from(found, names, values, counts.outliers, self.ratio_metric)

    def validate(self):
        """Raise ValueError naming the first bad parameter; return the ratio function."""
        self._check_params()
        return ratio_function(self.ratio_metric)


def merge_same_rows(found: list[Found], same_rows: set[tuple[int, int]], item_key) -> list[Found]:
    """Exact in batch: explanations whose rows are the same become one.

    The counting rule of :func:`explain.rules.apply_rules` sees that two itemsets share
    their rows only through a smaller itemset; two of ``max_order`` items each (say
    ``carrier=9E, dest=DFW, hour=18`` and ``origin=JFK, dest=DFW, hour=18``) need the rows
    themselves: ``same_rows`` holds the pairs ``(i, j)``, ``i < j``, of ``found`` that
    select the very same rows (:func:`_same_row_pairs`). The one kept has the fewest items
    (ties: ``item_key`` order); the others' items join its ``implies``.
    """
    groups: dict[tuple[float, float], list[int]] = {}
    for i, f in enumerate(found):
        groups.setdefault((f.outliers, f.rows), []).append(i)
    replaced: dict[int, Found] = {}
    dropped: set[int] = set()
    order = lambda f: (len(f.itemset), tuple(item_key(i) for i in f.itemset))
    for members in groups.values():
        if len(members) < 2:
            continue
        left = sorted(members, key=lambda i: order(found[i]))
        while left:
            best, rest = left[0], left[1:]
            same = [j for j in rest if (min(best, j), max(best, j)) in same_rows]
            left = [j for j in rest if j not in same]
            if not same:
                continue
            keep = found[best]
            attrs = {a for a, _ in keep.itemset} | {a for a, _ in keep.implies}
            implied = list(keep.implies)
            extra = {item for j in same for item in (*found[j].itemset, *found[j].implies)}
            for item in sorted(extra, key=item_key):
                if item[0] not in attrs:
                    attrs.add(item[0])
                    implied.append(item)
            replaced[best] = dataclasses.replace(keep, implies=tuple(sorted(implied, key=item_key)))
            dropped.update(same)
    return [replaced.get(i, f) for i, f in enumerate(found) if i not in dropped]


def _same_row_pairs(found: list[Found], passes, chunk_of, mapper) -> set[tuple[int, int]]:
    """Pairs of explanations with equal (outliers, rows) whose rows are the same, by one
    more pass over the rows (none when no two explanations have equal counts)."""
    groups: dict[tuple[float, float], list[int]] = {}
    for i, f in enumerate(found):
        groups.setdefault((f.outliers, f.rows), []).append(i)
    pairs = {(i, j) for members in groups.values() for k, i in enumerate(members) for j in members[k + 1:]}
    if not pairs:
        return set()
    members = sorted({i for pair in pairs for i in pair})

    def differing(item) -> set[tuple[int, int]]:
        chunk = chunk_of(item)
        masks = {i: _rows_of(chunk.codes, found[i].itemset) for i in members}
        return {(i, j) for i, j in pairs if not np.array_equal(masks[i], masks[j])}

    differ: set[tuple[int, int]] = set()
    for d in mapper(differing, passes()):
        differ |= d
    return pairs - differ


def _rows_of(codes: Sequence[np.ndarray], itemset) -> np.ndarray:
    mask = np.ones(len(codes[0]), dtype=bool)
    for attribute, code in itemset:
        mask &= codes[attribute] == code
    return mask
