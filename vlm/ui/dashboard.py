"""Dashboard sections, scoped by role: KPI tiles, capacity stacks, over-commitment, trends."""

from __future__ import annotations

from collections.abc import Callable, Hashable
from datetime import datetime
from typing import TypeVar

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from vlm.domain import Role
from vlm.services import pools, reports, servers
from vlm.ui.charts import pool_figure, pool_trend_figure, stack_figure, trend_figure
from vlm.ui.license_kinds import totals_note
from vlm.ui.local_time import now_for_user, user_zone, zone_label
from vlm.ui.memo import per_generation
from vlm.ui.pool_forms import pool_table_config, with_grid_links
from vlm.ui.session import PageContext, recheck
from vlm.ui.widgets import in_user_time, table_with_download

T = TypeVar("T")
REFRESH_SECONDS = 15
POOL_BARS = 50
VLM_BARS = 50
TREND_DAYS = {"24 hours": 1, "7 days": 7, "30 days": 30, "90 days": 90}


def _tiles(figures: list[tuple[str, object, str | None]]) -> None:
    columns = st.columns(len(figures))
    for column, (label, value, help_text) in zip(columns, figures, strict=True):
        column.metric(label, value, help=help_text, border=True)


def _idle_tile(k: dict[str, int]) -> tuple[str, object, str | None]:
    return (
        "Reserved, idle",
        k["idle_seats"],
        f"seats reserved on a license server whose holder has not used them for "
        f"{k['idle_days']} days (see Idle licenses)",
    )


def kpi_tiles(page: PageContext) -> None:
    k = per_generation(page, "dashboard: kpis", lambda: reports.kpis(page.ctx, page.actor))
    if page.actor.role is Role.MANAGER:
        _tiles(
            [
                ("My pools", k["pools"], None),
                ("Licenses in my pools", k["pool_quantity"], None),
                ("Allocated", k["allocated"], None),
                _idle_tile(k),
                ("Available", k["pool_available"], "quantity − allocated"),
                ("Pending", k["pending"], "allocations not yet on the license server"),
                ("Failed", k["failed"], "allocations the license server refused"),
            ]
        )
        return
    _tiles(
        [
            ("License servers", k["servers"], f"{k['servers_in_error']} in error"),
            (
                "Licenses (total)",
                k["total"],
                "counted concurrent licenses of every server (metered and uncounted features "
                "are listed apart)",
            ),
            ("In use", k["used"], "counted concurrent licenses checked out right now"),
            _idle_tile(k),
            ("Pooled", k["pooled"], "given to virtual pools"),
            ("Still poolable", k["poolable"], "total − reserved outside VLM − pooled"),
            ("Allocated", k["allocated"], f"{k['pending']} pending, {k['failed']} failed"),
        ]
    )
    totals_note(k)
    if k["over_committed"] or k["servers_in_error"]:
        problems = []
        if k["over_committed"]:
            problems.append(f"{k['over_committed']} over-committed server feature(s)")
        if k["servers_in_error"]:
            problems.append(f"{k['servers_in_error']} license server(s) in error")
        st.error("Attention: " + " and ".join(problems) + ".", icon=":material/warning:")


def _highlight_deficit(frame: pd.DataFrame):  # noqa: ANN202 - pandas Styler
    return frame.style.apply(
        lambda row: ["background-color: #f8d7da" if row["deficit"] > 0 else "" for _ in row],
        axis=1,
    )


def pool_chart(frame: pd.DataFrame, title: str) -> go.Figure:
    """Per pool, allocated and available; beyond POOL_BARS pools, the ones with most allocated
    (a chart of thousands of bars shows nothing; the All Pools page lists every pool)."""
    if len(frame) > POOL_BARS:
        title = f"{title}: the {POOL_BARS} with most allocated, of {len(frame):,}"
        frame = frame.nlargest(POOL_BARS, "allocated", keep="first")
    return pool_figure(frame, title)


def vlm_chart(frame: pd.DataFrame, title: str) -> go.Figure:
    """Per VLM, the stacked capacity; beyond VLM_BARS VLMs, the over-committed ones first, then
    the largest (the Virtual LMs page lists every VLM)."""
    if len(frame) > VLM_BARS:
        title = f"{title}: {VLM_BARS} of {len(frame):,}, over-committed and largest first"
        ranked = frame.assign(_deficit=frame["deficit"].fillna(0), _total=frame["total"].fillna(0))
        frame = ranked.sort_values(["_deficit", "_total"], ascending=False, kind="stable").head(
            VLM_BARS
        )
    return stack_figure(frame, title)


def _estate_figures(page: PageContext) -> tuple[go.Figure, go.Figure, go.Figure, pd.DataFrame]:
    ctx, actor = page.ctx, page.actor
    return (
        stack_figure(
            reports.server_stack(ctx, actor),
            "Per license server (counted concurrent features)",
            show_total=False,
        ),
        vlm_chart(reports.vlm_stack(ctx, actor), "Per virtual license manager"),
        pool_chart(reports.pool_stack(ctx, actor), "Per virtual pool"),
        reports.over_committed(ctx, actor),
    )


def estate_charts(page: PageContext) -> None:
    servers_chart, vlms_chart, pools_chart, over = per_generation(
        page, "dashboard: estate charts", lambda: _estate_figures(page)
    )
    left, right = st.columns(2)
    left.plotly_chart(servers_chart, key="chart_servers")
    right.plotly_chart(vlms_chart, key="chart_vlms")
    st.plotly_chart(pools_chart, key="chart_pools")
    st.subheader("Over-committed features")
    if over.empty:
        st.success("No server feature is over-committed.", icon=":material/check_circle:")
    else:
        st.error(
            f"{len(over)} server feature(s) have less licenses than their pools hold. Nothing was "
            "deleted; new allocations on them are refused until an admin lowers the pools.",
            icon=":material/warning:",
        )
        table_with_download(over, "over-committed features", styler=_highlight_deficit)


def _manager_figures(page: PageContext) -> tuple[go.Figure | None, pd.DataFrame]:
    pool_frame = reports.pool_stack(page.ctx, page.actor)
    if pool_frame.empty:
        return None, pool_frame
    features = pools.pool_features(page.ctx, page.actor)
    return pool_chart(pool_frame, "My pools"), with_grid_links(features, pool_column="pool_id")


def manager_charts(page: PageContext) -> None:
    chart, features = per_generation(
        page, "dashboard: manager charts", lambda: _manager_figures(page)
    )
    if chart is None:
        st.info("You do not manage any pool yet. An admin assigns pools to managers.")
        return
    st.plotly_chart(chart, key="chart_pools")
    over = features[features["over_committed"]]
    if not over.empty:
        st.error(
            f"{len(over)} pool feature(s) are over-committed on their license server; new "
            "allocations of them are refused until an admin resolves it.",
            icon=":material/warning:",
        )
    table_with_download(
        features,
        "pool features",
        key="dash_pool_features",
        column_order=[
            "pool_name",
            "vlm_name",
            "feature_name",
            "feature_version",
            "allocations_link",
            "allocated_share",
            "quantity",
            "allocated",
            "available",
            "pending",
            "failed",
            "over_committed",
        ],
        column_config=pool_table_config(),
    )


def _pool_labels(page: PageContext) -> dict[int, str]:
    frame = pools.list_pools(page.ctx, page.actor)
    return dict(zip(frame["id"], frame["vlm_name"] + " / " + frame["name"], strict=True))


def _server_labels(page: PageContext) -> dict[int, str]:
    return {0: "All license servers", **servers.server_names(page.ctx, page.actor)}


def _trend_memo(page: PageContext, name: str, compute: Callable[[], T], *extra: Hashable) -> T:
    """A trend's frame and figure until the next write or the next minute (its window's end),
    in the user's zone."""
    minute = datetime.now().replace(second=0, microsecond=0)
    return per_generation(page, name, compute, *extra, minute, zone_label(user_zone()))


def _trend_target(page: PageContext) -> tuple[str, int | None]:
    """Which trend to draw: all servers, one server, or (managers) one pool."""
    if page.actor.role is Role.MANAGER:
        labels = per_generation(page, "dashboard: trend pools", lambda: _pool_labels(page))
        if not labels:
            return "pool", None
        pool_id = st.selectbox("Pool", list(labels), format_func=labels.get, key="trend_pool")
        return "pool", int(pool_id)
    labels = per_generation(page, "dashboard: trend servers", lambda: _server_labels(page))
    server_id = st.selectbox(
        "License server", list(labels), format_func=labels.get, key="trend_server"
    )
    return "server", int(server_id) or None


def _pool_trend(page: PageContext, pool_id: int, days: int, span: str) -> None:
    """A pool's own quantity and allocated: never the server's total or usage (other teams')."""

    def draw() -> tuple[pd.DataFrame, go.Figure | None]:
        frame = reports.pool_trend(page.ctx, page.actor, pool_id, days=days)
        if frame.empty:
            return frame, None
        return frame, pool_trend_figure(
            in_user_time(frame), f"Pool quantity and allocated, last {span}"
        )

    frame, figure = _trend_memo(page, "dashboard: pool trend", draw, pool_id, days)
    if figure is None:
        st.info("This pool has no history in this period yet.")
        return
    st.plotly_chart(figure, key="chart_pool_trend")
    st.caption(
        "The pool's quantity and the licenses allocated in it, from the change history. "
        "Usage per host id is not recorded by the inventory, so licenses in use are not shown "
        "per pool."
    )
    with st.expander("Trend data"):
        table_with_download(frame, "pool trend", key="trend_table")


def _server_trend(page: PageContext, server_id: int | None, days: int, span: str) -> None:

    def draw() -> tuple[pd.DataFrame, go.Figure | None]:
        frame = reports.server_trend(page.ctx, page.actor, server_id, days=days)
        if frame.empty or frame["total"].isna().all():
            return frame, None
        title = f"Licenses over the last {span} ({zone_label(user_zone())})"
        return frame, trend_figure(in_user_time(frame), title)

    frame, figure = _trend_memo(page, "dashboard: server trend", draw, server_id, days)
    if figure is None:
        st.info("No utilization snapshots yet; they are recorded at every inventory sync.")
        return
    st.plotly_chart(figure, key="chart_trend")
    with st.expander("Trend data"):
        table_with_download(frame, "utilization trend", key="trend_table")


def trend(page: PageContext) -> None:
    st.subheader("Utilization trend")
    target_col, days_col = st.columns([3, 2])
    with target_col:
        kind, target = _trend_target(page)
    span = days_col.segmented_control(
        "Period", list(TREND_DAYS), default="7 days", key="trend_days", required=True
    )
    span = span or "7 days"
    if kind == "server":
        _server_trend(page, target, TREND_DAYS[span], span)
    elif target is not None:
        _pool_trend(page, target, TREND_DAYS[span], span)


def render(page: PageContext) -> None:
    """The whole dashboard, re-drawn every REFRESH_SECONDS."""
    recheck(page)
    st.caption(
        f"Updated {now_for_user():%H:%M:%S} {zone_label(user_zone())} · "
        f"refreshes every {REFRESH_SECONDS} s · "
        "scoped to what your role may see"
    )
    kpi_tiles(page)
    if page.actor.role is Role.MANAGER:
        manager_charts(page)
    else:
        estate_charts(page)
    trend(page)


def render_live(page: PageContext) -> None:
    st.fragment(run_every=REFRESH_SECONDS)(render)(page)
