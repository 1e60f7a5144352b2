"""Live dashboard (Plotly Dash) over the result store: ``attach`` it to a Flask server or ``create_app``."""

from dashboard.app import attach, create_app

__all__ = ["attach", "create_app"]
