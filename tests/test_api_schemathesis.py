"""Property-based tests generated from the API's own OpenAPI document (schemathesis).

For every operation, schemathesis generates valid and invalid requests from the schema
and checks that the server never answers 5xx and that every response (status code,
content type, body) conforms to the document. The store behind the app holds a real
pipeline written by SqliteSink; each generated request for a pipeline route is replayed
with that pipeline's name, so the non-404 paths get random parameters too.

Hypothesis drives the strategies directly (``operation.as_strategy``) rather than through
schemathesis' pytest plugin, which does not support this pytest version.
"""
from __future__ import annotations

import pytest

import schemathesis  # noqa: E402

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis import GenerationMode  # noqa: E402

from macrobase.api import StoreSource, create_app  # noqa: E402
from macrobase.openapi import openapi_document  # noqa: E402
from macrobase.store import SqliteSink  # noqa: E402
from tests.test_api import TIMES, _document  # noqa: E402

OPERATIONS = [(method.upper(), path) for path, item in openapi_document()["paths"].items() for method in item]


def _takes_input(method: str, path: str) -> bool:
    op = openapi_document()["paths"][path][method.lower()]
    return bool(op.get("parameters") or op.get("requestBody") or "{" in path)


# An operation without parameters or body cannot receive invalid input: only valid runs.
CASES = [(m, p, mode) for m, p in OPERATIONS
         for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or _takes_input(m, p)]
EXAMPLES = {"POST": 150, "GET": 80}  # keeps the whole module well under a minute

# A well-formed request may still name columns its body lacks or a pipeline that does not
# exist; the API is right to answer 4xx there, so "valid data must be accepted" does not
# apply. Every other check runs: no 5xx, documented status codes, content types, headers
# and response schemas, and invalid data rejected.
EXCLUDED = [schemathesis.checks.positive_data_acceptance]


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("st") / "results.db")
    with SqliteSink(path) as sink:
        for step in range(len(TIMES)):
            sink.write(_document(step), dead_letters=[{"reason": "missing_metric", "raw": "{}", "offset": step}])
        sink.write_status({"pipeline": "telemetry", "state": "running", "events": 10, "consumer_lag": None})
        sink.write_status({"pipeline": "idle", "state": "starting"})
    app = create_app(StoreSource(path), max_body_bytes=64 * 1024)
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def assert_conforms(operation, mode, examples: int, pipeline: str) -> None:
    """Generated requests to ``operation`` never get a 5xx and match the document; each one
    naming a pipeline is replayed with ``pipeline``, so real results get random parameters."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        response = case.call_and_validate(excluded_checks=EXCLUDED)
        assert response.status_code < 500
        if "name" in (case.path_parameters or {}):
            case.path_parameters = {**case.path_parameters, "name": pipeline}
            assert case.call_and_validate(excluded_checks=EXCLUDED).status_code < 500

    check()


@pytest.mark.parametrize("method, path, mode", CASES,
                         ids=[f"{m} {p} {'valid' if mode is GenerationMode.POSITIVE else 'invalid'}"
                              for m, p, mode in CASES])
def test_api_conforms_to_its_openapi_document(api_schema, method, path, mode):
    assert_conforms(api_schema[path][method], mode, EXAMPLES[method], "telemetry")


# Rows the explain route can actually use: messy metric values (numbers, numeric text,
# junk, null, booleans, huge and non-finite numbers) and attribute values of several types,
# with every classifier. The answer must be 200 (or 422 when the classifier cannot fit
# these rows) and conform to the document, including strict JSON.
_metric = st.one_of(st.floats(allow_nan=False, allow_infinity=False),  # non-finite: as text below
                    st.integers(-10**20, 10**20),
                    st.sampled_from(["1.5", "", "abc", "inf", "NaN", "1e400"]), st.none(), st.booleans())
_attribute = st.one_of(st.sampled_from(["x", "y", "z"]), st.integers(0, 3), st.none(), st.booleans())
_rows = st.lists(st.fixed_dictionaries({"m": _metric, "m2": st.floats(-1e6, 1e6), "a": _attribute,
                                        "b": st.sampled_from(["p", "q"])}), max_size=60)
_params = st.one_of(
    st.builds(lambda p, t: {"classifier": "percentile", "percentile": p, "tail": t},
              st.floats(1, 100, exclude_max=True), st.sampled_from(["high", "low", "both"])),
    st.builds(lambda c, s: {"classifier": c, "score_cutoff": s}, st.sampled_from(["mad", "zscore"]),
              st.floats(0.1, 10)),
    st.builds(lambda op, v: {"classifier": "predicate", "predicate": f"{op} {v}"},
              st.sampled_from([">", ">=", "<", "<=", "==", "!="]), st.integers(-5, 5)),
    st.just({"classifier": "mcd", "metric": "m,m2", "percentile": 90}),
)


def test_explain_on_messy_rows_conforms(api_schema):
    operation = api_schema["/api/v1/explain"]["POST"]
    seen = []

    @given(rows=_rows, params=_params, mode=st.sampled_from(["refined", "minimal"]),
           ratio=st.sampled_from(["risk_ratio", "global_ratio", "prevalence_ratio"]), csv=st.booleans())
    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(rows, params, mode, ratio, csv):
        query = {"metric": "m", "attributes": "a,b", "min_support": 0.1, "min_ratio": 1.5, "mode": mode,
                 "ratio_metric": ratio, **params}
        if csv:
            text = "m,m2,a,b\n" + "".join(
                ",".join("" if v is None else str(v) for v in (r["m"], r["m2"], r["a"], r["b"])) + "\n" for r in rows)
            case = operation.Case(query=query, body=text, media_type="text/csv")
        else:
            case = operation.Case(query=query, body=rows, media_type="application/json")
        response = case.call_and_validate(excluded_checks=EXCLUDED)
        assert response.status_code in (200, 422), response.text
        seen.append(response.status_code)
        if response.status_code == 200:
            doc = response.json()
            assert doc["total"] + doc["dropped"] == len(rows)
            assert "Infinity" not in response.text and "NaN" not in response.text

    check()
    assert seen.count(200) > len(seen) // 2, seen  # the test explains, not just refuses
