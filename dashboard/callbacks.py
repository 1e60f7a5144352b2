"""Live updates: a one-second tick that only notices *what changed*, and views that redraw only then.

The ``tick`` interval drives two cheap callbacks: the pipeline list, and a ``version``
(newest snapshot, status row and dead letter of the selected pipeline, plus whether the
snapshot went stale). Every view listens to ``version`` and keeps a fingerprint of what it
last sent in its own ``dcc.Store``; an output whose content did not change is returned as
``dash.no_update``, and the throughput chart grows by appending points (``dash.Patch``)
instead of resending the figure. So an idle pipeline costs one small request a second and
a live one sends only the new snapshot's numbers.

The ``*_view`` functions below are plain functions of a ``ResultStore`` (unit-tested
without a browser); :func:`register` wires them to the layout's ids.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Callable, Mapping, Sequence

import dash
from dash import Input, Output, Patch, State, ctx, no_update

from dashboard import figures as F
from macrobase.store import describe_attributes, iso_utc, parse_iso

__all__ = [
    "register", "pipeline_names", "pipelines_view", "version_view", "kpis_view", "history_view",
    "distribution_view", "table_view", "selection_view", "series_view", "dead_letters_view",
    "get_status", "HISTORY_POINTS",
]

#: Snapshots drawn in the throughput chart (at one emit a second: the last ten minutes).
HISTORY_POINTS = 600
#: Dead letters listed.
DEAD_LETTERS_SHOWN = 20

_SHOW, _HIDE = {}, {"display": "none"}


# --------------------------------------------------------------------------- store access


def get_status(store: Any, pipeline: str | None) -> dict | None:
    """``store.status(pipeline)``; None when the store predates the ``pipeline_status`` table."""
    method = getattr(store, "status", None)
    if pipeline is None or method is None:
        return None
    return method(pipeline)


def pipeline_names(store: Any) -> list[str]:
    """Pipelines with results, dead letters, checkpoints or a status row, sorted."""
    names = set(store.pipelines())
    statuses = getattr(store, "statuses", None)
    if statuses is not None:
        names.update(row["pipeline"] for row in statuses())
    return sorted(names)


def _changed(values: Mapping[str, Any], previous: Mapping[str, Any] | None) -> tuple[list[Any], dict[str, str]]:
    """Per-output ``no_update`` for values whose fingerprint equals the previous one."""
    previous = previous or {}
    prints = {key: F.fingerprint(value) for key, value in values.items()}
    outputs = [no_update if previous.get(key) == prints[key] else value for key, value in values.items()]
    return outputs, prints


def _emitted(doc: Mapping[str, Any]) -> str:
    try:
        return iso_utc(doc.get("emitted_at"))
    except (TypeError, ValueError):
        return ""


def _all_same(outputs: Sequence[Any]) -> bool:
    return all(o is no_update for o in outputs)


# --------------------------------------------------------------------------- views (plain functions)


def pipelines_view(store: Any, options: list | None, value: str | None) -> tuple:
    """(options, value, no-pipelines style, main style); ``no_update`` where nothing changed."""
    names = pipeline_names(store)
    new_options = [{"label": name, "value": name} for name in names]
    new_value = value if value in names else (names[0] if names else None)
    return (
        no_update if new_options == (options or []) else new_options,
        no_update if new_value == value else new_value,
        _HIDE if names else _SHOW,
        _SHOW if names else _HIDE,
    )


def version_view(store: Any, pipeline: str | None, previous: Mapping[str, Any] | None,
                 now: datetime | None = None) -> Any:
    """What the views depend on; ``no_update`` when it equals ``previous``."""
    if pipeline is None:
        version = {"pipeline": None}
    else:
        doc = store.latest(pipeline)
        status = get_status(store, pipeline)
        letters = store.dead_letters(pipeline, limit=1)
        emitted = parse_iso((doc or {}).get("emitted_at"))
        age = ((now or datetime.now(timezone.utc)) - emitted).total_seconds() if emitted else None
        version = {
            "pipeline": pipeline,
            "snapshot": _emitted(doc) if doc else None,
            "status": (status or {}).get("updated_at"),
            "state": (status or {}).get("state"),
            "dead": letters[0]["id"] if letters else None,
            "stale": age is not None and age > F.STALE_AFTER_S,
        }
    return no_update if previous == version else version


def kpis_view(store: Any, pipeline: str | None, previous: Mapping[str, Any] | None,
              now: datetime | None = None) -> list[Any]:
    """KPI texts, status badge (label, class, tooltip), freshness line, then the new fingerprints."""
    doc = store.latest(pipeline) if pipeline else None
    status = get_status(store, pipeline)
    k = F.kpis(doc, status)
    label, css, tip = F.status_badge(status, doc, now)
    values = {
        "eps": k["events_per_second"], "eps_note": k["events"],
        "rate": k["outlier_rate"], "rate_note": k["outliers"],
        "lag": k["consumer_lag"], "lag_note": k["lag_note"],
        "dead": k["dead_letters"], "dead_note": k["dead_note"],
        "badge": label, "badge_class": css, "badge_title": tip,
        "freshness": F.freshness(doc, status, now),
    }
    outputs, prints = _changed(values, previous)
    return [*outputs, no_update if _all_same(outputs) else prints]


def history_view(store: Any, pipeline: str | None, previous: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """(figure or Patch or no_update, fingerprint): append new snapshots, redraw only when needed.

    A full figure is sent when the pipeline changes, on the first snapshot, and when the
    chart would exceed ``HISTORY_POINTS`` (then it restarts from the newest half).
    """
    previous = previous or {}
    if pipeline is None:
        return F.empty_figure("Waiting for the first snapshot…", 250), {}
    last = previous.get("last")
    if previous.get("pipeline") == pipeline and last:
        # documents keep emitted_at as the pipeline wrote it; compare in the store's fixed-width form
        newer = [d for d in store.history(pipeline, since=last, limit=HISTORY_POINTS) if _emitted(d) > last]
        if not newer:
            return no_update, no_update
        count = previous.get("count", 0) + len(newer)
        if count <= HISTORY_POINTS:
            points = F.history_points(newer)
            patch = Patch()
            patch["data"][0]["x"].extend(points["x"])
            patch["data"][0]["y"].extend(points["events_per_second"])
            patch["data"][1]["x"].extend(points["x"])
            patch["data"][1]["y"].extend(points["outlier_rate"])
            return patch, {"pipeline": pipeline, "last": _emitted(newer[-1]), "count": count}
    history = store.history(pipeline, limit=HISTORY_POINTS // 2)
    if not history:
        if previous.get("pipeline") == pipeline and not last:
            return no_update, no_update
        return F.empty_figure("Waiting for the first snapshot…", 250), {"pipeline": pipeline}
    return F.history_figure(history), {"pipeline": pipeline, "last": _emitted(history[-1]), "count": len(history)}


def distribution_view(store: Any, pipeline: str | None, metric: str | None,
                      previous: Mapping[str, Any] | None) -> list[Any]:
    """[figure, metric options, metric value, fingerprints] with ``no_update`` for unchanged parts."""
    doc = store.latest(pipeline) if pipeline else None
    names = F.metric_names(doc)
    chosen = metric if metric in names else (names[0] if names else None)
    relevant = {"pipeline": pipeline, "metric": chosen,
                "distribution": ((doc or {}).get("distribution") or {}).get(chosen),
                "thresholds": ((doc or {}).get("thresholds") or {}).get(chosen)}
    prints = {"figure": F.fingerprint(relevant), "options": F.fingerprint(names), "value": F.fingerprint(chosen)}
    previous = previous or {}
    figure = no_update if previous.get("figure") == prints["figure"] else F.distribution_figure(doc, chosen)
    options = no_update if previous.get("options") == prints["options"] else [{"label": n, "value": n} for n in names]
    value = no_update if chosen == metric else chosen
    outputs = [figure, options, value]
    return [*outputs, no_update if _all_same(outputs) else prints]


def table_view(store: Any, pipeline: str | None, orders: Sequence[int] | None, min_support_pct: float | None,
               min_ratio: float | None, sort_by: Sequence[Mapping[str, str]] | None, selected: str | None,
               previous: Mapping[str, Any] | None) -> list[Any]:
    """[data, selected_rows, summary, empty message, empty style, table style, fingerprints].

    ``min_support_pct`` is in percent as typed in the filter; ``selected`` is the followed
    explanation's row id, kept selected wherever the row moves.
    """
    doc = store.latest(pipeline) if pipeline else None
    support = None if min_support_pct in (None, "") else float(min_support_pct) / 100.0
    ratio = None if min_ratio in (None, "") else float(min_ratio)
    rows = F.explanation_rows(doc, orders, support, ratio, sort_by)
    total = len((doc or {}).get("explanations") or ())
    if doc is None:
        message = "No snapshot yet: explanations appear after the pipeline's first emit."
    elif total == 0:
        message = (f"No explanations yet: nothing stands out among {F.format_count(doc.get('outliers'))} "
                   f"outliers of {F.format_count(doc.get('total'))} events.")
    else:
        message = "No explanation matches these filters."
    ids = [row["id"] for row in rows]
    values = {
        "data": rows,
        "selected_rows": [ids.index(selected)] if selected in ids else [],
        "summary": F.explanations_summary(doc, len(rows)),
        "message": message,
        "empty_style": _HIDE if rows else _SHOW,
        "table_style": _SHOW if rows else _HIDE,
    }
    outputs, prints = _changed(values, previous)
    return [*outputs, no_update if _all_same(outputs) else prints]


def selection_view(trigger: str | None, selected_row_ids: Sequence[str] | None,
                   active_cell: Mapping[str, Any] | None, current: str | None) -> Any:
    """The followed explanation's id from a radio-button selection or a clicked cell."""
    if trigger == "explanations-table.active_cell" and active_cell and active_cell.get("row_id"):
        new = active_cell["row_id"]
    elif trigger == "explanations-table.selected_row_ids" and selected_row_ids:
        new = selected_row_ids[0]
    else:
        return no_update
    return no_update if new == current else new


def series_view(store: Any, pipeline: str | None, selected: str | None,
                previous: Mapping[str, Any] | None) -> tuple[Any, Any]:
    """(figure, fingerprint) of the followed explanation's ratio and support over time."""
    if not pipeline or not selected:
        values = {"empty": True}
        figure_fn = lambda: F.series_figure([], None)  # noqa: E731
    else:
        attributes = json.loads(selected)
        points = store.explanation_series(pipeline, attributes)
        title = describe_attributes(attributes, " and ")
        values = {"pipeline": pipeline, "selected": selected, "points": [tuple(p) for p in points]}
        figure_fn = lambda: F.series_figure(points, title)  # noqa: E731
    fp = F.fingerprint(values)
    if (previous or {}).get("fp") == fp:
        return no_update, no_update
    return figure_fn(), {"fp": fp}


def dead_letters_view(store: Any, pipeline: str | None, previous: Mapping[str, Any] | None) -> list[Any]:
    """[rows, empty style, table style, fingerprints] of the newest dead letters."""
    letters = store.dead_letters(pipeline, limit=DEAD_LETTERS_SHOWN) if pipeline else []
    rows = F.dead_letter_rows(letters)
    values = {"data": rows, "empty_style": _HIDE if rows else _SHOW, "table_style": _SHOW if rows else _HIDE}
    outputs, prints = _changed(values, previous)
    return [*outputs, no_update if _all_same(outputs) else prints]


# --------------------------------------------------------------------------- wiring


def register(app: dash.Dash, get_store: Callable[[], Any]) -> None:
    """Attach the callbacks to ``app``; ``get_store()`` returns the (shared) ResultStore."""

    @app.callback(
        Output("pipeline-select", "options"), Output("pipeline-select", "value"),
        Output("no-pipelines", "style"), Output("main", "style"),
        Input("tick", "n_intervals"), State("pipeline-select", "options"), State("pipeline-select", "value"),
    )
    def _pipelines(_n, options, value):
        return pipelines_view(get_store(), options, value)

    @app.callback(Output("version", "data"), Input("tick", "n_intervals"), Input("pipeline-select", "value"),
                  State("version", "data"))
    def _version(_n, pipeline, previous):
        return version_view(get_store(), pipeline, previous)

    @app.callback(
        Output("kpi-eps", "children"), Output("kpi-eps-note", "children"),
        Output("kpi-outlier-rate", "children"), Output("kpi-outlier-rate-note", "children"),
        Output("kpi-lag", "children"), Output("kpi-lag-note", "children"),
        Output("kpi-dead", "children"), Output("kpi-dead-note", "children"),
        Output("status-badge", "children"), Output("status-badge", "className"), Output("status-badge", "title"),
        Output("freshness", "children"), Output("fp-kpis", "data"),
        Input("version", "data"), State("fp-kpis", "data"),
    )
    def _kpis(version, previous):
        return kpis_view(get_store(), (version or {}).get("pipeline"), previous)

    @app.callback(Output("history-graph", "figure"), Output("fp-history", "data"),
                  Input("version", "data"), State("fp-history", "data"))
    def _history(version, previous):
        return history_view(get_store(), (version or {}).get("pipeline"), previous)

    @app.callback(
        Output("distribution-graph", "figure"), Output("metric-select", "options"), Output("metric-select", "value"),
        Output("fp-distribution", "data"),
        Input("version", "data"), Input("metric-select", "value"), State("fp-distribution", "data"),
    )
    def _distribution(version, metric, previous):
        return distribution_view(get_store(), (version or {}).get("pipeline"), metric, previous)

    @app.callback(
        Output("explanations-table", "data"), Output("explanations-table", "selected_rows"),
        Output("explanations-summary", "children"), Output("explanations-empty", "children"),
        Output("explanations-empty", "style"), Output("explanations-table-wrap", "style"), Output("fp-table", "data"),
        Input("version", "data"), Input("filter-order", "value"), Input("filter-support", "value"),
        Input("filter-ratio", "value"), Input("explanations-table", "sort_by"), Input("selected", "data"),
        State("fp-table", "data"),
    )
    def _table(version, orders, support, ratio, sort_by, selected, previous):
        return table_view(get_store(), (version or {}).get("pipeline"), orders, support, ratio, sort_by,
                          selected, previous)

    @app.callback(Output("selected", "data"),
                  Input("explanations-table", "selected_row_ids"), Input("explanations-table", "active_cell"),
                  State("selected", "data"), prevent_initial_call=True)
    def _select(selected_row_ids, active_cell, current):
        trigger = ctx.triggered[0]["prop_id"] if ctx.triggered else None
        return selection_view(trigger, selected_row_ids, active_cell, current)

    @app.callback(Output("series-graph", "figure"), Output("fp-series", "data"),
                  Input("version", "data"), Input("selected", "data"), State("fp-series", "data"))
    def _series(version, selected, previous):
        return series_view(get_store(), (version or {}).get("pipeline"), selected, previous)

    @app.callback(Output("dead-table", "data"), Output("dead-empty", "style"), Output("dead-table-wrap", "style"),
                  Output("fp-dead", "data"), Input("version", "data"), State("fp-dead", "data"))
    def _dead(version, previous):
        return dead_letters_view(get_store(), (version or {}).get("pipeline"), previous)
