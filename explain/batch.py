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

import numpy as np

from explain.encoding import EncodedAttributes
from explain.itemsets import count_frequent_itemsets, count_outlier_itemsets
from explain.metrics import ratio_function
from explain.result import Explanation, explanations_from, value_item_key
from explain.rules import MODES, Found, apply_rules


class BatchExplainer:
    """Minimal or refined explanations of the outliers among all rows (DESIGN.md).

    ``max_p_value`` (None: off) keeps only explanations whose Benjamini–Hochberg adjusted
    Fisher p-value, over every itemset that occurs among the outliers, is at most this.
    """

    def __init__(
        self,
        min_support: float = 0.01,
        min_ratio: float = 3.0,
        ratio_metric: str = "risk_ratio",
        max_order: int = 3,
        mode: str = "refined",
        max_p_value: float | None = None,
    ) -> None:
        self.min_support = min_support
        self.min_ratio = min_ratio
        self.ratio_metric = ratio_metric
        self.max_order = max_order
        self.mode = mode
        self.max_p_value = max_p_value

    def explain(self, encoded: EncodedAttributes, is_outlier: np.ndarray) -> list[Explanation]:
        """Explanations sorted by outlier count, ratio, then attributes."""
        ratio = self.validate()
        is_outlier = np.asarray(is_outlier, dtype=bool)
        if is_outlier.ndim != 1 or len(is_outlier) != encoded.n_rows:
            raise ValueError(
                f"is_outlier: expected one flag per row ({encoded.n_rows}), got shape {is_outlier.shape}"
            )
        counts = count_frequent_itemsets(encoded, is_outlier, self.min_support, self.max_order)
        found = apply_rules(
            counts.counts, counts.outliers, counts.total,
            min_support=self.min_support, min_ratio=self.min_ratio, ratio=ratio,
            max_order=self.max_order, mode=self.mode,
            item_key=value_item_key(encoded.values), max_p_value=self.max_p_value,
            tested=None if self.max_p_value is None else count_outlier_itemsets(encoded, is_outlier, self.max_order),
        )
        if self.mode == "refined":
            found = merge_same_rows(found, encoded, value_item_key(encoded.values))
        return explanations_from(found, encoded.names, encoded.values, counts.outliers, self.ratio_metric)

    def validate(self):
        """Raise ValueError naming the first bad parameter; return the ratio function."""
        check_explainer_params(self.min_support, self.min_ratio, self.max_order, self.mode, self.max_p_value)
        return ratio_function(self.ratio_metric)


def check_explainer_params(min_support: float, min_ratio: float, max_order: int, mode: str,
                           max_p_value: float | None = None) -> None:
    """Raise ValueError naming the first parameter outside its domain."""
    if not 0 < min_support <= 1:
        raise ValueError(f"min_support: expected a number in (0, 1], got {min_support!r}")
    if not min_ratio > 0:
        raise ValueError(f"min_ratio: expected a number > 0, got {min_ratio!r}")
    if max_order not in (1, 2, 3):
        raise ValueError(f"max_order: expected 1, 2 or 3, got {max_order!r}")
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if max_p_value is not None and not 0 < max_p_value <= 1:
        raise ValueError(f"max_p_value: expected a number in (0, 1] or none, got {max_p_value!r}")


def merge_same_rows(found: list[Found], encoded: EncodedAttributes, item_key) -> list[Found]:
    """Exact in batch: explanations whose rows are the same, checked on the codes, become one.

    The counting rule of :func:`explain.rules.apply_rules` sees that two itemsets share
    their rows only through a smaller itemset; two of ``max_order`` items each (say
    ``carrier=9E, dest=DFW, hour=18`` and ``origin=JFK, dest=DFW, hour=18``) need the rows
    themselves. Only explanations of equal (outliers, rows) are compared. The one kept has
    the fewest items (ties: ``item_key`` order); the others' items join its ``implies``.
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
        masks = {i: _rows_of(encoded, found[i].itemset) for i in members}
        left = sorted(members, key=lambda i: order(found[i]))
        while left:
            best, rest = left[0], left[1:]
            same = [j for j in rest if np.array_equal(masks[best], masks[j])]
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


def _rows_of(encoded: EncodedAttributes, itemset) -> np.ndarray:
    mask = np.ones(encoded.n_rows, dtype=bool)
    for attribute, code in itemset:
        mask &= encoded.codes[attribute] == code
    return mask
