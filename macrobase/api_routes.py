"""The HTTP API's routes (a Flask blueprint over the result stores) and ``POST /explain``.

The list of routes and their contract is in :mod:`macrobase.api`; query parameters are
read by :mod:`macrobase.api_query`, tokens checked by :mod:`macrobase.api_auth`.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable

from flask import Blueprint, Response, request

from macrobase.api_auth import AuthPolicy
from macrobase.api_http import API_PREFIX, ApiError, json_response
from macrobase.api_metrics import prometheus_text
from macrobase.api_query import QueryArgs, explain_defaults, parse_since
from macrobase.api_stores import StoreSource
from macrobase.errors import suggest
from macrobase.store import ResultStore, explanation_ratio

__all__ = ["blueprint"]

MAX_EXPLANATIONS_LIMIT = 100_000
MAX_HISTORY_LIMIT = 1000
MAX_DEAD_LETTER_LIMIT = 1000
MAX_EVENTS_LIMIT = 1000


def blueprint(source: StoreSource, auth: AuthPolicy, max_body_bytes: int,
              openapi: Callable[[], dict]) -> Blueprint:
    """Every route of the API, reading ``source``; ``openapi()`` gives the served description."""
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
            raise ApiError(404, f"no pipeline {name!r}" + suggest(name, names)
                           + (f"; known: {', '.join(names)}" if names else "; no pipeline has reported yet"), "name")
        return store

    @bp.get(f"{API_PREFIX}/pipelines")
    def pipelines() -> Response:
        QueryArgs(())
        out = []
        for name in source.pipeline_names():
            store = source.store_for(name)
            status = store.status(name) if store is not None else None
            latest = store.latest(name) if store is not None else None
            out.append(_pipeline_summary(name, status, latest))
        return json_response({"pipelines": out})

    @bp.get(f"{API_PREFIX}/pipelines/<name>/explanations")
    def explanations(name: str) -> Response:
        args = QueryArgs(("min_support", "min_ratio", "max_order", "limit"))
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
        return json_response({**document, "explanations": kept})

    def since_and_limit(maximum: int) -> tuple[str | None, int]:
        args = QueryArgs(("since", "limit"))
        since = args.text("since")
        return (None if since is None else parse_since(since)), args.integer("limit", 100, 1, maximum)

    @bp.get(f"{API_PREFIX}/pipelines/<name>/history")
    def history(name: str) -> Response:
        since, limit = since_and_limit(MAX_HISTORY_LIMIT)
        store = known(name)
        return json_response({"pipeline": name, "snapshots": store.history(name, since=since, limit=limit)})

    @bp.get(f"{API_PREFIX}/pipelines/<name>/events")
    def events(name: str) -> Response:
        since, limit = since_and_limit(MAX_EVENTS_LIMIT)
        store = known(name)
        return json_response({"pipeline": name, "events": store.transitions(name, since=since, limit=limit)})

    @bp.get(f"{API_PREFIX}/pipelines/<name>/dead_letters")
    def dead_letters(name: str) -> Response:
        args = QueryArgs(("limit",))
        limit = args.integer("limit", 100, 1, MAX_DEAD_LETTER_LIMIT)
        store = known(name)
        return json_response({"pipeline": name, "dead_letters": store.dead_letters(name, limit=limit)})

    @bp.post(f"{API_PREFIX}/explain")
    def explain() -> Response:
        return json_response(_explain(max_body_bytes))

    @bp.get(f"{API_PREFIX}/openapi.json")
    def openapi_json() -> Response:
        QueryArgs(())
        return json_response(openapi())

    @bp.get("/healthz")
    def healthz() -> Response:
        try:
            for store in source.stores():
                store.pipelines()
        except sqlite3.Error as exc:
            return json_response({"status": "unavailable", "error": f"result store: {exc}"}, 503)
        return json_response({"status": "ok"})

    @bp.get("/metrics")
    def metrics() -> Response:
        QueryArgs(())
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
    args = QueryArgs(defaults)
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
