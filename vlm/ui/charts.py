"""Plotly figures for the dashboard: stacked capacity bars and utilization trends."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

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
    """A figure that is complete when its builder returns it, then only shown.

    The Dashboard keeps its figures until the next write and shows them again on every rerun;
    st.plotly_chart asks the figure for its dict each time, which plotly builds anew with a
    deep copy of every trace and a base64 pass over every array. This figure builds that dict
    once, on the first show, and hands the same one out after: change it only before that."""

    _finished: dict | None = None

    def to_dict(self) -> dict:
        if self._finished is None:
            self._finished = super().to_dict()
        return self._finished


def _layout(fig: go.Figure, title: str, height: int = 340) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 15}},
        barmode="stack",
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        legend={"orientation": "h", "y": -0.2},
        hovermode="x unified",
    )
    return fig


def _names(frame: pd.DataFrame, flag: pd.Series | None) -> list[str]:
    names = frame["name"].astype(str).tolist()
    if flag is None:
        return names
    return [f"⚠ {n}" if bool(f) else n for n, f in zip(names, flag.fillna(False), strict=True)]


def stack_figure(frame: pd.DataFrame, title: str, *, show_total: bool = True) -> go.Figure:
    """Available vs total, stacked: allocated / pooled unallocated / poolable / reserved outside.

    Bars whose deficit is above zero are over-committed: named with ⚠ and outlined in red.
    """
    deficit = frame["deficit"] if "deficit" in frame else pd.Series(0, index=frame.index)
    names = _names(frame, deficit > 0)
    fig = FinishedFigure()
    for column, label, color in STACK_SERIES:
        fig.add_bar(
            x=names,
            y=frame[column].fillna(0),
            name=label,
            marker={
                "color": color,
                "line": {
                    "color": [OVER_COMMITTED if d > 0 else color for d in deficit.fillna(0)],
                    "width": [3 if d > 0 else 0 for d in deficit.fillna(0)],
                },
            },
        )
    if show_total and "total" in frame:
        fig.add_scatter(
            x=names,
            y=frame["total"],
            name="Total",
            mode="markers",
            marker={"symbol": "line-ew-open", "size": 28, "color": "#222222"},
        )
    return _layout(fig, title)


def pool_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Per pool: allocated and still available of its quantity."""
    names = _names(frame, frame.get("over_committed"))
    fig = FinishedFigure()
    for column, label, color in POOL_SERIES:
        fig.add_bar(x=names, y=frame[column].fillna(0), name=label, marker={"color": color})
    return _layout(fig, title)


def _lines(frame: pd.DataFrame, series: tuple[tuple[str, str, str], ...], title: str) -> go.Figure:
    fig = FinishedFigure()
    for column, label, color in series:
        fig.add_scatter(
            x=frame["taken_at"],
            y=frame[column],
            name=label,
            mode="lines",
            line={"color": color, "shape": "hv", "width": 2},
        )
    fig = _layout(fig, title, height=320)
    fig.update_layout(barmode=None)
    return fig


def trend_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """Total / used / reserved over time (the snapshots, last value carried forward)."""
    return _lines(frame, TREND_SERIES, title)


def pool_trend_figure(frame: pd.DataFrame, title: str) -> go.Figure:
    """One pool's own quantity and allocated over time (never the server's figures)."""
    return _lines(frame, POOL_TREND_SERIES, title)
