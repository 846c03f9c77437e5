"""Extend: select saved rows that have not expired, pick a new last day, confirm; each row is
extended or refused with its reason (e.g. beyond the pool's maximum duration)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta

import pandas as pd
import streamlit as st

from vlm.services import allocations
from vlm.services.allocations import RowResult
from vlm.ui.confirm import Question, confirmed_action
from vlm.ui.grid.report import saved_row_results
from vlm.ui.grid.state import GridScope
from vlm.ui.local_time import now_for_user
from vlm.ui.session import PageContext

EXTENDABLE_PHASES = ("scheduled", "active")


def extendable_rows(source: pd.DataFrame) -> dict[int, str]:
    """Allocation id → label of the saved rows that may get a new end (not expired)."""
    rows = source[source["id"].notna() & source["phase"].isin(EXTENDABLE_PHASES)]
    ends = rows["ends_on"].map(lambda day: "no end" if day is None else f"ends {day}")
    labels = rows["host_type"] + " " + rows["host_id"] + " (" + ends + ")"
    return dict(zip(rows["id"].astype("int64").tolist(), labels.tolist(), strict=True))


def render_extend(page: PageContext, scope: GridScope, source: pd.DataFrame) -> None:
    """The Extend box under the grid (nothing when no row can be extended)."""
    rows = extendable_rows(source)
    if not rows:
        return
    memory = scope.memory
    today = now_for_user().date()
    with st.expander("Extend allocations", icon=":material/event_repeat:"):
        chosen_col, day_col = st.columns([3, 1])
        chosen = chosen_col.multiselect(
            "Rows to extend",
            list(rows),
            format_func=rows.get,
            key=f"alloc_extend_rows_{scope.tag}_{memory.retry_round}",
            placeholder="select rows",
        )
        new_end = day_col.date_input(
            "New last day",
            value=today + timedelta(days=30),
            min_value=today,
            key=f"alloc_extend_day_{scope.tag}",
        )
        key = f"alloc_extend_{scope.tag}"
        question = (
            f"Give {len(chosen)} allocation(s) the last day {new_end}? Each keeps its license "
            "through that day; a row beyond the pool's maximum duration is refused."
        )
        confirmed_action(
            "Extend…",
            key=key,
            question=Question(key, question, f"Extend {len(chosen)} row(s)"),
            act=lambda: allocations.extend_allocations(
                page.ctx, page.actor, scope.pool_id, chosen, new_end
            ),
            done=lambda results: _after_extend(page, scope, source, results or []),
            icon=":material/event_repeat:",
            destructive=False,
            enabled=bool(chosen) and isinstance(new_end, date),
        )


def _after_extend(
    page: PageContext, scope: GridScope, source: pd.DataFrame, results: Sequence[RowResult]
) -> None:
    """Each row's outcome in the grid's report (the page reruns next)."""
    rows = saved_row_results(source, results, "extend", track=False)
    memory = scope.memory
    memory.results = rows
    memory.tracked = {}
    extended = sum(1 for r in rows if r["ok"])
    refused = len(rows) - extended
    memory.summary = f"Extended {extended} row(s)" + (
        f"; {refused} refused (the reason is in the report)." if refused else "."
    )
    memory.retry_round += 1
    if not scope.editing():
        scope.refresh(page.ctx, page.actor)
