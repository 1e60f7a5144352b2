"""DESIGN.md's explanation rules (minimal and refined) over itemset counts.

The rules are independent of where counts come from: exact integers from the batch
explainer or decayed floats from the streaming one. So is the test of whether two
itemsets match the same rows (refined mode reports one explanation per set of rows):
it is decided from the counts of itemsets of at most ``max_order`` items alone, so the
batch and the streaming explainer agree whenever their counts do (DESIGN.md,
"Explanations an operator can act on").
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Mapping

import numpy as np

from explain.itemsets import Item, Itemset
from explain.metrics import RatioFunction, metric_name
from explain.params import MODES
from explain.significance import bh_adjusted, fisher_greater, ratio_ci


# Counts of the same rows are equal; decayed ones up to float rounding (a row's weight
# added in one step to one count and in several to another).
_SAME_COUNT_RTOL = 1e-9


@dataclass(frozen=True)
class Found:
    """One reported itemset with its counts, ratio and statistics.

    ``p_value`` is the one-sided Fisher exact test of its 2x2 table, ``ratio_ci`` a 95%
    interval for the ratio (:mod:`explain.significance`); ``implies`` holds items every
    row of the itemset also has, from other itemsets that match exactly the same rows.
    """

    itemset: Itemset
    outliers: float
    rows: float
    ratio: float
    p_value: float
    ratio_ci: tuple[float, float]
    implies: Itemset


def apply_rules(
    counts: Mapping[Itemset, tuple[float, float]],
    outliers: float,
    total: float,
    *,
    min_support: float,
    min_ratio: float,
    ratio: RatioFunction,
    max_order: int,
    mode: str,
    item_key: Callable[[Item], tuple],
    max_p_value: float | None = None,
    tested: int | None = None,
) -> list[Found]:
    """Return the explanations, sorted by outliers desc, ratio desc, then items.

    ``counts`` must hold every itemset of support >= ``min_support`` (it may hold more);
    ``item_key`` orders items deterministically (attribute position, then value).
    ``max_p_value`` keeps explanations whose Benjamini–Hochberg adjusted p-value is at
    most this (None keeps all). The family is every itemset looked at: ``tested`` of them
    (default: the frequent ones), those below min_support counting as p = 1.
    """
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if outliers <= 0:
        return []
    O, N = outliers, total
    frequent = {
        s: on for s, on in counts.items()
        if 1 <= len(s) <= max_order and on[0] / O >= min_support
    }
    ratios = {s: ratio(o, n, O, N) for s, (o, n) in frequent.items()}

    def passes(s: Itemset) -> bool:
        # An itemset that is not frequent is absent; it cannot pass.
        return ratios.get(s, 0.0) >= min_ratio

    minimal = [
        s for s in frequent
        if passes(s) and not any(
            passes(t) for k in range(1, len(s)) for t in combinations(s, k)
        )
    ]
    # children[t]: the frequent one-item extensions of t (of () the frequent singletons).
    children: dict[Itemset, list[Itemset]] = {}
    for s in frequent:
        for t in combinations(s, len(s) - 1):
            children.setdefault(t, []).append(s)
    if mode == "minimal":
        # MacroBase's answer, unchanged: itemsets with the same rows are all listed.
        chosen = {s: () for s in minimal}
    else:
        absorbed = {
            _absorb(s, frequent, children, ratios, O, N, min_ratio, ratio, max_order, item_key)
            for s in minimal
        }
        chosen = _one_per_row_set(absorbed, frequent, children, N, max_order, item_key)

    itemsets = list(chosen)
    if max_p_value is not None and itemsets:
        family = list(frequent)
        on = np.array([frequent[s] for s in family], np.float64)
        p_tested = fisher_greater(on[:, 0], on[:, 1], O, N)
        q = dict(zip(family, bh_adjusted(p_tested, tested).tolist()))
        itemsets = [s for s in itemsets if q[s] <= max_p_value]
    on = np.array([frequent[s] for s in itemsets], np.float64).reshape(-1, 2)
    p_values = fisher_greater(on[:, 0], on[:, 1], O, N).tolist()
    lo, hi = ratio_ci(metric_name(ratio), on[:, 0], on[:, 1], O, N)
    found = [
        Found(s, frequent[s][0], frequent[s][1], ratios[s], p, (a, b), chosen[s])
        for s, p, a, b in zip(itemsets, p_values, lo.tolist(), hi.tolist())
    ]
    found.sort(key=lambda f: (-f.outliers, -f.ratio, tuple(item_key(i) for i in f.itemset)))
    return found


def _one_per_row_set(chosen, frequent, children, N, max_order, item_key) -> dict[Itemset, Itemset]:
    """``{kept itemset: implied items}``: one entry per set of rows the ``chosen`` match.

    X *covers* item x when some T ⊆ X of fewer than ``max_order`` items has n(T + x) = n(T)
    (n(()) = N): every row of T, so of X, has x. Itemsets G and X of equal (o, n) match
    the same rows when G ⊆ X + covered(X) or X ⊆ G + covered(G) (each row of one has the
    other's items, and there are as many rows). A chosen itemset's class is every frequent
    itemset linked to it through such steps; the class reports its member with the fewest
    items (ties: items in ``item_key`` order) and the other members' items as ``implies``.
    """
    sets = list(frequent)
    on = np.array([frequent[s] for s in sets], np.float64).reshape(-1, 2)
    closures: dict[Itemset, frozenset[Item]] = {}

    def closure(x: Itemset) -> frozenset[Item]:
        if x not in closures:
            items = set(x)
            for k in range(min(len(x), max_order - 1) + 1):
                for t in combinations(x, k):
                    if t and t not in frequent:
                        continue  # approximate (sketched) counts can lack a subset
                    n_t = frequent[t][1] if t else N
                    for ext in children.get(t, ()):
                        if math.isclose(frequent[ext][1], n_t, rel_tol=_SAME_COUNT_RTOL):
                            items.update(i for i in ext if i not in t)
            closures[x] = frozenset(items)
        return closures[x]

    order = lambda s: (len(s), tuple(item_key(i) for i in s))
    kept: dict[Itemset, Itemset] = {}
    done: set[Itemset] = set()
    for f in sorted(chosen, key=order):
        if f in done:
            continue
        o, n = frequent[f]
        cands = [sets[i] for i in np.flatnonzero(_same(on[:, 0], o) & _same(on[:, 1], n)).tolist()]
        members, frontier = {f}, [f]
        while frontier:
            x = frontier.pop()
            cx = closure(x)
            for g in cands:
                if g not in members and (cx.issuperset(g) or closure(g).issuperset(x)):
                    members.add(g)
                    frontier.append(g)
        best = min(members, key=order)
        implied, attrs = [], {a for a, _ in best}
        for item in sorted({i for m in members for i in m} - set(best), key=item_key):
            # Exact counts never cover two values of one attribute (no row has both);
            # approximate (sketched) counts could: keep the first.
            if item[0] not in attrs:
                attrs.add(item[0])
                implied.append(item)
        kept[best] = tuple(implied)
        done |= members
    return kept


def _same(a, b):
    return np.abs(np.subtract(a, b)) <= _SAME_COUNT_RTOL * np.maximum(np.abs(a), np.abs(b))


def _absorb(s, frequent, children, ratios, O, N, min_ratio, ratio, max_order, item_key) -> Itemset:
    """Follow the best absorbing extension of ``s`` until none is left (refined mode)."""
    current = s
    while len(current) < max_order:
        o, n = frequent[current]
        attrs = {a for a, _ in current}
        best = None
        for ext in children.get(current, ()):
            oe, ne = frequent[ext]
            if ratios[ext] < ratios[current]:
                continue
            o_rest, n_rest = o - oe, n - ne
            rest = ratio(o_rest, n_rest, O, N) if n_rest > 0 else 0.0
            if rest >= min_ratio:
                continue
            added = next(i for i in ext if i[0] not in attrs)
            key = (-ratios[ext], -oe, item_key(added))
            if best is None or key < best[0]:
                best = (key, ext)
        if best is None:
            break
        current = best[1]
    return current
