"""Bulk add: paste or upload a CSV of host ids, apply every valid row, report each row."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import streamlit as st

from vlm.domain import HostType
from vlm.services import allocations
from vlm.services.allocations import RowResult
from vlm.services.bulk import parse_bulk_allocations
from vlm.ui.grid_state import GridScope
from vlm.ui.session import PageContext
from vlm.ui.widgets import attempt, table_with_download

EXAMPLE = "host_id,host_type,count,description\n0050569A0A01,ETHERNET,1,Lab PC 1\njdoe,USER,1,"
REPORT_KEY = "_bulk_report_{tag}"


def report_frame(results: Sequence[RowResult]) -> pd.DataFrame:
    """One line per CSV row: what was asked and what happened."""
    return pd.DataFrame(
        [
            {
                "row": r.change.row,
                "host_type": str(r.change.host_type or ""),
                "host_id": str(r.change.host_id or ""),
                "count": str(r.change.count or ""),
                "result": "added" if r.ok else "refused",
                "message": r.message,
                "allocation_id": r.allocation_id,
            }
            for r in results
        ],
        columns=["row", "host_type", "host_id", "count", "result", "message", "allocation_id"],
    )


def _read_text(uploaded, pasted: str) -> str:
    if uploaded is not None:
        return uploaded.getvalue().decode("utf-8-sig", errors="replace")
    return pasted


def _import(page: PageContext, scope: GridScope, text: str, host_type: str, count: int) -> None:
    parsed = parse_bulk_allocations(text, default_host_type=host_type, default_count=count)
    changes = parsed.changes
    if not changes:
        for problem in parsed.problems:
            st.error(problem)
        return
    outcome = attempt(
        allocations.apply_allocation_changes,
        page.ctx,
        page.actor,
        scope.pool_id,
        changes,
        feature=scope.feature,
    )
    if not outcome.ok:
        return
    results = outcome.value or []
    report = report_frame(results)
    st.session_state[REPORT_KEY.format(tag=scope.tag)] = (parsed.problems, report)
    added = int((report["result"] == "added").sum())
    memory = scope.memory
    for r in results:
        if r.ok and r.allocation_id is not None:
            memory.tracked[r.allocation_id] = {
                "row": r.change.row,
                "action": "add",
                "host": f"{r.change.host_type} {r.change.host_id}",
                "result": "✓ " + r.message + " (bulk)",
                "id": r.allocation_id,
                "ok": True,
            }
    memory.results = list(memory.tracked.values())
    memory.summary = f"Bulk add allocated {added} of {len(report)} row(s)."
    st.rerun()


def render_bulk_import(page: PageContext, scope: GridScope) -> None:
    with st.expander("Bulk add from CSV (paste or upload)", icon=":material/upload_file:"):
        st.caption(
            "One host id per line, or a CSV with a header naming host_id and optionally "
            "host_type, count, description. Every valid row is allocated; each refused row is "
            "reported with its reason."
        )
        pasted = st.text_area("Paste", placeholder=EXAMPLE, key=f"bulk_text_{scope.tag}")
        uploaded = st.file_uploader(
            "…or upload a CSV file", type=["csv", "txt"], key=f"bulk_file_{scope.tag}"
        )
        type_col, count_col = st.columns(2)
        host_type = type_col.selectbox(
            "Host type when the CSV has none",
            [t.value for t in HostType],
            key=f"bulk_type_{scope.tag}",
        )
        count = count_col.number_input(
            "Count when the CSV has none",
            min_value=1,
            value=1,
            step=1,
            key=f"bulk_count_{scope.tag}",
        )
        if st.button("Allocate from CSV", key=f"bulk_apply_{scope.tag}", type="primary"):
            _import(page, scope, _read_text(uploaded, pasted), host_type, int(count))
        stored = st.session_state.get(REPORT_KEY.format(tag=scope.tag))
        if stored:
            problems, report = stored
            for problem in problems:
                st.warning(problem)
            table_with_download(report, "bulk add report", key=f"bulk_report_{scope.tag}")
