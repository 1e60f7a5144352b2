"""Configuration schema: defaults match DESIGN.md, every error kind gives one clear line."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from macrobase.config import (
    ConfigError,
    FileSourceConfig,
    JsonlSinkConfig,
    KafkaSinkConfig,
    KafkaSourceConfig,
    PercentileCutoff,
    PredicateCutoff,
    ScoreCutoff,
    SqliteSinkConfig,
    load_config,
    parse_config,
)
from macrobase.durations import parse_duration

ROOT = Path(__file__).resolve().parents[1]

# The "Configuration (YAML)" example of DESIGN.md, verbatim (comments included).
DESIGN_EXAMPLE = """\
pipelines:
  - name: telemetry                      # [a-z0-9_-]+, unique
    source:
      type: kafka                        # kafka | file | generator | sql
      bootstrap_servers: [127.0.0.1:9092]
      topic: telemetry
      format: json                       # one JSON object per message
      client: kafka-python               # kafka-python | confluent-kafka
      start_from: committed              # earliest | latest | committed (falls back to earliest)
      group_id: macrobase-telemetry
      # file source: {type: file, path: data.parquet}   (csv, jsonl, parquet; bounded)
    schema:
      time: ts                           # optional event-time field; default: Kafka timestamp
      metrics: [power_drain]
      attributes: [device_model, firmware, region]
    classifier:
      type: mad                          # mad | mcd | zscore | percentile | predicate
      cutoff: {percentile: 99}           # or {score: 3.0}; predicate: {op: ">=", value: 0.8}
      tail: high                         # high | low | both
      training: {reservoir: 10000, decay: 0.01, retrain_every: 100000}
    explainer:
      min_support: 0.01
      min_ratio: 3.0
      ratio_metric: risk_ratio           # risk_ratio | global_ratio | prevalence_ratio
      max_order: 3
      mode: refined                      # refined | minimal
      decay: 0.01                        # per emit interval; 0 keeps all history
      emit_every: 1s
    sink: {type: sqlite, path: macrobase.db}   # sqlite | jsonl {path} | kafka {topic}
server: {host: 127.0.0.1, port: 8050}
runner: {type: direct}                   # or a Beam runner name plus its pipeline options
"""

MINIMAL = {
    "pipelines": [
        {
            "name": "telemetry",
            "source": {"type": "generator"},
            "schema": {"metrics": ["power_drain"], "attributes": ["device_model", "firmware"]},
        }
    ]
}


def write(tmp_path: Path, text: str, name: str = "cfg.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def errors_of(data, source: str = "f.yaml") -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, source)
    lines = str(info.value).splitlines()
    assert lines == info.value.problems
    for line in lines:  # never leak pydantic's own wording
        assert "Input should" not in line and "pydantic" not in line and "Value error" not in line
        assert line.startswith(f"{source}: ")
    return lines


def mutated(fn) -> dict:
    data = copy.deepcopy(MINIMAL)
    fn(data)
    return data


def pipe(data: dict) -> dict:
    return data["pipelines"][0]


# ---------------------------------------------------------------- parsing and defaults


def test_design_example_parses(tmp_path):
    cfg = load_config(write(tmp_path, DESIGN_EXAMPLE))
    (p,) = cfg.pipelines
    assert p.name == "telemetry"
    assert isinstance(p.source, KafkaSourceConfig)
    assert p.source.bootstrap_servers == ["127.0.0.1:9092"]
    assert (p.source.topic, p.source.format, p.source.client) == ("telemetry", "json", "kafka-python")
    assert (p.source.start_from, p.source.group_id) == ("committed", "macrobase-telemetry")
    assert p.event_schema.time == "ts"
    assert p.event_schema.metrics == ["power_drain"]
    assert p.event_schema.attributes == ["device_model", "firmware", "region"]
    assert p.classifier.type == "mad" and p.classifier.cutoff == PercentileCutoff(percentile=99)
    assert p.classifier.tail == "high"
    assert (p.classifier.training.reservoir, p.classifier.training.decay, p.classifier.training.retrain_every) == (
        10000, 0.01, 100000)
    e = p.explainer
    assert (e.min_support, e.min_ratio, e.ratio_metric, e.max_order, e.mode, e.decay, e.emit_every) == (
        0.01, 3.0, "risk_ratio", 3, "refined", 0.01, 1.0)
    assert p.sink == SqliteSinkConfig(path="macrobase.db")
    assert (cfg.server.host, cfg.server.port) == ("127.0.0.1", 8050)
    assert cfg.runner.type == "direct" and cfg.runner.options == {}


def test_defaults_are_the_documented_ones(monkeypatch):
    monkeypatch.delenv("MACROBASE_TOKEN", raising=False)
    data = mutated(lambda d: pipe(d).update(
        source={"type": "kafka", "bootstrap_servers": ["h:9092"], "topic": "t"}))
    cfg = parse_config(data, "x.yaml")
    p = cfg.pipelines[0]
    # source (kafka)
    assert p.source.format == "json" and p.source.client == "kafka-python"
    assert p.source.start_from == "committed" and p.source.group_id == "macrobase-telemetry"
    assert p.source.dead_letter_topic is None and p.source.poll_max_records == 5000
    # classifier: DESIGN "mad", percentile 99 for scorers, tail high, training 10000/0.01/100000
    c = p.classifier
    assert c.type == "mad" and c.cutoff == PercentileCutoff(percentile=99.0) and c.tail == "high"
    assert (c.training.reservoir, c.training.decay, c.training.retrain_every) == (10000, 0.01, 100000)
    # explainer: DESIGN "Defaults: min_support 0.01, min_ratio 3.0, ratio risk_ratio, max_order 3, mode refined"
    e = p.explainer
    assert (e.min_support, e.min_ratio, e.ratio_metric, e.max_order, e.mode) == (0.01, 3.0, "risk_ratio", 3, "refined")
    assert e.decay == 0.01 and e.emit_every == 1.0
    assert p.sink == SqliteSinkConfig() and p.sink.path == "macrobase.db" and p.sink.keep_dead_letters == 1000
    assert p.event_schema.time is None
    s = cfg.server
    assert (s.host, s.port, s.token, s.max_body_bytes, s.auth_reads) == ("127.0.0.1", 8050, None, 10 * 2**20, False)
    assert cfg.runner.type == "direct" and cfg.runner.options == {}


def test_source_defaults_file_and_generator():
    cfg = parse_config(MINIMAL, "x")
    assert (cfg.pipelines[0].source.rate, cfg.pipelines[0].source.seed, cfg.pipelines[0].source.scenario) == (
        5000.0, 0, "demo")
    data = mutated(lambda d: pipe(d).update(source={"type": "file", "path": "d.csv"}))
    src = parse_config(data, "x").pipelines[0].source
    assert isinstance(src, FileSourceConfig) and (src.format, src.rate) == ("auto", None)


def test_percentile_classifier_defaults_to_99_and_predicate_takes_op_value():
    data = mutated(lambda d: pipe(d).update(classifier={"type": "percentile"}))
    assert parse_config(data, "x").pipelines[0].classifier.cutoff == PercentileCutoff(percentile=99)
    data = mutated(lambda d: pipe(d).update(classifier={"type": "zscore", "cutoff": {"score": 3}}))
    assert parse_config(data, "x").pipelines[0].classifier.cutoff == ScoreCutoff(score=3.0)
    data = mutated(lambda d: pipe(d).update(classifier={"type": "predicate", "cutoff": {"op": ">=", "value": 0.8}}))
    assert parse_config(data, "x").pipelines[0].classifier.cutoff == PredicateCutoff(op=">=", value=0.8)


def test_mcd_takes_several_metrics():
    data = mutated(lambda d: (pipe(d).update(classifier={"type": "mcd"}),
                              pipe(d)["schema"].update(metrics=["a", "b"])))
    assert parse_config(data, "x").pipelines[0].event_schema.metrics == ["a", "b"]


@pytest.mark.parametrize("text,seconds", [("1s", 1.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0),
                                          ("1.5s", 1.5), (3, 3.0), (0.25, 0.25), ("2", 2.0)])
def test_emit_every_durations(text, seconds):
    data = mutated(lambda d: pipe(d).update(explainer={"emit_every": text}))
    assert parse_config(data, "x").pipelines[0].explainer.emit_every == pytest.approx(seconds)
    assert parse_duration(text) == pytest.approx(seconds)


def test_bootstrap_servers_accepts_comma_separated_string():
    data = mutated(lambda d: pipe(d).update(
        source={"type": "kafka", "bootstrap_servers": "a:9092, b:9093", "topic": "t"}))
    assert parse_config(data, "x").pipelines[0].source.bootstrap_servers == ["a:9092", "b:9093"]


def test_kafka_sink_inherits_source_servers():
    data = mutated(lambda d: pipe(d).update(source={"type": "kafka", "bootstrap_servers": ["a:9092"], "topic": "t"},
                                            sink={"type": "kafka", "topic": "out"}))
    sink = parse_config(data, "x").pipelines[0].sink
    assert isinstance(sink, KafkaSinkConfig) and sink.bootstrap_servers == ["a:9092"]
    data = mutated(lambda d: pipe(d).update(sink={"type": "jsonl", "path": "r.jsonl"}))
    assert parse_config(data, "x").pipelines[0].sink == JsonlSinkConfig(type="jsonl", path="r.jsonl")


def test_token_from_environment(monkeypatch):
    monkeypatch.setenv("MACROBASE_TOKEN", "s3cret")
    assert parse_config(MINIMAL, "x").server.token == "s3cret"
    data = mutated(lambda d: d.update(server={"token": "from-file"}))
    assert parse_config(data, "x").server.token == "from-file"


def test_runner_options_pass_through():
    options = {"flink_master": "localhost:8081", "parallelism": 4, "nested": {"a": [1, 2]}}
    data = mutated(lambda d: d.update(runner={"type": "FlinkRunner", "options": options}))
    assert parse_config(data, "x").runner.options == options


def test_models_are_frozen():
    cfg = parse_config(MINIMAL, "x")
    with pytest.raises(Exception):
        cfg.pipelines[0].explainer.min_support = 0.5
    with pytest.raises(Exception):
        cfg.server = None


def test_scientific_notation_is_a_number(tmp_path):
    text = yaml.safe_dump(MINIMAL) + ""
    path = write(tmp_path, text.replace("name: telemetry", "name: telemetry\n  explainer: {min_support: 5e-3}"))
    assert load_config(path).pipelines[0].explainer.min_support == 0.005


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_examples_parse(path):
    cfg = load_config(path)
    assert cfg.pipelines


def test_examples_cover_kafka_and_file():
    tele = load_config(ROOT / "examples" / "telemetry.yaml").pipelines[0]
    assert tele.source.type == "kafka" and tele.classifier.type == "mad"
    assert tele.event_schema.metrics == ["power_drain"]
    assert tele.event_schema.attributes == ["device_model", "firmware", "region"]
    replay = load_config(ROOT / "examples" / "file.yaml").pipelines[0]
    assert replay.source.type == "file" and replay.classifier.type == "predicate" and replay.explainer.decay == 0


def test_config_pipeline_lookup():
    cfg = parse_config(MINIMAL, "x")
    assert cfg.pipeline("telemetry").name == "telemetry"
    with pytest.raises(KeyError, match="telemetry"):
        cfg.pipeline("nope")


# ---------------------------------------------------------------- one clear line per problem

CASES = [
    # (id, mutation, key path, expected fragments)
    ("unknown key", lambda d: pipe(d).update(explainer={"min_suport": 0.1}),
     "pipelines[0].explainer.min_suport", ["unknown key; did you mean min_support?"]),
    ("unknown key far", lambda d: pipe(d).update(explainer={"zzz": 1}),
     "pipelines[0].explainer.zzz", ["unknown key; expected one of min_support, min_ratio"]),
    ("string for number", lambda d: pipe(d).update(explainer={"min_support": "abc"}),
     "pipelines[0].explainer.min_support", ["expected a number > 0 and <= 1, got 'abc'"]),
    ("numeric string not coerced", lambda d: pipe(d).update(explainer={"min_support": "0.05"}),
     "pipelines[0].explainer.min_support", ["got '0.05'"]),
    ("out of range", lambda d: pipe(d).update(explainer={"min_support": 1.5}),
     "pipelines[0].explainer.min_support", ["expected a number > 0 and <= 1, got 1.5"]),
    ("max order", lambda d: pipe(d).update(explainer={"max_order": 4}),
     "pipelines[0].explainer.max_order", ["from 1 to 3", "got 4"]),
    ("float for int", lambda d: pipe(d).update(classifier={"training": {"reservoir": 10.5}}),
     "pipelines[0].classifier.training.reservoir", ["expected an integer > 0, got 10.5"]),
    ("decay 1", lambda d: pipe(d).update(explainer={"decay": 1}),
     "pipelines[0].explainer.decay", ["expected a number >= 0 and < 1", "got 1"]),
    ("bad duration", lambda d: pipe(d).update(explainer={"emit_every": "soon"}),
     "pipelines[0].explainer.emit_every", ["expected a duration like '1s', '500ms'", "got 'soon'"]),
    ("zero duration", lambda d: pipe(d).update(explainer={"emit_every": "0s"}),
     "pipelines[0].explainer.emit_every", ["expected a duration", "got '0s'"]),
    ("enum typo", lambda d: pipe(d).update(classifier={"type": "mda"}),
     "pipelines[0].classifier.type",
     ["expected one of mad, mcd, zscore, percentile, predicate, got 'mda'; did you mean mad?"]),
    ("ratio metric typo", lambda d: pipe(d).update(explainer={"ratio_metric": "riskratio"}),
     "pipelines[0].explainer.ratio_metric", ["got 'riskratio'; did you mean risk_ratio?"]),
    ("source type typo", lambda d: pipe(d).update(source={"type": "kafak"}),
     "pipelines[0].source.type", ["expected one of kafka, file, generator, sql, got 'kafak'; did you mean kafka?"]),
    ("source type missing", lambda d: pipe(d).update(source={"path": "x"}),
     "pipelines[0].source.type", ["required key missing; expected one of kafka, file, generator, sql"]),
    ("source not mapping", lambda d: pipe(d).update(source="kafka"),
     "pipelines[0].source", ["expected a mapping with type: kafka | file | generator | sql, got 'kafka'"]),
    ("source missing", lambda d: pipe(d).pop("source"),
     "pipelines[0].source", ["required key missing"]),
    ("kafka topic missing", lambda d: pipe(d).update(source={"type": "kafka", "bootstrap_servers": ["h:1"]}),
     "pipelines[0].source.topic", ["required key missing; expected a Kafka topic name"]),
    ("server not host:port", lambda d: pipe(d).update(
        source={"type": "kafka", "bootstrap_servers": ["localhost"], "topic": "t"}),
     "pipelines[0].source.bootstrap_servers[0]", ["expected host:port", "got 'localhost'"]),
    ("start_from typo", lambda d: pipe(d).update(
        source={"type": "kafka", "bootstrap_servers": ["h:1"], "topic": "t", "start_from": "earlist"}),
     "pipelines[0].source.start_from", ["did you mean earliest?"]),
    ("predicate needs cutoff", lambda d: pipe(d).update(classifier={"type": "predicate"}),
     "pipelines[0].classifier.cutoff", ["required for the predicate classifier", "op"]),
    ("predicate op", lambda d: pipe(d).update(classifier={"type": "predicate", "cutoff": {"op": "=>", "value": 1}}),
     "pipelines[0].classifier.cutoff.op", ["expected one of >, >=, <, <=, ==, !=, got '=>'"]),
    ("predicate with percentile", lambda d: pipe(d).update(
        classifier={"type": "predicate", "cutoff": {"percentile": 99}}),
     "pipelines[0].classifier.cutoff", ["predicate classifier expects {op"]),
    ("scorer with predicate cutoff", lambda d: pipe(d).update(classifier={"cutoff": {"op": ">", "value": 1}}),
     "pipelines[0].classifier.cutoff", ["mad classifier expects {score: number} or {percentile: number}"]),
    ("percentile with score", lambda d: pipe(d).update(classifier={"type": "percentile", "cutoff": {"score": 3}}),
     "pipelines[0].classifier.cutoff", ["percentile classifier expects {percentile: number}"]),
    ("cutoff key typo", lambda d: pipe(d).update(classifier={"cutoff": {"percentil": 99}}),
     "pipelines[0].classifier.cutoff.percentil", ["unknown key; did you mean percentile?"]),
    ("cutoff two kinds", lambda d: pipe(d).update(classifier={"cutoff": {"percentile": 99, "score": 3}}),
     "pipelines[0].classifier.cutoff", ["expected exactly one of"]),
    ("percentile 100", lambda d: pipe(d).update(classifier={"cutoff": {"percentile": 100}}),
     "pipelines[0].classifier.cutoff.percentile", ["between 0 and 100", "got 100"]),
    ("score 0", lambda d: pipe(d).update(classifier={"cutoff": {"score": 0}}),
     "pipelines[0].classifier.cutoff.score", ["expected a number > 0, got 0"]),
    ("tail with predicate", lambda d: pipe(d).update(
        classifier={"type": "predicate", "tail": "low", "cutoff": {"op": ">", "value": 1}}),
     "pipelines[0].classifier.tail", ["does not apply to the predicate classifier"]),
    ("mcd one metric", lambda d: pipe(d).update(classifier={"type": "mcd"}),
     "pipelines[0].schema.metrics", ["mcd classifier needs at least 2 metrics, got 1"]),
    ("mad two metrics", lambda d: pipe(d)["schema"].update(metrics=["a", "b"]),
     "pipelines[0].schema.metrics", ["mad classifier takes exactly 1 metric, got 2"]),
    ("metric is attribute", lambda d: pipe(d)["schema"].update(metrics=["firmware"]),
     "pipelines[0].schema.attributes", ["'firmware' is also a metric"]),
    ("empty metrics", lambda d: pipe(d)["schema"].update(metrics=[]),
     "pipelines[0].schema.metrics", ["expected a non-empty list of field names, got []"]),
    ("metric not a string", lambda d: pipe(d)["schema"].update(metrics=[7]),
     "pipelines[0].schema.metrics[0]", ["got 7"]),
    ("duplicate attribute", lambda d: pipe(d)["schema"].update(attributes=["a", "a"]),
     "pipelines[0].schema.attributes", ["duplicate field name 'a'"]),
    ("bad name", lambda d: pipe(d).update(name="Tele metry"),
     "pipelines[0].name", ["lowercase letters, digits", "got 'Tele metry'"]),
    ("duplicate name", lambda d: d["pipelines"].append(copy.deepcopy(pipe(d))),
     "pipelines[1].name", ["duplicate pipeline name 'telemetry'"]),
    ("no pipelines", lambda d: d.update(pipelines=[]),
     "pipelines", ["expected a non-empty list of pipelines"]),
    ("pipelines missing", lambda d: d.pop("pipelines"),
     "pipelines", ["required key missing"]),
    ("top-level typo", lambda d: d.update(pipeline=d.pop("pipelines")),
     "pipeline", ["unknown key; did you mean pipelines?"]),
    ("port as string", lambda d: d.update(server={"port": "8050"}),
     "server.port", ["expected an integer port from 0 to 65535, got '8050'"]),
    ("bool for int", lambda d: d.update(server={"max_body_bytes": True}),
     "server.max_body_bytes", ["got true"]),
    ("runner", lambda d: d.update(runner={"type": "flink"}),
     "runner.type", ["expected 'direct' or a Beam runner class name"]),
    ("sink type typo", lambda d: pipe(d).update(sink={"type": "sqllite"}),
     "pipelines[0].sink.type", ["expected one of sqlite, jsonl, kafka, got 'sqllite'; did you mean sqlite?"]),
    ("jsonl needs path", lambda d: pipe(d).update(sink={"type": "jsonl"}),
     "pipelines[0].sink.path", ["required key missing"]),
    ("kafka sink needs servers without kafka source", lambda d: pipe(d).update(sink={"type": "kafka", "topic": "o"}),
     "pipelines[0].sink.bootstrap_servers", ["required key missing"]),
    ("number as key", lambda d: pipe(d).update({1: 2}),
     "pipelines[0].1", ["unknown key; keys are names"]),
    ("inf", lambda d: pipe(d).update(explainer={"min_ratio": float("inf")}),
     "pipelines[0].explainer.min_ratio", ["got inf"]),
]


@pytest.mark.parametrize("mutation,path,fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_error_is_one_clear_line(mutation, path, fragments):
    lines = errors_of(mutated(mutation))
    assert len(lines) == 1, lines
    head, _, message = lines[0].partition(": ")[2].partition(": ")
    assert head == path, lines[0]
    for fragment in fragments:
        assert fragment in message, lines[0]


def test_several_problems_are_all_reported_once():
    def mutation(d):
        pipe(d).update(explainer={"min_suport": 0.1, "max_order": 9}, classifier={"type": "mda"})
        d.update(server={"port": -1})
    lines = errors_of(mutated(mutation))
    assert len(lines) == 4 and len(set(lines)) == 4
    assert {line.split(": ")[1] for line in lines} == {
        "pipelines[0].explainer.min_suport", "pipelines[0].explainer.max_order",
        "pipelines[0].classifier.type", "server.port"}


# ---------------------------------------------------------------- file-level problems


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    path = write(tmp_path, "pipelines:\n  - name: x\n    source: {type: kafka\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{path}: line ") and "column" in line and "invalid YAML" in line
    assert "Traceback" not in line


def test_yaml_tab_indent_points_at_the_tab(tmp_path):
    path = write(tmp_path, "pipelines:\n  - name: x\n\tsource: {}\n")
    with pytest.raises(ConfigError, match=r"line 3, column 1: invalid YAML"):
        load_config(path)


def test_duplicate_yaml_key_is_an_error(tmp_path):
    path = write(tmp_path, "server: {port: 1}\nserver: {port: 2}\n")
    with pytest.raises(ConfigError, match=r"line 2, column 1: invalid YAML: duplicate key 'server'"):
        load_config(path)


@pytest.mark.parametrize("text,expected", [
    ("", "empty configuration"),
    ("# only a comment\n", "empty configuration"),
    ("- a\n- b\n", "expected a mapping with a 'pipelines' list at the top level, got a list"),
    ("just text\n", "got a string"),
    ("pipelines:\n", "pipelines: expected a non-empty list of pipelines, got null"),
])
def test_file_shape_problems(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (line,) = str(info.value).splitlines()
    assert line.startswith(f"{path}: ") and expected in line


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "nope.yaml")


def test_config_error_is_a_value_error():
    assert issubclass(ConfigError, ValueError)
