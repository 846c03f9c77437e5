"""Sign an AppTest session in without the form (for tests and benchmarks)."""

from __future__ import annotations

from typing import Any


def seed_signed_in(session_state: Any, username: str) -> None:
    """Mark a session signed in with the keys streamlit-authenticator reads, as the sign-in
    form does after a right password (vlm.ui.auth._submit_sign_in)."""
    session_state["authentication_status"] = True
    session_state["username"] = username
    session_state["name"] = username
    session_state["roles"] = []
    session_state["logout"] = None
