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

The pieces, one module each: ``api_http`` (the JSON answers and ``ApiError``),
``api_auth`` (``AuthPolicy``), ``api_query`` (query parameters, ``explain_defaults``),
``api_stores`` (``StoreSource``), ``api_routes`` (the blueprint) and ``api_metrics``
(Prometheus text). This module assembles the app and is where their public names are
imported from.

>>> import tempfile, os
>>> from macrobase.store import SqliteSink
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

import logging
import os
import sqlite3
from typing import Any

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from macrobase.api_auth import AuthPolicy, is_loopback
from macrobase.api_http import API_PREFIX, ApiError, error_response
from macrobase.api_metrics import MAX_METRIC_EXPLANATIONS, prometheus_text
from macrobase.api_query import explain_defaults
from macrobase.api_routes import blueprint
from macrobase.api_stores import StoreSource

__all__ = [
    "API_PREFIX",
    "ApiError",
    "AuthPolicy",
    "MAX_METRIC_EXPLANATIONS",
    "StoreSource",
    "create_app",
    "explain_defaults",
    "install_api",
    "is_loopback",
    "prometheus_text",
]

LOG = logging.getLogger("macrobase.api")


def install_api(app: Flask, source: StoreSource, auth: AuthPolicy | None = None,
                max_body_bytes: int = 10 * 1024 * 1024) -> Flask:
    """Register the API blueprint and JSON error handlers on ``app`` (which may also serve Dash).

    Errors on API paths (``/api/``, ``/healthz``, ``/metrics``) are JSON; other paths keep
    Flask's own pages, so a dashboard on the same server is unaffected.
    """
    from macrobase.openapi import openapi_document

    auth = auth or AuthPolicy()
    document = openapi_document(auth_writes=auth.writes, auth_reads=auth.reads)
    app.register_blueprint(blueprint(source, auth, int(max_body_bytes), lambda: document))
    app.extensions["macrobase_store_source"] = source

    def api_path() -> bool:
        return request.path.startswith("/api/") or request.path in ("/healthz", "/metrics")

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> Response:
        return error_response(exc.status, exc.message, exc.parameter)

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
        return error_response(exc.code or 500, message, parameter, headers)

    @app.errorhandler(sqlite3.Error)
    def _store_error(exc: sqlite3.Error) -> Response:
        LOG.warning("result store error on %s: %s", request.path, exc)
        return error_response(503, "the result store is unavailable; try again", None, {"Retry-After": "1"})

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        # Last resort: log the trace for the operator, never send it to the client.
        current_app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if not api_path():
            return Response("internal error", status=500, mimetype="text/plain")
        return error_response(500, "internal error", None)

    app.config["MACROBASE_MAX_BODY"] = int(max_body_bytes)
    return app


def create_app(source: StoreSource | str | os.PathLike, auth: AuthPolicy | None = None,
               max_body_bytes: int = 10 * 1024 * 1024) -> Flask:
    """A Flask app serving only the API (``source``: a StoreSource or one store path)."""
    if not isinstance(source, StoreSource):
        source = StoreSource(source)
    app = Flask("macrobase")
    return install_api(app, source, auth, max_body_bytes)
