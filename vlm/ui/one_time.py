"""Show a generated one-time password until the admin confirms they copied it."""

from __future__ import annotations

import streamlit as st

_KEY = "_vlm_one_time_password"


def remember(username: str, password: str) -> None:
    st.session_state[_KEY] = (username, password)


def show() -> None:
    """Display the password stored by remember() until 'Done' forgets it for good."""
    stored = st.session_state.get(_KEY)
    if stored is None:
        return
    username, password = stored
    with st.container(border=True, key="one_time_password"):
        st.success(
            f"One-time password for **{username}** — copy it now: once you press Done it cannot "
            "be shown again. They must choose their own password when they sign in.",
            icon=":material/key:",
        )
        st.code(password, language=None)
        if st.button("Done, I copied it", key="one_time_done"):
            st.session_state.pop(_KEY, None)
            st.rerun()
