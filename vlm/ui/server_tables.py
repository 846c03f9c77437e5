"""Tables of the Physical LMs page: servers, a server's features, its drift."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from vlm.domain import Actor
from vlm.services import servers
from vlm.services.context import ServiceContext
from vlm.services.drift_history import drift_history
from vlm.ui.widgets import table_with_download

SERVER_COLUMNS = [
    "name",
    "status",
    "last_sync_at",
    "last_success_at",
    "last_error",
    "last_latency_ms",
    "features",
    "total",
    "used",
    "available",
    "base_url",
    "instance",
    "description",
]
FEATURE_COLUMNS = [
    "feature_name",
    "feature_version",
    "total",
    "used",
    "reserved",
    "reserved_by_others",
    "pooled",
    "poolable",
    "allocated",
    "deficit",
    "expiry",
    "can_pool",
    "vlm_name",
]


def _highlight(frame: pd.DataFrame):  # noqa: ANN202 - pandas Styler
    def paint(row: pd.Series) -> list[str]:
        bad = row.get("deficit", 0) > 0 or row.get("status") == "error"
        return ["background-color: #f8d7da" if bad else "" for _ in row]

    return frame.style.apply(paint, axis=1)


def server_table(frame: pd.DataFrame) -> None:
    table_with_download(
        frame,
        "license servers",
        key="servers",
        column_order=SERVER_COLUMNS,
        styler=_highlight,
        column_config={
            "last_sync_at": st.column_config.DatetimeColumn(
                "Last sync", format="YYYY-MM-DD HH:mm:ss"
            ),
            "last_success_at": st.column_config.DatetimeColumn(
                "Last success", format="YYYY-MM-DD HH:mm:ss"
            ),
            "last_latency_ms": st.column_config.NumberColumn("Latency (ms)", format="%.0f"),
            "available": st.column_config.NumberColumn("Available", help="total − used"),
        },
    )


def feature_table(frame: pd.DataFrame) -> None:
    over = int((frame["deficit"] > 0).sum()) if not frame.empty else 0
    if over:
        st.error(f"{over} feature(s) are over-committed (highlighted).", icon=":material/warning:")
    table_with_download(
        frame,
        "server features",
        key="server_features",
        column_order=FEATURE_COLUMNS,
        styler=_highlight,
        column_config={
            "reserved_by_others": st.column_config.NumberColumn(
                "Reserved outside VLM", help="reservations on the server that VLM does not own"
            ),
            "poolable": st.column_config.NumberColumn(
                "Poolable", help="total − reserved outside VLM − pooled"
            ),
            "can_pool": st.column_config.CheckboxColumn(
                "Concurrent & counted", help="only these can be pooled"
            ),
            "vlm_name": st.column_config.TextColumn("Exposed by VLM"),
        },
    )


def drift_table(ctx: ServiceContext, actor: Actor, server_id: int) -> None:
    """What VLM wants on the server versus what the last read found there, then the history
    of drift events and repairs."""
    report = servers.drift(ctx, actor, server_id)
    if report.empty:
        st.success("No drift now: the server holds exactly what VLM allocates.")
    else:
        table_with_download(report, "drift report", key="drift")
    st.subheader("Drift history")
    st.caption(
        "Restarts, reservations found missing or disabled on the server, and VLM's repairs, "
        "newest first."
    )
    history = drift_history(ctx, actor, server_id)
    if history.empty:
        st.info("No drift recorded on this server.")
        return
    table_with_download(history, "drift history", key="drift_history")
