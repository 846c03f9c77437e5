"""Tables of the Physical LMs page: servers, a server's features, its drift and drift
history."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from vlm.services import servers
from vlm.services.drift_history import GROUPS, REPORT_GROUPS, drift_history
from vlm.ui.license_kinds import COUNTED_TITLE, counted_only, kind_sections
from vlm.ui.local_time import format_user_time
from vlm.ui.memo import per_generation
from vlm.ui.session import PageContext
from vlm.ui.widgets import table_with_download

SERVER_COLUMNS = [
    "name",
    "status",
    "base_url",
    "instance",
    "features",
    "total",
    "used",
    "available",
    "last_sync_at",
    "last_error",
    "last_latency_ms",
    "last_success_at",
    "metered_features",
    "uncounted_features",
    "description",
]
SPANS: dict[str, timedelta | None] = {
    "Last 24 hours": timedelta(days=1),
    "Last 7 days": timedelta(days=7),
    "Last 30 days": timedelta(days=30),
    "Last 365 days": timedelta(days=365),
    "All time": None,
}
DEFAULT_SPAN = "Last 30 days"
HISTORY_SHOWN = [
    "happened_at",
    "group",
    "kind",
    "detail",
    "host_type",
    "host_id",
    "feature_name",
    "feature_version",
    "count",
    "group_name",
]
REPORT_SHOWN = [
    "group",
    "kind",
    "detail",
    "host_type",
    "host_id",
    "feature_name",
    "feature_version",
    "expected",
    "actual",
    "deficit",
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
    "vlm_name",
]


BAD_ROW_STYLE = "background-color: #f8d7da"


def _highlight(frame: pd.DataFrame):  # noqa: ANN202 - a DataFrame or its pandas Styler
    """Over-committed features and servers in error painted red; a table with none of them is
    passed on as it is (styling every cell of a large table costs more than drawing it)."""
    bad = pd.Series(False, index=frame.index)
    if "deficit" in frame.columns:
        bad |= frame["deficit"].fillna(0) > 0
    if "status" in frame.columns:
        bad |= frame["status"] == "error"
    if not bad.any():
        return frame
    return frame.style.apply(
        lambda part: pd.DataFrame(BAD_ROW_STYLE, index=part.index, columns=part.columns),
        axis=None,
        subset=pd.IndexSlice[frame.index[bad], :],
    )


def server_table(frame: pd.DataFrame) -> None:
    st.caption(
        "Features, total, used and available cover counted concurrent licenses only (the kind "
        "VLM can pool). Metered and uncounted features are counted in their own columns and "
        "listed on each server's Features tab."
    )
    other = ["other_features"] if frame["other_features"].any() else []
    table_with_download(
        frame,
        "license servers",
        key="servers",
        column_order=SERVER_COLUMNS + other,
        styler=_highlight,
        column_config={
            "last_sync_at": st.column_config.DatetimeColumn(
                "Last sync", format="YYYY-MM-DD HH:mm:ss"
            ),
            "last_success_at": st.column_config.DatetimeColumn(
                "Last success", format="YYYY-MM-DD HH:mm:ss"
            ),
            "last_latency_ms": st.column_config.NumberColumn("Latency (ms)", format="%.0f"),
            "features": st.column_config.NumberColumn("Counted features"),
            "total": st.column_config.NumberColumn("Total (counted)"),
            "used": st.column_config.NumberColumn("Used (counted)"),
            "available": st.column_config.NumberColumn("Available", help="total − used"),
            "metered_features": st.column_config.NumberColumn("Metered features"),
            "uncounted_features": st.column_config.NumberColumn("Uncounted features"),
            "other_features": st.column_config.NumberColumn("Other features"),
            "status": st.column_config.TextColumn("Status", width="small"),
            "last_error": st.column_config.TextColumn("Last error", width="medium"),
            "base_url": st.column_config.TextColumn("Base URL", width="medium"),
            "instance": st.column_config.TextColumn("Instance", width="medium"),
            "description": st.column_config.TextColumn("Description", width="medium"),
        },
    )


def feature_table(features: pd.DataFrame) -> None:
    """The server's counted concurrent features (the ones pooled and totalled), then each
    other kind under its own title."""
    frame = counted_only(features)
    st.markdown(f"**{COUNTED_TITLE}** ({int(frame['present'].sum())})")
    gone = int((~frame["present"]).sum())
    if gone:
        st.caption(f"Also shown: {gone} feature(s) the server no longer lists (total 0).")
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
            "vlm_name": st.column_config.TextColumn("Exposed by VLM"),
        },
    )
    kind_sections(features, key="server_features")


def drift_table(page: PageContext, server: dict[str, Any]) -> None:
    """What the last read of the server found differing from VLM, then the history of drift
    events and repairs with filters and a CSV export."""
    st.markdown("**Drift at the last read**")
    _current_drift(page, server)
    st.subheader("Drift history")
    st.caption(
        "What VLM found changed on the server (reservations missing or disabled, restarts), "
        "what it repaired, conflicts in its way and drift that went away by itself; "
        "newest first."
    )
    server_id = int(server["id"])
    groups_col, span_col = st.columns([3, 1])
    groups = groups_col.multiselect(
        "Show",
        list(GROUPS),
        default=list(GROUPS),
        key=f"drift_groups_{server_id}",
        help="found: drift VLM found; repaired: VLM fixed it; conflict: something on the "
        "server stands in VLM's way; resolved: the drift went away by itself",
    )
    span = span_col.selectbox(
        "Time span",
        list(SPANS),
        index=list(SPANS).index(DEFAULT_SPAN),
        key=f"drift_span_{server_id}",
    )
    minute = datetime.now().replace(second=0, microsecond=0)  # the span ends now
    history = per_generation(
        page,
        "physical lms: drift history",
        lambda: drift_history(page.ctx, page.actor, server_id, groups=groups, within=SPANS[span]),
        server_id,
        tuple(groups),
        span,
        minute,
    )
    if history.empty:
        st.info(f"No drift event of the chosen kinds on this server ({span.lower()}).")
        return
    table_with_download(
        _blank_missing(history),
        "drift history",
        key=f"drift_history_{server_id}",
        column_order=HISTORY_SHOWN,
        column_config={
            "happened_at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm:ss"),
            "group": st.column_config.TextColumn("What happened", width="small"),
            "kind": st.column_config.TextColumn("Event"),
            "count": st.column_config.NumberColumn("Count", format="%d"),
            "detail": st.column_config.TextColumn("Detail", width="large"),
        },
    )


def _read_at(server: dict[str, Any]) -> str:
    return format_user_time(server.get("last_success_at")) or "never"


def _current_drift(page: PageContext, server: dict[str, Any]) -> None:
    """The drift report of the last successful read, never claiming more than that read saw."""
    read_at = _read_at(server)
    if read_at == "never":
        st.warning(
            "VLM has not read this server successfully yet, so its drift is not known. "
            "Press Sync now to read it.",
            icon=":material/help:",
        )
        return
    if server.get("status") == "error":
        st.warning(
            f"The last read of this server failed: {server.get('last_error') or 'unknown error'}. "
            f"What follows is what the read of {read_at} found.",
            icon=":material/warning:",
        )
    server_id = int(server["id"])
    report = per_generation(
        page,
        "physical lms: drift",
        lambda: servers.drift(page.ctx, page.actor, server_id),
        server_id,
    ).copy()
    if report.empty:
        st.success(
            f"No drift at the last read ({read_at}): the server held exactly what VLM "
            "allocates. Changes made on the server since then show after the next sync.",
            icon=":material/check_circle:",
        )
        return
    report.insert(1, "group", report["kind"].map(lambda kind: REPORT_GROUPS.get(kind, kind)))
    st.warning(
        f"{len(report)} difference(s) at the last read ({read_at}). VLM re-creates missing "
        "reservations on the next sync; conflicts need a person.",
        icon=":material/sync_problem:",
    )
    table_with_download(
        _blank_missing(report),
        "drift report",
        key=f"drift_{int(server['id'])}",
        column_order=REPORT_SHOWN,
        column_config={
            "group": st.column_config.TextColumn("What", width="small"),
            "kind": st.column_config.TextColumn("Kind"),
            "detail": st.column_config.TextColumn("Detail", width="large"),
        },
    )


def _blank_missing(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns with empty values as blank cells rather than None."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object:
            out[column] = out[column].map(lambda v: "" if v is None or pd.isna(v) else v)
    return out
