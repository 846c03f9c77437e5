"""Login through streamlit-authenticator with credentials from the users table (notes §3.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd
import streamlit as st
import streamlit_authenticator as stauth

from vlm.domain import Actor, VlmError
from vlm.services import users
from vlm.ui.runtime import Runtime

LOGIN_FIELDS = {
    "Form name": "Sign in",
    "Username": "Username",
    "Password": "Password",
    "Login": "Sign in",
}
NOTICE_KEY = "vlm_login_notice"
SESSION_PREFIXES = ("_vlm_", "_alloc_grid_", "_bulk_report_", "_confirm_", "alloc_", "bulk_")
LOCKED_MESSAGE = (
    "Too many failed sign-in attempts for this user. Wait 15 minutes or ask an admin to reset "
    "your password."
)


@dataclass(frozen=True)
class SignedIn:
    """The user this session acts for, re-read from the users table on every run."""

    actor: Actor
    display_name: str
    must_change_password: bool


def _hide_cookie_component() -> None:
    st.html("<style>.st-key-init{display:none}</style>")


def _logout_button(auth: stauth.Authenticate) -> None:
    """Logout button in the sidebar (clicking it signs out in this very run)."""
    auth.logout("Log out", location="sidebar", key="vlm_logout", use_container_width=True)


def _login(auth: stauth.Authenticate, max_attempts: int) -> str | None:
    """The form (or cookie re-authentication); returns a problem to show, if any."""
    slot = st.empty()
    try:
        with slot:
            auth.login(
                location="main",
                max_login_attempts=max_attempts,
                fields=LOGIN_FIELDS,
                key="vlm_login",
            )
    except stauth.LoginError as exc:
        if "attempts" in str(exc):
            return LOCKED_MESSAGE
        # the cookie names a user who is now disabled or deleted: drop it, offer the form
        st.session_state["logout"] = True
        auth.cookie_controller.delete_cookie()
        with slot:
            auth.login(location="main", fields=LOGIN_FIELDS, key="vlm_login")
        st.session_state[NOTICE_KEY] = (
            "Your account is disabled or no longer exists. Sign in as someone else."
        )
    return None


def forget_session() -> None:
    """Drop what a signed-out session remembered for its last user (grids, passwords, prompts)."""
    for key in list(st.session_state.keys()):
        if str(key).startswith(SESSION_PREFIXES):
            del st.session_state[key]


def seed_signed_in(session_state: Any, username: str) -> None:
    """Give a new session the keys streamlit-authenticator sets on sign-in (how AppTest sessions
    of the tests and benchmarks start signed in)."""
    session_state["authentication_status"] = True
    session_state["username"] = username
    session_state["name"] = username
    session_state["roles"] = []
    session_state["logout"] = None


def _resolve(runtime: Runtime, username: str) -> SignedIn:
    actor = users.actor_for(runtime.ctx, username)
    profile = users.get_user(runtime.ctx, username) or {}
    return SignedIn(
        actor,
        str(profile.get("display_name") or username),
        bool(profile.get("must_change_password")),
    )


def _show_identity(box: st.delta_generator.DeltaGenerator, signed_in: SignedIn) -> None:
    role = signed_in.actor.role.value
    box.markdown(
        f"Signed in as **{signed_in.display_name}**  \n"
        f"`{signed_in.actor.username}` · role **{role}**"
    )


def authenticate(runtime: Runtime) -> SignedIn | None:
    """Render the login form, or return who is signed in (with the account box in the sidebar)."""
    settings = runtime.settings
    _hide_cookie_component()
    credentials = users.authenticator_credentials(runtime.ctx)
    seeded = runtime.throttle.seed(credentials)
    auth = stauth.Authenticate(
        credentials,
        settings.cookie_name,
        settings.cookie_key,
        settings.cookie_expiry_days,
        auto_hash=False,
        login_sleep_time=0,
    )
    identity = st.sidebar.container()
    logout_rendered = bool(st.session_state.get("authentication_status"))
    if logout_rendered:
        _logout_button(auth)
    heading = st.container()
    problem = _login(auth, settings.max_login_attempts)
    runtime.throttle.harvest(credentials, seeded)

    status = st.session_state.get("authentication_status")
    if not status:
        forget_session()
        heading.title("VLM — Virtual License Manager")
        if problem:
            heading.error(problem)
        elif NOTICE_KEY in st.session_state:
            heading.error(st.session_state[NOTICE_KEY])
        elif status is False:
            heading.error("Wrong user name or password.")
        return None
    try:
        signed_in = _resolve(runtime, st.session_state["username"])
    except VlmError as exc:
        auth.logout(location="unrendered")
        heading.error(f"{exc.message}. Ask an admin to enable your account.")
        return None
    st.session_state.pop(NOTICE_KEY, None)
    if not logout_rendered:
        _logout_button(auth)
    _show_identity(identity, signed_in)
    return signed_in


def demo_logins() -> pd.DataFrame:
    """The demo accounts (only shown when settings.demo is true)."""
    from vlm.demo import DEMO_USERS

    return pd.DataFrame(
        {
            "user": [u.username for u in DEMO_USERS],
            "password": [u.password for u in DEMO_USERS],
            "role": [str(u.role) for u in DEMO_USERS],
            "who": [u.display_name for u in DEMO_USERS],
        }
    )


def check_new_password(new: str, repeat: str) -> str | None:
    """UI-side checks the service cannot make (the form's two fields; the login form strips)."""
    if new != repeat:
        return "The two new passwords differ."
    if new != new.strip():
        return "The password must not start or end with a space."
    return None
