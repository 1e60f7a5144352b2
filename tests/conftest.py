"""Shared fixtures: a real embedded Kafka-compatible broker (Tansu), no mocks."""

from __future__ import annotations

import itertools
import os
import uuid

import pytest

os.environ.setdefault("NUMBA_CACHE_DIR", os.path.join(os.path.dirname(os.path.dirname(__file__)), ".numba_cache"))


@pytest.fixture(scope="session")
def kafka_broker():
    """An :class:`connectors.broker.EmbeddedBroker` on a free port for the whole session."""
    from connectors.broker import EmbeddedBroker

    broker = EmbeddedBroker(port=0)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture
def topic_factory(kafka_broker):
    """``make(partitions=1, prefix="t") -> name``: creates a uniquely named topic."""
    from connectors.kafka_client import create_topic

    counter = itertools.count()

    def make(partitions: int = 1, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}-{next(counter)}"
        create_topic([kafka_broker.bootstrap], name, partitions)
        return name

    return make


# Property tests explore fixed (derandomized) examples so a CI run is reproducible;
# HYPOTHESIS_PROFILE=explore draws new examples on every run.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
_hypothesis_settings.register_profile("explore", print_blob=True)
_hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session")
def sdk_worker_pool():
    """``host:port`` of a real Beam SDK worker pool (separate processes, EXTERNAL environment)."""
    import socket
    import subprocess
    import sys
    import time

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ)
    # Workers start as a bare `python -c ...`: the venv's python must come first on PATH,
    # and the project's modules must import from the working directory.
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    proc = subprocess.Popen([sys.executable, "-m", "apache_beam.runners.worker.worker_pool_main",
                             f"--service_port={port}"], cwd=root, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the Beam SDK worker pool did not start")
            time.sleep(0.2)
    try:
        yield f"localhost:{port}"
    finally:
        import signal
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
