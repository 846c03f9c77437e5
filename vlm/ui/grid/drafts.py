"""The allocation grid's source frame, and the drafts that keep refused rows as they were typed.

Pure pandas (no streamlit): after an Apply, every refused addition comes back as a row without
an id and every refused edit comes back with the typed values, each with its problem, so the
user can correct it in the grid and apply again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from vlm.domain import AllocationState
from vlm.services.allocations import AllocationChange, RowResult
from vlm.ui.grid.diff import GridDiff, clean

GRID_COLUMNS = [
    "host_type",
    "host_id",
    "count",
    "description",
    "starts_on",
    "ends_on",
    "phase",
    "status",
    "server_name",
    "problem",
    "created_at",
    "id",
    "state",
    "last_error",
    "pending_edit",
]
HIDDEN_COLUMNS = ("state", "last_error", "pending_edit")
NOT_SAVED = "not saved"
STATUS_TEXT = {
    AllocationState.PENDING.value: "pending",
    AllocationState.APPLIED.value: "applied",
    AllocationState.FAILED.value: "failed",
    AllocationState.REMOVING.value: "removing",
    AllocationState.DISABLED.value: "disabled by server",
    AllocationState.SCHEDULED.value: "waiting for start",
    AllocationState.EXPIRING.value: "removing (ended)",
    AllocationState.EXPIRED.value: "off the server",
}
DAY_COLUMNS = ("starts_on", "ends_on")
TYPED_COLUMNS = ("host_type", "host_id", "count", "description", *DAY_COLUMNS)
WITH_SERVER_REASON = {
    AllocationState.FAILED.value,
    AllocationState.PENDING.value,
    AllocationState.DISABLED.value,
}


@dataclass
class Drafts:
    """Refused rows to put back into the grid: additions and edits, with their problem."""

    adds: list[dict[str, Any]] = field(default_factory=list)
    edits: dict[int, dict[str, Any]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return bool(self.adds or self.edits)


def _typed(change: AllocationChange) -> dict[str, Any]:
    return {
        "host_type": clean(change.host_type),
        "host_id": clean(change.host_id),
        "count": clean(change.count),
        "description": clean(change.description) or "",
        "starts_on": clean(change.starts_on),
        "ends_on": clean(change.ends_on),
    }


def drafts_after_apply(diff: GridDiff, results: Sequence[RowResult]) -> Drafts:
    """Keep every refused row: additions with what was typed, edits with the typed values."""
    drafts = Drafts()
    for problem in diff.problems:
        if problem.allocation_id is not None:
            drafts.edits[problem.allocation_id] = {"problem": problem.message}
    for result in results:
        if result.ok:
            continue
        change = result.change
        if change.op == "add":
            drafts.adds.append({**_typed(change), "problem": result.message})
        elif change.op == "edit" and change.allocation_id is not None:
            typed = {
                "count": clean(change.count),
                "description": clean(change.description),
                "ends_on": clean(change.ends_on),
            }
            drafts.edits[change.allocation_id] = {**typed, "problem": result.message}
    return drafts


def _as_counts(values: pd.Series) -> Any:
    """Whole numbers as Int64; text, fractions and blanks as NA (one vectorised pass: per
    value this took a third of a second for a 10,000-row grid)."""
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    whole = numbers.notna() & (numbers % 1 == 0) & (numbers.abs() < 2**53)
    return pd.array(numbers.where(whole), dtype="Int64")


def status_text(state: str) -> str:
    """A row's state as the grid says it ("disabled" reads "disabled by server")."""
    return STATUS_TEXT.get(state, state)


def problem_text(problem: str, state: str, last_error: str) -> str:
    """The row's problem: what the last Apply refused, and the license server's reason for a
    failed, disabled or still retrying row."""
    reason = last_error if state in WITH_SERVER_REASON else ""
    if reason and state == AllocationState.PENDING.value:
        reason = f"retrying: {reason}"
    return "; ".join(part for part in (problem, reason) if part)


def _as_days(column: pd.Series) -> pd.Series:
    """A column of days (dates, timestamps or ISO text) as dates; blanks and non-dates None."""
    values = pd.to_datetime(column.astype(object).map(_day_text), errors="coerce")
    return values.dt.date.astype(object).where(values.notna(), None)


def _day_text(value: Any) -> Any:
    """A cell as text pandas reads as a day (its first ten characters when it is ISO text)."""
    value = clean(value)
    return value[:10] if isinstance(value, str) else value


def _as_text(column: pd.Series) -> pd.Series:
    """A column as the grid's text: missing values blank, anything else as its text."""
    return column.astype(object).where(column.notna(), "").astype(str)


def build_source(allocations: pd.DataFrame, drafts: Drafts | None = None) -> pd.DataFrame:
    """The editor's input: the feature's allocations, refused edits overlaid, refused adds last;
    each row's status in words, the license server it was placed on (blank while not saved)
    and, in its problem, the server's reason when it has one."""
    frame = allocations.reindex(columns=GRID_COLUMNS).copy()
    frame["problem"] = ""
    frame["pending_edit"] = False
    out = _with_drafts(frame, drafts) if drafts else frame
    out["id"] = pd.array([clean(v) for v in out["id"]], dtype="Int64")
    out["count"] = _as_counts(out["count"])
    for column in DAY_COLUMNS:
        out[column] = _as_days(out[column])
    text_columns = ("host_type", "host_id", "description", "state", "problem", "last_error")
    for column in (*text_columns, "server_name", "phase"):
        out[column] = _as_text(out[column])
    out["status"] = out["state"].map(status_text).astype(str)
    out["problem"] = pd.Series(
        [
            problem_text(problem, state, error)
            for problem, state, error in zip(
                out["problem"], out["state"], out["last_error"], strict=True
            )
        ],
        index=out.index,
        dtype=str,
    )
    out["created_at"] = pd.to_datetime(out["created_at"])
    out["pending_edit"] = pd.array(out["pending_edit"].fillna(False).astype(bool), dtype="boolean")
    return out.reset_index(drop=True)


def _with_drafts(frame: pd.DataFrame, drafts: Drafts) -> pd.DataFrame:
    """The rows with refused edits overlaid and refused additions appended."""
    rows = frame.to_dict("records")
    by_id = {int(r["id"]): r for r in rows if clean(r["id"]) is not None}
    for allocation_id, edit in drafts.edits.items():
        row = by_id.get(int(allocation_id))
        if row is None:
            continue
        row["problem"] = edit.get("problem", "")
        typed = {k: edit[k] for k in ("count", "description", "ends_on") if k in edit}
        if typed:
            row.update(typed)
            row["pending_edit"] = True
    for add in drafts.adds:
        rows.append(
            {
                **{c: None for c in GRID_COLUMNS},
                **{k: add.get(k) for k in TYPED_COLUMNS},
                "state": NOT_SAVED,
                "problem": add.get("problem", ""),
                "pending_edit": False,
            }
        )
    return pd.DataFrame(rows, columns=GRID_COLUMNS)
