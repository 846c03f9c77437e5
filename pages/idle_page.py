"""Idle licenses (every role, scoped): reserved seats nobody used, their release, the policy."""

import streamlit as st

from vlm.domain import Role
from vlm.ui import idle_report
from vlm.ui.session import page_context
from vlm.ui.widgets import show_flashes

page = page_context()
st.title("Idle licenses")
show_flashes()
days = idle_report.chosen_days(page)
found = idle_report.report(page, days)
idle_report.summary(found)
idle_report.totals(page, found)
idle_report.allocations(page, found)
if page.actor.role is Role.ADMIN:
    idle_report.policy_form(page)
    idle_report.prices_form(page)
