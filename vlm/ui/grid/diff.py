"""Turn an allocation grid's pending edits into service changes (pure: no streamlit here).

The editor's source frame has a RangeIndex and the allocation id in a column. Rows without an id
are drafts: additions that failed on an earlier Apply and were put back with what was typed.
Rows flagged `pending_edit` are earlier edits that failed and were put back the same way.
Row numbers in messages are 1-based positions in the grid (added rows follow the source rows).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from vlm.services.allocations import AllocationChange

DEFAULT_HOST_TYPE = "ETHERNET"
EDITABLE = ("count", "description", "ends_on")
FIXED = ("host_type", "host_id")
INPUT_COLUMNS = ("host_type", "host_id", "count", "description", "starts_on", "ends_on")
_ISO_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")


@dataclass(frozen=True)
class RowProblem:
    """A grid row refused before reaching the services, with what was typed."""

    row: int
    message: str
    allocation_id: int | None = None
    typed: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GridDiff:
    changes: list[AllocationChange]
    problems: list[RowProblem]

    @property
    def empty(self) -> bool:
        return not self.changes and not self.problems

    def counts(self) -> dict[str, int]:
        out = {"add": 0, "edit": 0, "delete": 0}
        for change in self.changes:
            out[change.op] = out.get(change.op, 0) + 1
        return out


def clean(value: Any) -> Any:
    """Grid cell → plain value: NaN/NA → None, text stripped."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        return value.strip()
    return value


def _day_or_value(value: Any) -> Any:
    """A day (date, timestamp, ISO text with or without a time) as 'YYYY-MM-DD'; else value."""
    if isinstance(value, date):
        return value.isoformat()[:10]
    if isinstance(value, str) and _ISO_DAY.match(value):
        return value[:10]
    return value


def _same(a: Any, b: Any) -> bool:
    a, b = _day_or_value(clean(a)), _day_or_value(clean(b))
    if a is None or b is None:
        return (a in (None, "")) and (b in (None, ""))
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _state_part(state: Mapping[str, Any] | None, name: str, default: Any) -> Any:
    if not state:
        return default
    value = state.get(name) if isinstance(state, Mapping) else getattr(state, name, None)
    return default if value is None else value


def has_edits(state: Mapping[str, Any] | None) -> bool:
    """True while the editor holds edits that were not applied."""
    return bool(
        _state_part(state, "edited_rows", {})
        or _state_part(state, "added_rows", [])
        or _state_part(state, "deleted_rows", [])
    )


def _add(row: int, values: Mapping[str, Any]) -> AllocationChange | None:
    host_id = clean(values.get("host_id"))
    description = clean(values.get("description"))
    if host_id in (None, "") and description in (None, ""):
        return None  # a blank row: ignored like a spreadsheet's empty line
    count = clean(values.get("count"))
    return AllocationChange(
        "add",
        row=row,
        host_type=clean(values.get("host_type")) or DEFAULT_HOST_TYPE,
        host_id=host_id,
        count=1 if count is None else count,
        description=description or "",
        starts_on=clean(values.get("starts_on")),
        ends_on=clean(values.get("ends_on")),
    )


def _existing(
    row: int, allocation_id: int, source: Mapping[str, Any], edits: Mapping[str, Any]
) -> AllocationChange | RowProblem | None:
    changed_fixed = [c for c in FIXED if c in edits and not _same(edits[c], source.get(c))]
    if changed_fixed:
        typed = {c: clean(edits[c]) for c in changed_fixed}
        shown = ", ".join(f"{c.replace('_', ' ')} '{v}'" for c, v in typed.items())
        return RowProblem(
            row,
            f"the host of an existing allocation cannot change (you typed {shown}); "
            "delete the row and add a new one",
            allocation_id,
            typed,
        )
    changed = {c: edits[c] for c in EDITABLE if c in edits and not _same(edits[c], source.get(c))}
    if "ends_on" in changed and clean(changed["ends_on"]) is None:
        return RowProblem(
            row,
            "the end date cannot be cleared; pick a new last day",
            allocation_id,
            {"ends_on": None},
        )
    moved_start = "starts_on" in edits and not _same(edits["starts_on"], source.get("starts_on"))
    if not changed and not moved_start and not bool(source.get("pending_edit")):
        return None
    merged = {c: changed.get(c, source.get(c)) for c in EDITABLE}
    description = clean(merged["description"])
    return AllocationChange(
        "edit",
        row=row,
        allocation_id=allocation_id,
        count=clean(merged["count"]),
        description="" if description is None else description,
        starts_on=clean(edits["starts_on"]) if moved_start else None,
        ends_on=clean(merged["ends_on"]),
    )


def _rows_to_check(source: pd.DataFrame, edited: Mapping[int, Any], deleted: set[int]) -> list[int]:
    """The positions that can yield a change or a problem, in order: edited or deleted rows,
    drafts (no id yet) and rows with an edit still to apply. Any other row is as saved."""
    flagged: set[int] = set()
    if "id" in source.columns:
        flagged.update(np.flatnonzero(source["id"].isna().to_numpy()).tolist())
    if "pending_edit" in source.columns:
        pending = source["pending_edit"].fillna(False).astype(bool).to_numpy()
        flagged.update(np.flatnonzero(pending).tolist())
    return sorted(p for p in {*edited, *deleted, *flagged} if 0 <= p < len(source))


def diff_grid(source: pd.DataFrame, state: Mapping[str, Any] | None) -> GridDiff:
    """(source frame, editor state) → the changes to apply and the rows refused up front."""
    edited = {int(k): v for k, v in _state_part(state, "edited_rows", {}).items()}
    added = list(_state_part(state, "added_rows", []))
    deleted = {int(i) for i in _state_part(state, "deleted_rows", [])}
    changes: list[AllocationChange] = []
    problems: list[RowProblem] = []
    for position in _rows_to_check(source, edited, deleted):
        record = source.iloc[position].to_dict()
        row = position + 1
        allocation_id = clean(record.get("id"))
        if position in deleted:
            if allocation_id is not None:
                changes.append(
                    AllocationChange("delete", row=row, allocation_id=int(allocation_id))
                )
            continue
        edits = edited.get(position, {})
        if allocation_id is None:
            draft = _add(row, {**{c: record.get(c) for c in INPUT_COLUMNS}, **edits})
            if draft is not None:
                changes.append(draft)
            continue
        outcome = _existing(row, int(allocation_id), record, edits)
        if isinstance(outcome, RowProblem):
            problems.append(outcome)
        elif outcome is not None:
            changes.append(outcome)
    for offset, values in enumerate(added):
        change = _add(len(source) + offset + 1, values)
        if change is not None:
            changes.append(change)
    return GridDiff(changes, problems)
