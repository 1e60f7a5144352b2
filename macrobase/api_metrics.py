"""Prometheus text exposition (format 0.0.4) of the pipelines for ``GET /metrics``."""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

from macrobase.store import describe_attributes, explanation_ratio, utc_datetime

__all__ = ["MAX_METRIC_EXPLANATIONS", "prometheus_text"]

#: Explanations per pipeline exported to /metrics (the first in document order): bounds the series count.
MAX_METRIC_EXPLANATIONS = 50


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _sample(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    value = float(value)
    if math.isnan(value):
        return None
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


_METRICS = (
    # name, type, help, summary key, scale
    ("macrobase_events_total", "counter", "Events classified since the pipeline started.", "events", 1.0),
    ("macrobase_outliers_total", "counter", "Events labelled outliers since the pipeline started.", "outliers", 1.0),
    ("macrobase_dead_letters_total", "counter", "Messages that could not be used (dead letters).", "dead_letters", 1.0),
    ("macrobase_events_per_second", "gauge", "Events classified per second, recent rate.", "events_per_second", 1.0),
    ("macrobase_consumer_lag", "gauge", "Kafka messages not yet consumed, over all partitions.", "consumer_lag", 1.0),
    ("macrobase_emit_latency_seconds", "gauge", "Time to compute and store the latest result document.",
     "emit_latency_ms", 1e-3),
    ("macrobase_restarts_total", "counter", "Times the pipeline was restarted after a crash.", "restarts", 1.0),
    ("macrobase_alerts_sent_total", "counter", "Alert notifications delivered.", "alerts_sent", 1.0),
    ("macrobase_alerts_failed_total", "counter", "Alert notifications that failed after their retries.",
     "alerts_failed", 1.0),
)


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    return utc_datetime(iso).timestamp()


_EXPLANATION_METRICS = (
    # name, help, value of one explanation
    ("macrobase_explanation_ratio", "Ratio of the explanation in the latest result (the pipeline's ratio metric).",
     explanation_ratio),
    ("macrobase_explanation_support", "Share of the outliers the explanation covers, latest result.",
     lambda item: item.get("support")),
    ("macrobase_explanation_outliers", "Outliers matching the explanation, latest result (decayed count).",
     lambda item: item.get("outlier_count")),
)


def prometheus_text(summaries: list[dict], explanations: Mapping[str, Iterable[Mapping[str, Any]]] | None = None) -> str:
    """Prometheus text exposition (format 0.0.4) of pipeline summaries and latest explanations.

    ``explanations``: ``{pipeline: the latest document's explanations}``; the first
    ``MAX_METRIC_EXPLANATIONS`` that are not resolved are exported per pipeline, labelled
    by their itemset (``describe_attributes``).

    >>> print(prometheus_text([{"name": "t", "status": "running", "events": 5}]).splitlines()[2])
    macrobase_events_total{pipeline="t"} 5
    >>> text = prometheus_text([], {"t": [{"attributes": {"a": "x", "b": 1}, "risk_ratio": "inf",
    ...                                     "support": 0.5, "outlier_count": 4}]})
    >>> [line for line in text.splitlines() if line.startswith("macrobase_explanation_ratio")]
    ['macrobase_explanation_ratio{pipeline="t",explanation="a=x AND b=1"} +Inf']
    """
    lines: list[str] = []
    for metric, kind, help_text, key, scale in _METRICS:
        samples = []
        for row in summaries:
            value = row.get(key) if not key.startswith("alerts_") else (row.get("alerts") or {}).get(key[7:])
            text = _sample(None if value is None else float(value) * scale)
            if text is not None:
                samples.append(f'{metric}{{pipeline="{_label(row["name"])}"}} {text}')
        if samples:
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} {kind}", *samples]
    for metric, help_text, value in (
            ("macrobase_partition_lag", "Kafka messages not yet consumed, per partition.",
             lambda part: part.get("lag")),
            ("macrobase_partition_last_read_timestamp_seconds",
             "When the partition last delivered events (Unix time); old with a lag means stalled.",
             lambda part: _epoch(part.get("last_read_at")))):
        samples = []
        for row in summaries:
            for key, part in sorted((row.get("partitions") or {}).items()):
                text = _sample(None if value(part) is None else float(value(part)))
                if text is not None:
                    samples.append(f'{metric}{{pipeline="{_label(row["name"])}",partition="{_label(key)}"}} {text}')
        if samples:
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", *samples]
    # A resolved explanation is listed once in its document for the record; as a gauge it
    # would look current, so only present ones are exported.
    current = {name: [item for item in items if item.get("status") != "resolved"][:MAX_METRIC_EXPLANATIONS]
               for name, items in (explanations or {}).items()}
    for metric, help_text, value in _EXPLANATION_METRICS:
        samples = []
        for name, items in current.items():
            for item in items:
                raw = value(item)
                text = _sample(None if raw is None else float(raw))
                if text is not None:
                    label = _label(describe_attributes(item.get("attributes") or {}))
                    samples.append(f'{metric}{{pipeline="{_label(name)}",explanation="{label}"}} {text}')
        if samples:
            lines += [f"# HELP {metric} {help_text}", f"# TYPE {metric} gauge", *samples]
    if summaries:
        lines += ["# HELP macrobase_pipeline_state 1 for the state the pipeline last reported.",
                  "# TYPE macrobase_pipeline_state gauge"]
        lines += [f'macrobase_pipeline_state{{pipeline="{_label(row["name"])}",state="{_label(row["status"])}"}} 1'
                  for row in summaries]
    return "\n".join(lines) + "\n"
