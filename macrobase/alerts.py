"""Alerts: push a notification when an explanation appears and when it resolves.

An :class:`Alerter` watches one pipeline's stored result documents. An explanation that
passes a rule's filters (``min_ratio``, ``max_p_value``, present for at least ``for``)
*fires* once; when the streaming lifecycle marks it ``resolved`` (or, without a lifecycle,
when it is gone) it *resolves* once. Identity is (pipeline, itemset), so a rule never
repeats itself while an explanation stays. Deliveries go through a bounded queue to one
background thread that posts them with retries and backoff: alerting never blocks the
pipeline, and every failure is counted (:meth:`Alerter.counters`, in the result
document and ``/metrics``).

Formats: ``json`` (one object per notification), ``slack`` (an incoming-webhook
``{"text": ...}``) and ``alertmanager`` (Alertmanager's v2 ``POST /api/v2/alerts`` with
labels, ``startsAt`` and, once resolved, ``endsAt``; firing alerts are re-posted every
``ALERTMANAGER_RESEND_S`` so Alertmanager does not time them out).
"""
from __future__ import annotations

import json
import logging
import queue
import re
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from macrobase.store import canonical_attributes, describe_attributes, explanation_ratio, iso_utc, parse_iso

log = logging.getLogger(__name__)

ALERTMANAGER_RESEND_S = 60.0
QUEUE_LIMIT = 1000


@dataclass(frozen=True)
class AlertRule:
    """Where and when to notify; built from one entry of the config's ``alerts:`` list."""

    url: str
    format: str = "json"                     # json | slack | alertmanager
    pipelines: tuple[str, ...] | None = None  # None: every pipeline
    min_ratio: float | None = None
    max_p_value: float | None = None
    for_s: float = 0.0                        # present this long before it fires
    timeout_s: float = 5.0
    retries: int = 4

    def applies_to(self, pipeline: str) -> bool:
        return self.pipelines is None or pipeline in self.pipelines

    def passes(self, explanation: Mapping[str, Any], now: datetime) -> bool:
        ratio = explanation_ratio(explanation)
        if self.min_ratio is not None and not (ratio is not None and ratio >= self.min_ratio):
            return False
        p = explanation.get("p_value")
        if self.max_p_value is not None and not (p is not None and p <= self.max_p_value):
            return False
        if self.for_s > 0:
            since = parse_iso(explanation.get("first_seen"))
            return since is not None and (now - since).total_seconds() >= self.for_s
        return True


@dataclass(frozen=True)
class Notification:
    """One thing to tell: an explanation started firing or resolved."""

    pipeline: str
    state: str                     # "firing" | "resolved"
    explanation: Mapping[str, Any]
    at: str                        # ISO-8601 UTC
    starts_at: str


@dataclass
class _Counters:
    sent: int = 0
    failed: int = 0
    last_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class Alerter:
    """Turns one pipeline's documents into notifications and delivers them.

    >>> alerter = Alerter("p", [AlertRule("http://127.0.0.1:9/hook", min_ratio=5)], deliver=False)
    >>> doc = {"emitted_at": "2026-01-01T00:00:00Z", "explanations": [
    ...     {"attributes": {"firmware": "0.4"}, "risk_ratio": 12.0, "status": "new"}]}
    >>> [(n.state, n.explanation["attributes"]) for _, n in alerter.observe(doc)]
    [('firing', {'firmware': '0.4'})]
    >>> alerter.observe(doc)  # still there: nothing new to say
    []
    >>> doc["explanations"][0]["status"] = "resolved"
    >>> [n.state for _, n in alerter.observe(doc)]
    ['resolved']
    """

    def __init__(self, pipeline: str, rules: Sequence[AlertRule], deliver: bool = True) -> None:
        self.pipeline = pipeline
        self.rules = [r for r in rules if r.applies_to(pipeline)]
        self._firing: dict[tuple[int, str], tuple[Mapping[str, Any], str, float]] = {}
        self._counters = _Counters()
        self._queue: queue.Queue = queue.Queue(QUEUE_LIMIT)
        self._thread: threading.Thread | None = None
        if deliver and self.rules:
            self._thread = threading.Thread(target=self._deliver_forever, name=f"alerts-{pipeline}", daemon=True)
            self._thread.start()

    def observe(self, document: Mapping[str, Any]) -> list[tuple[AlertRule, Notification]]:
        """Queue the notifications ``document`` calls for (also returned)."""
        now_text = iso_utc(document.get("emitted_at"))
        now = parse_iso(now_text) or datetime.now(timezone.utc)
        lifecycle = any("status" in e for e in document.get("explanations") or ())
        out: list[tuple[AlertRule, Notification]] = []
        present: set[str] = set()
        for e in document.get("explanations") or ():
            key = canonical_attributes(e.get("attributes") or {})
            resolved = e.get("status") == "resolved"
            if not resolved:
                present.add(key)
            for i, rule in enumerate(self.rules):
                firing = self._firing.get((i, key))
                if resolved and firing is not None:
                    out.append((rule, self._resolve(i, key, e, now_text)))
                elif not resolved and firing is None and rule.passes(e, now):
                    starts = e.get("first_seen") or now_text
                    self._firing[(i, key)] = (e, starts, time.monotonic())
                    out.append((rule, Notification(self.pipeline, "firing", e, now_text, starts)))
                elif not resolved and firing is not None:
                    self._firing[(i, key)] = (e, firing[1], firing[2])
        if not lifecycle:  # no lifecycle to say "resolved": gone is resolved
            for (i, key), (e, _, _) in list(self._firing.items()):
                if key not in present:
                    out.append((self.rules[i], self._resolve(i, key, e, now_text)))
        out += self._resends(now_text)
        for item in out:
            self._enqueue(item)
        return out

    def counters(self) -> dict[str, Any]:
        """Deliveries that succeeded and failed so far, and the last failure."""
        c = self._counters
        with c.lock:
            return {"sent": c.sent, "failed": c.failed, "last_error": c.last_error}

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued (up to ``timeout_s``), then stop the thread."""
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout_s)
            except queue.Full:
                return
            self._thread.join(timeout_s)

    # -- internals ---------------------------------------------------------------------
    def _resolve(self, i: int, key: str, e: Mapping[str, Any], at: str) -> Notification:
        _, starts, _ = self._firing.pop((i, key))
        return Notification(self.pipeline, "resolved", e, at, starts)

    def _resends(self, at: str) -> list[tuple[AlertRule, Notification]]:
        out = []
        now = time.monotonic()
        for (i, key), (e, starts, sent) in list(self._firing.items()):
            rule = self.rules[i]
            if rule.format == "alertmanager" and now - sent >= ALERTMANAGER_RESEND_S:
                self._firing[(i, key)] = (e, starts, now)
                out.append((rule, Notification(self.pipeline, "firing", e, at, starts)))
        return out

    def _enqueue(self, item: tuple[AlertRule, Notification]) -> None:
        if self._thread is None:
            return
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._failed("alert queue full: the receiver is too slow or away")

    def _deliver_forever(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            rule, notification = item
            self._deliver(rule, notification)

    def _deliver(self, rule: AlertRule, n: Notification) -> None:
        url, body = request_for(rule, n)
        data = json.dumps(body).encode()
        for attempt in range(rule.retries + 1):
            try:
                req = urllib.request.Request(url, data=data, method="POST",
                                             headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(req, timeout=rule.timeout_s) as response:
                    response.read()
                with self._counters.lock:
                    self._counters.sent += 1
                return
            except (urllib.error.URLError, OSError, ValueError) as exc:
                error = f"alert to {url}: {exc}"
                if attempt < rule.retries:
                    time.sleep(min(10.0, 0.5 * 2 ** attempt))
        self._failed(error)

    def _failed(self, error: str) -> None:
        log.warning("%s", error)
        with self._counters.lock:
            self._counters.failed += 1
            self._counters.last_error = error


def request_for(rule: AlertRule, n: Notification) -> tuple[str, Any]:
    """(url, JSON body) of one notification in the rule's format."""
    e = n.explanation
    attributes = e.get("attributes") or {}
    sentence = f"{n.pipeline}: {describe_attributes(attributes)}" + _numbers(e)
    if rule.format == "slack":
        mark = ":rotating_light:" if n.state == "firing" else ":white_check_mark: resolved:"
        return rule.url, {"text": f"{mark} {sentence} (since {n.starts_at})"}
    if rule.format == "alertmanager":
        labels = {"alertname": "MacroBaseExplanation", "pipeline": n.pipeline,
                  "explanation": describe_attributes(attributes)}
        labels.update({_label_name(k): str(v) for k, v in attributes.items()})
        alert: dict[str, Any] = {"labels": labels, "annotations": {"summary": sentence},
                                 "startsAt": n.starts_at}
        if n.state == "resolved":
            alert["endsAt"] = n.at
        url = rule.url.rstrip("/")
        return (url if url.endswith("/api/v2/alerts") else url + "/api/v2/alerts"), [alert]
    return rule.url, {"pipeline": n.pipeline, "state": n.state, "at": n.at, "since": n.starts_at,
                      "summary": sentence, "explanation": dict(e)}


def _numbers(e: Mapping[str, Any]) -> str:
    parts = []
    ratio = explanation_ratio(e)
    if ratio is not None:
        parts.append(f"{ratio:.3g}x")
    if e.get("support") is not None:
        parts.append(f"{100 * float(e['support']):.3g}% of outliers")
    if e.get("p_value") is not None:
        parts.append(f"p={float(e['p_value']):.2g}")
    return (": " + ", ".join(parts)) if parts else ""


def _label_name(name: str) -> str:
    # Prometheus label names: [a-zA-Z_][a-zA-Z0-9_]*; "pipeline" and friends stay ours.
    clean = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    clean = clean if re.match(r"[a-zA-Z_]", clean) else "_" + clean
    return clean if clean not in ("alertname", "pipeline", "explanation") else "attr_" + clean


def rules_from_config(alerts: Sequence[Any]) -> list[AlertRule]:
    """AlertRules of the config's ``alerts:`` entries (``macrobase.config.AlertConfig``)."""
    return [AlertRule(url=str(a.url), format=a.format, pipelines=tuple(a.pipelines) if a.pipelines else None,
                      min_ratio=a.min_ratio, max_p_value=a.max_p_value, for_s=a.for_, timeout_s=a.timeout)
            for a in alerts]


__all__ = ["AlertRule", "Alerter", "Notification", "request_for", "rules_from_config"]
