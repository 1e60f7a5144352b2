"""The OpenAPI 3 document of the HTTP API, as data (served at ``/api/v1/openapi.json``).

Kept next to, not generated from, :mod:`macrobase.api`; ``tests/test_api.py`` checks that
every route is documented and every documented path is a route, and
``tests/test_api_schemathesis.py`` checks the responses against these schemas.

>>> doc = openapi_document()
>>> sorted(doc["paths"])[:2]
['/api/v1/explain', '/api/v1/openapi.json']
"""

from __future__ import annotations

import copy
from typing import Any

from explain.params import CHOICES, DOMAINS
from macrobase.store import PIPELINE_STATES, RATIO_METRICS
from operators.base import TAILS
from operators.domains import PERCENTILE, SCORE_CUTOFF
from operators.percentile import DEFAULT_PERCENTILE
from operators.registry import CLASSIFIERS

__all__ = ["openapi_document", "API_VERSION"]

API_VERSION = "1.0.0"

_NUM_OR_INF = {"anyOf": [{"type": "number"}, {"type": "string", "enum": ["inf", "-inf"]}]}
_NULLABLE_NUM = {"type": "number", "nullable": True}
_NULLABLE_INT = {"type": "integer", "nullable": True}
_NULLABLE_STR = {"type": "string", "nullable": True}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "parameter"],
        "properties": {
            "error": {"type": "string", "description": "what went wrong, in one line"},
            "parameter": {**_NULLABLE_STR, "description": "the parameter, header or 'body' to fix"},
        },
    },
    "Explanation": {
        "type": "object",
        "description": "An attribute combination over-represented among outliers. The ratio's key is the "
                       "ratio metric's name (risk_ratio, global_ratio or prevalence_ratio); an infinite "
                       "ratio is the string \"inf\".",
        "required": ["attributes", "support", "outlier_count", "count"],
        "properties": {
            "attributes": {"type": "object", "additionalProperties": True},
            "support": {"type": "number", "minimum": 0, "maximum": 1},
            "outlier_count": {"type": "number", "minimum": 0},
            "count": {"type": "number", "minimum": 0},
            **{metric: _NUM_OR_INF for metric in RATIO_METRICS},
            "p_value": {"type": "number", "minimum": 0, "maximum": 1,
                        "description": "one-sided Fisher exact test of the itemset's 2x2 table"},
            "ratio_ci": {"type": "array", "items": _NUM_OR_INF, "minItems": 2, "maxItems": 2,
                         "description": "95% confidence interval [lo, hi] of the ratio"},
            "implies": {"type": "object", "additionalProperties": True,
                        "description": "attribute values every matching row also has (refined mode: "
                                       "other itemsets matching exactly these rows)"},
            "first_seen": {"type": "string", "format": "date-time",
                           "description": "streaming: emitted_at of the first snapshot it is in"},
            "last_seen": {"type": "string", "format": "date-time",
                          "description": "streaming: emitted_at of the latest snapshot it is in"},
            "status": {"type": "string", "enum": ["new", "ongoing", "resolved"],
                       "description": "streaming: new in this snapshot, ongoing, or resolved (absent for "
                                      "explainer.resolve_after snapshots; listed once with its last numbers)"},
        },
        "additionalProperties": True,
    },
    "ResultDocument": {
        "type": "object",
        "description": "DESIGN.md's result document; streaming pipelines add pipeline, emitted_at, "
                       "events_per_second and dead_letters.",
        "required": ["total", "outliers", "dropped", "thresholds", "explanations"],
        "properties": {
            "total": {"type": "number", "minimum": 0},
            "outliers": {"type": "number", "minimum": 0},
            "dropped": {"type": "integer", "minimum": 0},
            "thresholds": {
                "type": "object",
                "description": "learned cut-off per metric, in the metric's units",
                # null: a cut-off that could not be computed (e.g. overflow on extreme values)
                "additionalProperties": {"type": "object", "additionalProperties": {
                    "anyOf": [{"type": "number", "nullable": True}, _NUM_OR_INF["anyOf"][1]]}},
            },
            "explanations": {"type": "array", "items": {"$ref": "#/components/schemas/Explanation"}},
            "pipeline": {"type": "string"},
            "emitted_at": {"type": "string", "format": "date-time"},
            "events_per_second": _NULLABLE_NUM,
            "dead_letters": _NULLABLE_INT,
            "transitions": {"type": "array", "items": {"$ref": "#/components/schemas/Transition"},
                            "description": "streaming: explanations that became new or resolved in this snapshot"},
        },
        "additionalProperties": True,
    },
    "Transition": {
        "type": "object",
        "description": "An explanation's lifecycle change, at the emitted_at of the snapshot it happened in.",
        "required": ["attributes", "status", "at"],
        "properties": {
            "attributes": {"type": "object", "additionalProperties": True},
            "status": {"type": "string", "enum": ["new", "resolved"]},
            "at": {"type": "string", "format": "date-time"},
        },
    },
    "PipelineSummary": {
        "type": "object",
        "required": ["name", "status", "events", "outliers", "events_per_second", "consumer_lag",
                     "dead_letters", "updated_at", "last_emitted_at", "emit_latency_ms", "restarts", "last_error",
                     "partitions", "alerts"],
        "properties": {
            "name": {"type": "string"},
            "status": {"type": "string", "enum": [*PIPELINE_STATES, "unknown"],
                       "description": "the state the pipeline last reported; unknown if it never did"},
            "updated_at": {**_NULLABLE_STR, "format": "date-time"},
            "last_emitted_at": {**_NULLABLE_STR, "format": "date-time"},
            "events": _NULLABLE_NUM,
            "outliers": _NULLABLE_NUM,
            "events_per_second": _NULLABLE_NUM,
            "consumer_lag": _NULLABLE_INT,
            "dead_letters": _NULLABLE_INT,
            "emit_latency_ms": _NULLABLE_NUM,
            "restarts": {"type": "integer", "minimum": 0},
            "last_error": _NULLABLE_STR,
            "alerts": {
                "type": "object", "nullable": True,
                "description": "alert deliveries (null when no alert applies to the pipeline)",
                "required": ["sent", "failed", "last_error"],
                "properties": {"sent": {"type": "integer", "minimum": 0}, "failed": {"type": "integer", "minimum": 0},
                               "last_error": _NULLABLE_STR},
            },
            "partitions": {
                "type": "object",
                "description": "per source (Kafka topic/partition): lag, when it last delivered events, health",
                "additionalProperties": {
                    "type": "object",
                    "required": ["lag", "last_read_at", "healthy", "error"],
                    "properties": {"lag": _NULLABLE_INT, "last_read_at": {**_NULLABLE_STR, "format": "date-time"},
                                   "healthy": {"type": "boolean"}, "error": _NULLABLE_STR},
                },
            },
        },
    },
    "DeadLetter": {
        "type": "object",
        "required": ["id", "pipeline", "received_at", "reason", "detail", "raw", "partition", "offset"],
        "properties": {
            "id": {"type": "integer"},
            "pipeline": {"type": "string"},
            "received_at": {"type": "string", "format": "date-time"},
            "reason": {"type": "string", "description": "e.g. invalid_json, missing_metric, non_numeric_metric"},
            "detail": _NULLABLE_STR,
            "raw": {**_NULLABLE_STR, "description": "the message as received (cut at 64 KiB)"},
            "partition": _NULLABLE_INT,
            "offset": _NULLABLE_INT,
        },
    },
}


def _error_responses(*codes: int) -> dict[str, Any]:
    words = {400: "a bad parameter (named in 'parameter')", 401: "missing or wrong bearer token",
             403: "a token is required but the server has none configured", 404: "no such pipeline or no results yet",
             413: "the body is larger than server.max_body_bytes", 415: "unsupported Content-Type",
             422: "the rows cannot be explained (e.g. too few rows for the classifier)",
             503: "the result store is busy or unreadable; retry"}
    return {str(code): {"description": words[code], "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}} for code in codes}


def _ok(schema: dict, description: str) -> dict[str, Any]:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


def _query(name: str, schema: dict, description: str, required: bool = False) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": schema, "description": description}


_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
         "description": "the pipeline's name"}

def _explain_params() -> list[dict[str, Any]]:
    """POST /explain's query parameters: names, choices, defaults and bounds from the library."""
    from macrobase.api_query import explain_defaults

    defaults = explain_defaults()

    def choice(name: str, choices, description: str) -> dict[str, Any]:
        return _query(name, {"type": "string", "enum": list(choices), "default": defaults[name]}, description)

    def number(name: str, domain, description: str) -> dict[str, Any]:
        schema = domain.json_schema()
        if defaults[name] is not None:
            schema["default"] = defaults[name]
        return _query(name, schema, description)

    return [
        _query("metric", {"type": "string", "minLength": 1}, "metric column; several, comma-separated, for mcd", True),
        _query("attributes", {"type": "string", "minLength": 1}, "comma-separated attribute columns", True),
        choice("classifier", CLASSIFIERS, "outlier classifier"),
        number("percentile", PERCENTILE, f"outlier cut-off percentile (default {DEFAULT_PERCENTILE:g})"),
        number("score_cutoff", SCORE_CUTOFF, "outlier iff score >= this (mad, mcd, zscore)"),
        _query("predicate", {"type": "string"}, "for the predicate classifier: e.g. '>= 60'"),
        choice("tail", TAILS, "which tail is anomalous"),
        number("min_support", DOMAINS["min_support"], "minimum share of outliers an explanation covers"),
        number("min_ratio", DOMAINS["min_ratio"], "minimum ratio"),
        choice("ratio_metric", CHOICES["ratio_metric"], "ratio metric"),
        number("max_order", DOMAINS["max_order"], "most attributes in one explanation"),
        choice("mode", CHOICES["mode"], "refined (default) or MacroBase's minimal explanations"),
        number("max_p_value", DOMAINS["max_p_value"],
               "keep explanations whose Benjamini-Hochberg adjusted p-value is at most this (default: off)"),
    ]


_PATHS: dict[str, Any] = {
    "/api/v1/pipelines": {"get": {
        "operationId": "listPipelines",
        "summary": "Every pipeline: status, events, outliers, events/s, consumer lag, dead letters.",
        "responses": {**_ok({"type": "object", "required": ["pipelines"], "properties": {"pipelines": {
            "type": "array", "items": {"$ref": "#/components/schemas/PipelineSummary"}}}}, "the pipelines"),
            **_error_responses(400, 503)},
    }},
    "/api/v1/pipelines/{name}/explanations": {"get": {
        "operationId": "latestExplanations",
        "summary": "The pipeline's latest result document, explanations filtered (their order kept).",
        "parameters": [
            _NAME,
            _query("min_support", {"type": "number", "minimum": 0, "maximum": 1}, "keep support >= this"),
            _query("min_ratio", {"type": "number", "minimum": 0}, "keep ratio >= this"),
            _query("max_order", {"type": "integer", "minimum": 1, "maximum": 3}, "keep at most this many attributes"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 100000}, "keep the first N"),
        ],
        "responses": {**_ok({"$ref": "#/components/schemas/ResultDocument"}, "the latest document"),
                      **_error_responses(400, 404, 503)},
    }},
    "/api/v1/pipelines/{name}/history": {"get": {
        "operationId": "history",
        "summary": "The newest snapshots emitted at or after 'since', oldest first.",
        "parameters": [
            _NAME,
            _query("since", {"type": "string", "format": "date-time"}, "ISO-8601 time; naive times are UTC"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "most snapshots"),
        ],
        "responses": {**_ok({"type": "object", "required": ["pipeline", "snapshots"], "properties": {
            "pipeline": {"type": "string"},
            "snapshots": {"type": "array", "items": {"$ref": "#/components/schemas/ResultDocument"}}}},
            "the snapshots"), **_error_responses(400, 404, 503)},
    }},
    "/api/v1/pipelines/{name}/events": {"get": {
        "operationId": "events",
        "summary": "Lifecycle transitions (an explanation became new or resolved) at or after 'since', oldest first.",
        "parameters": [
            _NAME,
            _query("since", {"type": "string", "format": "date-time"}, "ISO-8601 time; naive times are UTC"),
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100},
                   "the newest this many transitions"),
        ],
        "responses": {**_ok({"type": "object", "required": ["pipeline", "events"], "properties": {
            "pipeline": {"type": "string"},
            "events": {"type": "array", "items": {"$ref": "#/components/schemas/Transition"}}}},
            "the transitions"), **_error_responses(400, 404, 503)},
    }},
    "/api/v1/pipelines/{name}/dead_letters": {"get": {
        "operationId": "deadLetters",
        "summary": "The newest dead letters with their reasons, newest first.",
        "parameters": [
            _NAME,
            _query("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "most dead letters"),
        ],
        "responses": {**_ok({"type": "object", "required": ["pipeline", "dead_letters"], "properties": {
            "pipeline": {"type": "string"},
            "dead_letters": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}}}},
            "the dead letters"), **_error_responses(400, 404, 503)},
    }},
    "/api/v1/explain": {"post": {
        "operationId": "explain",
        "summary": "A batch DIFF over the rows in the body; the document of `macrobase explain --format json`.",
        "parameters": _explain_params(),
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "array", "items": {
                "type": "object", "additionalProperties": True}}},
            "text/csv": {"schema": {"type": "string"}},
            "application/x-ndjson": {"schema": {"type": "string"}},
        }},
        "responses": {**_ok({"$ref": "#/components/schemas/ResultDocument"}, "the result document"),
                      **_error_responses(400, 413, 415, 422)},
    }},
    "/api/v1/openapi.json": {"get": {
        "operationId": "openapi",
        "summary": "This document.",
        "responses": {**_ok({"type": "object"}, "the OpenAPI document"), **_error_responses(400)},
    }},
    "/healthz": {"get": {
        "operationId": "healthz",
        "summary": "Liveness: 200 when the result store can be read.",
        "responses": {
            **_ok({"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}, "healthy"),
            "503": {"description": "the result store cannot be read", "content": {"application/json": {
                "schema": {"type": "object", "properties": {"status": {"type": "string"},
                                                            "error": {"type": "string"}}}}}},
        },
    }},
    "/metrics": {"get": {
        "operationId": "metrics",
        "summary": "Per-pipeline counters and gauges in the Prometheus text format.",
        "responses": {"200": {"description": "Prometheus text exposition format 0.0.4",
                              "content": {"text/plain": {"schema": {"type": "string"}}}},
                      **_error_responses(400, 503)},
    }},
}


def openapi_document(auth_writes: bool = False, auth_reads: bool = False) -> dict[str, Any]:
    """The document for a server whose writes / reads need a bearer token (a fresh copy)."""
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "MacroBase streaming explanations", "version": API_VERSION,
                 "description": "Which attribute combinations explain the anomalies in each pipeline's stream."},
        "paths": copy.deepcopy(_PATHS),
        "components": {"schemas": copy.deepcopy(_SCHEMAS),
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path == "/healthz" or not (auth_writes if method == "post" else auth_reads):
                continue
            operation["security"] = [{"bearer": []}]
            operation["responses"].update(_error_responses(401, 403))
    return doc
