"""YAML configuration: the schema of DESIGN.md as frozen pydantic models, validated up front.

Every problem is reported at once, one line each, naming the file, the key path and what
was expected; misspelled keys and enum values get a "did you mean" suggestion. MacroBase
silently ignored misspelled keys; we never do. This module is the schema and the loader;
the lines are written by ``macrobase.config_errors`` (pydantic errors as key paths) and
``macrobase.errors`` (the "did you mean" the HTTP API gives too).

>>> cfg = parse_config({"pipelines": [{"name": "t", "source": {"type": "generator"},
...     "schema": {"metrics": ["power_drain"], "attributes": ["device_model"]}}]}, "demo.yaml")
>>> cfg.pipelines[0].classifier.cutoff
PercentileCutoff(percentile=99.0)
>>> parse_config({"pipelines": [{"name": "t", "source": {"type": "generator"}, "schema":
...     {"metrics": ["x"], "attributes": ["a"]}, "explainer": {"min_suport": 0.1}}]}, "c.yaml")
Traceback (most recent call last):
...
macrobase.config.ConfigError: c.yaml: pipelines[0].explainer.min_suport: unknown key; did you mean min_support?
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    field_validator,
    model_validator,
)

import explain.params as explain_params
from explain.params import DEFAULTS, MODES
from macrobase.config_errors import format_validation_errors, problem, problems
from macrobase.durations import DURATION_EXPECTATION, parse_duration
from macrobase.errors import kind_of, show, suggest
from operators.base import TAILS
from operators.domains import PERCENTILE, SCORE_CUTOFF
from operators.percentile import DEFAULT_PERCENTILE
from operators.registry import CLASSIFIERS

# The library's vocabulary, as Literal choices (one definition: operators/, explain/).
CLASSIFIER_NAMES = tuple(CLASSIFIERS)
TAIL_NAMES = tuple(TAILS)
RATIO_METRIC_NAMES = explain_params.CHOICES["ratio_metric"]

__all__ = [
    "ConfigError",
    "load_config",
    "parse_config",
    "Config",
    "PipelineConfig",
    "KafkaSourceConfig",
    "FileSourceConfig",
    "SqlSourceConfig",
    "GeneratorSourceConfig",
    "SchemaConfig",
    "ClassifierConfig",
    "ScoreCutoff",
    "PercentileCutoff",
    "PredicateCutoff",
    "TrainingConfig",
    "ExplainerConfig",
    "SqliteSinkConfig",
    "JsonlSinkConfig",
    "KafkaSinkConfig",
    "ServerConfig",
    "RunnerConfig",
    "TOKEN_ENV",
]

TOKEN_ENV = "MACROBASE_TOKEN"


class ConfigError(ValueError):
    """A configuration that cannot be used; ``str(err)`` is one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --------------------------------------------------------------------------- helpers


def _split_servers(value: object) -> object:
    # Accept "a:9092,b:9092" as written in most Kafka docs, besides a YAML list.
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


def _duration(value: object) -> float:
    return parse_duration(value)


_Name = Annotated[str, Field(min_length=1, description="a non-empty string")]
_Server = Annotated[
    str,
    Field(
        pattern=r"^(\[[0-9A-Fa-f:.]+\]|[^\s:\[\],]+):\d{1,5}$",
        description="host:port, e.g. '127.0.0.1:9092'",
    ),
]
_Servers = Annotated[
    list[_Server],
    BeforeValidator(_split_servers),
    Field(min_length=1, description="a non-empty list of host:port (or one comma-separated string)"),
]
_Topic = Annotated[
    str,
    Field(pattern=r"^[A-Za-z0-9._-]{1,249}$", description="a Kafka topic name (letters, digits, '.', '_', '-')"),
]


class _Model(BaseModel):
    """Shared settings: unknown keys are errors, no silent coercion, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


# --------------------------------------------------------------------------- sources


class KafkaSourceConfig(_Model):
    """Read JSON events from one Kafka topic (all partitions)."""

    type: Literal["kafka"]
    bootstrap_servers: _Servers
    topic: _Topic
    format: Literal["json"] = Field("json", description="json")
    client: Literal["kafka-python", "confluent-kafka"] = "kafka-python"
    start_from: Literal["earliest", "latest", "committed"] = "committed"
    group_id: str = Field(
        "macrobase", min_length=1, description="a non-empty consumer group id (default macrobase-<pipeline name>)"
    )
    dead_letter_topic: _Topic | None = None
    poll_max_records: int = Field(5000, gt=0, description="an integer > 0")


class FileSourceConfig(_Model):
    """Replay a bounded CSV, JSON-lines or Parquet file (path relative to the working directory)."""

    type: Literal["file"]
    path: _Name
    format: Literal["auto", "csv", "jsonl", "parquet"] = "auto"
    rate: float | None = Field(None, gt=0, description="events per second > 0, or null for as fast as possible")


class SqlSourceConfig(_Model):
    """Replay a bounded database query or table (connectors/sql.py): exactly one of query, table.

    A restarted reader runs the query again and skips the rows already covered, so give a
    query a deterministic order (ORDER BY).
    """

    type: Literal["sql"]
    url: str = Field(description="a database URL: postgresql://user:password@host:port/db, "
                                 "sqlite:///path.db or duckdb:///path.duckdb")
    query: str | None = Field(None, min_length=1, description="a non-empty SQL query")
    table: str | None = Field(None, min_length=1, description="a non-empty table name")
    rate: float | None = Field(None, gt=0, description="events per second > 0, or null for as fast as possible")

    @field_validator("url")
    @classmethod
    def _supported_url(cls, value: str) -> str:
        from connectors.sql import is_database_url, mask_url  # light: the drivers load on use

        if not is_database_url(value):
            raise problem("expected a database URL: postgresql://user:password@host:port/db, "
                           f"sqlite:///path.db or duckdb:///path.duckdb, got {show(mask_url(value))}")
        return value

    @model_validator(mode="after")
    def _query_or_table(self) -> "SqlSourceConfig":
        if self.query is not None and self.table is not None:
            raise problem("give either query or table, not both", "table")
        if self.query is None and self.table is None:
            raise problem("required key missing: give query (SQL) or table (a name)", "query")
        return self


class GeneratorSourceConfig(_Model):
    """Synthetic telemetry with planted anomalies (the demo)."""

    type: Literal["generator"]
    rate: float = Field(5000.0, gt=0, description="events per second > 0")
    seed: int = Field(0, description="an integer seed")
    scenario: Literal["demo"] = "demo"


SourceConfig = Annotated[
    Union[KafkaSourceConfig, FileSourceConfig, GeneratorSourceConfig, SqlSourceConfig], Field(discriminator="type")
]


# --------------------------------------------------------------------------- schema


class SchemaConfig(_Model):
    """Which event fields are time, metrics and attributes."""

    time: str | None = Field(None, min_length=1, description="a field name, or null for the Kafka timestamp")
    metrics: list[_Name] = Field(min_length=1, description="a non-empty list of field names")
    attributes: list[_Name] = Field(min_length=1, description="a non-empty list of field names")

    @model_validator(mode="after")
    def _distinct(self) -> "SchemaConfig":
        found = []
        for key in ("metrics", "attributes"):
            values = getattr(self, key)
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                found.append((key, f"duplicate field name {', '.join(map(repr, dupes))}"))
        both = [m for m in self.metrics if m in self.attributes]
        if both:
            names = ", ".join(map(repr, both))
            found.append(("attributes", f"{names} is also a metric; a field is either a metric or an attribute"))
        if self.time is not None and (self.time in self.metrics or self.time in self.attributes):
            found.append(("time", f"{self.time!r} is also listed as a metric or attribute"))
        if found:
            raise problems(found)
        return self


# --------------------------------------------------------------------------- classifier


class ScoreCutoff(_Model):
    """Outlier iff score >= ``score`` (a scoring classifier's own units, e.g. robust z)."""

    score: float = Field(**SCORE_CUTOFF.field_bounds(), description=SCORE_CUTOFF.describe())


class PercentileCutoff(_Model):
    """Outlier iff value (or score) >= its ``percentile``-th percentile."""

    percentile: float = Field(**PERCENTILE.field_bounds(), description=PERCENTILE.describe())


class PredicateCutoff(_Model):
    """Outlier iff ``metric OP value``."""

    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: float = Field(description="a number")


_CUTOFF_KEYS = {"score": "score", "percentile": "percentile", "op": "predicate", "value": "predicate"}
_CUTOFF_EXPECTATION = "{score: number} or {percentile: number} or {op: '>=', value: number}"


def _cutoff_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):  # already validated (model_copy/round trip)
        return {ScoreCutoff: "score", PercentileCutoff: "percentile", PredicateCutoff: "predicate"}.get(type(value))
    if not isinstance(value, dict):
        return None
    kinds = {_CUTOFF_KEYS[k] for k in value if k in _CUTOFF_KEYS}
    return kinds.pop() if len(kinds) == 1 else None


def _cutoff_lines(path: str, value: Any) -> list[str]:
    """The problems of a cutoff that is none of the three shapes (error type ``cutoff_shape``)."""
    if isinstance(value, dict):
        unknown = [k for k in value if k not in _CUTOFF_KEYS]
        if unknown:
            return [
                f"{path}.{k}: unknown key"
                + (suggest(k, _CUTOFF_KEYS) or f"; expected one of {', '.join(_CUTOFF_KEYS)}")
                for k in unknown
            ]
        if value:
            return [f"{path}: expected exactly one of {_CUTOFF_EXPECTATION}, got {show(value)}"]
    return [f"{path}: expected {_CUTOFF_EXPECTATION}, got {show(value)}"]


CutoffConfig = Annotated[
    Union[
        Annotated[ScoreCutoff, Tag("score")],
        Annotated[PercentileCutoff, Tag("percentile")],
        Annotated[PredicateCutoff, Tag("predicate")],
    ],
    Discriminator(_cutoff_kind, custom_error_type="cutoff_shape", custom_error_message="invalid cutoff"),
]


class TrainingConfig(_Model):
    """Damped reservoir the streaming model trains on, and how often it retrains."""

    reservoir: int = Field(10000, gt=0, description="an integer > 0")
    decay: float = Field(0.01, ge=0, lt=1, description="a number >= 0 and < 1")
    retrain_every: int = Field(100000, gt=0, description="an integer > 0 (events)")


class ClassifierConfig(_Model):
    """Robust classifier labelling outliers, and its cut-off."""

    type: Literal[CLASSIFIER_NAMES] = "mad"
    cutoff: CutoffConfig = Field(
        default_factory=lambda: PercentileCutoff(percentile=DEFAULT_PERCENTILE), description=_CUTOFF_EXPECTATION
    )
    tail: Literal[TAIL_NAMES] = "high"
    training: TrainingConfig = Field(default_factory=TrainingConfig)

    @model_validator(mode="before")
    @classmethod
    def _predicate_needs_cutoff(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("type") == "predicate" and "cutoff" not in data:
            raise problem("required for the predicate classifier: expected {op: '>=', value: number}", "cutoff")
        return data

    @model_validator(mode="after")
    def _cutoff_fits_type(self) -> "ClassifierConfig":
        cut = self.cutoff
        if self.type == "predicate":
            if not isinstance(cut, PredicateCutoff):
                raise problem("the predicate classifier expects {op: '>=', value: number}", "cutoff")
            if "tail" in self.model_fields_set:
                raise problem("does not apply to the predicate classifier (op sets the direction)", "tail")
        elif self.type == "percentile":
            if not isinstance(cut, PercentileCutoff):
                raise problem("the percentile classifier expects {percentile: number}", "cutoff")
        elif isinstance(cut, PredicateCutoff):
            raise problem(f"the {self.type} classifier expects {{score: number}} or {{percentile: number}}", "cutoff")
        return self


# --------------------------------------------------------------------------- explainer and sinks


def _explainer_field(name: str, more: str = ""):
    """A field with the library's default and bounds for explainer parameter ``name``."""
    domain = explain_params.DOMAINS[name]
    return Field(getattr(DEFAULTS, name), **domain.field_bounds(), description=domain.describe() + more)


class ExplainerConfig(_Model):
    """Streaming explainer: thresholds, ratio metric, decay and emit interval."""

    min_support: float = _explainer_field("min_support")
    min_ratio: float = _explainer_field("min_ratio")
    ratio_metric: Literal[RATIO_METRIC_NAMES] = DEFAULTS.ratio_metric
    max_order: int = _explainer_field("max_order")
    mode: Literal[MODES] = DEFAULTS.mode
    max_p_value: float | None = _explainer_field(
        "max_p_value", ", or null (off): the largest Benjamini-Hochberg adjusted p-value kept")
    decay: float = Field(0.01, ge=0, lt=1, description="a number >= 0 and < 1 (per emit interval)")
    emit_every: Annotated[float, BeforeValidator(_duration)] = Field(1.0, description=DURATION_EXPECTATION)
    resolve_after: int = Field(5, ge=1, description="an integer >= 1: snapshots an explanation must be absent "
                                                    "from to be resolved")


class SqliteSinkConfig(_Model):
    """Results, dead letters, offsets and checkpoints in one SQLite file (the default)."""

    type: Literal["sqlite"] = "sqlite"
    path: _Name = "macrobase.db"
    keep_dead_letters: int = Field(1000, ge=0, description="an integer >= 0")
    keep_snapshots: int | None = Field(None, gt=0, description="an integer > 0, or null to keep every snapshot")
    checkpoint_every: Annotated[float, BeforeValidator(_duration)] = Field(
        10.0, description=DURATION_EXPECTATION + "; how much of the stream a crash replays at most")


class JsonlSinkConfig(_Model):
    """One result document per line, appended to a file."""

    type: Literal["jsonl"]
    path: _Name


class KafkaSinkConfig(_Model):
    """Result documents produced to a Kafka topic (servers default to the Kafka source's)."""

    type: Literal["kafka"]
    bootstrap_servers: _Servers
    topic: _Topic


SinkConfig = Annotated[
    Union[SqliteSinkConfig, JsonlSinkConfig, KafkaSinkConfig], Field(discriminator="type")
]


# --------------------------------------------------------------------------- pipeline and top level


class PipelineConfig(_Model):
    """One pipeline: source -> schema -> classifier -> explainer -> sink."""

    name: str = Field(pattern=r"^[a-z0-9_-]+$", description="a name of lowercase letters, digits, '_' or '-'")
    source: SourceConfig
    # "schema" would shadow BaseModel.schema(); the YAML key stays "schema".
    event_schema: SchemaConfig = Field(alias="schema")
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    explainer: ExplainerConfig = Field(default_factory=ExplainerConfig)
    sink: SinkConfig = Field(default_factory=SqliteSinkConfig)

    @model_validator(mode="before")
    @classmethod
    def _fill_defaults(cls, data: Any) -> Any:
        # Defaults that depend on sibling keys are filled in before validation.
        if not isinstance(data, dict):
            return data
        data = dict(data)
        name = data.get("name")
        source = data.get("source")
        if isinstance(source, dict) and source.get("type") == "kafka":
            if "group_id" not in source and isinstance(name, str):
                data["source"] = source = {**source, "group_id": f"macrobase-{name}"}
        sink = data.get("sink")
        if isinstance(sink, dict) and sink.get("type") == "kafka" and "bootstrap_servers" not in sink:
            if isinstance(source, dict) and source.get("type") == "kafka" and "bootstrap_servers" in source:
                data["sink"] = {**sink, "bootstrap_servers": source["bootstrap_servers"]}
        return data

    @model_validator(mode="after")
    def _metrics_fit_classifier(self) -> "PipelineConfig":
        n = len(self.event_schema.metrics)
        kind = self.classifier.type
        if kind == "mcd" and n < 2:
            raise problem(f"the mcd classifier needs at least 2 metrics, got {n}", "schema.metrics")
        if kind != "mcd" and n != 1:
            raise problem(
                f"the {kind} classifier takes exactly 1 metric, got {n} (use mcd for several metrics)",
                "schema.metrics",
            )
        return self


class ServerConfig(_Model):
    """HTTP API and dashboard server; the token may come from $MACROBASE_TOKEN."""

    host: _Name = "127.0.0.1"
    port: int = Field(8050, ge=0, le=65535, description="an integer port from 0 to 65535")
    token: str | None = Field(
        default_factory=lambda: os.environ.get(TOKEN_ENV) or None,
        min_length=1,
        description="a non-empty string, or null",
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0, description="an integer > 0 (bytes)")
    auth_reads: bool = Field(False, description="true or false")


_KNOWN_RUNNERS = ("direct", "DirectRunner", "FnApiRunner", "PrismRunner", "FlinkRunner", "SparkRunner",
                  "DataflowRunner", "PortableRunner", "SamzaRunner")


class RunnerConfig(_Model):
    """Beam runner name and its pipeline options (passed through unchanged)."""

    type: str = Field("direct", description="'direct' or a Beam runner class name such as FlinkRunner")
    options: dict[str, Any] = Field(default_factory=dict, description="a mapping of Beam pipeline options")

    @field_validator("type")
    @classmethod
    def _runner_name(cls, value: str) -> str:
        if value != "direct" and not re.fullmatch(r"[A-Z][A-Za-z0-9]*Runner", value):
            raise problem(
                f"expected 'direct' or a Beam runner class name such as FlinkRunner, got {show(value)}"
                + suggest(value, _KNOWN_RUNNERS)
            )
        return value


class AlertConfig(_Model):
    """A webhook told when an explanation appears and when it resolves (macrobase.alerts)."""

    type: Literal["webhook"]
    url: Annotated[str, Field(pattern=r"^https?://[^\s/]+", description="an http:// or https:// URL")]
    format: Literal["json", "slack", "alertmanager"] = "json"
    pipelines: list[_Name] | None = Field(None, description="pipeline names, or null for every pipeline")
    min_ratio: float | None = Field(None, ge=0, description="a number >= 0, or null")
    max_p_value: float | None = Field(None, gt=0, le=1, description="a number in (0, 1], or null")
    for_: Annotated[float, BeforeValidator(_duration)] = Field(0.0, alias="for", description=DURATION_EXPECTATION)
    timeout: Annotated[float, BeforeValidator(_duration)] = Field(5.0, description=DURATION_EXPECTATION)


class Config(_Model):
    """The whole file: pipelines, HTTP server, Beam runner and alerts."""

    pipelines: list[PipelineConfig] = Field(min_length=1, description="a non-empty list of pipelines")
    server: ServerConfig = Field(default_factory=ServerConfig)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    alerts: list[AlertConfig] = Field(default_factory=list, description="a list of alert webhooks")

    @model_validator(mode="after")
    def _unique_names(self) -> "Config":
        seen: dict[str, int] = {}
        found = []
        for i, pipeline in enumerate(self.pipelines):
            if pipeline.name in seen:
                first = seen[pipeline.name]
                found.append((f"pipelines[{i}].name", f"duplicate pipeline name {pipeline.name!r} (also pipelines[{first}])"))
            else:
                seen[pipeline.name] = i
        for i, alert in enumerate(self.alerts):
            for name in alert.pipelines or ():
                if name not in seen:
                    found.append((f"alerts[{i}].pipelines", f"no pipeline {name!r}; known: {', '.join(seen)}"))
        if found:
            raise problems(found)
        return self

    def pipeline(self, name: str) -> PipelineConfig:
        """Return the pipeline called ``name``; KeyError naming the known ones otherwise."""
        for pipeline in self.pipelines:
            if pipeline.name == name:
                return pipeline
        raise KeyError(f"no pipeline {name!r}; known: {', '.join(p.name for p in self.pipelines)}")


# --------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and reads 1e-3 as a float (YAML 1.2 style)."""


# PyYAML follows YAML 1.1, where "1e-3" (no dot) is a string; people mean a number.
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)[eE][-+]?\d+$"),
    list("-+0123456789."),
)


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict:
    loader.flatten_mapping(node)
    mapping: dict = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in mapping
        except TypeError:  # unhashable key (a list as a key); let validation name it
            raise yaml.constructor.ConstructorError(
                None, None, "a mapping key must be a plain value", key_node.start_mark
            ) from None
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node, deep=deep)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_config(path: str | os.PathLike) -> Config:
    """Read and validate a YAML configuration file; raise ConfigError listing every problem."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{source}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{source}: cannot read: not UTF-8 text"]) from None
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = exc.problem or exc.context or "syntax error"
        raise ConfigError([f"{source}: {where}invalid YAML: {what}"]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"{source}: invalid YAML: {exc}"]) from None
    return parse_config(data, source)


def parse_config(data: dict, source: str = "<config>") -> Config:
    """Validate already-parsed configuration ``data``; ``source`` names it in error messages."""
    if data is None:
        raise ConfigError([f"{source}: empty configuration; expected a mapping with a 'pipelines' list"])
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{source}: expected a mapping with a 'pipelines' list at the top level, got {kind_of(data)}"]
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_errors(exc.errors(), Config, {"cutoff_shape": _cutoff_lines})
        raise ConfigError([f"{source}: {line}" for line in lines]) from None
