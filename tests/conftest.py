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


@pytest.fixture
def terminal_stderr():
    """``with terminal_stderr() as written:`` makes ``sys.stderr`` a real pseudo-terminal
    (100 columns) inside the block (inside the test: pytest re-installs its own capture
    between phases); ``written()`` is what was written to it so far."""
    import contextlib
    import fcntl
    import pty
    import select
    import struct
    import sys
    import termios

    @contextlib.contextmanager
    def terminal():
        master, slave = pty.openpty()
        # a fresh pty is 0x0; tqdm hides bars that do not fit, so give it a real size
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
        term = os.fdopen(slave, "w")
        chunks: list[bytes] = []

        def written() -> str:
            term.flush()
            while select.select([master], [], [], 5.0 if not chunks else 0.2)[0]:
                chunks.append(os.read(master, 65536))
            return b"".join(chunks).decode(errors="replace")

        saved, sys.stderr = sys.stderr, term
        try:
            yield written
        finally:
            sys.stderr = saved
            term.close()
            os.close(master)

    return terminal


@pytest.fixture(scope="session")
def sdk_worker_pool():
    """``host:port`` of a real Beam SDK worker pool (separate processes, EXTERNAL environment)."""
    from tests.runners import sdk_worker_pool as start

    with start() as endpoint:
        yield endpoint
