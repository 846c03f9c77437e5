"""The allocation grid: edit → review → apply, refused rows kept as typed."""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from vlm.domain import DESCRIPTION_MAX_LENGTH, HostType, host_id_help
from vlm.services import allocations
from vlm.services.allocations import AllocationChange
from vlm.ui.grid.diff import GridDiff, clean, diff_grid
from vlm.ui.grid.drafts import GRID_COLUMNS, HIDDEN_COLUMNS, drafts_after_apply
from vlm.ui.grid.extend import render_extend
from vlm.ui.grid.report import (
    ACTION_LABEL,
    change_host,
    live_report,
    result_rows,
    retry_failed,
    saved_hosts,
)
from vlm.ui.grid.state import GridScope
from vlm.ui.local_time import with_zone
from vlm.ui.session import PageContext
from vlm.ui.widgets import attempt, download_csv, in_user_time, people_table

DISPLAY_COLUMNS = [c for c in GRID_COLUMNS if c not in HIDDEN_COLUMNS]
READ_ONLY = ["phase", "status", "server_name", "problem", "created_at", "id"]
UNSAVED_MARKER = "vlm-unsaved-grid-edits"
LEAVE_QUESTION = (
    "The allocation grid has edits you have not applied. Leave this page and lose them?"
)
# Installed once per browser tab; it acts only while the marker is on the page, i.e. while the
# grid holds unsaved edits: a reload or closing the tab asks (beforeunload), and so does a click
# on a page link (Streamlit switches pages inside the tab, which beforeunload does not see).
LEAVE_GUARD = """<span class="%(marker)s" hidden></span>
<script>
if (!window.__vlmLeaveGuard) {
  window.__vlmLeaveGuard = true;
  const unsaved = () => document.querySelector(".%(marker)s") !== null;
  window.addEventListener("beforeunload", (event) => {
    if (unsaved()) { event.preventDefault(); event.returnValue = ""; }
  });
  const links = "[data-testid='stSidebarNavLink'], [data-testid='stPageLink'] a, "
    + "[data-testid='stTopNavLink']";
  document.addEventListener("click", (event) => {
    const link = event.target.closest(links);
    if (link && unsaved() && !window.confirm(%(question)s)) {
      event.preventDefault();
      event.stopImmediatePropagation();
    }
  }, true);
}
</script>"""


def column_config() -> dict[str, Any]:
    cc = st.column_config
    return {
        "host_type": cc.SelectboxColumn(
            "Host type",
            options=[t.value for t in HostType],
            default=HostType.ETHERNET.value,
            required=True,
            width=110,
        ),
        "host_id": cc.TextColumn("Host id", help=host_id_help(), width=170),
        "count": cc.NumberColumn("Count", min_value=1, step=1, default=1, format="%d", width=70),
        "description": cc.TextColumn("Description", max_chars=DESCRIPTION_MAX_LENGTH, width=260),
        "starts_on": cc.DateColumn(
            "Start",
            help="first day the host holds the license (blank: now); set when adding a row",
            format="YYYY-MM-DD",
            width=110,
        ),
        "ends_on": cc.DateColumn(
            "End (last day)",
            help="last day the host holds the license, inclusive (blank: the pool's default "
            "duration, else none); the reservation goes the day after",
            format="YYYY-MM-DD",
            width=120,
        ),
        "phase": cc.TextColumn(
            "Phase", help="scheduled (start not reached), active or expired", width=90
        ),
        "status": cc.TextColumn("State", width=110),
        "server_name": cc.TextColumn(
            "Server",
            help="the license server that carries this reservation (blank until saved)",
            width=100,
        ),
        "problem": cc.TextColumn(
            "Problem / server reason",
            help="what the last Apply refused, or why the license server refused the row",
            width=250,
        ),
        "created_at": cc.DatetimeColumn(with_zone("Created"), format="YYYY-MM-DD HH:mm", width=170),
        "id": cc.NumberColumn("Id", format="%d", width=60),
    }


def _days(change: AllocationChange) -> str:
    """', from … through …' of a change that gives a start or end day."""
    start, end = clean(change.starts_on), clean(change.ends_on)
    return (f", from {str(start)[:10]}" if start else "") + (
        f", through {str(end)[:10]}" if end else ""
    )


def preview_frame(diff: GridDiff, source: pd.DataFrame) -> pd.DataFrame:
    """One line per change (and per refused row) for the review step."""
    hosts = saved_hosts(source)
    rows = []
    for change in diff.changes:
        host = change_host(change) or hosts.get(change.allocation_id or -1, "")
        detail = (
            f"count {change.count}, description '{change.description}'{_days(change)}"
            if change.op != "delete"
            else "reservation removed from the license server"
        )
        rows.append(
            {"row": change.row, "action": ACTION_LABEL[change.op], "host": host, "detail": detail}
        )
    for problem in diff.problems:
        rows.append(
            {
                "row": problem.row,
                "action": "refused",
                "host": hosts.get(problem.allocation_id or -1, ""),
                "detail": problem.message,
            }
        )
    return pd.DataFrame(rows, columns=["row", "action", "host", "detail"]).sort_values("row")


def _apply(page: PageContext, scope: GridScope, diff: GridDiff, source: pd.DataFrame) -> None:
    outcome = attempt(
        allocations.apply_allocation_changes,
        page.ctx,
        page.actor,
        scope.pool_id,
        diff.changes,
        feature=scope.feature,
    )
    if not outcome.ok:
        return
    results = outcome.value or []
    rows = result_rows(diff, results, source)
    memory = scope.memory
    memory.results = rows
    memory.tracked = {r["id"]: r for r in rows if r["ok"] and r["id"] is not None}
    scope.restart(page.ctx, page.actor, drafts_after_apply(diff, results))
    fresh = memory.source if memory.source is not None else source
    hosts = saved_hosts(fresh)
    for row in rows:
        row["host"] = hosts.get(row["id"], row["host"])
    refused = sum(1 for r in rows if not r["ok"])
    memory.summary = f"Applied {len(rows) - refused} change(s)" + (
        f"; {refused} row(s) refused — they are kept in the grid with their problem."
        if refused
        else "."
    )
    st.rerun()


def _review(page: PageContext, scope: GridScope, diff: GridDiff, source: pd.DataFrame) -> None:
    counts = diff.counts()
    with st.container(border=True, key=f"alloc_review_box_{scope.tag}"):
        st.markdown(
            f"**Review** — {counts['add']} to add, {counts['edit']} to edit, "
            f"{counts['delete']} to remove"
            + (f", {len(diff.problems)} refused" if diff.problems else "")
        )
        preview = preview_frame(diff, source)
        people_table(preview)
        apply_col, back_col, download_col = st.columns(3)
        with download_col:
            download_csv(preview, "review", key=f"dl_review_{scope.tag}")
        if apply_col.button(
            f"Apply {len(diff.changes)} change(s)",
            type="primary",
            key=f"alloc_apply_{scope.tag}",
            disabled=not diff.changes and not diff.problems,
        ):
            _apply(page, scope, diff, source)
        if back_col.button("Back to editing", key=f"alloc_back_{scope.tag}"):
            scope.memory.preview = False
            st.rerun()


def render_grid(page: PageContext, scope: GridScope) -> None:
    """The editable grid with its Review / Apply / Discard controls and the last Apply's report."""
    source = scope.source(page.ctx, page.actor)
    memory = scope.memory
    if memory.drafts:
        st.warning(
            "Rows that were refused are kept in the grid with their problem. Correct them and "
            "apply again, or delete them.",
            icon=":material/edit_note:",
        )
    st.data_editor(
        in_user_time(source),
        key=scope.editor_key,
        num_rows="dynamic",
        hide_index=True,
        column_order=DISPLAY_COLUMNS,
        column_config=column_config(),
        disabled=READ_ONLY,
        width="stretch",
        placeholder="",
    )
    diff = diff_grid(source, scope.editor_state())
    if scope.editing():
        _guard_leaving()
    counts = diff.counts()
    review_col, discard_col, info_col = st.columns([1, 1, 3])
    if review_col.button(
        "Review changes",
        type="primary",
        key=f"alloc_review_{scope.tag}",
        disabled=diff.empty,
        icon=":material/fact_check:",
    ):
        memory.preview = True
    if discard_col.button(
        "Discard edits", key=f"alloc_discard_{scope.tag}", disabled=diff.empty and not memory.drafts
    ):
        scope.restart(page.ctx, page.actor)
        st.rerun()
    info_col.caption(
        f"Pending: {counts['add']} to add, {counts['edit']} to edit, {counts['delete']} to remove. "
        "Add rows at the bottom, edit cells, select rows and press Delete to remove them."
    )
    if memory.preview and not diff.empty:
        _review(page, scope, diff, source)
    elif diff.empty:
        memory.preview = False
    retry_failed(page, scope, source)
    render_extend(page, scope, source)
    live_report(page, scope, source)
    shown = [c for c in DISPLAY_COLUMNS if c != "id"]
    download_csv(
        source[shown], "allocations grid", key=f"dl_grid_{scope.tag}", column_config=column_config()
    )


def _guard_leaving() -> None:
    """Ask before the browser leaves the page while the grid holds unsaved edits (drawn last in
    the sidebar, so that its coming and going moves no other element)."""
    question = json.dumps(LEAVE_QUESTION)
    st.sidebar.html(
        LEAVE_GUARD % {"marker": UNSAVED_MARKER, "question": question},
        unsafe_allow_javascript=True,
    )
