"""Requests (admins): open quantity requests with the VLM's availability, a decision each, and
the history."""

import streamlit as st

from vlm.domain import Role
from vlm.ui import requests
from vlm.ui.session import page_context
from vlm.ui.widgets import show_flashes

page = page_context(Role.ADMIN)
st.title("Requests")
show_flashes()
st.caption(
    "Managers ask for more of a feature for their pool. Approving grows the pool (never beyond "
    "what the VLM has available); the requester is told the decision and its reason."
)
requests.open_requests(page)
requests.history(page)
