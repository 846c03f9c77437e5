"""Audit (admin): the audit log filtered by time, user, action and target; exportable; a row
opens its before/after side by side."""

from datetime import timedelta

import pandas as pd
import streamlit as st

from vlm.domain import Role
from vlm.services import audit, users
from vlm.ui.audit_detail import render_detail, with_changes
from vlm.ui.local_time import day_bounds_to_server, now_for_user, user_zone, zone_label
from vlm.ui.memo import per_generation
from vlm.ui.session import page_context
from vlm.ui.widgets import table_with_download

ANY = "(any)"
LOG_COLUMNS = [
    "id",
    "happened_at",
    "actor",
    "action",
    "target_type",
    "target_id",
    "changed",
    "before",
    "after",
]

page = page_context(Role.ADMIN)
st.title("Audit log")
when_col, user_col, action_col, target_col = st.columns([2, 1, 1, 1])
today = now_for_user().date()
span = when_col.date_input(
    f"Between (days in {zone_label(user_zone())})",
    (today - timedelta(days=7), today),
    key="audit_span",
)
people = per_generation(
    page,
    "audit: people",
    lambda: [ANY, "system", *users.list_users(page.ctx, page.actor)["username"].tolist()],
)
who = user_col.selectbox("User", people, key="audit_user")
action = action_col.selectbox(
    "Action",
    per_generation(
        page, "audit: actions", lambda: [ANY, *audit.audit_actions(page.ctx, page.actor)]
    ),
    key="audit_action",
)
target = target_col.text_input("Target contains", key="audit_target").strip()

start, end = (span[0], span[-1]) if isinstance(span, tuple) and span else (span, span)
since, until = day_bounds_to_server(start, end) if start and end else (None, None)


def read_log() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The entries and the same with their changed keys, as the table shows them."""
    entries = audit.audit_log(
        page.ctx,
        page.actor,
        since=since,
        until=until,
        user=None if who == ANY else who,
        action=None if action == ANY else action,
        target=target or None,
    )
    return entries, with_changes(entries)


log, shown = per_generation(page, "audit: log", read_log, since, until, who, action, target)
st.caption(
    f"{len(log)} entr{'y' if len(log) == 1 else 'ies'}, newest first. Select a row to read its "
    "before and after side by side."
)
chosen = table_with_download(
    shown,
    "audit log",
    key="audit_log",
    column_order=LOG_COLUMNS,
    selectable=True,
    column_config={
        "id": st.column_config.NumberColumn("Id", format="%d", width=60),
        "actor": st.column_config.TextColumn("User", width="small"),
        "action": st.column_config.TextColumn("Action", width="medium"),
        "target_id": st.column_config.TextColumn("Target id", width="small"),
        "changed": st.column_config.TextColumn(
            "Changed keys", width="medium", help="select the row to see before and after"
        ),
        # the JSON is read in the entry's panel (and is in the CSV), not squeezed into a cell
        "before": None,
        "after": None,
    },
)
if chosen is not None:
    render_detail(log.iloc[chosen])
