"""The page: header with pipeline selector and status, KPI cards, charts, explanations, dead letters.

Every component that a callback fills starts in a friendly empty state, so the first paint
(before the first one-second tick) already reads well.
"""

from __future__ import annotations

from dash import dash_table, dcc, html

from dashboard.figures import FONT, INK, MUTED, empty_figure

__all__ = ["build_layout", "REFRESH_MS"]

#: How often the page polls the store for a new snapshot.
REFRESH_MS = 1000

# No mode bar: drag to zoom and double-click to reset still work, and the panels stay uncluttered.
_GRAPH_CONFIG = {"displayModeBar": False, "displaylogo": False}
# A fixed pixel height: a graph first drawn inside a hidden container (before the first
# pipeline exists) would otherwise keep a collapsed height.
_GRAPH_STYLE = {"height": "250px"}

_TABLE_STYLE = dict(
    style_as_list_view=True,
    style_table={"overflowX": "auto"},
    style_header={"backgroundColor": "#f5f7fa", "fontWeight": 600, "color": MUTED, "border": "none",
                  "borderBottom": "1px solid #d9dee5", "fontSize": "12px", "textTransform": "uppercase",
                  "letterSpacing": "0.03em"},
    style_cell={"fontFamily": FONT, "fontSize": "13px", "color": INK, "padding": "6px 10px",
                "border": "none", "borderBottom": "1px solid #eef1f4", "textAlign": "left",
                "backgroundColor": "transparent"},
)


def _kpi(key: str, title: str) -> html.Div:
    return html.Div(className="kpi", children=[
        html.Div(title, className="kpi-title"),
        html.Div("—", id=f"kpi-{key}", className="kpi-value"),
        html.Div("", id=f"kpi-{key}-note", className="kpi-note"),
    ])


def _panel(title: str, *children, extra=None, class_name: str = "") -> html.Div:
    head = [html.H2(title)]
    if extra is not None:
        head.append(extra)
    return html.Div(className=f"panel {class_name}".strip(), children=[html.Div(head, className="panel-head"), *children])


def _explanations_panel() -> html.Div:
    filters = html.Div(className="filters", children=[
        html.Label(["order", dcc.Checklist(id="filter-order", options=[{"label": f" {k}", "value": k} for k in (1, 2, 3)],
                                           value=[1, 2, 3], inline=True, className="order-checklist")]),
        html.Label(["min support %", dcc.Input(id="filter-support", type="number", min=0, max=100, step=1,
                                               value=0, debounce=True, className="num-input")]),
        html.Label(["min ratio", dcc.Input(id="filter-ratio", type="number", min=0, step=0.5, value=0,
                                           debounce=True, className="num-input")]),
    ])
    table = dash_table.DataTable(
        id="explanations-table",
        columns=[
            {"name": "Explanation", "id": "explanation"},
            {"name": "Order", "id": "order"},
            {"name": "Ratio", "id": "ratio"},
            {"name": "95% CI", "id": "ratio_ci"},
            {"name": "p-value", "id": "p_value"},
            {"name": "Support", "id": "support"},
            {"name": "Outliers", "id": "outliers"},
            {"name": "Events", "id": "count"},
            {"name": "Since", "id": "since"},
            {"name": "Status", "id": "status"},
        ],
        data=[],
        row_selectable="single",
        selected_rows=[],
        sort_action="custom",
        sort_mode="single",
        sort_by=[],
        page_action="none",
        cell_selectable=True,
        style_cell_conditional=[
            {"if": {"column_id": "explanation"}, "whiteSpace": "normal", "minWidth": "300px", "width": "40%"},
            *({"if": {"column_id": c}, "textAlign": "right", "width": "7.5%", "minWidth": "64px"}
              for c in ("order", "ratio", "ratio_ci", "p_value", "support", "outliers", "count")),
            {"if": {"column_id": "since"}, "whiteSpace": "nowrap", "minWidth": "130px"},
        ],
        style_data_conditional=[
            # A resolved explanation is shown once, greyed, its status as a badge.
            {"if": {"filter_query": '{status} = "resolved"'}, "color": "#7b8794", "fontStyle": "italic"},
            {"if": {"filter_query": '{status} = "resolved"', "column_id": "status"},
             "backgroundColor": "#7b8794", "color": "white", "fontWeight": 700, "fontStyle": "normal",
             "borderRadius": "999px", "textAlign": "center"},
            {"if": {"filter_query": '{status} = "new"', "column_id": "status"}, "color": "#1f7a4d", "fontWeight": 700},
            {"if": {"state": "selected"}, "backgroundColor": "rgba(49,102,212,0.08)", "border": "none",
             "borderBottom": "1px solid #eef1f4"},
            {"if": {"state": "active"}, "backgroundColor": "rgba(49,102,212,0.12)", "border": "none",
             "borderBottom": "1px solid #eef1f4"},
        ],
        style_table={"maxHeight": "290px", "overflowY": "auto"},
        **{k: v for k, v in _TABLE_STYLE.items() if k != "style_table"},
    )
    return _panel(
        "Explanations", html.Div(id="explanations-summary", className="summary"), filters,
        html.Div(id="explanations-empty", className="empty", children="No explanations yet."),
        html.Div(table, id="explanations-table-wrap", style={"display": "none"}),
        extra=html.Span("select a row to follow it over time", className="hint"),
        class_name="span-7",
    )


def build_layout() -> html.Div:
    """The whole page; ids are the callbacks' contract (see dashboard.callbacks)."""
    header = html.Header(className="topbar", children=[
        html.Div(className="brand", children=[html.Span("MacroBase", className="brand-name"),
                                              html.Span("live anomaly explanations", className="brand-sub")]),
        html.Div(className="pipeline-picker", children=[
            html.Label("pipeline", htmlFor="pipeline-select"),
            dcc.Dropdown(id="pipeline-select", options=[], value=None, clearable=False, searchable=True,
                         placeholder="no pipelines yet", className="pipeline-dropdown"),
        ]),
        html.Span("waiting", id="status-badge", className="badge badge-unknown", title=""),
        html.Span("", id="freshness", className="freshness"),
    ])
    empty = html.Div(id="no-pipelines", className="empty-page", children=[
        html.H2("No pipelines yet"),
        html.P(["Start one with ", html.Code("macrobase run CONFIG.yaml"), " or ", html.Code("make demo"),
                "; this page picks it up by itself within a second."]),
    ])
    main = html.Main(id="main", style={"display": "none"}, children=[
        html.Div(className="kpis", children=[
            _kpi("eps", "Events / s"), _kpi("outlier-rate", "Outlier rate"),
            _kpi("lag", "Consumer lag"), _kpi("dead", "Dead letters"),
        ]),
        html.Div(className="grid", children=[
            _panel("Throughput and outlier rate",
                   dcc.Graph(id="history-graph", figure=empty_figure("Waiting for the first snapshot…", 250),
                             config=_GRAPH_CONFIG, style=_GRAPH_STYLE), class_name="span-7"),
            _panel("Metric distribution",
                   dcc.Graph(id="distribution-graph", figure=empty_figure("No metric distribution reported yet", 250),
                             config=_GRAPH_CONFIG, style=_GRAPH_STYLE),
                   extra=dcc.Dropdown(id="metric-select", options=[], value=None, clearable=False, placeholder="metric",
                                      searchable=False, className="metric-dropdown"),
                   class_name="span-5"),
            _explanations_panel(),
            _panel("Selected explanation over time",
                   dcc.Graph(id="series-graph", figure=empty_figure(
                       "Select an explanation in the table to follow its ratio and support", 250),
                       config=_GRAPH_CONFIG, style=_GRAPH_STYLE),
                   class_name="span-5"),
            _panel("Latest dead letters", html.Div(id="dead-empty", className="empty", children="No dead letters."),
                   html.Div(dash_table.DataTable(
                       id="dead-table",
                       columns=[{"name": "Received", "id": "received_at"}, {"name": "Reason", "id": "reason"},
                                {"name": "Detail", "id": "detail"}, {"name": "Partition@offset", "id": "where"},
                                {"name": "Raw message", "id": "raw"}],
                       data=[], page_action="none", cell_selectable=False,
                       style_cell_conditional=[{"if": {"column_id": "raw"}, "fontFamily": "ui-monospace, monospace",
                                                "fontSize": "12px", "whiteSpace": "normal", "wordBreak": "break-all"},
                                               {"if": {"column_id": "received_at"}, "width": "110px"}],
                       style_table={"maxHeight": "220px", "overflowY": "auto"},
                       **{k: v for k, v in _TABLE_STYLE.items() if k != "style_table"},
                   ), id="dead-table-wrap", style={"display": "none"}),
                   class_name="span-12"),
        ]),
    ])
    stores = [
        dcc.Interval(id="tick", interval=REFRESH_MS, n_intervals=0),
        dcc.Store(id="version"),          # what changed: newest snapshot / status / dead letter of the pipeline
        dcc.Store(id="selected"),         # canonical attributes JSON of the followed explanation
        dcc.Store(id="fp-kpis"), dcc.Store(id="fp-history"), dcc.Store(id="fp-distribution"),
        dcc.Store(id="fp-table"), dcc.Store(id="fp-series"), dcc.Store(id="fp-dead"),
    ]
    return html.Div(className="page", children=[header, empty, main, *stores])
