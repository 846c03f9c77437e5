"""The dashboard's figures are handed to st.plotly_chart as finished dicts, written without
plotly's per-property validation: each must be exactly what plotly's own validated figure gives."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from vlm.ui.charts import FinishedFigure, pool_figure, pool_trend_figure, stack_figure, trend_figure


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["a", "b", "c"],
            "allocated": pd.array([1, 2, None], dtype="Int32"),
            "pooled_unallocated": np.array([0, 1, 2], dtype="int32"),
            "poolable": [3.0, 0.0, float("nan")],
            "reserved_outside": [0, 0, 5],
            "available": [4, 1, 0],
            "quantity": [5, 3, 0],
            "total": [4, 3, None],
            "deficit": [0, 1, None],
            "over_committed": [False, True, None],
        }
    )


def _trend(zone: str | None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "taken_at": pd.date_range("2026-01-01", periods=5, freq="h", tz=zone),
            "total": [10, 10, 12, 12, 12],
            "used": [1, 2, 3, 2, 1],
            "reserved": [4, 4, 4, 5, 5],
            "quantity": [5, 5, 5, 6, 6],
            "allocated": [0, 1, 1, 2, 2],
        }
    )


FIGURES = {
    "stack": lambda: stack_figure(_frame(), "stack"),
    "stack without total": lambda: stack_figure(_frame(), "servers", show_total=False),
    "stack without deficit": lambda: stack_figure(_frame().drop(columns="deficit"), "s"),
    "pools": lambda: pool_figure(_frame(), "pools"),
    "trend": lambda: trend_figure(_trend(None), "trend"),
    "trend in a zone": lambda: trend_figure(_trend("Europe/Berlin"), "trend"),
    "pool trend": lambda: pool_trend_figure(_trend("America/New_York"), "pool trend"),
}


@pytest.mark.parametrize("name", list(FIGURES))
def test_the_finished_dict_is_what_plotly_itself_would_send(name: str) -> None:
    finished = FIGURES[name]()
    assert isinstance(finished, FinishedFigure)
    validated = go.Figure(finished.to_dict())
    ours = pio.to_json(finished.to_dict(), validate=False)
    assert json.loads(ours) == json.loads(pio.to_json(validated.to_dict(), validate=False))


def test_the_template_is_the_current_default_one() -> None:
    previous = pio.templates.default
    try:
        pio.templates.default = "plotly_dark"
        dark = stack_figure(_frame(), "dark").to_dict()["layout"]["template"]
        pio.templates.default = "simple_white"
        white = stack_figure(_frame(), "white").to_dict()["layout"]["template"]
    finally:
        pio.templates.default = previous
    assert dark == go.Figure(layout={"template": "plotly_dark"}).to_dict()["layout"]["template"]
    assert white != dark


def test_an_over_committed_bar_is_named_and_outlined() -> None:
    bars = stack_figure(_frame(), "stack").to_dict()["data"]
    assert bars[0]["x"] == ["a", "⚠ b", "c"]
    assert bars[0]["marker"]["line"] == {
        "color": ["#1f6fb2", "#d62728", "#1f6fb2"],
        "width": [0, 3, 0],
    }


def test_shown_twice_it_is_the_same_json() -> None:
    finished = trend_figure(_trend("Europe/Berlin"), "trend")
    assert finished.to_dict() is finished.to_dict()
    assert pio.to_json(finished.to_dict(), validate=False) == pio.to_json(
        finished.to_dict(), validate=False
    )
