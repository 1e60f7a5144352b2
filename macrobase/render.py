"""Human-readable rendering of result documents for the terminal."""
from __future__ import annotations

from typing import Any

from explain.result import describe, describe_attributes


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
    header = ("#", ratio_metric, "95% CI", "p-value", "support", "outliers", "count", "explanation")
    rows = []
    for i, e in enumerate(doc["explanations"], 1):
        rows.append((str(i), _ratio(e[ratio_metric]), _interval(e.get("ratio_ci")), _p(e.get("p_value")),
                     f"{e['support']:.1%}", f"{e['outlier_count']:,}", f"{e['count']:,}",
                     describe_attributes(e["attributes"])))
    text_col = len(header) - 1
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    fmt = lambda r: "  ".join(c.ljust(w) if i == text_col else c.rjust(w)
                              for i, (c, w) in enumerate(zip(r, widths)))
    lines += ["", fmt(header), fmt(tuple("-" * w for w in widths))] + [fmt(r) for r in rows] + [""]
    lines += [f"{i}. {describe(e['attributes'], e[ratio_metric], e['support'], e.get('implies'))}"
              for i, e in enumerate(doc["explanations"], 1)]
    return "\n".join(lines)


def _ratio(r: float | str) -> str:
    return r if isinstance(r, str) else f"{r:.2f}"


def _interval(ci) -> str:
    # Documents stored before explanations carried statistics have none.
    return "-" if ci is None else f"[{_ratio(ci[0])}, {_ratio(ci[1])}]"


def _p(p) -> str:
    return "-" if p is None else f"{p:.2g}"
