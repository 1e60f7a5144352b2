"""The Beam runner configurations every streaming test runs on.

``portable-external`` needs the session's SDK worker pool (``sdk_worker_pool`` fixture):
``apache_beam.runners.worker.worker_pool_main`` started from the project root with the
virtual environment first on PATH, as a Flink or Spark task manager would run it.
"""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]

RUNNERS = {
    "in-process": {"type": "direct"},
    "multi-process": {"type": "direct",
                      "options": {"direct_num_workers": 2, "direct_running_mode": "multi_processing"}},
    "portable-external": {"type": "PortableRunner",
                          "options": {"job_endpoint": "embed", "environment_type": "EXTERNAL", "streaming": True}},
}


def runner_config(name: str, request) -> dict:
    """The ``runner:`` block for ``name``, starting the worker pool when it needs one."""
    config = {"type": RUNNERS[name]["type"], "options": dict(RUNNERS[name].get("options", {}))}
    if config["options"].get("environment_type") == "EXTERNAL":
        config["options"]["environment_config"] = request.getfixturevalue("sdk_worker_pool")
    return config


def wait_for(condition, timeout: float, what: str, interval: float = 0.1):
    """Poll ``condition()`` until it is truthy (returned); fail the test after ``timeout``."""
    import pytest

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out waiting for {what}")


class Running:
    """A pipeline run in a background thread (see :func:`running`)."""

    def __init__(self, conf) -> None:
        import threading

        from macrobase.runner import PipelineRun

        self.cfg = conf.pipelines[0]
        self.run = PipelineRun(conf, self.cfg)
        self.outcome: dict = {}
        self.thread = threading.Thread(target=lambda: self.outcome.setdefault("result", self.run.run()), daemon=True)

    def wait_for(self, condition, timeout: float, what: str):
        """Poll ``condition()`` until it is truthy (returned) or the run ends or times out (failed)."""
        import pytest

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ended = not self.thread.is_alive()
            value = condition()
            if value:
                return value
            if ended:  # checked once more after the run ended: a bounded run may finish between polls
                break
            time.sleep(0.2)
        pytest.fail(f"{what}: not reached in {timeout}s" if self.thread.is_alive() else f"{what}: the run ended first")

    def stop(self):
        """Stop the run, wait for it to end; its RunResult."""
        self.run.stop()
        self.thread.join(240)
        assert not self.thread.is_alive(), "the run did not stop"
        return self.outcome.get("result")


@contextlib.contextmanager
def running(conf) -> Iterator[Running]:
    """Run the config's first pipeline in a thread for the ``with`` block; stopped at its end."""
    run = Running(conf)
    run.thread.start()
    try:
        yield run
    finally:
        if run.thread.is_alive():
            run.stop()


def run_until(conf, done, timeout: float = 300.0):
    """Run the config's first pipeline until ``done(latest stored document)`` holds, then
    stop it and wait for it to end; returns its RunResult."""
    from macrobase.store import ResultStore

    with running(conf) as run:
        store = ResultStore(run.cfg.sink.path)

        def reached():
            doc = store.latest(run.cfg.name)
            return doc is not None and done(doc)

        try:
            run.wait_for(reached, timeout, "the expected state")
        except BaseException:
            last = {k: v for k, v in (store.latest(run.cfg.name) or {}).items()
                    if k in ("events", "dead_letters", "total")}
            print(f"last stored document: {last}")
            raise
        return run.stop()


@contextlib.contextmanager
def sdk_worker_pool(env: dict[str, str] | None = None, timeout: float = 120.0) -> Iterator[str]:
    """``localhost:port`` of a Beam SDK worker pool in its own process group, killed whole
    at the end. Started as a Flink or Spark task manager would: from the project root,
    the venv's ``bin`` first on PATH (workers start as a bare ``python -c ...``) and the
    project importable through PYTHONPATH."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ if env is None else env)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], cwd=str(ROOT), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the Beam SDK worker pool did not start")
                time.sleep(0.2)
        yield f"localhost:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def assert_same_answer(doc: dict, batch: dict, keys=("total", "outliers", "thresholds", "explanations")) -> None:
    """A streaming document answers as the batch explainer does over the same rows."""
    from macrobase.lifecycle import without_lifecycle

    for key in keys:
        got = without_lifecycle(doc[key]) if key == "explanations" else doc[key]
        assert got == batch[key], key
