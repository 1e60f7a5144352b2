"""One vocabulary: every front end (CLI, pipeline config, HTTP API, OpenAPI document)
offers exactly the library's names, defaults and bounds, and accepts or rejects the same
parameter values as the library does."""

from __future__ import annotations

import argparse
import io
import json
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest

from explain import BatchExplainer, StreamingExplainer
from explain.params import CHOICES, DEFAULTS, DOMAINS, MAX_ORDER, MODES
from macrobase import cli
from macrobase.api import API_PREFIX, StoreSource, create_app, explain_defaults
from macrobase.config import ClassifierConfig, ConfigError, ExplainerConfig, parse_config
from macrobase.diff import BATCH_DEFAULTS
from macrobase.openapi import openapi_document
from macrobase.store import RATIO_METRICS as STORED_RATIO_METRICS
from operators import MAD, MCD, Percentile, ZScore
from operators.base import TAILS, OperatorError
from operators.domains import PERCENTILE, SCORE_CUTOFF
from operators.percentile import DEFAULT_PERCENTILE
from operators.registry import CLASSIFIERS

LIBRARY_CHOICES = {"classifier": tuple(CLASSIFIERS), "tail": tuple(TAILS), **CHOICES}
PROBES = [-1, 0, 1e-9, 0.01, 0.5, 1, 1.5, 2, 3, 4, 99.9, 100, 250]


def _explain_actions() -> dict[str, argparse.Action]:
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    return {a.dest: a for a in sub.choices["explain"]._actions}


def test_the_library_sets_are_the_documented_ones():
    # DESIGN.md's names, literally: a change to the library set must be deliberate.
    assert set(CLASSIFIERS) == {"mad", "mcd", "zscore", "percentile", "predicate"}
    assert tuple(TAILS) == ("high", "low", "both")
    assert MODES == ("refined", "minimal")
    assert CHOICES["ratio_metric"] == ("risk_ratio", "global_ratio", "prevalence_ratio")
    assert STORED_RATIO_METRICS == CHOICES["ratio_metric"]


def test_cli_offers_the_library_choices_and_defaults():
    actions = _explain_actions()
    for name, choices in LIBRARY_CHOICES.items():
        assert tuple(actions[name].choices) == choices, name
    assert list(actions["max_order"].choices) == list(range(1, MAX_ORDER + 1))
    assert actions["classifier"].default == BATCH_DEFAULTS.classifier
    assert actions["tail"].default == BATCH_DEFAULTS.tail
    for name in ("min_support", "min_ratio", "ratio_metric", "max_order", "mode", "max_p_value"):
        assert actions[name].default == getattr(DEFAULTS, name), name


def test_config_schema_offers_the_library_choices_and_defaults():
    classifier = ClassifierConfig.model_json_schema()["properties"]
    explainer = ExplainerConfig.model_json_schema()["properties"]
    assert tuple(classifier["type"]["enum"]) == LIBRARY_CHOICES["classifier"]
    assert tuple(classifier["tail"]["enum"]) == LIBRARY_CHOICES["tail"]
    for name in CHOICES:
        assert tuple(explainer[name]["enum"]) == CHOICES[name], name
    for name in ("min_support", "min_ratio", "ratio_metric", "max_order", "mode", "max_p_value"):
        assert explainer[name]["default"] == getattr(DEFAULTS, name), name
    assert ClassifierConfig().cutoff.percentile == DEFAULT_PERCENTILE


def test_openapi_offers_the_library_choices_defaults_and_bounds():
    params = {p["name"]: p["schema"] for p in
              openapi_document()["paths"][f"{API_PREFIX}/explain"]["post"]["parameters"]}
    for name, choices in LIBRARY_CHOICES.items():
        assert tuple(params[name]["enum"]) == choices, name
    for name, domain in [*DOMAINS.items(), ("percentile", PERCENTILE), ("score_cutoff", SCORE_CUTOFF)]:
        bounds = {k: v for k, v in params[name].items() if k != "default"}
        assert bounds == domain.json_schema(), name
    assert explain_defaults()["classifier"] == BATCH_DEFAULTS.classifier


# ------------------------------------------------------------------ the same verdict everywhere

def _library_accepts(name: str, value) -> bool:
    try:
        if name == "score_cutoff":
            MAD(cutoff={"score": value}).fit([1.0, 2.0, 3.0])
        elif name == "percentile":
            Percentile(percentile=value).fit([1.0, 2.0, 3.0])
        else:
            BatchExplainer(**{name: value}).validate()
    except (OperatorError, ValueError):
        return False
    return True


def _config_accepts(name: str, value) -> bool:
    pipe = {"name": "p", "source": {"type": "file", "path": "x.csv"},
            "schema": {"metrics": ["m"], "attributes": ["a"]}, "sink": {"type": "sqlite", "path": "r.db"}}
    if name == "score_cutoff":
        pipe["classifier"] = {"type": "mad", "cutoff": {"score": value}}
    elif name == "percentile":
        pipe["classifier"] = {"type": "percentile", "cutoff": {"percentile": value}}
    else:
        pipe["explainer"] = {name: value}
    try:
        parse_config({"pipelines": [pipe]}, "test")
    except ConfigError:
        return False
    return True


def _cli_accepts(name: str, value, tmp_path) -> bool:
    path = tmp_path / "rows.csv"
    path.write_text("m,a\n" + "".join(f"{i},{'x' if i % 3 else 'y'}\n" for i in range(30)))
    classifier = "percentile" if name == "percentile" else "mad"
    argv = ["explain", str(path), "--metric", "m", "--attributes", "a", "--classifier", classifier,
            f"--{name.replace('_', '-')}", str(value), "--format", "json"]
    with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
        try:
            return cli.main(argv) == 0
        except SystemExit:  # argparse's own checks (choices of --max-order)
            return False


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    return create_app(StoreSource(str(tmp_path_factory.mktemp("store") / "r.db"))).test_client()


def _api_accepts(client, name: str, value) -> bool:
    classifier = "percentile" if name == "percentile" else "mad"
    rows = [{"m": float(i), "a": "x" if i % 3 else "y"} for i in range(30)]
    r = client.post(f"{API_PREFIX}/explain?metric=m&attributes=a&classifier={classifier}&{name}={value}",
                    data=json.dumps(rows), content_type="application/json")
    assert r.status_code in (200, 400), r.get_data(as_text=True)
    if r.status_code == 400:
        assert r.get_json()["parameter"] == name
    return r.status_code == 200


@pytest.mark.parametrize("name", ["min_support", "min_ratio", "max_order", "max_p_value", "percentile",
                                  "score_cutoff"])
def test_every_front_end_accepts_exactly_what_the_library_accepts(name, api, tmp_path):
    for value in PROBES:
        verdict = _library_accepts(name, value)
        assert _config_accepts(name, value) == verdict, (name, value)
        assert _cli_accepts(name, value, tmp_path) == verdict, (name, value)
        assert _api_accepts(api, name, value) == verdict, (name, value)


def test_the_settled_cutoff_rule_a_score_cutoff_must_be_above_zero(api, tmp_path):
    """``--score-cutoff 0`` would flag every row on the anomalous side of the centre: the
    library, the CLI, the config and the API all refuse it, and all take 0.5."""
    rng = np.random.default_rng(0)
    for cls, x in ((MAD, rng.normal(size=50)), (ZScore, rng.normal(size=50)), (MCD, rng.normal(size=(50, 2)))):
        with pytest.raises(OperatorError, match=r"cutoff\['score'\] must be a number > 0"):
            cls(cutoff={"score": 0}).fit(x)
        assert cls(cutoff={"score": 0.5}).fit(x).predict(x).any()
    for accepts in (lambda v: _config_accepts("score_cutoff", v), lambda v: _cli_accepts("score_cutoff", v, tmp_path),
                    lambda v: _api_accepts(api, "score_cutoff", v)):
        assert not accepts(0) and accepts(0.5)


def test_streaming_and_batch_explainers_share_the_defaults():
    batch, streaming = BatchExplainer(), StreamingExplainer(["a"])
    for name in ("min_support", "min_ratio", "ratio_metric", "max_order", "mode", "max_p_value"):
        assert getattr(batch, name) == getattr(streaming, name) == getattr(DEFAULTS, name), name
