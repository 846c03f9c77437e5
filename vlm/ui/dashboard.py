"""Dashboard sections, scoped by role: KPI tiles, capacity stacks, over-commitment, trends."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vlm.domain import Role
from vlm.services import pools, reports, servers
from vlm.ui.charts import pool_figure, pool_trend_figure, stack_figure, trend_figure
from vlm.ui.license_kinds import totals_note
from vlm.ui.local_time import now_for_user, user_zone, zone_label
from vlm.ui.pool_forms import pool_table_config, with_grid_links
from vlm.ui.session import PageContext, recheck
from vlm.ui.widgets import in_user_time, table_with_download

REFRESH_SECONDS = 15
TREND_DAYS = {"24 hours": 1, "7 days": 7, "30 days": 30, "90 days": 90}


def _tiles(figures: list[tuple[str, object, str | None]]) -> None:
    columns = st.columns(len(figures))
    for column, (label, value, help_text) in zip(columns, figures, strict=True):
        column.metric(label, value, help=help_text, border=True)


def kpi_tiles(page: PageContext) -> None:
    k = reports.kpis(page.ctx, page.actor)
    if page.actor.role is Role.MANAGER:
        _tiles(
            [
                ("My pools", k["pools"], None),
                ("Licenses in my pools", k["pool_quantity"], None),
                ("Allocated", k["allocated"], None),
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


def estate_charts(page: PageContext) -> None:
    ctx, actor = page.ctx, page.actor
    left, right = st.columns(2)
    server_frame = reports.server_stack(ctx, actor)
    left.plotly_chart(
        stack_figure(
            server_frame, "Per license server (counted concurrent features)", show_total=False
        ),
        key="chart_servers",
    )
    vlm_frame = reports.vlm_stack(ctx, actor)
    right.plotly_chart(stack_figure(vlm_frame, "Per virtual license manager"), key="chart_vlms")
    pool_frame = reports.pool_stack(ctx, actor)
    st.plotly_chart(pool_figure(pool_frame, "Per virtual pool"), key="chart_pools")
    st.subheader("Over-committed features")
    over = reports.over_committed(ctx, actor)
    if over.empty:
        st.success("No server feature is over-committed.", icon=":material/check_circle:")
    else:
        st.error(
            f"{len(over)} server feature(s) have less licenses than their pools hold. Nothing was "
            "deleted; new allocations on them are refused until an admin lowers the pools.",
            icon=":material/warning:",
        )
        table_with_download(over, "over-committed features", styler=_highlight_deficit)


def manager_charts(page: PageContext) -> None:
    pool_frame = reports.pool_stack(page.ctx, page.actor)
    if pool_frame.empty:
        st.info("You do not manage any pool yet. An admin assigns pools to managers.")
        return
    st.plotly_chart(pool_figure(pool_frame, "My pools"), key="chart_pools")
    features = pools.pool_features(page.ctx, page.actor)
    over = features[features["over_committed"]]
    if not over.empty:
        st.error(
            f"{len(over)} pool feature(s) are over-committed on their license server; new "
            "allocations of them are refused until an admin resolves it.",
            icon=":material/warning:",
        )
    table_with_download(
        with_grid_links(features, pool_column="pool_id"),
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


def _trend_target(page: PageContext) -> tuple[str, int | None]:
    """Which trend to draw: all servers, one server, or (managers) one pool."""
    if page.actor.role is Role.MANAGER:
        frame = pools.list_pools(page.ctx, page.actor)
        if frame.empty:
            return "pool", None
        labels = dict(zip(frame["id"], frame["vlm_name"] + " / " + frame["name"], strict=True))
        pool_id = st.selectbox("Pool", list(labels), format_func=labels.get, key="trend_pool")
        return "pool", int(pool_id)
    frame = servers.list_servers(page.ctx, page.actor)
    labels = {0: "All license servers", **dict(zip(frame["id"], frame["name"], strict=True))}
    server_id = st.selectbox(
        "License server", list(labels), format_func=labels.get, key="trend_server"
    )
    return "server", int(server_id) or None


def _pool_trend(page: PageContext, pool_id: int, days: int, span: str) -> None:
    """A pool's own quantity and allocated: never the server's total or usage (other teams')."""
    frame = reports.pool_trend(page.ctx, page.actor, pool_id, days=days)
    if frame.empty:
        st.info("This pool has no history in this period yet.")
        return
    st.plotly_chart(
        pool_trend_figure(in_user_time(frame), f"Pool quantity and allocated, last {span}"),
        key="chart_pool_trend",
    )
    st.caption(
        "The pool's quantity and the licenses allocated in it, from the change history. "
        "Usage per host id is not recorded by the inventory, so licenses in use are not shown "
        "per pool."
    )
    with st.expander("Trend data"):
        table_with_download(frame, "pool trend", key="trend_table")


def _server_trend(page: PageContext, server_id: int | None, days: int, span: str) -> None:
    frame = reports.server_trend(page.ctx, page.actor, server_id, days=days)
    if frame.empty or frame["total"].isna().all():
        st.info("No utilization snapshots yet; they are recorded at every inventory sync.")
        return
    st.plotly_chart(
        trend_figure(
            in_user_time(frame), f"Licenses over the last {span} ({zone_label(user_zone())})"
        ),
        key="chart_trend",
    )
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
