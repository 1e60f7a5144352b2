"""The HTTP API (DESIGN.md "HTTP API"): a Flask blueprint over the result store.

Routes (all JSON except ``/metrics``; described by ``/api/v1/openapi.json``):

* ``GET  /api/v1/pipelines`` — name, status, events, outliers, events/s, consumer lag,
  dead letters (status table, falling back to the latest snapshot);
* ``GET  /api/v1/pipelines/{name}/explanations`` — the latest result document, filtered by
  ``min_support``, ``min_ratio``, ``max_order``, ``limit`` (order kept);
* ``GET  /api/v1/pipelines/{name}/history`` — earlier documents, ``since`` (ISO-8601), ``limit``;
* ``GET  /api/v1/pipelines/{name}/events`` — lifecycle transitions (an explanation new or
  resolved), ``since`` (ISO-8601), ``limit``, oldest first;
* ``GET  /api/v1/pipelines/{name}/dead_letters`` — the newest dead letters with reasons;
* ``POST /api/v1/explain`` — a batch DIFF over rows in the body, the parameters and the
  document of ``macrobase explain --format json``;
* ``GET  /healthz``, ``GET /metrics`` (Prometheus text format), ``GET /api/v1/openapi.json``.

Every error is JSON ``{"error": "...", "parameter": "..."}`` with a 4xx status; unknown and
repeated query parameters are errors too (a misspelt ``min_suport`` must not be ignored).
A 500 only reports "internal error", never a stack trace. Output is strict JSON: an
infinite number is the string ``"inf"``, NaN never appears.

Authentication: when the server is bound to a non-loopback address, ``POST`` needs
``Authorization: Bearer <token>`` (``server.token`` or ``$MACROBASE_TOKEN``); with
``server.auth_reads`` every route but ``/healthz`` needs it, on any address.

>>> import tempfile, os
>>> from connectors.sinks import SqliteSink
>>> path = os.path.join(tempfile.mkdtemp(), "r.db")
>>> with SqliteSink(path) as sink:
...     _ = sink.write({"pipeline": "t", "emitted_at": "2026-01-01T00:00:00Z", "total": 3, "outliers": 1,
...                     "dropped": 0, "thresholds": {}, "explanations": [], "events_per_second": 1.0,
...                     "dead_letters": 0})
>>> client = create_app(StoreSource(path)).test_client()
>>> client.get("/api/v1/pipelines/t/explanations").get_json()["total"]
3
>>> client.get("/api/v1/pipelines/t/explanations?min_suport=0.1").get_json()["parameter"]
'min_suport'
"""

from __future__ import annotations

import difflib
import hmac
import ipaddress
import json
import logging
import math
import os
import sqlite3
import threading
import functools
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from connectors.sinks import describe_attributes, explanation_ratio, strict_json
from macrobase.store import ResultStore

__all__ = [
    "API_PREFIX",
    "ApiError",
    "AuthPolicy",
    "StoreSource",
    "create_app",
    "install_api",
    "is_loopback",
    "strict_json",
]

API_PREFIX = "/api/v1"
LOG = logging.getLogger("macrobase.api")


@functools.cache
def explain_defaults() -> dict[str, Any]:
    """Parameters of POST /api/v1/explain with their defaults, those of ``macrobase explain``
    (the library's, imported on first use: the read-only routes need no engine)."""
    from explain.params import DEFAULTS
    from macrobase.diff import BATCH_DEFAULTS

    return {"metric": None, "attributes": None, "classifier": BATCH_DEFAULTS.classifier, "percentile": None,
            "score_cutoff": None, "predicate": None, "tail": BATCH_DEFAULTS.tail, **asdict(DEFAULTS)}


MAX_EXPLANATIONS_LIMIT = 100_000
MAX_HISTORY_LIMIT = 1000
MAX_DEAD_LETTER_LIMIT = 1000
MAX_EVENTS_LIMIT = 1000
#: Explanations per pipeline exported to /metrics (the first in document order): bounds the series count.
MAX_METRIC_EXPLANATIONS = 50


class ApiError(Exception):
    """An error answered as ``{"error": message, "parameter": parameter}`` with ``status``."""

    def __init__(self, status: int, message: str, parameter: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter


# --------------------------------------------------------------------------- JSON


def _json(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    body = json.dumps(strict_json(value), allow_nan=False, separators=(",", ":"))
    return Response(body, status=status, mimetype="application/json", headers=dict(headers or {}))


def _error(status: int, message: str, parameter: str | None = None,
           headers: Mapping[str, str] | None = None) -> Response:
    return _json({"error": message, "parameter": parameter}, status, headers)


# --------------------------------------------------------------------------- stores


class StoreSource:
    """Which SQLite store holds which pipeline, with one ``ResultStore`` per process.

    Parameters
    ----------
    default_path : str or None
        The store of every pipeline not listed in ``paths`` (``None``: no default).
    paths : mapping, optional
        ``{pipeline name: store path}`` for pipelines with their own file.
    configured : iterable of str, optional
        Pipeline names from the configuration, listed even before they write anything.
    stale_after_s : float, default 30
        A running pipeline silent for longer is reported degraded (``ResultStore.status``).

    Stores are opened lazily and per process id, so an app built before gunicorn forks
    its workers never shares a SQLite connection across processes.
    """

    def __init__(self, default_path: str | os.PathLike | None = None,
                 paths: Mapping[str, str | os.PathLike] | None = None, configured: Iterable[str] = (),
                 stale_after_s: float = 30.0):
        self.stale_after_s = stale_after_s
        self.default_path = None if default_path is None else os.fspath(default_path)
        self.paths = {name: os.fspath(p) for name, p in (paths or {}).items()}
        self.configured = tuple(dict.fromkeys(configured))
        self._stores: dict[tuple[int, str], ResultStore] = {}
        self._lock = threading.Lock()

    def all_paths(self) -> list[str]:
        """Every distinct store path, the default first."""
        found = [self.default_path] if self.default_path is not None else []
        return list(dict.fromkeys([*found, *self.paths.values()]))

    def store(self, path: str | None = None) -> ResultStore | None:
        """The ``ResultStore`` of ``path`` for this process; None: the default store, else the first one."""
        if path is None:
            path = next(iter(self.all_paths()), None)
        if path is None:
            return None
        key = (os.getpid(), path)
        with self._lock:
            store = self._stores.get(key)
            if store is None:
                store = self._stores[key] = ResultStore(path, self.stale_after_s)
        return store

    def path_of(self, pipeline: str) -> str | None:
        """The store path of ``pipeline``: its own, else the default, else whichever store has it."""
        if pipeline in self.paths:
            return self.paths[pipeline]
        if self.default_path is not None:
            return self.default_path
        if pipeline in self.configured:
            return None  # configured with a sink other than SQLite: nothing to read
        for path in self.all_paths():
            store = self.store(path)
            if pipeline in store.pipelines() or store.status(pipeline) is not None:
                return path
        return None

    def store_for(self, pipeline: str) -> ResultStore | None:
        """The store a pipeline writes to (None when it has no SQLite store)."""
        path = self.path_of(pipeline)
        return None if path is None else self.store(path)

    def stores(self) -> list[ResultStore]:
        return [self.store(p) for p in self.all_paths()]

    def pipeline_names(self) -> list[str]:
        """Configured pipelines first (in configuration order), then any others the stores know, sorted."""
        extra: set[str] = set()
        for store in self.stores():
            extra.update(store.pipelines())
            extra.update(s["pipeline"] for s in store.statuses())
        return [*self.configured, *sorted(extra - set(self.configured))]

    def knows(self, pipeline: str) -> bool:
        """True for a configured pipeline and for one its store has results or a status of."""
        if pipeline in self.configured:
            return True
        store = self.store_for(pipeline)
        return store is not None and (pipeline in store.pipelines() or store.status(pipeline) is not None)

    def close(self) -> None:
        with self._lock:
            for store in self._stores.values():
                store.close()
            self._stores.clear()


# --------------------------------------------------------------------------- auth


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``; the empty host and 0.0.0.0 bind everywhere.

    >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
    (True, True, False)
    """
    if host is None:
        return True
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name may resolve anywhere: treat it as exposed


@dataclass(frozen=True)
class AuthPolicy:
    """Who must present ``Authorization: Bearer <token>``.

    ``writes``: POST requests; ``reads``: every other route but /healthz.
    """

    token: str | None = None
    writes: bool = False
    reads: bool = False

    @classmethod
    def for_server(cls, host: str | None, token: str | None = None, auth_reads: bool = False) -> "AuthPolicy":
        """Writes need the token off loopback; ``auth_reads`` protects everything, on any address."""
        return cls(token=token or None, writes=not is_loopback(host) or auth_reads, reads=bool(auth_reads))

    def check(self, write: bool) -> Response | None:
        """An error response if this request is not allowed, else None."""
        if not (self.writes if write else self.reads):
            return None
        if self.token is None:
            return _error(403, "this server requires a token but none is configured;"
                               " set server.token or $MACROBASE_TOKEN", "Authorization")
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return _error(401, "missing bearer token: send 'Authorization: Bearer <token>'", "Authorization",
                          {"WWW-Authenticate": 'Bearer realm="macrobase"'})
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return _error(401, "invalid bearer token", "Authorization",
                          {"WWW-Authenticate": 'Bearer realm="macrobase", error="invalid_token"'})
        return None


# --------------------------------------------------------------------------- parameters


class _Args:
    """Query parameters of one request: typed getters whose errors name the parameter."""

    def __init__(self, allowed: Iterable[str]):
        self.allowed = tuple(allowed)
        for name in request.args:
            if name not in self.allowed:
                close = difflib.get_close_matches(name, self.allowed, n=1)
                hint = f"; did you mean {close[0]}?" if close else (
                    f"; expected one of {', '.join(self.allowed)}" if self.allowed else "; this route takes none")
                raise ApiError(400, f"{name}: unknown parameter{hint}", name)
            if len(request.args.getlist(name)) > 1:
                raise ApiError(400, f"{name}: given more than once", name)

    @staticmethod
    def raw(name: str) -> str | None:
        return request.args.get(name)

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.raw(name)
        if value is None:
            return default
        if not value.strip():
            raise ApiError(400, f"{name}: expected a value, got an empty string", name)
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name, default)
        if value not in choices:
            close = difflib.get_close_matches(str(value), choices, n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ApiError(400, f"{name}: expected one of {', '.join(choices)}, got {value!r}{hint}", name)
        return value

    def number(self, name: str, default: float | None, *, low: float | None = None, high: float | None = None,
               low_open: bool = False, high_open: bool = False) -> float | None:
        value = self.text(name)
        if value is None:
            return default
        interval = _interval(low, high, low_open, high_open)
        try:
            number = float(value)
        except ValueError:
            raise ApiError(400, f"{name}: expected a number{interval}, got {value!r}", name) from None
        if not math.isfinite(number):
            raise ApiError(400, f"{name}: expected a finite number{interval}, got {value!r}", name)
        if (low is not None and (number <= low if low_open else number < low)) or (high is not None and (number >= high if high_open else number > high)):
            raise ApiError(400, f"{name}: expected a number{interval}, got {value!r}", name)
        return number

    def within(self, name: str, default: float | None, domain) -> float | None:
        """A number (or integer) inside an ``operators.domains.Interval``."""
        if domain.integer:
            return self.integer(name, default, int(domain.low), int(domain.high))
        return self.number(name, default, low=domain.low, high=domain.high, low_open=domain.low_open,
                           high_open=domain.high_open)

    def integer(self, name: str, default: int | None, low: int, high: int) -> int | None:
        value = self.text(name)
        if value is None:
            return default
        try:
            number = int(value.strip())
        except ValueError:
            raise ApiError(400, f"{name}: expected an integer from {low} to {high}, got {value!r}", name) from None
        if not low <= number <= high:
            raise ApiError(400, f"{name}: expected an integer from {low} to {high}, got {value!r}", name)
        return number

    def names(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None:
            raise ApiError(400, f"{name}: required parameter missing (comma-separated column names)", name)
        items = tuple(item.strip() for item in value.split(",") if item.strip())
        if not items:
            raise ApiError(400, f"{name}: expected comma-separated column names, got {value!r}", name)
        return items


def _interval(low: float | None, high: float | None, low_open: bool, high_open: bool = False) -> str:
    if low is not None and high is not None:
        return f" in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f" {'>' if low_open else '>='} {low:g}"
    return ""


def _since(text: str) -> datetime | None:
    """A ``since`` parameter as an aware UTC datetime; None when it precedes every possible emit."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=timezone.utc)
        moment = moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise ApiError(400, f"since: expected an ISO-8601 time such as 2026-01-01T00:00:00Z, got {text!r}",
                       "since") from None
    # Stored times are fixed-width text from year 1000 on; earlier years would not be
    # written with four digits (strftime), and every result is later anyway.
    return None if moment.year < 1000 else moment


# --------------------------------------------------------------------------- the blueprint


def _blueprint(source: StoreSource, auth: AuthPolicy, max_body_bytes: int,
               openapi: Callable[[], dict]) -> Blueprint:
    bp = Blueprint("macrobase_api", __name__)

    @bp.before_request
    def _authenticate() -> Response | None:
        if request.path == "/healthz":
            return None
        return auth.check(write=request.method not in ("GET", "HEAD", "OPTIONS"))

    def known(name: str) -> ResultStore:
        store = source.store_for(name)
        if not source.knows(name) or store is None:
            if name in source.configured:
                raise ApiError(404, f"pipeline {name!r} has no SQLite result store to read", "name")
            names = source.pipeline_names()
            hint = difflib.get_close_matches(name, names, n=1)
            raise ApiError(404, f"no pipeline {name!r}" + (f"; did you mean {hint[0]}?" if hint else "")
                           + (f"; known: {', '.join(names)}" if names else "; no pipeline has reported yet"), "name")
        return store

    @bp.get(f"{API_PREFIX}/pipelines")
    def pipelines() -> Response:
        _Args(())
        out = []
        for name in source.pipeline_names():
            store = source.store_for(name)
            status = store.status(name) if store is not None else None
            latest = store.latest(name) if store is not None else None
            out.append(_pipeline_summary(name, status, latest))
        return _json({"pipelines": out})

    @bp.get(f"{API_PREFIX}/pipelines/<name>/explanations")
    def explanations(name: str) -> Response:
        args = _Args(("min_support", "min_ratio", "max_order", "limit"))
        min_support = args.number("min_support", None, low=0.0, high=1.0)
        min_ratio = args.number("min_ratio", None, low=0.0)
        max_order = args.integer("max_order", None, 1, 3)
        limit = args.integer("limit", None, 1, MAX_EXPLANATIONS_LIMIT)
        document = known(name).latest(name)
        if document is None:
            raise ApiError(404, f"pipeline {name!r} has not emitted results yet", "name")
        kept = []
        for item in document.get("explanations") or ():
            if min_support is not None and not (item.get("support") or 0.0) >= min_support:
                continue
            ratio = explanation_ratio(item)
            if min_ratio is not None and not (ratio is not None and ratio >= min_ratio):
                continue
            if max_order is not None and len(item.get("attributes") or {}) > max_order:
                continue
            kept.append(item)
            if limit is not None and len(kept) >= limit:
                break
        return _json({**document, "explanations": kept})

    def since_and_limit(maximum: int) -> tuple[str | None, int]:
        args = _Args(("since", "limit"))
        since = args.text("since")
        return (None if since is None else _since(since)), args.integer("limit", 100, 1, maximum)

    @bp.get(f"{API_PREFIX}/pipelines/<name>/history")
    def history(name: str) -> Response:
        since, limit = since_and_limit(MAX_HISTORY_LIMIT)
        store = known(name)
        return _json({"pipeline": name, "snapshots": store.history(name, since=since, limit=limit)})

    @bp.get(f"{API_PREFIX}/pipelines/<name>/events")
    def events(name: str) -> Response:
        since, limit = since_and_limit(MAX_EVENTS_LIMIT)
        store = known(name)
        return _json({"pipeline": name, "events": store.transitions(name, since=since, limit=limit)})

    @bp.get(f"{API_PREFIX}/pipelines/<name>/dead_letters")
    def dead_letters(name: str) -> Response:
        args = _Args(("limit",))
        limit = args.integer("limit", 100, 1, MAX_DEAD_LETTER_LIMIT)
        store = known(name)
        return _json({"pipeline": name, "dead_letters": store.dead_letters(name, limit=limit)})

    @bp.post(f"{API_PREFIX}/explain")
    def explain() -> Response:
        return _json(_explain(max_body_bytes))

    @bp.get(f"{API_PREFIX}/openapi.json")
    def openapi_json() -> Response:
        _Args(())
        return _json(openapi())

    @bp.get("/healthz")
    def healthz() -> Response:
        try:
            for store in source.stores():
                store.pipelines()
        except sqlite3.Error as exc:
            return _json({"status": "unavailable", "error": f"result store: {exc}"}, 503)
        return _json({"status": "ok"})

    @bp.get("/metrics")
    def metrics() -> Response:
        _Args(())
        rows, explained = [], {}
        for name in source.pipeline_names():
            store = source.store_for(name)
            status = store.status(name) if store is not None else None
            latest = store.latest(name) if store is not None else None
            rows.append(_pipeline_summary(name, status, latest))
            explained[name] = (latest or {}).get("explanations") or []
        return Response(prometheus_text(rows, explained), content_type="text/plain; version=0.0.4; charset=utf-8")

    return bp


def _pipeline_summary(name: str, status: dict | None, latest: dict | None) -> dict:
    """One row of GET /api/v1/pipelines: the status row wins, the latest document fills gaps."""
    status = status or {}
    latest = latest or {}

    def pick(key: str, doc_key: str | None = None) -> Any:
        value = status.get(key)
        return latest.get(doc_key or key) if value is None else value

    return {
        "name": name,
        "status": status.get("state") or "unknown",
        "updated_at": status.get("updated_at"),
        "last_emitted_at": latest.get("emitted_at"),
        "events": pick("events", "total"),
        "outliers": pick("outliers"),
        "events_per_second": pick("events_per_second"),
        "consumer_lag": status.get("consumer_lag"),
        "dead_letters": pick("dead_letters"),
        "emit_latency_ms": status.get("emit_latency_ms"),
        "restarts": status.get("restarts") or 0,
        "last_error": status.get("last_error"),
        "partitions": latest.get("partitions") or {},
        "alerts": latest.get("alerts"),
    }


# --------------------------------------------------------------------------- POST /explain


def _explain(max_body_bytes: int) -> dict:
    from connectors.body import BodyError, body_format, read_body
    from macrobase.diff import DiffRequest, prepare, run_diff

    if request.content_length is not None and request.content_length > max_body_bytes:
        raise ApiError(413, f"the body is {request.content_length} bytes; the limit is {max_body_bytes}"
                            " (server.max_body_bytes)", "body")
    media_type = request.mimetype
    if body_format(media_type) is None:
        raise ApiError(415, f"unsupported content type {media_type or '(none)'!r}; send application/json"
                            " (an array of objects), text/csv or application/x-ndjson", "Content-Type")
    from explain.params import CHOICES, DOMAINS
    from operators.base import TAILS
    from operators.domains import PERCENTILE, SCORE_CUTOFF
    from operators.registry import CLASSIFIERS

    defaults = explain_defaults()
    args = _Args(defaults)
    metrics = args.names("metric")
    attributes = args.names("attributes")
    classifier = args.choice("classifier", tuple(CLASSIFIERS), defaults["classifier"])
    percentile = args.within("percentile", None, PERCENTILE)
    score_cutoff = args.within("score_cutoff", None, SCORE_CUTOFF)
    predicate = args.text("predicate")
    tail = args.choice("tail", tuple(TAILS), defaults["tail"])
    explainer = {name: args.choice(name, CHOICES[name], defaults[name]) if name in CHOICES
                 else args.within(name, defaults[name], DOMAINS[name])
                 for name in ("min_support", "min_ratio", "ratio_metric", "max_order", "mode", "max_p_value")}
    req = DiffRequest(metrics=metrics, attributes=attributes, classifier=classifier, percentile=percentile,
                      score_cutoff=score_cutoff, predicate=predicate, tail=tail, explainer=explainer)
    try:
        prepare(req)  # option conflicts fail before the body is read
    except ValueError as exc:
        raise ApiError(400, str(exc), _parameter_of(exc, "classifier")) from None

    # A chunked body has no Content-Length to check: read one byte past the limit (werkzeug
    # stops quietly at max_content_length, which would explain a truncated body).
    request.max_content_length = max_body_bytes + 1
    data = request.get_data(cache=False)
    if len(data) > max_body_bytes:
        raise ApiError(413, f"the body is larger than the limit of {max_body_bytes} bytes (server.max_body_bytes)",
                       "body")
    try:
        rows = read_body(data, media_type, metrics, attributes)
    except BodyError as exc:
        raise ApiError(400, str(exc), exc.parameter) from None
    try:
        return run_diff(rows.table, req, dropped=rows.dropped)
    except ValueError as exc:  # includes numpy's LinAlgError and the operators' errors
        parameter = _parameter_of(exc, None)
        if parameter is not None:
            raise ApiError(400, str(exc), parameter) from None
        raise ApiError(422, f"cannot explain these rows: {exc}", "body") from None


def _parameter_of(exc: Exception, default: str | None) -> str | None:
    """The parameter a ``macrobase.diff`` error message starts with ("min_support: ...")."""
    head = str(exc).split(":", 1)[0].strip()
    return head if head in explain_defaults() else default


# --------------------------------------------------------------------------- Prometheus


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
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


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


# --------------------------------------------------------------------------- the app


def install_api(app: Flask, source: StoreSource, auth: AuthPolicy | None = None,
                max_body_bytes: int = 10 * 1024 * 1024) -> Flask:
    """Register the API blueprint and JSON error handlers on ``app`` (which may also serve Dash).

    Errors on API paths (``/api/``, ``/healthz``, ``/metrics``) are JSON; other paths keep
    Flask's own pages, so a dashboard on the same server is unaffected.
    """
    from macrobase.openapi import openapi_document

    auth = auth or AuthPolicy()
    document = openapi_document(auth_writes=auth.writes, auth_reads=auth.reads)
    app.register_blueprint(_blueprint(source, auth, int(max_body_bytes), lambda: document))
    app.extensions["macrobase_store_source"] = source

    def api_path() -> bool:
        return request.path.startswith("/api/") or request.path in ("/healthz", "/metrics")

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return _error(exc.status, exc.message, exc.parameter)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not api_path():
            return exc
        headers = {k: v for k, v in exc.get_headers() if k.lower() not in ("content-type", "content-length")}
        parameter = "body" if exc.code == 413 else None
        message = exc.description or exc.name
        if exc.code == 404:
            message = f"no such route: {request.path}"
        elif exc.code == 405:
            message = f"method {request.method} not allowed on {request.path}"
        elif exc.code == 413:
            message = f"the body is larger than the limit of {app.config.get('MACROBASE_MAX_BODY', '?')} bytes"
        return _error(exc.code or 500, message, parameter, headers)

    @app.errorhandler(sqlite3.Error)
    def _store_error(exc: sqlite3.Error) -> Response:
        LOG.warning("result store error on %s: %s", request.path, exc)
        return _error(503, "the result store is unavailable; try again", None, {"Retry-After": "1"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        # Last resort: log the trace for the operator, never send it to the client.
        current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if not api_path():
            return Response("internal error", status=500, mimetype="text/plain")
        return _error(500, "internal error", None)

    app.config["MACROBASE_MAX_BODY"] = int(max_body_bytes)
    return app


def create_app(source: StoreSource | str | os.PathLike, auth: AuthPolicy | None = None,
               max_body_bytes: int = 10 * 1024 * 1024) -> Flask:
    """A Flask app serving only the API (``source``: a StoreSource or one store path)."""
    if not isinstance(source, StoreSource):
        source = StoreSource(source)
    app = Flask("macrobase")
    return install_api(app, source, auth, max_body_bytes)
