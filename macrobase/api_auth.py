"""Who may call the HTTP API: bearer tokens, required by ``AuthPolicy`` off loopback.

When the server is bound to a non-loopback address, ``POST`` needs
``Authorization: Bearer <token>`` (``server.token`` or ``$MACROBASE_TOKEN``); with
``server.auth_reads`` every route but ``/healthz`` needs it, on any address.

>>> AuthPolicy.for_server("0.0.0.0", "s3cret")
AuthPolicy(token='s3cret', writes=True, reads=False)
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass

from flask import Response, request

from macrobase.api_http import error_response

__all__ = ["AuthPolicy", "is_loopback"]


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
            return error_response(403, "this server requires a token but none is configured;"
                                       " set server.token or $MACROBASE_TOKEN", "Authorization")
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            return error_response(401, "missing bearer token: send 'Authorization: Bearer <token>'",
                                  "Authorization", {"WWW-Authenticate": 'Bearer realm="macrobase"'})
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            return error_response(401, "invalid bearer token", "Authorization",
                                  {"WWW-Authenticate": 'Bearer realm="macrobase", error="invalid_token"'})
        return None
