"""`macrobase serve`: supervised pipeline processes plus one production web server.

The main process only supervises: each pipeline runs in its own process (restarted with
backoff if it crashes) and gunicorn runs in another (its arbiter wants a main thread and
reaps every child it sees, so it must not share a process with the supervisor).
"""
from __future__ import annotations

import os
import signal
import sys
import time

from macrobase.config import load_config
from macrobase.supervisor import supervise
from macrobase.webserver import WebServer


def _interrupt(*_):
    raise KeyboardInterrupt


def run_service(config_path: str | os.PathLike, banner: str | None = None) -> int:
    """Run until Ctrl-C or SIGTERM; pipelines get a clean stop (final results, offsets)."""
    config = load_config(config_path)
    signal.signal(signal.SIGTERM, _interrupt)
    supervisors = supervise(config)
    host, port = config.server.host, config.server.port
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
