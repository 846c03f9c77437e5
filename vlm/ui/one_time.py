"""Show a generated one-time password exactly once."""

from __future__ import annotations

import streamlit as st

_KEY = "_vlm_one_time_password"


def remember(username: str, password: str) -> None:
    st.session_state[_KEY] = (username, password)


def show_once() -> None:
    """Display the password stored by remember() and forget it."""
    stored = st.session_state.pop(_KEY, None)
    if stored is None:
        return
    username, password = stored
    with st.container(border=True, key="one_time_password"):
        st.success(
            f"One-time password for **{username}** — copy it now, it is shown only once. "
            "They must choose their own password when they sign in.",
            icon=":material/key:",
        )
        st.code(password, language=None)
