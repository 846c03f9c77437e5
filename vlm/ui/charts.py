"""Plotly figures for the dashboard: stacked capacity bars and utilization trends."""

from __future__ import annotations

import functools

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
from _plotly_utils.basevalidators import copy_to_readonly_numpy_array
from _plotly_utils.utils import convert_to_base64

STACK_SERIES = (
    ("allocated", "Allocated", "#1f6fb2"),
    ("pooled_unallocated", "Pooled, not allocated", "#8cc3ea"),
    ("poolable", "Still poolable", "#59a14f"),
    ("reserved_outside", "Reserved outside VLM", "#b0b0b0"),
)
POOL_SERIES = (
    ("allocated", "Allocated", "#1f6fb2"),
    ("available", "Available in pool", "#8cc3ea"),
)
TREND_SERIES = (
    ("total", "Total", "#444444"),
    ("used", "Used", "#e15759"),
    ("reserved", "Reserved", "#1f6fb2"),
)
POOL_TREND_SERIES = (
    ("quantity", "Pool quantity", "#444444"),
    ("allocated", "Allocated", "#1f6fb2"),
)
OVER_COMMITTED = "#d62728"


class FinishedFigure(go.Figure):
    """A figure handed to st.plotly_chart as the finished dict plotly would build for it.

    Building the traces as plotly objects validates every property, and st.plotly_chart then
    asks for the dict, which plotly builds with a deep copy of every trace: about 30 ms for one
    stacked chart of 50 bars, on every first render of the Dashboard. The builders below write
    that dict themselves (arrays converted and base64-packed as plotly does, the default
    template added as plotly adds it), and tests check it is what plotly's validated figure
    gives. Only to_dict is served: the figure has no traces of its own."""

    def __init__(self, data: list[dict], layout: dict) -> None:
        super().__init__()
        convert_to_base64(data)
        self._finished = {"data": data, "layout": {**layout, "template": _default_template()}}

    def to_dict(self) -> dict:
        return self._finished


def _default_template() -> dict:
    """The current default template as plotly puts it into every figure's layout."""
    return _template_named(pio.templates.default)


@functools.cache
def _template_named(name: str) -> dict:
    return go.Figure(layout={"template": name}).to_dict()["layout"]["template"]


def _array(values: pd.Series) -> object:
    """A column as plotly's data-array properties hold it (a read-only numpy array)."""
    return copy_to_readonly_numpy_array(values)


def _layout(title: str, height: int = 340, *, stacked: bool = True) -> dict:
    layout = {
        "title": {"text": title, "x": 0, "font": {"size": 15}},
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 50, "b": 10},
        "legend": {"orientation": "h", "y": -0.2},
        "hovermode": "x unified",
    }
    return {**layout, "barmode": "stack"} if stacked else layout


def _names(frame: pd.DataFrame, flag: pd.Series | None) -> list[str]:
    names = frame["name"].astype(str).tolist()
    if flag is None:
        return names
    return [f"⚠ {n}" if bool(f) else n for n, f in zip(names, flag.fillna(False), strict=True)]


def _bar(names: list[str], values: pd.Series, label: str, marker: dict) -> dict:
    return {
        "type": "bar",
        "x": names,
        "y": _array(values.fillna(0)),
        "name": label,
        "marker": marker,
    }


def stack_figure(frame: pd.DataFrame, title: str, *, show_total: bool = True) -> go.Figure:
    """Available vs total, stacked: allocated / pooled unallocated / poolable / reserved outside.

    Bars whose deficit is above zero are over-committed: named with ⚠ and outlined in red.
    """
    deficit = frame["deficit"] if "deficit" in frame else pd.Series(0, index=frame.index)
    names = _names(frame, deficit > 0)
    over = [d > 0 for d in deficit.fillna(0)]
    widths = [3 if o else 0 for o in over]
    data = [
        _bar(
            names,
            frame[column],
            label,
            {
                "color": color,
                "line": {"color": [OVER_COMMITTED if o else color for o in over], "width": widths},
            },
        )
        for column, label, color in STACK_SERIES
    ]
    if show_total and "total" in frame:
        data.append(
            {
                "type": "scatter",
                "x": names,
                "y": _array(frame["total"]),
                "name": "Total",
                "mode": "markers",
                "marker": {"symbol": "line-ew-open", "size": 28, "color": "#222222"},
            }
        )
    return FinishedFigure(data, _layout(title))


def pool_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Per pool: allocated and still available of its quantity."""
    names = _names(frame, frame.get("over_committed"))
    data = [
        _bar(names, frame[column], label, {"color": color}) for column, label, color in POOL_SERIES
    ]
    return FinishedFigure(data, _layout(title))


def _lines(frame: pd.DataFrame, series: tuple[tuple[str, str, str], ...], title: str) -> go.Figure:
    taken_at = _array(frame["taken_at"])
    data = [
        {
            "type": "scatter",
            "x": taken_at,
            "y": _array(frame[column]),
            "name": label,
            "mode": "lines",
            "line": {"color": color, "shape": "hv", "width": 2},
        }
        for column, label, color in series
    ]
    return FinishedFigure(data, _layout(title, height=320, stacked=False))


def trend_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Total / used / reserved over time (the snapshots, last value carried forward)."""
    return _lines(frame, TREND_SERIES, title)


def pool_trend_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """One pool's own quantity and allocated over time (never the server's figures)."""
    return _lines(frame, POOL_TREND_SERIES, title)
