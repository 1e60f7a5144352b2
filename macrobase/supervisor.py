"""Each pipeline in its own process, restarted with backoff when it crashes.

A crash is never silent: the child records ``crashed`` with the error in the pipeline
status table, the supervisor records ``restarting`` and starts it again after a backoff
that doubles up to ``MAX_BACKOFF_S`` (and resets once a run has lasted a minute).
A process that exits with status 0 has finished (a bounded source, final results
stored) and is not restarted.
"""
from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time

from macrobase.config import Config, PipelineConfig, SqliteSinkConfig
from macrobase.store import SqliteSink

log = logging.getLogger(__name__)
MAX_BACKOFF_S = 30.0
HEALTHY_RUN_S = 60.0


def _write_status(cfg: PipelineConfig, **status) -> None:
    if not isinstance(cfg.sink, SqliteSinkConfig):
        return
    try:
        with SqliteSink(cfg.sink.path) as sink:
            sink.write_status({"pipeline": cfg.name, **status})
    except Exception as exc:  # status is advisory; never take the supervisor down
        log.warning("%s: cannot record status: %s", cfg.name, exc)


def _child(config: Config, name: str, restarts: int) -> None:
    """Entry point of a pipeline process."""
    from connectors.kafka_client import quiet_client_logs
    from macrobase.runner import PipelineRun

    quiet_client_logs(debug=bool(os.environ.get("MACROBASE_DEBUG")))

    cfg = config.pipeline(name)
    # Status rows carry the supervisor's restart count, so it never goes backwards.
    run = PipelineRun(config, cfg, restarts=restarts)
    signal.signal(signal.SIGTERM, lambda *_: run.stop())
    signal.signal(signal.SIGINT, lambda *_: run.stop())
    _write_status(cfg, state="starting", restarts=restarts)
    try:
        run.run()
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        _write_status(cfg, state="crashed", last_error=msg, restarts=restarts)
        print(f"macrobase: pipeline {name} crashed: {msg}", file=sys.stderr)
        sys.exit(1)


class Supervisor:
    """Starts, watches and restarts one pipeline process."""

    def __init__(self, config: Config, cfg: PipelineConfig) -> None:
        self.config = config
        self.cfg = cfg
        self.restarts = 0
        self._stopping = threading.Event()
        self._process: mp.Process | None = None
        self._thread = threading.Thread(target=self._watch, name=f"supervise-{cfg.name}", daemon=True)

    def start(self) -> "Supervisor":
        self._thread.start()
        return self

    def _spawn(self) -> mp.Process:
        p = mp.get_context("spawn").Process(target=_child, args=(self.config, self.cfg.name, self.restarts),
                                            name=f"pipeline-{self.cfg.name}")
        p.start()
        return p

    def _watch(self) -> None:
        backoff = 1.0
        while not self._stopping.is_set():
            started = time.monotonic()
            self._process = self._spawn()
            if self._stopping.is_set():  # request_stop ran while spawning and saw the old process
                self._process.terminate()
            self._process.join()
            if self._stopping.is_set():
                return
            if self._process.exitcode == 0:  # a bounded source finished (final snapshot stored): not a crash
                log.info("pipeline %s finished", self.cfg.name)
                return
            if time.monotonic() - started > HEALTHY_RUN_S:
                backoff = 1.0
            self.restarts += 1
            log.warning("pipeline %s exited with %s; restarting in %.0f s", self.cfg.name,
                        self._process.exitcode, backoff)
            _write_status(self.cfg, state="restarting", restarts=self.restarts,
                          last_error=f"process exited with status {self._process.exitcode}")
            if self._stopping.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF_S)

    def request_stop(self) -> None:
        """Ask the pipeline to finish (final snapshot, offsets committed); do not wait."""
        self._stopping.set()
        p = self._process
        if p is not None and p.is_alive():
            p.terminate()  # SIGTERM: the child stops its run cleanly

    def stop(self, timeout: float = 30.0) -> None:
        """Stop and wait; a pipeline that does not finish in ``timeout`` is killed."""
        self.request_stop()
        p = self._process
        if p is not None:
            p.join(timeout)
            if p.is_alive():
                p.kill()
        self._thread.join(timeout)


def supervise(config: Config, names: list[str] | None = None) -> list[Supervisor]:
    return [Supervisor(config, p).start() for p in config.pipelines if names is None or p.name in names]
