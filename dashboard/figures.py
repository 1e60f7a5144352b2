"""Pure view functions: result documents, statuses and series in; KPI text, table rows and figures out.

Nothing here touches Dash callbacks or the store, so every function is testable with plain
dicts (the documents of DESIGN.md "Explanation semantics").

>>> doc = {"total": 200, "outliers": 10, "events_per_second": 50.0, "dead_letters": 2,
...        "explanations": [{"attributes": {"model": "M101"}, "support": 0.5, "risk_ratio": "inf",
...                          "outlier_count": 5, "count": 5}]}
>>> explanation_rows(doc)[0]["explanation"]
'model=M101: infinitely more likely, 50% of outliers'
>>> kpis(doc, None)["outlier_rate"]
'5.00%'
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from macrobase.store import RATIO_METRICS, canonical_attributes, describe, parse_iso

__all__ = [
    "STATES", "kpis", "status_badge", "freshness", "ratio_metric_of", "explanation_rows", "format_span", "since_text",
    "explanations_summary", "history_figure", "history_points", "distribution_figure", "metric_names",
    "threshold_lines", "series_figure", "dead_letter_rows", "empty_figure", "format_count",
]

#: Pipeline states reported by ``ResultStore.status`` and the badge colour class of each.
STATES = ("starting", "running", "degraded", "stopped", "crashed", "restarting")
#: A pipeline without a status row (older writers) is judged by its last snapshot's age.
STALE_AFTER_S = 10.0

# Colours shared by the figures and assets/dashboard.css (kept in step by hand).
INK, MUTED, GRID = "#1f2933", "#616e7c", "#e4e7eb"
BLUE, ORANGE, RED, GREEN = "#3166d4", "#e8710a", "#d93025", "#188038"
FONT = "Inter, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


# --------------------------------------------------------------------------- small formatting helpers


def _number(value: Any) -> float | None:
    """A finite or infinite float from a document value ("inf" strings included); None if absent."""
    if value is None or isinstance(value, bool):
        return None
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(out) else out


def format_count(value: Any, digits: int = 3) -> str:
    """Readable magnitude: 987, 4,321, 12.3k, 4.56M; an em dash when unknown.

    >>> format_count(1234567), format_count(4321), format_count(None)
    ('1.23M', '4,321', '—')
    """
    x = _number(value)
    if x is None:
        return "—"
    if math.isinf(x):
        return "∞"
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= max(limit, 1e4):  # exact up to 9,999: "1,000 events" reads better than "1k"
            return f"{x / limit:.{digits}g}{suffix}"
    return f"{x:,.0f}" if float(x).is_integer() or abs(x) >= 100 else f"{x:.{digits}g}"


def _format_ratio(value: Any) -> str:
    x = _number(value)
    if x is None:
        return "—"
    return "∞" if math.isinf(x) else f"{x:.1f}×"


def _format_interval(ci: Any) -> str:
    """The ratio's 95% interval as "2.1–4.0×" ("—" for documents that predate it)."""
    if not ci or len(ci) != 2:
        return "—"
    lo, hi = (_number(x) for x in ci)
    if lo is None or hi is None:
        return "—"
    return f"{lo:.1f}–{'∞' if math.isinf(hi) else f'{hi:.1f}×'}"


def _format_p(p: float | None) -> str:
    return "—" if p is None else "< 1e-300" if p < 1e-300 else f"{p:.2g}"


def format_span(seconds: float) -> str:
    """A duration in the largest sensible unit: ``45 s``, ``12 min``, ``2 h 05 min``, ``3 d 4 h``.

    >>> format_span(720), format_span(7500)
    ('12 min', '2 h 05 min')
    """
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def since_text(item: Mapping[str, Any], emitted_at: str | None) -> str:
    """"since 14:02 (12 min)" from a streaming explanation's ``first_seen``; "—" without one.

    The span runs to the document's ``emitted_at``, or to ``last_seen`` once resolved (it
    is over then). A start on another day than the end shows its date too.

    >>> since_text({"first_seen": "2026-01-01T14:02:00Z", "status": "ongoing"}, "2026-01-01T14:14:30Z")
    'since 14:02 (12 min)'
    """
    first = parse_iso(item.get("first_seen"))
    end = parse_iso(item.get("last_seen") if item.get("status") == "resolved" else emitted_at) \
        or parse_iso(item.get("last_seen"))
    if first is None or end is None:
        return "—"
    clock = first.strftime("%H:%M" if first.date() == end.date() else "%b %d %H:%M")
    return f"since {clock} ({format_span((end - first).total_seconds())})"


def _clock(text: str | None) -> str:
    moment = parse_iso(text)
    return moment.strftime("%H:%M:%S UTC") if moment else "—"


# --------------------------------------------------------------------------- KPIs and status


def kpis(doc: Mapping[str, Any] | None, status: Mapping[str, Any] | None) -> dict[str, str]:
    """Text of the KPI cards; the status row (live counters) wins over the last document.

    Keys: events_per_second, events, outlier_rate, outliers, consumer_lag, lag_note,
    dead_letters, dead_note.
    """
    doc = doc or {}
    status = status or {}

    def pick(status_key: str, doc_key: str) -> float | None:
        value = _number(status.get(status_key))
        return value if value is not None else _number(doc.get(doc_key))

    rate = pick("events_per_second", "events_per_second")
    # The outlier rate is the document's: outliers / total over the explainer's (decayed) window,
    # the same counts its explanations' support is computed from.
    total, outliers = _number(doc.get("total")), _number(doc.get("outliers"))
    if total is None and status:
        total, outliers = _number(status.get("events")), _number(status.get("outliers"))
    lag = _number(status.get("consumer_lag"))
    dead = pick("dead_letters", "dead_letters")
    return {
        "events_per_second": "—" if rate is None else f"{format_count(rate)}/s",
        "events": f"{format_count(pick('events', 'total'))} events",
        "outlier_rate": "—" if not total or outliers is None else f"{outliers / total:.2%}",
        "outliers": f"{format_count(outliers)} outliers",
        "consumer_lag": format_count(lag),
        "lag_note": "messages behind the topic" if lag is not None else "not reported",
        "dead_letters": format_count(dead),
        "dead_note": "bad messages kept" if dead else "none so far",
    }


def status_badge(status: Mapping[str, Any] | None, doc: Mapping[str, Any] | None,
                 now: datetime | None = None) -> tuple[str, str, str]:
    """(label, css class, tooltip) of the status badge.

    Without a status row the badge says "live" while snapshots keep arriving and "stale"
    once the newest is older than ``STALE_AFTER_S``; with neither it says "waiting".
    """
    if status and status.get("state"):
        state = str(status["state"])
        tip = [f"state since {_clock(status.get('updated_at'))}"]
        if status.get("restarts"):
            tip.append(f"{status['restarts']} restart(s)")
        if _number(status.get("emit_latency_ms")) is not None:
            tip.append(f"emit latency {status['emit_latency_ms']:.0f} ms")
        if status.get("last_error"):
            tip.append(f"last error: {status['last_error']}")
        css = state if state in STATES else "unknown"
        return state, f"badge badge-{css}", " · ".join(tip)
    emitted = parse_iso((doc or {}).get("emitted_at"))
    if emitted is None:
        return "waiting", "badge badge-unknown", "no snapshot and no status yet"
    age = ((now or datetime.now(timezone.utc)) - emitted).total_seconds()
    if age > STALE_AFTER_S:
        return "stale", "badge badge-stopped", f"no snapshot for {age:.0f} s (pipeline reports no status)"
    return "live", "badge badge-running", "snapshots arriving (pipeline reports no status)"


def freshness(doc: Mapping[str, Any] | None, status: Mapping[str, Any] | None = None,
              now: datetime | None = None) -> str:
    """One line under the header: when the shown snapshot was emitted, flagged when old."""
    if not doc:
        return "no snapshot yet"
    emitted = parse_iso(doc.get("emitted_at"))
    if emitted is None:
        return "snapshot time unknown"
    age = ((now or datetime.now(timezone.utc)) - emitted).total_seconds()
    text = f"snapshot {emitted.strftime('%H:%M:%S')} UTC"
    if age > STALE_AFTER_S:
        text += f" · {age:.0f} s old"
    if status and status.get("last_error"):
        text += f" · last error: {status['last_error']}"
    return text


# --------------------------------------------------------------------------- explanations


def ratio_metric_of(explanations: Iterable[Mapping[str, Any]]) -> str:
    """The document's ratio metric: the first RATIO_METRICS key present (risk_ratio by default)."""
    for item in explanations:
        for name in RATIO_METRICS:
            if name in item:
                return name
    return "risk_ratio"


_SORT_KEYS = ("rank", "order", "ratio", "support", "outliers", "count", "p_value", "since")


def explanation_rows(doc: Mapping[str, Any] | None, orders: Sequence[int] | None = None,
                     min_support: float | None = None, min_ratio: float | None = None,
                     sort_by: Sequence[Mapping[str, str]] | None = None) -> list[dict[str, Any]]:
    """Table rows of the document's explanations, filtered and sorted.

    ``orders``: keep itemsets of these sizes (None: all); ``min_support`` is a fraction
    (0.05 = 5%); ``min_ratio`` keeps ratios >= it (an infinite ratio passes any bound).
    ``sort_by`` is DataTable's ``[{"column_id", "direction"}]``; sorting uses the raw
    numbers, so "∞" sorts above every finite ratio. Without it the document's order is kept
    (outlier count, then ratio). Each row's ``id`` is the canonical attributes JSON, the key
    ``ResultStore.explanation_series`` looks explanations up by. Streaming rows carry
    ``since`` ("since 14:02 (12 min)") and ``status`` (new, ongoing, resolved; "" in batch).
    """
    items = list((doc or {}).get("explanations") or ())
    emitted_at = (doc or {}).get("emitted_at")
    metric = ratio_metric_of(items)
    rows = []
    for rank, item in enumerate(items, 1):
        attributes = dict(item.get("attributes") or {})
        ratio = _number(item.get(metric))
        support = _number(item.get("support")) or 0.0
        p_value = _number(item.get("p_value"))
        if orders is not None and len(attributes) not in {int(o) for o in orders}:
            continue
        if min_support is not None and support < min_support:
            continue
        if min_ratio is not None and (ratio is None or ratio < min_ratio):
            continue
        rows.append({
            "id": canonical_attributes(attributes),
            "rank": rank,
            "explanation": describe(attributes, ratio if ratio is not None else 0.0, support,
                                    item.get("implies")),
            "order": len(attributes),
            "ratio": _format_ratio(ratio),
            "ratio_ci": _format_interval(item.get("ratio_ci")),
            "p_value": _format_p(p_value),
            "support": f"{support:.1%}",
            "outliers": format_count(item.get("outlier_count")),
            "count": format_count(item.get("count")),
            "since": since_text(item, emitted_at),
            "status": item.get("status") or "",
            "_sort": {"rank": rank, "order": len(attributes), "ratio": ratio if ratio is not None else -1.0,
                      "support": support, "outliers": _number(item.get("outlier_count")) or 0.0,
                      "count": _number(item.get("count")) or 0.0,
                      "p_value": p_value if p_value is not None else 2.0,   # none (older documents): last
                      "since": _first_seen_epoch(item)},
        })
    for spec in reversed(list(sort_by or ())):  # stable sorts, last key first
        column = spec.get("column_id")
        reverse = spec.get("direction") == "desc"
        if column in _SORT_KEYS:
            rows.sort(key=lambda r: r["_sort"][column], reverse=reverse)
        elif column == "explanation":
            rows.sort(key=lambda r: r["explanation"], reverse=reverse)
    for row in rows:
        del row["_sort"]
    return rows


def _first_seen_epoch(item: Mapping[str, Any]) -> float:
    moment = parse_iso(item.get("first_seen"))
    return moment.timestamp() if moment else math.inf   # none (batch, older documents): newest


def explanations_summary(doc: Mapping[str, Any] | None, shown: int) -> str:
    """The line above the table: how many explanations, of how many outliers and events."""
    if not doc:
        return ""
    items = doc.get("explanations") or ()
    metric = ratio_metric_of(items).replace("_", " ")
    text = (f"{len(items)} explanation{'s' if len(items) != 1 else ''} of "
            f"{format_count(doc.get('outliers'))} outliers among {format_count(doc.get('total'))} events"
            f" · ratio: {metric}")
    if shown != len(items):
        text += f" · {shown} shown by the filters"
    return text


# --------------------------------------------------------------------------- figures


def _base_layout(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(
        template="plotly_white", height=height, margin=dict(l=56, r=20, t=28, b=40),
        font=dict(family=FONT, size=12, color=INK), paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="#ffffff",
        hovermode="x unified", showlegend=False, uirevision="keep",
    )
    fig.update_xaxes(gridcolor=GRID, zeroline=False)
    fig.update_yaxes(gridcolor=GRID, zeroline=False, rangemode="tozero")
    return fig


def empty_figure(message: str, height: int = 250) -> go.Figure:
    """A blank panel with a friendly sentence instead of axes."""
    fig = go.Figure()
    fig.update_layout(
        template="plotly_white", height=height, margin=dict(l=10, r=10, t=10, b=10),
        paper_bgcolor="rgba(0,0,0,0)", plot_bgcolor="rgba(0,0,0,0)", font=dict(family=FONT, color=MUTED),
        xaxis=dict(visible=False), yaxis=dict(visible=False),
        annotations=[dict(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                          font=dict(size=14, color=MUTED))],
    )
    return fig


def history_points(history: Sequence[Mapping[str, Any]]) -> dict[str, list]:
    """Columns of the throughput / outlier-rate chart: x (emitted_at), events/s, outlier rate (%)."""
    x, eps, rate = [], [], []
    for doc in history:
        emitted = parse_iso(doc.get("emitted_at"))
        if emitted is None:
            continue
        total, outliers = _number(doc.get("total")), _number(doc.get("outliers"))
        x.append(emitted.strftime("%Y-%m-%d %H:%M:%S.%f"))
        eps.append(_number(doc.get("events_per_second")))
        rate.append(100.0 * outliers / total if total and outliers is not None else None)
    return {"x": x, "events_per_second": eps, "outlier_rate": rate}


def history_figure(history: Sequence[Mapping[str, Any]], height: int = 250) -> go.Figure:
    """Two stacked panels over the snapshots: events per second, and outlier rate in percent.

    Trace 0 is throughput and trace 1 the outlier rate; the live callback appends to both.
    """
    points = history_points(history)
    if not points["x"]:
        return empty_figure("Waiting for the first snapshot…", height)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.12,
                        subplot_titles=("throughput (events/s)", "outlier rate (%)"))
    fig.add_trace(go.Scatter(x=points["x"], y=points["events_per_second"], mode="lines", name="events/s",
                             line=dict(color=BLUE, width=2), fill="tozeroy", fillcolor="rgba(49,102,212,0.08)",
                             hovertemplate="%{y:,.0f} events/s<extra></extra>"), row=1, col=1)
    fig.add_trace(go.Scatter(x=points["x"], y=points["outlier_rate"], mode="lines", name="outlier rate",
                             line=dict(color=ORANGE, width=2), hovertemplate="%{y:.2f}% outliers<extra></extra>"),
                  row=2, col=1)
    _base_layout(fig, height)
    fig.update_layout(margin=dict(l=56, r=20, t=24, b=30))
    fig.update_annotations(font=dict(size=12, color=MUTED), x=0, xanchor="left")
    return fig


def metric_names(doc: Mapping[str, Any] | None) -> list[str]:
    """Metrics the document describes: those with a distribution first, then thresholds only."""
    doc = doc or {}
    names = list((doc.get("distribution") or {}).keys())
    names += [m for m in (doc.get("thresholds") or {}) if m not in names]
    return names


def threshold_lines(threshold: Any) -> list[tuple[str, float]]:
    """``(label, value)`` of each cut-off: ``{"high": x}``, ``{">=": x}`` or a bare number.

    >>> threshold_lines({"high": 812.34})
    [('high ≥ 812.3', 812.34)]
    """
    if isinstance(threshold, Mapping):
        sides = threshold.items()
    else:
        sides = [("cut-off", threshold)]
    out = []
    for side, value in sides:
        x = _number(value)
        if x is None or math.isinf(x):
            continue
        label = {"high": "high ≥", "low": "low ≤"}.get(side, f"{side}")
        out.append((f"{label} {x:.4g}", x))
    return out


def distribution_figure(doc: Mapping[str, Any] | None, metric: str | None, height: int = 250) -> go.Figure:
    """Histogram of the metric's recent values with the learned threshold(s) as vertical lines.

    The outlier side of a high (low) threshold is shaded. Without a ``distribution`` in
    the document only the threshold is stated.
    """
    doc = doc or {}
    if metric is None:
        return empty_figure("No metric distribution reported yet", height)
    hist = (doc.get("distribution") or {}).get(metric) or {}
    edges = [_number(e) for e in hist.get("edges") or ()]
    counts = [_number(c) or 0.0 for c in hist.get("counts") or ()]
    lines = threshold_lines((doc.get("thresholds") or {}).get(metric))
    if len(edges) != len(counts) + 1 or not counts or any(e is None for e in edges):
        text = ", ".join(label for label, _ in lines)
        return empty_figure(f"{metric}: threshold {text} (no distribution reported)" if text
                            else f"{metric}: no distribution reported", height)
    centres = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
    widths = [b - a for a, b in zip(edges[:-1], edges[1:])]
    fig = go.Figure(go.Bar(
        x=centres, y=counts, width=widths, marker=dict(color=BLUE, line=dict(width=0)), opacity=0.85,
        customdata=list(zip(edges[:-1], edges[1:])),
        hovertemplate="%{customdata[0]:.4g} – %{customdata[1]:.4g}: %{y:,.0f}<extra></extra>",
    ))
    _base_layout(fig, height)
    fig.update_layout(bargap=0.02, hovermode="closest", margin=dict(l=56, r=20, t=36, b=44))
    fig.update_xaxes(title_text=metric, title_font=dict(size=12, color=MUTED))
    fig.update_yaxes(title_text="events", title_font=dict(size=12, color=MUTED))
    lo, hi = min(edges[0], *(v for _, v in lines)), max(edges[-1], *(v for _, v in lines))
    for label, value in lines:
        if label.startswith("high"):
            fig.add_vrect(x0=value, x1=hi, fillcolor=RED, opacity=0.07, line_width=0, layer="below")
        elif label.startswith("low"):
            fig.add_vrect(x0=lo, x1=value, fillcolor=RED, opacity=0.07, line_width=0, layer="below")
        fig.add_vline(x=value, line=dict(color=RED, width=2, dash="dash"), annotation_text=f"threshold {label}",
                      annotation_position="top right" if not label.startswith("low") else "top left",
                      annotation_font=dict(color=RED, size=12))
    return fig


def series_figure(points: Sequence[Any], title: str | None = None, height: int = 250) -> go.Figure:
    """Ratio (left axis) and support in % (right axis) of one explanation over its emits.

    ``points`` are ``SeriesPoint``s (or ``(emitted_at, ratio, support)`` tuples). An infinite
    ratio cannot be drawn at its value: it is marked with a triangle at the top of the
    finite range and its hover says "∞".
    """
    if title is None:
        return empty_figure("Select an explanation in the table to follow its ratio and support", height)
    if not points:
        return empty_figure(f"{title}: not reported in the stored snapshots", height)
    x = [parse_iso(p[0]).strftime("%Y-%m-%d %H:%M:%S.%f") for p in points]
    ratios = [_number(p[1]) for p in points]
    support = [100.0 * (_number(p[2]) or 0.0) for p in points]
    finite = [r for r in ratios if r is not None and not math.isinf(r)]
    top = max(finite) * 1.1 if finite else 1.0
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=[r if r is not None and not math.isinf(r) else None for r in ratios],
                             mode="lines+markers", name="ratio", line=dict(color=RED, width=2), marker=dict(size=4),
                             hovertemplate="ratio %{y:.2f}×<extra></extra>"), secondary_y=False)
    inf_x = [xi for xi, r in zip(x, ratios) if r is not None and math.isinf(r)]
    if inf_x:
        fig.add_trace(go.Scatter(x=inf_x, y=[top] * len(inf_x), mode="markers", name="ratio ∞",
                                 marker=dict(color=RED, symbol="triangle-up", size=9),
                                 hovertemplate="ratio ∞<extra></extra>"), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=support, mode="lines", name="support", line=dict(color=GREEN, width=2, dash="dot"),
                             hovertemplate="support %{y:.1f}%<extra></extra>"), secondary_y=True)
    _base_layout(fig, height)
    fig.update_layout(showlegend=True, legend=dict(orientation="h", y=1.02, yanchor="bottom", x=0, xanchor="left"),
                      margin=dict(l=56, r=56, t=36, b=36), uirevision=title)
    fig.update_yaxes(title_text="ratio (×)", title_font=dict(color=RED, size=12), secondary_y=False)
    fig.update_yaxes(title_text="support (% of outliers)", title_font=dict(color=GREEN, size=12),
                     secondary_y=True, showgrid=False, rangemode="tozero", ticksuffix="%",
                     tickmode="auto", nticks=6)
    return fig


# --------------------------------------------------------------------------- dead letters


def dead_letter_rows(letters: Sequence[Mapping[str, Any]], raw_chars: int = 120) -> list[dict[str, Any]]:
    """Table rows of dead letters (newest first as the store returns them), raw text shortened."""
    rows = []
    for letter in letters:
        raw = letter.get("raw")
        raw = "" if raw is None else str(raw)
        if len(raw) > raw_chars:
            raw = raw[: raw_chars - 1] + "…"
        where = ""
        if letter.get("partition") is not None or letter.get("offset") is not None:
            part, off = letter.get("partition"), letter.get("offset")
            where = f"p{'?' if part is None else part}@{'?' if off is None else off}"
        rows.append({
            "id": letter.get("id"),
            "received_at": _clock(letter.get("received_at")),
            "reason": letter.get("reason") or "",
            "detail": letter.get("detail") or "",
            "where": where,
            "raw": raw,
        })
    return rows


def fingerprint(*parts: Any) -> str:
    """A compact, order-stable digest of JSON-able values: equal inputs give equal text."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()
