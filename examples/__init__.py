"""The sample data and pipelines, shipped in the wheel as ``macrobase.examples``.

``telemetry.csv.gz`` holds 20,000 device events with planted problems (README, "Explain a
file"); ``file.yaml`` replays it through a pipeline, ``telemetry.yaml`` reads Kafka. In a
checkout they are in ``examples/``; installed, ask for the path:

    from importlib.resources import files
    sample = files("macrobase.examples") / "telemetry.csv.gz"
"""
