"""Bulk add: paste or upload a CSV, preview every row with its problems, then import the good ones.

Nothing is written until the user confirms the preview; the preview is dropped as soon as the
text or the defaults change, so what is imported is always what was shown. The result is shown
in the open above the (collapsible) form: rows accepted, rows refused with the reason for each,
and the refused rows as a CSV in the upload's columns plus "reason", to fix and upload again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from vlm.domain import HostType
from vlm.services.allocations import RowResult
from vlm.services.bulk import COLUMNS, BulkRow, ParsedBulk, import_bulk, parse_bulk_allocations
from vlm.ui.grid.state import GridScope
from vlm.ui.session import PageContext
from vlm.ui.widgets import attempt, download_csv, labelled, table_with_download

EXAMPLE = "host_id,host_type,count,description\n0050569A0A01,ETHERNET,1,Lab PC 1\njdoe,USER,1,"
REPORT_KEY = "_bulk_report_{tag}"
PARSED_KEY = "bulk_parsed_{tag}"
WANTED_KEY = "_bulk_wanted_{tag}"
REPORT_COLUMNS = ["line", "host_type", "host_id", "count", "result", "message", "allocation_id"]


def _row_values(row: BulkRow) -> dict[str, str]:
    """What a row asks for: the checked values of a good row, the text as read of a bad one."""
    if row.change is None:
        return {column: row.cells.get(column, "") for column in COLUMNS}
    change = row.change
    return {
        "host_id": str(change.host_id),
        "host_type": str(change.host_type),
        "count": str(change.count),
        "description": str(change.description or ""),
        "feature_name": change.feature_name or "",
        "feature_version": change.feature_version or "",
        "starts_on": "" if change.starts_on is None else str(change.starts_on),
        "ends_on": "" if change.ends_on is None else str(change.ends_on),
    }


def preview_frame(parsed: ParsedBulk) -> pd.DataFrame:
    """One line per data row: its file line, its values, and ready or its problems."""
    optional = ("feature_name", "feature_version", "starts_on", "ends_on")
    features = [c for c in optional if c in parsed.columns]
    columns = ["line", "host_type", "host_id", "count", "description", *features]
    records = [
        {
            "line": row.line,
            **_row_values(row),
            "status": "ready" if row.ok else "refused",
            "problem": "; ".join(row.problems),
        }
        for row in parsed.rows
    ]
    return pd.DataFrame(records, columns=[*columns, "status", "problem"])


def report_frame(parsed: ParsedBulk, results: Sequence[RowResult]) -> pd.DataFrame:
    """One line per data row of the file: what was asked and what happened, by file line."""
    imported = {r.change.row: r for r in results}
    records = []
    for row in parsed.rows:
        values = _row_values(row)
        result = imported.get(row.line)
        ok = result is not None and result.ok
        message = result.message if result is not None else "; ".join(row.problems)
        records.append(
            {
                "line": row.line,
                "host_type": values["host_type"],
                "host_id": values["host_id"],
                "count": values["count"],
                "result": "added" if ok else "refused",
                "message": message,
                "allocation_id": result.allocation_id if result is not None else None,
            }
        )
    return pd.DataFrame(records, columns=REPORT_COLUMNS)


def refused_rows(parsed: ParsedBulk, results: Sequence[RowResult]) -> pd.DataFrame:
    """The rows that were not allocated, as read from the file (its columns, same order) with
    the reason for each: ready to fix and upload again. `line` says where each one was."""
    outcome = {r.change.row: r for r in results}
    records = []
    for row in parsed.rows:
        result = outcome.get(row.line)
        if result is not None and result.ok:
            continue
        reason = result.message if result is not None else "; ".join(row.problems)
        cells = {column: row.cells.get(column, "") for column in parsed.columns}
        records.append({"line": row.line, **cells, "reason": reason})
    return pd.DataFrame(records, columns=["line", *parsed.columns, "reason"])


@dataclass(frozen=True)
class BulkResult:
    """What one bulk import did: rows accepted, rows refused (with reasons), notes on the file."""

    accepted: int
    refused: pd.DataFrame
    report: pd.DataFrame
    notes: tuple[str, ...] = ()

    @property
    def refused_csv(self) -> pd.DataFrame:
        """The refused rows in the upload's columns plus "reason" (no line number)."""
        return self.refused.drop(columns=["line"])


def bulk_result(parsed: ParsedBulk, results: Sequence[RowResult]) -> BulkResult:
    report = report_frame(parsed, results)
    accepted = int((report["result"] == "added").sum())
    return BulkResult(accepted, refused_rows(parsed, results), report, tuple(parsed.problems))


def _read_text(uploaded, pasted: str) -> tuple[str, str | None]:
    """The CSV text (an upload wins over pasted text), or why the upload cannot be read."""
    if uploaded is None:
        return pasted or "", None
    try:
        return uploaded.getvalue().decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return "", "the uploaded file is not UTF-8 text; save it as CSV UTF-8 and upload it again"


def _fingerprint(text: str, host_type: str, count: int) -> str:
    return hashlib.sha256(f"{host_type}\0{count}\0{text}".encode("utf-8", "replace")).hexdigest()


def _import(page: PageContext, scope: GridScope, parsed: ParsedBulk) -> None:
    outcome = attempt(
        import_bulk, page.ctx, page.actor, scope.pool_id, parsed, feature=scope.feature
    )
    if not outcome.ok:
        return
    results = outcome.value or []
    result = bulk_result(parsed, results)
    st.session_state[REPORT_KEY.format(tag=scope.tag)] = result
    st.session_state.pop(PARSED_KEY.format(tag=scope.tag), None)
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
    memory.summary = f"Bulk add allocated {result.accepted} of {len(result.report)} row(s)."
    st.rerun()


def _want(tag: str, action: str) -> None:
    """Remember a click before the script runs, so a rerun (the grid refreshing when its rows
    reach the server) cannot drop it; a new preview replaces the last result at once."""
    st.session_state[WANTED_KEY.format(tag=tag)] = action
    if action == "preview":
        st.session_state.pop(REPORT_KEY.format(tag=tag), None)


def _wanted(tag: str, action: str) -> bool:
    """Whether the user clicked `action` since it was last done (and mark it done)."""
    key = WANTED_KEY.format(tag=tag)
    if st.session_state.get(key) != action:
        return False
    del st.session_state[key]
    return True


def render_bulk_result(scope: GridScope) -> None:
    """The last bulk import's result, in the open: rows accepted, rows refused with the reason
    for each, and the refused rows as a CSV to fix and upload again."""
    key = REPORT_KEY.format(tag=scope.tag)
    result = st.session_state.get(key)
    if not isinstance(result, BulkResult):
        return
    with st.container(border=True, key=f"bulk_result_{scope.tag}"):
        st.markdown("**Bulk add from CSV — result**")
        for note in result.notes:
            st.warning(note)
        refused = len(result.refused)
        if result.accepted:
            st.success(f"{result.accepted} row(s) accepted and allocated.", icon=":material/check:")
        else:
            st.warning("No row was accepted.", icon=":material/warning:")
        if refused:
            st.error(
                f"{refused} row(s) refused, each with its reason below. Download them, fix "
                "them and upload the file again.",
                icon=":material/block:",
            )
            st.dataframe(
                result.refused,
                hide_index=True,
                column_config=labelled([str(c) for c in result.refused.columns]),
                key=f"bulk_refused_{scope.tag}",
                placeholder="",
            )
            download_csv(
                result.refused_csv,
                "refused rows",
                label=f"Download the {refused} refused row(s) (CSV)",
                key=f"bulk_refused_csv_{scope.tag}",
                raw=True,  # read back by the bulk add: the upload's own column names
            )
        with st.expander("Every row of the file"):
            table_with_download(result.report, "bulk add report", key=f"bulk_report_{scope.tag}")
        st.button(
            "Dismiss",
            key=f"bulk_dismiss_{scope.tag}",
            icon=":material/close:",
            on_click=st.session_state.pop,
            args=(key, None),
        )


def _render_preview(page: PageContext, scope: GridScope, parsed: ParsedBulk) -> None:
    """The parsed rows with their problems, and the button that imports the good ones."""
    if parsed.refused:
        for problem in parsed.problems:
            st.error(problem, icon=":material/block:")
        return
    for problem in parsed.problems:
        st.warning(problem)
    st.markdown(
        f"**Preview:** {parsed.good_rows} row(s) ready, {parsed.bad_rows} with problems "
        "(those are not imported; fix them and preview again)."
    )
    table_with_download(preview_frame(parsed), "bulk add preview", key=f"bulk_rows_{scope.tag}")
    st.button(
        f"Allocate {parsed.good_rows} ready row(s)",
        key=f"bulk_apply_{scope.tag}",
        type="primary",
        disabled=parsed.good_rows == 0,
        on_click=_want,
        args=(scope.tag, "import"),
    )
    if _wanted(scope.tag, "import"):
        _import(page, scope, parsed)


def render_bulk_import(page: PageContext, scope: GridScope) -> None:
    render_bulk_result(scope)
    with st.expander("Bulk add from CSV (paste or upload)", icon=":material/upload_file:"):
        st.caption(
            "A CSV whose first line names the columns: host_id, and optionally host_type, "
            "count, description, starts_on and ends_on (YYYY-MM-DD; the end is the last day) "
            "(comma, semicolon or tab separated). Preview checks every row; "
            "nothing is allocated until you confirm, and only the rows without problems are."
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
            max_value=1_000_000,
            value=1,
            step=1,
            key=f"bulk_count_{scope.tag}",
        )
        text, read_error = _read_text(uploaded, pasted)
        fingerprint = _fingerprint(text, host_type, int(count))
        parsed_key = PARSED_KEY.format(tag=scope.tag)
        st.button(
            "Preview",
            key=f"bulk_preview_{scope.tag}",
            icon=":material/preview:",
            on_click=_want,
            args=(scope.tag, "preview"),
        )
        if _wanted(scope.tag, "preview"):
            if read_error:
                st.error(read_error)
            else:
                parsed = parse_bulk_allocations(
                    text, default_host_type=host_type, default_count=int(count)
                )
                st.session_state[parsed_key] = (fingerprint, parsed)
        stored = st.session_state.get(parsed_key)
        if stored and stored[0] != fingerprint:
            st.session_state.pop(parsed_key, None)
            st.info("The text or the defaults changed since the preview: preview again.")
        elif stored:
            _render_preview(page, scope, stored[1])
