"""The HTTP API's answers: strict JSON bodies and its one error shape.

Every error is ``{"error": "...", "parameter": "..."}`` with a 4xx (or 503/500) status;
output is strict JSON (``macrobase.store.strict_json``): an infinite number is the string
``"inf"``, NaN never appears.

>>> error_response(400, "limit: expected an integer", "limit").get_data(as_text=True)
'{"error":"limit: expected an integer","parameter":"limit"}'
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from flask import Response

from macrobase.store import strict_json

__all__ = ["API_PREFIX", "ApiError", "error_response", "json_response"]

API_PREFIX = "/api/v1"


class ApiError(Exception):
    """An error answered as ``{"error": message, "parameter": parameter}`` with ``status``."""

    def __init__(self, status: int, message: str, parameter: str | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.parameter = parameter


def json_response(value: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """``value`` as a strict JSON response."""
    body = json.dumps(strict_json(value), allow_nan=False, separators=(",", ":"))
    return Response(body, status=status, mimetype="application/json", headers=dict(headers or {}))


def error_response(status: int, message: str, parameter: str | None = None,
                   headers: Mapping[str, str] | None = None) -> Response:
    """The API's error document with ``status``."""
    return json_response({"error": message, "parameter": parameter}, status, headers)
