"""Which SQLite result store holds which pipeline, for the HTTP API (one ``ResultStore`` per process)."""

from __future__ import annotations

import os
import threading
from typing import Iterable, Mapping

from macrobase.store import ResultStore

__all__ = ["StoreSource"]


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
