"""Slow, obvious reference for DESIGN.md's explanation semantics, written from the spec.

pandas group-bys over every attribute subset give exact counts; the rules are applied
literally (every proper subset checked, every extension scanned). Shares no code with
`explain/`.
"""
from __future__ import annotations

import math
from itertools import combinations

import pandas as pd


def ratio_value(metric: str, o, n, O, N) -> float:
    if metric == "risk_ratio":
        if n == 0 or N == n:
            return 0.0
        if O == o:
            return math.inf if o > 0 else 0.0
        return (o / n) / ((O - o) / (N - n))
    if metric == "global_ratio":
        return 0.0 if n == 0 or O == 0 else (o / n) / (O / N)
    if metric == "prevalence_ratio":
        if n == 0 or o == 0:
            return 0.0
        if N == O:
            return 1.0
        if n == o:
            return math.inf
        return (o / (n - o)) / (O / (N - O))
    raise ValueError(metric)


def all_itemset_counts(df: pd.DataFrame, attributes: list[str], outlier_col: str, max_order: int):
    """{frozenset of (attr, value): (o, n)} for every itemset present in the data."""
    counts = {}
    for k in range(1, max_order + 1):
        for attrs in combinations(attributes, k):
            g = df.groupby(list(attrs), dropna=True)[outlier_col].agg(["sum", "count"])
            for key, row in g.iterrows():
                key = key if isinstance(key, tuple) else (key,)
                counts[frozenset(zip(attrs, key))] = (int(row["sum"]), int(row["count"]))
    return counts


def reference_explain(df, attributes, outlier_col="outlier", *, min_support=0.01, min_ratio=3.0,
                      ratio_metric="risk_ratio", max_order=3, mode="refined"):
    """List of dicts {attributes, outlier_count, count, support, ratio} in DESIGN.md order."""
    N = len(df)
    O = int(df[outlier_col].sum())
    if O == 0:
        return []
    pos = {a: i for i, a in enumerate(attributes)}
    counts = all_itemset_counts(df, attributes, outlier_col, max_order)

    def support(s):
        return counts[s][0] / O

    def ratio(s):
        o, n = counts[s]
        return ratio_value(ratio_metric, o, n, O, N)

    def passes(s):
        return support(s) >= min_support and ratio(s) >= min_ratio

    minimal = []
    for s in counts:
        if not passes(s):
            continue
        subsets = [frozenset(t) for k in range(1, len(s)) for t in combinations(s, k)]
        if all(ratio(t) < min_ratio for t in subsets):
            minimal.append(s)

    def item_key(item):
        return (pos[item[0]], str(item[1]))

    def absorb(s):
        while len(s) < max_order:
            o, n = counts[s]
            used = {a for a, _ in s}
            best = None
            for ext in counts:
                if len(ext) != len(s) + 1 or not s < ext or support(ext) < min_support:
                    continue
                oe, ne = counts[ext]
                if ratio(ext) < ratio(s):
                    continue
                rest = ratio_value(ratio_metric, o - oe, n - ne, O, N) if n - ne > 0 else 0.0
                if rest >= min_ratio:
                    continue
                (added,) = [i for i in ext if i[0] not in used]
                key = (-ratio(ext), -oe, item_key(added))
                if best is None or key < best[0]:
                    best = (key, ext)
            if best is None:
                return s
            s = best[1]
        return s

    if mode == "minimal":
        chosen = {s: frozenset() for s in minimal}
    else:
        frequent = [s for s in counts if len(s) <= max_order and support(s) >= min_support]
        chosen = one_per_row_set({absorb(s) for s in minimal}, counts, frequent, N, max_order, item_key)
        chosen = merge_identical_rows(df, chosen, item_key)
    rows = []
    for s, implied in chosen.items():
        o, n = counts[s]
        items = sorted(s, key=item_key)
        rows.append({
            "attributes": {a: v for a, v in items},
            "outlier_count": o, "count": n, "support": o / O, "ratio": ratio(s),
            "implies": {a: v for a, v in sorted(implied, key=item_key)},
            "_key": (-o, -ratio(s), tuple(item_key(i) for i in items)),
        })
    rows.sort(key=lambda r: r["_key"])
    for r in rows:
        del r["_key"]
    return rows


def one_per_row_set(chosen, counts, frequent, N, max_order, item_key):
    """DESIGN.md's "one explanation per set of rows", literally: {kept itemset: implied items}.

    X covers item x iff some T subset of X with fewer than max_order items has
    n(T + x) = n(T), n of the empty set being N. Frequent itemsets of equal (o, n) are
    linked when one is a subset of the other plus the items it covers; a class is what
    links connect; it reports its member with the fewest items (then attribute position,
    then value) and the other members' items as implies.
    """
    items = {i for s in counts for i in s}

    def n_of(t):
        return N if not t else counts[t][1] if t in counts else None

    def covered(x):
        subsets = [frozenset(t) for k in range(0, min(len(x), max_order - 1) + 1) for t in combinations(x, k)]
        return {i for i in items for t in subsets if i not in t and n_of(t | {i}) == n_of(t)}

    def linked(a, b):
        return counts[a] == counts[b] and (b <= a | covered(a) or a <= b | covered(b))

    out = {}
    seen = set()
    for f in chosen:
        if f in seen:
            continue
        group = {f}
        while True:
            more = {g for g in frequent if g not in group and any(linked(g, m) for m in group)}
            if not more:
                break
            group |= more
        seen |= group
        kept = min(group, key=lambda s: (len(s), tuple(sorted(item_key(i) for i in s))))
        out[kept] = frozenset().union(*group) - kept
    return out


def merge_identical_rows(df, chosen, item_key):
    """Batch is exact: explanations selecting the very same rows of ``df`` are one; the one
    with the fewest items (then attribute position, then value) stays, with every other
    item of the merged ones in implies (one value per attribute: the rows have only one)."""
    def rows(s):
        mask = pd.Series(True, index=df.index)
        for a, v in s:
            mask &= df[a] == v
        return frozenset(df.index[mask])

    classes = {}
    for s, implied in chosen.items():
        classes.setdefault(rows(s), []).append((s, implied))
    out = {}
    for members in classes.values():
        kept, implied = min(members, key=lambda m: (len(m[0]), tuple(sorted(item_key(i) for i in m[0]))))
        extra = set(implied).union(*(set(s) | set(i) for s, i in members)) - set(kept)
        out[kept] = frozenset(extra)
    return out
