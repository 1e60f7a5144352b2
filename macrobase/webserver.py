"""The production web server: one Flask app (the API, plus what the caller mounts) under gunicorn.

``create_web_app`` builds the app from a configuration (its SQLite sinks say where each
pipeline's results are) or from a store path; ``serve`` runs any WSGI app with gunicorn's
threaded workers. This module knows nothing of the dashboard (DESIGN.md: the dashboard
imports ``macrobase``, not the reverse): a caller passes ``attach(server, store_factory)``
to mount more on the same Flask server. ``python -m macrobase.webserver`` is the web
process of ``macrobase serve``, assembled by :func:`macrobase.service.web_main`, which
mounts the dashboard (``--no-dashboard``: the API alone).

Run it on its own (results written by ``macrobase run``)::

    python -m macrobase.webserver --config pipelines.yaml
    python -m macrobase.webserver --store macrobase.db --port 8050

>>> app = create_web_app(store_path="/nonexistent/macrobase.db")
>>> app.test_client().get("/healthz").status_code
200
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Any, Callable, Sequence

from flask import Flask

from macrobase.api import AuthPolicy, StoreSource, install_api
from macrobase.config import Config, ServerConfig, load_config
from macrobase.store import ResultStore

__all__ = ["create_web_app", "serve", "WebServer", "main"]

LOG = logging.getLogger("macrobase.webserver")

#: ``attach(server, store_factory)``: mounts something (the dashboard) on the web app.
Attach = Callable[[Flask, Callable[[], "ResultStore | None"]], Any]


def _resolve(config: Config | str | os.PathLike | None) -> Config | None:
    if config is None or isinstance(config, Config):
        return config
    return load_config(config)


def create_web_app(
    config: Config | str | os.PathLike | None = None,
    store_path: str | os.PathLike | None = None,
    *,
    server: ServerConfig | None = None,
    attach: Attach | None = None,
) -> Flask:
    """One Flask app serving the API, and whatever ``attach`` mounts on it.

    Parameters
    ----------
    config : Config, path to a YAML file, or None
        Pipelines (their names are listed even before they report; each SQLite sink's
        ``path`` is where its results are read) and ``server`` settings.
    store_path : path, optional
        Read every pipeline from this SQLite file instead (required without ``config``).
    server : ServerConfig, optional
        Overrides ``config.server`` (host decides authentication: off loopback, POST needs
        the token).
    attach : callable, optional
        ``attach(server, store_factory)`` is called once with the Flask app and a callable
        returning the :class:`~macrobase.store.ResultStore` to read (None without a store
        path); ``macrobase serve`` mounts the dashboard this way.
    """
    cfg = _resolve(config)
    server = server or (cfg.server if cfg is not None else ServerConfig())
    if cfg is None and store_path is None:
        raise ValueError("create_web_app needs a configuration or a store_path")
    paths: dict[str, str] = {}
    configured: list[str] = []
    if cfg is not None:
        for pipeline in cfg.pipelines:
            configured.append(pipeline.name)
            if store_path is None and getattr(pipeline.sink, "type", None) == "sqlite":
                paths[pipeline.name] = os.fspath(pipeline.sink.path)
    source = StoreSource(store_path, paths, configured)

    auth = AuthPolicy.for_server(server.host, server.token, server.auth_reads)
    if auth.writes and auth.token is None:
        LOG.warning("serving on %s without a token: POST /api/v1/explain is refused"
                    " (set server.token or $MACROBASE_TOKEN)", server.host)
    app = Flask("macrobase")
    install_api(app, source, auth, server.max_body_bytes)
    if attach is not None:
        store_factory: Callable[[], ResultStore | None] = source.store
        attach(app, store_factory)
    return app


# --------------------------------------------------------------------------- gunicorn


def _gunicorn_app(app: Any, options: dict[str, Any]):
    from gunicorn.app.base import BaseApplication

    class _Application(BaseApplication):
        """Serve an already-built WSGI app (no import string, no command line parsing)."""

        def __init__(self) -> None:
            self.options = options
            self.application = app
            super().__init__()

        def load_config(self) -> None:
            for key, value in self.options.items():
                if key in self.cfg.settings and value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            return self.application

    return _Application()


def serve(app: Any, host: str = "127.0.0.1", port: int = 8050, *, workers: int = 2, threads: int = 8,
          timeout: int = 120, access_log: bool = False, **gunicorn_options: Any) -> None:
    """Serve a WSGI ``app`` on ``host:port`` with gunicorn until SIGINT/SIGTERM (blocks; main thread only).

    Threaded workers (``gthread``): reads are short SQLite queries, so a few processes with
    several threads each keep latency low; ``timeout`` bounds a large POST /explain.
    Extra keyword arguments are gunicorn settings (``graceful_timeout=5``, ...).
    """
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    options = {"bind": bind, "workers": workers, "threads": threads, "worker_class": "gthread",
               "timeout": timeout, "graceful_timeout": 10, "accesslog": "-" if access_log else None,
               "errorlog": "-", "loglevel": "warning", **gunicorn_options}
    _gunicorn_app(app, options).run()


class WebServer:
    """Run :func:`serve` in a child process (for ``macrobase demo``, tests and benchmarks).

    gunicorn's arbiter needs a main thread of its own, so the server runs in a separate
    ``python -m macrobase.webserver`` process; ``start`` waits until /healthz answers.

    >>> # with WebServer(["--store", "r.db", "--port", "0"]) as srv: urlopen(srv.url + "/healthz")
    """

    def __init__(self, args: Sequence[str], port: int | None = None, host: str = "127.0.0.1",
                 env: dict[str, str] | None = None):
        self.args = list(args)
        self.host = host
        self.port = port
        self.env = env
        self.process = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 60.0) -> "WebServer":
        import socket
        import subprocess
        import time
        import urllib.request

        if self.port is None:
            with socket.socket() as s:
                s.bind((self.host, 0))
                self.port = s.getsockname()[1]
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = {**os.environ, **(self.env or {})}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [root, env.get("PYTHONPATH")]))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "macrobase.webserver", *self.args, "--host", self.host, "--port", str(self.port)],
            env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"web server exited with status {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"web server did not answer on {self.url} within {timeout:g}s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except Exception:  # noqa: BLE001 - a stuck server must not outlive us
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self) -> "WebServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc_info: Any) -> None:
        self.stop()


def main(argv: Sequence[str] | None = None, attach: Attach | None = None) -> int:
    """``python -m macrobase.webserver [--config C] [--store S] [--host H] [--port P]``; ``attach`` unless ``--no-dashboard``."""
    p = argparse.ArgumentParser(prog="python -m macrobase.webserver", description=__doc__.split("\n")[0])
    p.add_argument("--config", help="pipelines YAML (server settings and each pipeline's SQLite path)")
    p.add_argument("--store", help="read every pipeline from this SQLite file")
    p.add_argument("--host", help="bind address (default: server.host, 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: server.port, 8050)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--no-dashboard", action="store_true")
    args = p.parse_args(argv)
    if args.config is None and args.store is None:
        p.error("give --config or --store")
    try:
        cfg = _resolve(args.config)
    except ValueError as exc:  # ConfigError: every problem, one per line, no traceback
        print(f"macrobase webserver: {exc}", file=sys.stderr)
        return 2
    server = cfg.server if cfg is not None else ServerConfig()
    updates = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    server = server.model_copy(update=updates)
    app = create_web_app(cfg, args.store, server=server, attach=None if args.no_dashboard else attach)
    serve(app, server.host, server.port, workers=args.workers, threads=args.threads)
    return 0


if __name__ == "__main__":
    from macrobase.service import web_main  # serve's assembly: the API with the dashboard mounted

    sys.exit(web_main())
