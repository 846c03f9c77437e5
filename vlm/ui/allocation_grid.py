"""The allocation grid: edit → review → apply, refused rows kept, live reservation states."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from vlm.domain import DESCRIPTION_MAX_LENGTH, AllocationState, HostType, host_id_help
from vlm.services import allocations
from vlm.services.allocations import AllocationChange, RowResult
from vlm.ui.grid_diff import GridDiff, RowProblem, diff_grid
from vlm.ui.grid_drafts import GRID_COLUMNS, HIDDEN_COLUMNS, drafts_after_apply
from vlm.ui.grid_state import GridScope
from vlm.ui.local_time import with_zone
from vlm.ui.session import PageContext, recheck
from vlm.ui.widgets import (
    ask_confirmation,
    attempt,
    confirmation,
    download_csv,
    in_user_time,
    people_table,
)

DISPLAY_COLUMNS = [c for c in GRID_COLUMNS if c not in HIDDEN_COLUMNS]
READ_ONLY = ["status", "server_name", "problem", "created_at", "id"]
LIVE = {AllocationState.PENDING.value, AllocationState.REMOVING.value}
ACTION_LABEL = {"add": "add", "edit": "edit", "delete": "remove", "retry": "retry"}
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
STATE_LABEL = {
    "pending": "pending…",
    "applied": "applied ✓",
    "failed": "failed ✗",
    "removing": "removing…",
    "disabled": "disabled by server ⚠",
    "removed": "removed from server ✓",
}


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


def _host(change: AllocationChange) -> str:
    if change.host_id in (None, ""):
        return ""
    return f"{change.host_type or ''} {change.host_id}".strip()


def _hosts(source: pd.DataFrame) -> dict[int, str]:
    """Allocation id → 'TYPE host id' of the grid's saved rows."""
    return {
        int(r["id"]): f"{r['host_type']} {r['host_id']}"
        for r in source.to_dict("records")
        if not pd.isna(r["id"])
    }


def preview_frame(diff: GridDiff, source: pd.DataFrame) -> pd.DataFrame:
    """One line per change (and per refused row) for the review step."""
    hosts = _hosts(source)
    rows = []
    for change in diff.changes:
        host = _host(change) or hosts.get(change.allocation_id or -1, "")
        detail = (
            f"count {change.count}, description '{change.description}'"
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


def result_rows(
    diff: GridDiff, results: Sequence[RowResult], source: pd.DataFrame
) -> list[dict[str, Any]]:
    """What the Apply did, per grid row; ok rows carry the allocation id to follow its state."""
    hosts = _hosts(source)
    rows: list[dict[str, Any]] = []
    for result in results:
        change = result.change
        allocation_id = result.allocation_id or change.allocation_id
        rows.append(
            {
                "row": change.row,
                "action": ACTION_LABEL[change.op],
                "host": _host(change) or hosts.get(allocation_id or -1, ""),
                "result": ("✓ " if result.ok else "✗ ") + result.message,
                "id": allocation_id if result.ok else None,
                "ok": result.ok,
            }
        )
    for problem in diff.problems:
        rows.append(_problem_row(problem, hosts))
    return sorted(rows, key=lambda r: r["row"] or 0)


def _problem_row(problem: RowProblem, hosts: dict[int, str]) -> dict[str, Any]:
    return {
        "row": problem.row,
        "action": "edit",
        "host": hosts.get(problem.allocation_id or -1, ""),
        "result": "✗ " + problem.message,
        "id": None,
        "ok": False,
    }


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
    hosts = _hosts(fresh)
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
    _retry_failed(page, scope, source)
    _live_report(page, scope, source)
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


def _failed_rows(source: pd.DataFrame) -> dict[int, str]:
    """Allocation id → 'row n: TYPE host id — reason' of the grid's failed rows."""
    failed = source[(source["state"] == AllocationState.FAILED.value) & source["id"].notna()]
    return {
        int(r.id): f"row {i + 1}: {r.host_type} {r.host_id} — {r.problem or 'failed'}"
        for i, r in zip(failed.index, failed.itertuples(), strict=True)
    }


def _retry_failed(page: PageContext, scope: GridScope, source: pd.DataFrame) -> None:
    """Select failed rows, press Retry, confirm: they go back to pending and are pushed."""
    failed = _failed_rows(source)
    if not failed:
        return
    memory = scope.memory
    with st.container(border=True, key=f"alloc_retry_box_{scope.tag}"):
        chosen = st.multiselect(
            f"Failed rows ({len(failed)}): select the ones to send to the license server again",
            list(failed),
            format_func=failed.get,
            key=f"alloc_retry_rows_{scope.tag}_{memory.retry_round}",
            placeholder="select failed rows",
        )
        confirm_key = f"alloc_retry_{scope.tag}"
        if st.button("Retry", key=confirm_key, disabled=not chosen, icon=":material/replay:"):
            ask_confirmation(confirm_key)
        question = (
            f"Send {len(chosen)} failed allocation(s) to the license server again? They go "
            "back to pending; if the cause is still there the server refuses them again."
        )
        if chosen and confirmation(
            confirm_key, question, f"Retry {len(chosen)} row(s)", destructive=False
        ):
            _retry(page, scope, source, chosen)


def _retry(
    page: PageContext, scope: GridScope, source: pd.DataFrame, allocation_ids: list[int]
) -> None:
    outcome = attempt(
        allocations.retry_allocations, page.ctx, page.actor, scope.pool_id, allocation_ids
    )
    if not outcome.ok:
        return
    hosts = _hosts(source)
    positions = {int(i): n + 1 for n, i in enumerate(source["id"]) if not pd.isna(i)}
    rows = [
        {
            "row": positions.get(int(r.change.allocation_id)),
            "action": ACTION_LABEL["retry"],
            "host": hosts.get(int(r.change.allocation_id), ""),
            "result": ("✓ " if r.ok else "✗ ") + r.message,
            "id": int(r.change.allocation_id) if r.ok else None,
            "ok": r.ok,
        }
        for r in outcome.value or []
    ]
    memory = scope.memory
    memory.results = rows
    memory.tracked = {r["id"]: r for r in rows if r["ok"]}
    sent = sum(1 for r in rows if r["ok"])
    memory.summary = f"Sent {sent} failed row(s) to the license server again."
    memory.retry_round += 1
    if not scope.editing():
        scope.refresh(page.ctx, page.actor)
    st.rerun()


def _states(page: PageContext, scope: GridScope, source: pd.DataFrame) -> dict[int, tuple]:
    ids = set(scope.memory.tracked)
    ids |= {
        int(i)
        for i, s in zip(source["id"], source["state"], strict=True)
        if s in LIVE and not pd.isna(i)
    }
    if not ids:
        return {}
    frame = allocations.allocation_states(page.ctx, page.actor, sorted(ids))
    return {int(r.id): (r.state, r.last_error) for r in frame.itertuples()}


def _report_frame(scope: GridScope, states: dict[int, tuple]) -> pd.DataFrame:
    rows = []
    for row in scope.memory.results:
        state = ""
        if row["id"] is not None:
            found = states.get(row["id"])
            if found is None:
                state = STATE_LABEL["removed"] if row["action"] == "remove" else "gone"
            else:
                state = STATE_LABEL.get(found[0], found[0])
                if found[1]:
                    state += f" — {found[1]}"
        rows.append(
            {
                "row": row["row"],
                "action": row["action"],
                "host": row["host"],
                "result": row["result"],
                "reservation": state,
            }
        )
    return pd.DataFrame(rows, columns=["row", "action", "host", "result", "reservation"])


def _is_live(scope: GridScope, source: pd.DataFrame, states: dict[int, tuple]) -> bool:
    tracked_live = any(states.get(i, ("gone",))[0] in LIVE for i in scope.memory.tracked)
    grid_live = any(
        states.get(int(i), ("gone",))[0] in LIVE
        for i, s in zip(source["id"], source["state"], strict=True)
        if s in LIVE and not pd.isna(i)
    )
    return tracked_live or grid_live


def _grid_outdated(source: pd.DataFrame, states: dict[int, tuple]) -> bool:
    """True when a row the grid shows as pending/removing has moved on in the database."""
    for allocation_id, shown in zip(source["id"], source["state"], strict=True):
        if pd.isna(allocation_id) or shown not in LIVE:
            continue
        if states.get(int(allocation_id), ("gone",))[0] != shown:
            return True
    return False


def _render_report(
    page: PageContext, scope: GridScope, source: pd.DataFrame, ticking: bool = False
) -> None:
    if ticking:
        recheck(page)
    states = _states(page, scope, source)
    if not scope.editing() and _grid_outdated(source, states):
        scope.refresh(page.ctx, page.actor)  # nothing typed is lost: no edit is pending
        st.rerun()
    memory = scope.memory
    if memory.results:
        with st.container(key=f"alloc_report_{scope.tag}"):
            st.markdown(f"**Last Apply** — {memory.summary} Reservation state on the server:")
            report = _report_frame(scope, states)
            people_table(report)
            download_csv(report, "last apply", key=f"dl_report_{scope.tag}")
    if ticking and not _is_live(scope, source, states):
        if scope.editing():
            st.caption("Reservation states changed; apply or discard your edits to refresh.")
        else:
            st.rerun()


def _live_report(page: PageContext, scope: GridScope, source: pd.DataFrame) -> None:
    """The last Apply's rows with their reservation state, re-read every second while pending;
    the grid itself is re-read as soon as its rows moved on and nothing is being edited."""
    if _is_live(scope, source, _states(page, scope, source)):
        st.fragment(run_every="1s")(_render_report)(page, scope, source, True)
    else:
        _render_report(page, scope, source)
