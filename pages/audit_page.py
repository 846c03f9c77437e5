"""Audit (admin): the audit log filtered by time, user, action and target; exportable."""

from datetime import date, datetime, time, timedelta

import streamlit as st

from vlm.domain import Role
from vlm.services import audit, users
from vlm.ui.session import page_context
from vlm.ui.widgets import table_with_download

ANY = "(any)"

page = page_context(Role.ADMIN)
st.title("Audit log")
when_col, user_col, action_col, target_col = st.columns([2, 1, 1, 1])
span = when_col.date_input(
    "Between", (date.today() - timedelta(days=7), date.today()), key="audit_span"
)
people = [ANY, "system", *users.list_users(page.ctx, page.actor)["username"].tolist()]
who = user_col.selectbox("User", people, key="audit_user")
action = action_col.selectbox(
    "Action", [ANY, *audit.audit_actions(page.ctx, page.actor)], key="audit_action"
)
target = target_col.text_input("Target contains", key="audit_target").strip()

start, end = (span[0], span[-1]) if isinstance(span, tuple) and span else (span, span)
log = audit.audit_log(
    page.ctx,
    page.actor,
    since=datetime.combine(start, time.min) if start else None,
    until=datetime.combine(end, time.max) if end else None,
    user=None if who == ANY else who,
    action=None if action == ANY else action,
    target=target or None,
)
st.caption(f"{len(log)} entr{'y' if len(log) == 1 else 'ies'}, newest first")
table_with_download(
    log,
    "audit log",
    key="audit_log",
    column_config={
        "happened_at": st.column_config.DatetimeColumn("When", format="YYYY-MM-DD HH:mm:ss"),
        "before": st.column_config.TextColumn("Before", width="large"),
        "after": st.column_config.TextColumn("After", width="large"),
    },
)
