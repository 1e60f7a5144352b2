"""`macrobase demo`: synthetic telemetry with planted anomalies, explained."""
from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from connectors.files import read_file
from macrobase.diff import DiffRequest, run_diff
from macrobase.render import format_table
from macrobase.synthetic import ATTRIBUTES, planted_table


def run_demo(port: int = 8050, n_rows: int = 1_000_000) -> int:
    """Write a telemetry file with three planted causes, then explain it."""
    with tempfile.TemporaryDirectory(prefix="macrobase-demo-") as tmp:
        path = Path(tmp) / "telemetry.parquet"
        table, causes = planted_table(n_rows, seed=0)
        pq.write_table(table, path)
        print(f"wrote {n_rows:,} events to {path}; planted causes:", file=sys.stderr)
        for c in causes:
            print("  " + " AND ".join(f"{k}={v}" for k, v in c.items()), file=sys.stderr)
        started = time.perf_counter()
        data = read_file(path, ["power_drain"], list(ATTRIBUTES))
        req = DiffRequest(metrics=("power_drain",), attributes=tuple(ATTRIBUTES), classifier="mad",
                          score_cutoff=4.0)
        doc = run_diff(data.table, req, dropped=data.dropped)
        print(format_table(doc, "risk_ratio"))
        print(f"\nread, classified and explained in {time.perf_counter() - started:.2f} s", file=sys.stderr)
    return 0
