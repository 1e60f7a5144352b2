"""Human-readable rendering of result documents for the terminal."""
from __future__ import annotations

from typing import Any

from explain import describe


def format_table(doc: dict[str, Any], ratio_metric: str) -> str:
    """The result document as an aligned table plus one plain sentence per explanation."""
    head = (f"{doc['total']:,} rows, {doc['outliers']:,} outliers "
            f"({doc['outliers'] / doc['total']:.2%})" if doc["total"] else "0 rows")
    if doc["dropped"]:
        head += f", {doc['dropped']:,} dropped (missing or non-numeric metric)"
    lines = [head]
    for metric, cut in doc["thresholds"].items():
        lines.append("threshold: " + ", ".join(f"{metric} {side} {value:.6g}" for side, value in cut.items()))
    if not doc["explanations"]:
        lines.append("no explanations at these thresholds")
        return "\n".join(lines)
    header = ("#", ratio_metric, "support", "outliers", "count", "explanation")
    rows = []
    for i, e in enumerate(doc["explanations"], 1):
        r = e[ratio_metric]
        rows.append((str(i), r if isinstance(r, str) else f"{r:.2f}", f"{e['support']:.1%}",
                     f"{e['outlier_count']:,}", f"{e['count']:,}",
                     " AND ".join(f"{k}={v}" for k, v in e["attributes"].items())))
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 5 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
    lines += ["", fmt(header), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows] + [""]
    lines += [f"{i}. {describe(e['attributes'], e[ratio_metric], e['support'])}"
              for i, e in enumerate(doc["explanations"], 1)]
    return "\n".join(lines)
