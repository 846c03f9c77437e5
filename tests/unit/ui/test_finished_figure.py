"""A finished figure builds the dict st.plotly_chart asks for once, and it is the dict plotly
itself would build."""

from __future__ import annotations

import json

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio

from vlm.ui.charts import FinishedFigure, pool_figure, stack_figure, trend_figure


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "name": ["a", "b"],
            "allocated": [1, 2],
            "pooled_unallocated": [0, 1],
            "poolable": [3, 0],
            "reserved_outside": [0, 0],
            "available": [4, 1],
            "total": [4, 3],
            "deficit": [0, 1],
            "over_committed": [False, True],
        }
    )


def _trend() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "taken_at": pd.date_range("2026-01-01", periods=5, freq="h"),
            "total": [10, 10, 12, 12, 12],
            "used": [1, 2, 3, 2, 1],
            "reserved": [4, 4, 4, 5, 5],
        }
    )


def test_every_dashboard_figure_is_finished_and_its_dict_is_built_once():
    figures = [
        stack_figure(_frame(), "stack"),
        pool_figure(_frame(), "pools"),
        trend_figure(_trend(), "trend"),
    ]
    for figure in figures:
        assert isinstance(figure, FinishedFigure)
        first = figure.to_dict()
        assert figure.to_dict() is first


def test_the_finished_dict_is_what_plotly_would_send():
    finished = trend_figure(_trend(), "trend")
    plain = go.Figure(finished)
    assert type(plain) is go.Figure
    assert json.loads(pio.to_json(finished.to_dict(), validate=False)) == json.loads(
        pio.to_json(plain.to_dict(), validate=False)
    )
    # shown twice (st.plotly_chart converts the dict on every run): the same JSON both times
    assert pio.to_json(finished.to_dict(), validate=False) == pio.to_json(
        finished.to_dict(), validate=False
    )
