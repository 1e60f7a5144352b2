"""DESIGN.md's explanation rules (minimal and refined) over itemset counts.

The rules are independent of where counts come from: exact integers from the batch
explainer or decayed floats from the streaming one.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Callable, Mapping

from explain.itemsets import Item, Itemset
from explain.metrics import RatioFunction

MODES = ("refined", "minimal")


@dataclass(frozen=True)
class Found:
    """One reported itemset with its counts and ratio."""

    itemset: Itemset
    outliers: float
    rows: float
    ratio: float


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
) -> list[Found]:
    """Return the explanations, sorted by outliers desc, ratio desc, then items.

    ``counts`` must hold every itemset of support >= ``min_support`` (it may hold more);
    ``item_key`` orders items deterministically (attribute position, then value).
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
    if mode == "minimal":
        chosen = set(minimal)
    else:
        children: dict[Itemset, list[Itemset]] = {}
        for s in frequent:
            for t in combinations(s, len(s) - 1) if len(s) > 1 else ():
                children.setdefault(t, []).append(s)
        chosen = {
            _absorb(s, frequent, children, ratios, O, N, min_ratio, ratio, max_order, item_key)
            for s in minimal
        }

    found = [Found(s, frequent[s][0], frequent[s][1], ratios[s]) for s in chosen]
    found.sort(key=lambda f: (-f.outliers, -f.ratio, tuple(item_key(i) for i in f.itemset)))
    return found


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
