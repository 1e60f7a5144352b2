"""`macrobase serve`: supervised pipeline processes plus one production web server.

The main process only supervises: each pipeline runs in its own process (restarted with
backoff if it crashes) and gunicorn runs in another (its arbiter wants a main thread and
reaps every child it sees, so it must not share a process with the supervisor).

This is where ``serve`` is assembled, so it is the one module of ``macrobase`` that
imports ``dashboard`` (in :func:`mount_dashboard`, run in the web process only): the web
app factory (:func:`macrobase.webserver.create_web_app`) takes the mount as a callable
and knows nothing of the dashboard (DESIGN.md, "Layout").
"""
from __future__ import annotations

import os
import signal
import socket
import sys
import time

from macrobase.config import load_config
from macrobase.supervisor import supervise
from macrobase import webserver
from macrobase.webserver import WebServer


def mount_dashboard(server, store_factory):
    """``attach`` for :func:`~macrobase.webserver.create_web_app`: the dashboard at ``/``, on the API's server."""
    from dashboard import attach  # imported here: only the web process loads Dash

    return attach(server, store_factory)


def web_main(argv=None) -> int:
    """``python -m macrobase.webserver``: the web process of ``serve``, the API with the dashboard mounted."""
    return webserver.main(argv, attach=mount_dashboard)


def _interrupt(*_):
    raise KeyboardInterrupt


def check_port_free(host: str, port: int) -> None:
    """A ValueError (one line for the user, exit status 2) when ``host:port`` is taken.

    Checked before any process starts: otherwise the pipelines would run while gunicorn
    retries the bind for several seconds and the service then dies with an internal error.
    """
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind(address)
        except OSError as exc:
            raise ValueError(f"server.port: cannot listen on {host}:{port} ({exc.strerror}); "
                             "stop whatever uses it or choose another port") from None


def run_service(config_path: str | os.PathLike, banner: str | None = None) -> int:
    """Run until Ctrl-C or SIGTERM; pipelines get a clean stop (final results, offsets)."""
    config = load_config(config_path)
    host, port = config.server.host, config.server.port
    check_port_free(host, port)
    signal.signal(signal.SIGTERM, _interrupt)
    supervisors = supervise(config)
    web = WebServer(["--config", os.fspath(config_path)], port=port, host=host)
    try:
        web.start()
        print(banner or f"macrobase: serving {len(supervisors)} pipeline(s) on http://{host}:{port}/",
              file=sys.stderr, flush=True)
        while True:
            time.sleep(1.0)
            if web.process is None or web.process.poll() is not None:
                print("macrobase: web server exited; restarting it", file=sys.stderr, flush=True)
                web.stop()
                web.start()
    except KeyboardInterrupt:
        print("macrobase: stopping (final results are being stored)...", file=sys.stderr, flush=True)
    finally:
        for s in supervisors:  # first, so an interrupted pipeline is not restarted
            s.request_stop()
        web.stop()
        for s in supervisors:
            s.stop()
    return 0
