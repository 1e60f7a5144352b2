"""The Beam runner configurations every streaming test runs on.

``portable-external`` needs the session's SDK worker pool (``sdk_worker_pool`` fixture):
``apache_beam.runners.worker.worker_pool_main`` started from the project root with the
virtual environment first on PATH, as a Flink or Spark task manager would run it.
"""
from __future__ import annotations

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
