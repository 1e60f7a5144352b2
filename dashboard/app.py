"""The Dash app: mount it on the API's Flask server (:func:`attach`) or run it alone (:func:`create_app`).

The dashboard reads results only through :class:`macrobase.store.ResultStore` (DESIGN.md:
never from pipeline internals), so it works in the same process as the pipelines or in
another one, while they write.

>>> import os, tempfile
>>> app = create_app(os.path.join(tempfile.mkdtemp(), "none-yet.db"))
>>> app.title
'MacroBase · live explanations'

Standalone: ``python -m dashboard.app macrobase.db --port 8050``.
"""

from __future__ import annotations

import argparse
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import dash
import flask

from dashboard.callbacks import register
from dashboard.layout import build_layout
from macrobase.store import ResultStore

__all__ = ["attach", "create_app", "main"]

_ASSETS = str(Path(__file__).with_name("assets"))


class _StoreOnWorkers:
    """Runs every ResultStore query on a small fixed pool of threads.

    ResultStore opens one SQLite connection per calling thread and keeps it until
    ``close()``; a server that starts a thread per request (werkzeug's, Flask's ``run``)
    would open a new connection every request, forever. Funnelling the queries through
    ``workers`` threads bounds that to ``workers`` connections, whatever the server.
    """

    def __init__(self, store_factory: Callable[[], ResultStore], workers: int = 2):
        self._factory = store_factory
        self._store: ResultStore | None = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="dashboard-store")

    def _get(self) -> ResultStore:
        # made on first use, so the factory may point at a file the pipeline creates later
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._factory()
        return self._store

    def __getattr__(self, name: str):
        method = getattr(self._get(), name)  # AttributeError for methods this store lacks (e.g. status)
        if not callable(method):
            return method
        return lambda *args, **kwargs: self._pool.submit(method, *args, **kwargs).result()


def attach(server: flask.Flask, store_factory: Callable[[], ResultStore], url_base_pathname: str = "/") -> dash.Dash:
    """Mount the dashboard on an existing Flask ``server`` under ``url_base_pathname``.

    ``store_factory`` is called once, on the first request that needs data, and the
    store it returns is shared by all requests (its queries run on two worker threads, so
    the number of SQLite connections stays bounded under any server). ``url_base_pathname`` must start and end
    with "/" (e.g. "/dashboard/"); the API's own routes stay untouched.
    """
    if not (url_base_pathname.startswith("/") and url_base_pathname.endswith("/")):
        raise ValueError(f"url_base_pathname must start and end with '/', got {url_base_pathname!r}")
    app = dash.Dash(
        __name__,
        server=server,
        url_base_pathname=url_base_pathname,
        assets_folder=_ASSETS,
        title="MacroBase · live explanations",
        update_title=None,  # no "Updating..." tab title flicker every second
        serve_locally=True,  # no CDN: the machines running this may be offline
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.layout = build_layout
    store = _StoreOnWorkers(store_factory)
    register(app, lambda: store)
    return app


def create_app(store_path: str | os.PathLike) -> dash.Dash:
    """A standalone dashboard (its own Flask server, ``app.server``) over the SQLite file ``store_path``."""
    server = flask.Flask("dashboard")
    path = os.fspath(store_path)
    return attach(server, lambda: ResultStore(path))


def main(argv: list[str] | None = None) -> None:
    """Serve the dashboard alone for local use (development server; production uses the API's)."""
    parser = argparse.ArgumentParser(prog="python -m dashboard.app", description=__doc__.splitlines()[0])
    parser.add_argument("store", help="the SQLite file a pipeline's sqlite sink writes")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8050)
    args = parser.parse_args(argv)
    create_app(args.store).run(host=args.host, port=args.port, debug=False)


if __name__ == "__main__":
    main()
