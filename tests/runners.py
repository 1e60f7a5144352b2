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


def run_until(conf, done, timeout: float = 300.0):
    """Run the config's first pipeline in a thread until ``done(latest stored document)``
    holds, then stop it and wait for it to end; returns its RunResult."""
    import threading

    import pytest

    from macrobase.runner import PipelineRun
    from macrobase.store import ResultStore

    cfg = conf.pipelines[0]
    run = PipelineRun(conf, cfg)
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.setdefault("result", run.run()), daemon=True)
    thread.start()
    store = ResultStore(cfg.sink.path)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline and thread.is_alive():
            doc = store.latest(cfg.name)
            if doc and done(doc):
                break
            time.sleep(0.2)
        else:
            last = {k: v for k, v in (store.latest(cfg.name) or {}).items() if k in ("events", "dead_letters", "total")}
            pytest.fail(f"the expected state was not reached in {timeout}s; last: {last}")
    finally:
        run.stop()
        thread.join(240)
    assert not thread.is_alive(), "the run did not stop"
    return outcome["result"]


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
