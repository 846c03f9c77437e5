"""VLM entrypoint: page config, runtime, login gate, then the pages the user's role may open."""

from __future__ import annotations

import streamlit as st

from vlm.domain import VlmError
from vlm.ui.alert_center import sidebar_badge
from vlm.ui.auth import authenticate
from vlm.ui.navigation import LOGIN, SET_PASSWORD, role_navigation, single_page_navigation
from vlm.ui.requests import sidebar_count
from vlm.ui.runtime import get_runtime
from vlm.ui.session import PageContext, entrypoint_run

st.set_page_config(
    page_title="VLM — Virtual License Manager",
    page_icon=":material/key:",
    layout="wide",
)

runtime = get_runtime()
signed_in = authenticate(runtime)
if signed_in is None:
    page = single_page_navigation(LOGIN)
elif signed_in.must_change_password:
    page = single_page_navigation(SET_PASSWORD)
else:
    page = role_navigation(signed_in.actor.role)
    sidebar_badge(PageContext(runtime, signed_in.actor))
    sidebar_count(PageContext(runtime, signed_in.actor))

with entrypoint_run(signed_in.actor if signed_in else None):
    try:
        page.run()
    except VlmError as exc:
        st.error(exc.message, icon=":material/block:")
