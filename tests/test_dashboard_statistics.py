"""The dashboard's explanation table shows p-values, intervals and implied items."""
from __future__ import annotations

from dashboard import figures as F
from dashboard.layout import build_layout


def doc(*items):
    return {"total": 1000, "outliers": 50, "explanations": list(items)}


def test_rows_show_p_value_interval_and_implies():
    rows = F.explanation_rows(doc(
        {"attributes": {"carrier": "HA", "hour": 9}, "support": 0.4, "risk_ratio": 12.5, "outlier_count": 20,
         "count": 40, "p_value": 3.2e-12, "ratio_ci": [7.25, 21.5], "implies": {"origin": "JFK", "dest": "HNL"}},
        {"attributes": {"a": "x"}, "support": 0.2, "risk_ratio": "inf", "outlier_count": 10, "count": 10,
         "p_value": 0.0, "ratio_ci": [30.0, "inf"], "implies": {}},
        {"attributes": {"b": "y"}, "support": 0.1, "risk_ratio": 4.0, "outlier_count": 5, "count": 30},
    ))
    assert [r["p_value"] for r in rows] == ["3.2e-12", "< 1e-300", "—"]
    assert [r["ratio_ci"] for r in rows] == ["7.2–21.5×", "30.0–∞", "—"]
    assert "(these rows all also have origin=JFK, dest=HNL)" in rows[0]["explanation"]


def test_sorting_by_p_value_puts_documents_without_one_last():
    rows = F.explanation_rows(doc(
        {"attributes": {"b": "y"}, "support": 0.1, "risk_ratio": 4.0, "outlier_count": 5, "count": 30},
        {"attributes": {"a": "x"}, "support": 0.2, "risk_ratio": 5.0, "outlier_count": 10, "count": 20,
         "p_value": 0.01, "ratio_ci": [2.0, 9.0]},
        {"attributes": {"c": "z"}, "support": 0.2, "risk_ratio": 5.0, "outlier_count": 10, "count": 20,
         "p_value": 1e-5, "ratio_ci": [2.0, 9.0]},
    ), sort_by=[{"column_id": "p_value", "direction": "asc"}])
    assert [r["id"] for r in rows] == [F.canonical_attributes(a) for a in ({"c": "z"}, {"a": "x"}, {"b": "y"})]


def test_the_table_has_the_statistics_columns():
    def find(node):
        if getattr(node, "id", None) == "explanations-table":
            return node
        children = getattr(node, "children", None)
        for child in children if isinstance(children, (list, tuple)) else [children]:
            if child is not None and not isinstance(child, (str, int, float)) and (hit := find(child)) is not None:
                return hit
        return None
    columns = [c["id"] for c in find(build_layout()).columns]
    assert {"ratio_ci", "p_value"} <= set(columns)
