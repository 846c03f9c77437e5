"""The allocation grid's report: what the last Apply did per row with its live reservation
state on the license server, and the retry of failed rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
import streamlit as st

from vlm.domain import AllocationState
from vlm.services import allocations
from vlm.services.allocations import AllocationChange, RowResult
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.grid.diff import GridDiff, RowProblem
from vlm.ui.grid.state import GridScope
from vlm.ui.session import PageContext, recheck
from vlm.ui.widgets import download_csv, people_table

LIVE = {AllocationState.PENDING.value, AllocationState.REMOVING.value}
ACTION_LABEL = {
    "add": "add",
    "edit": "edit",
    "delete": "remove",
    "retry": "retry",
    "extend": "extend",
}
STATE_LABEL = {
    "pending": "pending…",
    "applied": "applied ✓",
    "failed": "failed ✗",
    "removing": "removing…",
    "disabled": "disabled by server ⚠",
    "removed": "removed from server ✓",
}


def change_host(change: AllocationChange) -> str:
    if change.host_id in (None, ""):
        return ""
    return f"{change.host_type or ''} {change.host_id}".strip()


def saved_hosts(source: pd.DataFrame) -> dict[int, str]:
    """Allocation id → 'TYPE host id' of the grid's saved rows."""
    return {
        int(r["id"]): f"{r['host_type']} {r['host_id']}"
        for r in source.to_dict("records")
        if not pd.isna(r["id"])
    }


def result_rows(
    diff: GridDiff, results: Sequence[RowResult], source: pd.DataFrame
) -> list[dict[str, Any]]:
    """What the Apply did, per grid row; ok rows carry the allocation id to follow its state."""
    hosts = saved_hosts(source)
    rows: list[dict[str, Any]] = []
    for result in results:
        change = result.change
        allocation_id = result.allocation_id or change.allocation_id
        rows.append(
            {
                "row": change.row,
                "action": ACTION_LABEL[change.op],
                "host": change_host(change) or hosts.get(allocation_id or -1, ""),
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


def _failed_rows(source: pd.DataFrame) -> dict[int, str]:
    """Allocation id → 'row n: TYPE host id — reason' of the grid's failed rows."""
    failed = source[(source["state"] == AllocationState.FAILED.value) & source["id"].notna()]
    return {
        int(r.id): f"row {i + 1}: {r.host_type} {r.host_id} — {r.problem or 'failed'}"
        for i, r in zip(failed.index, failed.itertuples(), strict=True)
    }


def retry_failed(page: PageContext, scope: GridScope, source: pd.DataFrame) -> None:
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
        question = (
            f"Send {len(chosen)} failed allocation(s) to the license server again? They go "
            "back to pending; if the cause is still there the server refuses them again."
        )
        confirmed_action(
            "Retry",
            key=confirm_key,
            question=Question(confirm_key, question, f"Retry {len(chosen)} row(s)"),
            act=lambda: allocations.retry_allocations(page.ctx, page.actor, scope.pool_id, chosen),
            done=lambda results: _after_retry(page, scope, source, results or []),
            icon=":material/replay:",
            destructive=False,
            enabled=bool(chosen),
        )


def _after_retry(
    page: PageContext, scope: GridScope, source: pd.DataFrame, results: Sequence[RowResult]
) -> None:
    """Track the retried rows in the report (the page reruns next)."""
    rows = saved_row_results(source, results, "retry", track=True)
    memory = scope.memory
    memory.results = rows
    memory.tracked = {r["id"]: r for r in rows if r["ok"]}
    sent = sum(1 for r in rows if r["ok"])
    memory.summary = f"Sent {sent} failed row(s) to the license server again."
    memory.retry_round += 1
    if not scope.editing():
        scope.refresh(page.ctx, page.actor)


def saved_row_results(
    source: pd.DataFrame, results: Sequence[RowResult], action: str, *, track: bool
) -> list[dict]:
    """The report's rows for an action on saved rows (retry, extend): each row's position in
    the grid, its host and outcome; `track` keeps the id of the rows sent to the server, so
    the report follows them until applied."""
    hosts = saved_hosts(source)
    positions = {int(i): n + 1 for n, i in enumerate(source["id"]) if not pd.isna(i)}
    return [
        {
            "row": positions.get(int(r.change.allocation_id)),
            "action": ACTION_LABEL[action],
            "host": hosts.get(int(r.change.allocation_id), ""),
            "result": ("✓ " if r.ok else "✗ ") + r.message,
            "id": int(r.change.allocation_id) if track and r.ok else None,
            "ok": r.ok,
        }
        for r in results
    ]


def _live_rows(source: pd.DataFrame) -> dict[int, str]:
    """Allocation id → state of the saved rows the grid shows as pending or removing (found
    column-wise: a grid holds up to tens of thousands of rows, few of them live)."""
    live = source[source["state"].isin(LIVE) & source["id"].notna()]
    return dict(zip(live["id"].astype("int64").tolist(), live["state"].tolist(), strict=True))


def _states(page: PageContext, scope: GridScope, source: pd.DataFrame) -> dict[int, tuple]:
    ids = set(scope.memory.tracked) | set(_live_rows(source))
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
    grid_live = any(states.get(i, ("gone",))[0] in LIVE for i in _live_rows(source))
    return tracked_live or grid_live


def _grid_outdated(source: pd.DataFrame, states: dict[int, tuple]) -> bool:
    """True when a row the grid shows as pending/removing has moved on in the database."""
    return any(
        states.get(allocation_id, ("gone",))[0] != shown
        for allocation_id, shown in _live_rows(source).items()
    )


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


def live_report(page: PageContext, scope: GridScope, source: pd.DataFrame) -> None:
    """The last Apply's rows with their reservation state, re-read every second while pending;
    the grid itself is re-read as soon as its rows moved on and nothing is being edited."""
    if _is_live(scope, source, _states(page, scope, source)):
        st.fragment(run_every="1s")(_render_report)(page, scope, source, True)
    else:
        _render_report(page, scope, source)
