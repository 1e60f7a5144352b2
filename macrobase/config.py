"""YAML configuration: the schema of DESIGN.md as frozen pydantic models, validated up front.

Every problem is reported at once, one line each, naming the file, the key path and what
was expected; misspelled keys and enum values get a "did you mean" suggestion. MacroBase
silently ignored misspelled keys; we never do.

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

import difflib
import json
import os
import re
import types
import typing
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
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError

import explain.params as explain_params
from explain.params import DEFAULTS, MODES
from macrobase.durations import DURATION_EXPECTATION, parse_duration
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


def _problem(message: str, field: str | None = None) -> PydanticCustomError:
    """A cross-field error; ``field`` (relative key path) is appended to the error's location."""
    return PydanticCustomError("macrobase_config", "{message}", {"message": message, "field": field})


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
            raise _problem("expected a database URL: postgresql://user:password@host:port/db, "
                           f"sqlite:///path.db or duckdb:///path.duckdb, got {_show(mask_url(value))}")
        return value

    @model_validator(mode="after")
    def _query_or_table(self) -> "SqlSourceConfig":
        if self.query is not None and self.table is not None:
            raise _problem("give either query or table, not both", "table")
        if self.query is None and self.table is None:
            raise _problem("required key missing: give query (SQL) or table (a name)", "query")
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
        problems = []
        for key in ("metrics", "attributes"):
            values = getattr(self, key)
            dupes = sorted({v for v in values if values.count(v) > 1})
            if dupes:
                problems.append((key, f"duplicate field name {', '.join(map(repr, dupes))}"))
        both = [m for m in self.metrics if m in self.attributes]
        if both:
            names = ", ".join(map(repr, both))
            problems.append(("attributes", f"{names} is also a metric; a field is either a metric or an attribute"))
        if self.time is not None and (self.time in self.metrics or self.time in self.attributes):
            problems.append(("time", f"{self.time!r} is also listed as a metric or attribute"))
        if problems:
            raise PydanticCustomError("macrobase_config_many", "{problems}", {"problems": problems})
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
            raise _problem("required for the predicate classifier: expected {op: '>=', value: number}", "cutoff")
        return data

    @model_validator(mode="after")
    def _cutoff_fits_type(self) -> "ClassifierConfig":
        cut = self.cutoff
        if self.type == "predicate":
            if not isinstance(cut, PredicateCutoff):
                raise _problem("the predicate classifier expects {op: '>=', value: number}", "cutoff")
            if "tail" in self.model_fields_set:
                raise _problem("does not apply to the predicate classifier (op sets the direction)", "tail")
        elif self.type == "percentile":
            if not isinstance(cut, PercentileCutoff):
                raise _problem("the percentile classifier expects {percentile: number}", "cutoff")
        elif isinstance(cut, PredicateCutoff):
            raise _problem(f"the {self.type} classifier expects {{score: number}} or {{percentile: number}}", "cutoff")
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
            raise _problem(f"the mcd classifier needs at least 2 metrics, got {n}", "schema.metrics")
        if kind != "mcd" and n != 1:
            raise _problem(
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
            raise _problem(
                f"expected 'direct' or a Beam runner class name such as FlinkRunner, got {_show(value)}"
                + _suggest(value, _KNOWN_RUNNERS)
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
        problems = []
        for i, pipeline in enumerate(self.pipelines):
            if pipeline.name in seen:
                first = seen[pipeline.name]
                problems.append((f"pipelines[{i}].name", f"duplicate pipeline name {pipeline.name!r} (also pipelines[{first}])"))
            else:
                seen[pipeline.name] = i
        for i, alert in enumerate(self.alerts):
            for name in alert.pipelines or ():
                if name not in seen:
                    problems.append((f"alerts[{i}].pipelines", f"no pipeline {name!r}; known: {', '.join(seen)}"))
        if problems:
            raise PydanticCustomError("macrobase_config_many", "{problems}", {"problems": problems})
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
            [f"{source}: expected a mapping with a 'pipelines' list at the top level, got {_kind(data)}"]
        )
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{source}: {line}" for line in _format_errors(exc.errors())]) from None


# --------------------------------------------------------------------------- error formatting


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _show(value: Any) -> str:
    """Render a YAML value the way the user wrote it: 'abc', 3, true, null, [a, b]."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = repr(value)
    elif isinstance(value, (int, float)):
        text = repr(value)
    else:
        try:
            text = json.dumps(value, default=str)
        except (TypeError, ValueError):
            text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _edits(a: str, b: str) -> int:
    """Optimal-string-alignment distance: a swapped pair of letters ("mda") counts as one edit."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                row[j] = min(row[j], prev2[j - 2] + 1)
        prev2, prev = prev, row
    return prev[-1]


def _closest(word: Any, options: typing.Iterable[str]) -> str | None:
    """The option ``word`` most likely misspells (difflib shortlist, ties broken by edit distance)."""
    if not isinstance(word, str):
        return None
    options = list(options)
    close = difflib.get_close_matches(word, options, n=3, cutoff=0.6)
    if not close:  # case slips ("MAD") are below difflib's ratio but obvious
        close = [o for o in options if o.lower() == word.lower()]
    if not close:
        return None
    return min(close, key=lambda o: (_edits(word.lower(), o.lower()), close.index(o)))


def _suggest(word: Any, options: typing.Iterable[str]) -> str:
    """'; did you mean X?' or ''."""
    best = _closest(word, options)
    return f"; did you mean {best}?" if best is not None else ""


def _unwrap(tp: Any) -> tuple[Any, FieldInfo | None]:
    """Strip Annotated/Optional; return the bare type and any FieldInfo found in Annotated."""
    info = None
    while True:
        origin = typing.get_origin(tp)
        if origin is Annotated:
            args = typing.get_args(tp)
            for meta in args[1:]:
                if isinstance(meta, FieldInfo) and meta.description:
                    info = meta
            tp = args[0]
        elif origin is Union or origin is types.UnionType:
            args = [a for a in typing.get_args(tp) if a is not type(None)]
            if len(args) == 1:
                tp = args[0]
            else:
                return tp, info
        else:
            return tp, info


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _keys(model: type[BaseModel]) -> list[str]:
    return [f.alias or name for name, f in model.model_fields.items()]


def _field(model: type[BaseModel], key: Any) -> tuple[str, FieldInfo] | None:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return name, info
    return None


def _union_member(tp: Any, tag: Any) -> Any:
    for member in typing.get_args(tp):
        if typing.get_origin(member) is Annotated:
            args = typing.get_args(member)
            if any(isinstance(m, Tag) and m.tag == tag for m in args[1:]):
                return member
            member = args[0]
        if _is_model(member) and "type" in member.model_fields:
            if tag in typing.get_args(member.model_fields["type"].annotation):
                return member
    return None


class _Where(typing.NamedTuple):
    path: str  # "pipelines[0].explainer.min_support"
    parent: Any  # model class holding the last key, if any
    tp: Any  # bare expected type at the location
    info: FieldInfo | None  # field (or Annotated item) description, if any


def _join(path: str, part: Any) -> str:
    if isinstance(part, int):
        return f"{path}[{part}]"
    return f"{path}.{part}" if path else str(part)


def _walk(loc: tuple) -> _Where:
    """Follow a pydantic error location through the models, skipping union tags."""
    tp: Any = Config
    info: FieldInfo | None = None
    parent = None
    path = ""
    for part in loc:
        tp, _ = _unwrap(tp)
        if _is_model(tp):
            found = _field(tp, part)
            parent = tp
            path = f"{path}.{part}" if path else str(part)  # a key, even if YAML made it a number
            if found is None:
                return _Where(path, parent, None, None)
            _, info = found
            tp = info.annotation
            continue
        origin = typing.get_origin(tp)
        if origin in (list, dict) and isinstance(part, (int, str)):
            args = typing.get_args(tp)
            tp = args[-1] if args else Any
            _, info = _unwrap(tp)
            path = _join(path, part) if origin is list else f"{path}.{part}"
            parent = None
            continue
        if origin is Union:
            member = _union_member(tp, part)
            if member is not None:  # a discriminator tag, not a key the user wrote
                tp = member
                continue
        path = _join(path, part)
        tp, info, parent = None, None, None
    tp, inner = _unwrap(tp)
    if inner is not None:
        info = inner
    return _Where(path, parent, tp, info)


_TYPE_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
    "finite_number": "a finite number",
}


def _expectation(where: _Where, err: dict) -> str:
    tp = where.tp
    if typing.get_origin(tp) is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(tp))
    if typing.get_origin(tp) is Union:
        tags = []
        for member in typing.get_args(tp):
            bare, _ = _unwrap(member)
            if _is_model(bare) and "type" in bare.model_fields:
                tags += [str(a) for a in typing.get_args(bare.model_fields["type"].annotation)]
        if tags:
            return "a mapping with type: " + " | ".join(tags)
    if where.info is not None and where.info.description:
        return where.info.description
    if _is_model(tp):
        return "a mapping"
    return _TYPE_WORDS.get(err["type"], "a valid value")


def _format_errors(errors: list[dict]) -> list[str]:
    lines: list[str] = []
    # A misspelled required key shows up twice in pydantic (unknown "pipeline" + missing
    # "pipelines"); the "did you mean" line says it all, so the "missing" line is dropped.
    suggested: set[str] = set()
    missing_paths = {_walk(err["loc"]).path for err in errors if err["type"] == "missing"}
    for err in errors:
        lines.extend(_format_one(err, suggested, missing_paths))
    redundant = {f"{path}: required key missing" for path in suggested}
    return [line for line in dict.fromkeys(lines) if not any(line.startswith(r) for r in redundant)]


def _format_one(err: dict, suggested: set[str], missing_paths: set[str]) -> list[str]:
    kind = err["type"]
    loc = tuple(err["loc"])
    value = err.get("input")
    ctx = err.get("ctx") or {}
    where = _walk(loc)
    path = where.path or "(top level)"

    if kind == "macrobase_config":
        if ctx.get("field"):
            path = f"{where.path}.{ctx['field']}" if where.path else ctx["field"]
        return [f"{path}: {ctx['message']}"]
    if kind == "macrobase_config_many":
        out = []
        for field, message in ctx["problems"]:
            out.append(f"{where.path}.{field}: {message}" if where.path else f"{field}: {message}")
        return out
    if kind == "extra_forbidden":
        options = _keys(where.parent) if where.parent is not None else []
        guess = _closest(loc[-1], options)
        if guess is not None:
            parent_path = where.path.rsplit(".", 1)[0] if "." in where.path else ""
            target = f"{parent_path}.{guess}" if parent_path else guess
            if target in missing_paths:
                suggested.add(target)
            return [f"{path}: unknown key; did you mean {guess}?"]
        return [f"{path}: unknown key; expected one of {', '.join(options)}"]
    if kind == "invalid_key":
        return [f"{path}: unknown key; keys are names (strings), got {_show(value)}"]
    if kind == "missing":
        return [f"{path}: required key missing; expected {_expectation(where, err)}"]
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        tags = [t.strip().strip("'") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        if not tags and typing.get_origin(where.tp) is Union:
            tags = _expectation(where, err).replace("a mapping with type: ", "").split(" | ")
        if kind == "union_tag_not_found":
            return [f"{path}.type: required key missing; expected one of {', '.join(tags)}"]
        tag = ctx.get("tag")
        return [f"{path}.type: expected one of {', '.join(tags)}, got {_show(tag)}{_suggest(tag, tags)}"]
    if kind == "cutoff_shape":
        if isinstance(value, dict):
            unknown = [k for k in value if k not in _CUTOFF_KEYS]
            if unknown:
                return [
                    f"{path}.{k}: unknown key"
                    + (_suggest(k, _CUTOFF_KEYS) or f"; expected one of {', '.join(_CUTOFF_KEYS)}")
                    for k in unknown
                ]
            if value:
                return [f"{path}: expected exactly one of {_CUTOFF_EXPECTATION}, got {_show(value)}"]
        return [f"{path}: expected {_CUTOFF_EXPECTATION}, got {_show(value)}"]
    expected = _expectation(where, err)
    got = f", got {_show(value)}"
    if kind == "literal_error":
        options = [str(a) for a in typing.get_args(where.tp)] if typing.get_origin(where.tp) is Literal else []
        return [f"{path}: expected {expected}{got}{_suggest(value, options)}"]
    # type errors, range errors and our before-validators' ValueErrors (durations)
    return [f"{path}: expected {expected}{got}"]
