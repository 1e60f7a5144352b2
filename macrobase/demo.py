"""`macrobase demo`: broker, live telemetry producer, pipeline, API and dashboard.

Nothing to configure: an embedded Kafka-compatible broker starts on a free port, a
producer streams device telemetry whose problems change over a few minutes (see
:data:`macrobase.synthetic.SCENARIO`), with the odd malformed message, and the
``telemetry`` pipeline explains it live on http://127.0.0.1:PORT/.
"""
from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

from connectors.broker import EmbeddedBroker
from connectors.kafka_client import create_topic, produce_json
from macrobase.service import check_port_free, run_service
from macrobase.synthetic import ATTRIBUTES, scenario_batch, to_json_lines

TOPIC = "telemetry"
RATE = 5000.0
BAD_MESSAGES = (b"{power_drain: oops", b'{"device_model": "M103", "region": "region-1"}',
                b'{"power_drain": "n/a", "region": "region-0"}')


class DemoProducer(threading.Thread):
    """Streams the live scenario into Kafka at ``rate`` events per second."""

    def __init__(self, bootstrap: str, rate: float = RATE, tick_s: float = 0.2) -> None:
        super().__init__(name="demo-producer", daemon=True)
        self.bootstrap, self.rate, self.tick_s = bootstrap, rate, tick_s
        self.stopping = threading.Event()

    def run(self) -> None:
        rng = np.random.default_rng(0)
        epoch_ms = int(time.time() * 1000)
        t, started = 0.0, time.monotonic()
        while not self.stopping.is_set():
            n = int(self.rate * self.tick_s)
            values = to_json_lines(scenario_batch(rng, n, t, t + self.tick_s, epoch_ms))
            if rng.random() < 0.2:  # now and then a client sends garbage
                values.append(BAD_MESSAGES[rng.integers(len(BAD_MESSAGES))])
            try:
                produce_json([self.bootstrap], TOPIC, values)
            except Exception:  # broker restarting: drop this tick, keep the demo alive
                pass
            t += self.tick_s
            self.stopping.wait(max(0.0, started + t - time.monotonic()))


def demo_config(bootstrap: str, db: Path, port: int) -> dict:
    return {
        "pipelines": [{
            "name": "telemetry",
            "source": {"type": "kafka", "bootstrap_servers": [bootstrap], "topic": TOPIC,
                       "start_from": "latest", "client": "confluent-kafka"},
            "schema": {"time": "ts", "metrics": ["power_drain"], "attributes": list(ATTRIBUTES)},
            "classifier": {"type": "mad", "cutoff": {"score": 3.5},
                           "training": {"reservoir": 10000, "decay": 0.01, "retrain_every": 100000}},
            "explainer": {"min_support": 0.01, "min_ratio": 3.0, "decay": 0.05, "emit_every": "1s"},
            "sink": {"type": "sqlite", "path": str(db), "keep_snapshots": 3600},
        }],
        "server": {"host": "127.0.0.1", "port": port},
    }


def run_demo(port: int = 8050) -> int:
    check_port_free("127.0.0.1", port)  # before the broker and producer start
    with tempfile.TemporaryDirectory(prefix="macrobase-demo-") as tmp, EmbeddedBroker(port=0) as broker:
        create_topic([broker.bootstrap], TOPIC, 4)
        producer = DemoProducer(broker.bootstrap)
        producer.start()
        config_path = Path(tmp) / "demo.yaml"
        config_path.write_text(yaml.safe_dump(demo_config(broker.bootstrap, Path(tmp) / "demo.db", port)))
        banner = (f"macrobase demo: broker {broker.bootstrap}, producing {RATE:,.0f} events/s to '{TOPIC}'\n"
                  f"  dashboard  http://127.0.0.1:{port}/\n"
                  f"  API        http://127.0.0.1:{port}/api/v1/pipelines\n"
                  f"Ctrl-C stops everything.")
        try:
            return run_service(config_path, banner)
        finally:
            producer.stopping.set()
            producer.join(5)
