"""POST /api/v1/explain: max_p_value, and every explanation's p_value and ratio_ci."""
from __future__ import annotations

import pytest
from scipy.stats import fisher_exact

from macrobase.api import API_PREFIX, StoreSource, create_app
from macrobase.openapi import openapi_document
from macrobase.synthetic import planted_table

ATTRS = ["region", "firmware", "device_model", "carrier", "app_version", "device_id"]
EXPLAIN = f"{API_PREFIX}/explain?metric=power_drain&attributes={','.join(ATTRS)}&classifier=predicate" \
          "&predicate=%3E%3D%20150"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    return create_app(StoreSource(str(tmp_path_factory.mktemp("db") / "s.db"))).test_client()


@pytest.fixture(scope="module")
def rows():
    table, causes = planted_table(50_000, seed=0)  # one app version over-represented by chance
    return table.select(["power_drain", *ATTRS]).to_pylist(), causes


def test_max_p_value_filters_and_statistics_are_scipys(client, rows):
    data, causes = rows
    everything = client.post(EXPLAIN, json=data).get_json()
    kept = client.post(f"{EXPLAIN}&max_p_value=0.01", json=data).get_json()
    assert all(c in [e["attributes"] for e in kept["explanations"]] for c in causes)
    assert len(kept["explanations"]) < len(everything["explanations"])
    N, O = kept["total"], kept["outliers"]
    for e in everything["explanations"]:
        o, n = e["outlier_count"], e["count"]
        p = fisher_exact([[o, n - o], [O - o, N - n - O + o]], alternative="greater").pvalue
        assert e["p_value"] == pytest.approx(p, rel=1e-9)
        assert len(e["ratio_ci"]) == 2 and "implies" in e


@pytest.mark.parametrize("bad", ["0", "1.5", "abc"])
def test_bad_max_p_value_is_400_naming_it(client, rows, bad):
    r = client.post(f"{EXPLAIN}&max_p_value={bad}", json=rows[0][:10])
    assert r.status_code == 400 and r.get_json()["parameter"] == "max_p_value"


def test_openapi_describes_the_new_fields():
    doc = openapi_document()
    schema = doc["components"]["schemas"]["Explanation"]["properties"]
    assert {"p_value", "ratio_ci", "implies"} <= set(schema)
    params = [p["name"] for p in doc["paths"]["/api/v1/explain"]["post"]["parameters"]]
    assert "max_p_value" in params
