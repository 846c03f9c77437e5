"""Sign-in: the form asks vlm.services.logins.sign_in (lockout, password, disabled flag);
streamlit-authenticator keeps the signed cookie and the session keys (notes §3.7)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jwt
import pandas as pd
import streamlit as st
import streamlit_authenticator as stauth

from vlm.domain import Actor, VlmError
from vlm.services import logins, users
from vlm.services.logins import SignInOutcome
from vlm.ui.runtime import Runtime

FORM_KEY = "vlm_login"
NOTICE_KEY = "vlm_login_notice"
SESSION_PREFIXES = ("_vlm_", "_alloc_grid_", "_bulk_report_", "_confirm_", "alloc_", "bulk_")
LOCKED_MESSAGE = (
    "Too many failed sign-in attempts for this user. Wait 15 minutes or ask an admin to reset "
    "your password."
)
SIGN_IN_PROBLEMS = {
    SignInOutcome.WRONG: "Wrong user name or password.",
    SignInOutcome.LOCKED: LOCKED_MESSAGE,
    SignInOutcome.DISABLED: "Your account is disabled. Ask an admin to enable it.",
}
GONE_NOTICE = "Your account is disabled or no longer exists. Sign in as someone else."


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


def _cookie_credentials(runtime: Runtime) -> dict:
    """The enabled users for the cookie check, without their password hashes (never needed)."""
    credentials = users.authenticator_credentials(runtime.ctx)
    for entry in credentials["usernames"].values():
        entry.pop("password", None)
    return credentials


def _drop_cookie(auth: stauth.Authenticate) -> None:
    st.session_state["logout"] = True
    auth.cookie_controller.delete_cookie()


def _sign_in_from_cookie(auth: stauth.Authenticate) -> None:
    """Re-authenticate from a cookie carrying a valid signature of the cookie key; any other
    cookie (forged, malformed, naming a disabled or deleted user) is dropped."""
    try:
        auth.login(location="unrendered")
    except stauth.LoginError:
        _drop_cookie(auth)
        st.session_state[NOTICE_KEY] = GONE_NOTICE
    except (jwt.InvalidTokenError, KeyError, TypeError, ValueError):
        _drop_cookie(auth)


def _sign_in_form(runtime: Runtime, auth: stauth.Authenticate) -> str | None:
    """The form; a right password marks the session signed in and sets the cookie. Returns the
    problem to show, if any."""
    slot = st.empty()
    with slot.container(), st.form(key=FORM_KEY):
        st.subheader("Sign in")
        username = st.text_input("Username", autocomplete="off")
        password = st.text_input("Password", type="password", autocomplete="off")
        submitted = st.form_submit_button("Sign in")
    if not submitted:
        return None
    result = logins.sign_in(runtime.ctx, username, password)
    if not result.ok:
        st.session_state["authentication_status"] = False
        return SIGN_IN_PROBLEMS[result.outcome]
    slot.empty()
    seed_signed_in(st.session_state, result.username)
    auth.cookie_controller.set_cookie()
    return None


def forget_session() -> None:
    """Drop what a signed-out session remembered for its last user (grids, passwords, prompts)."""
    for key in list(st.session_state.keys()):
        if str(key).startswith(SESSION_PREFIXES):
            del st.session_state[key]


def seed_signed_in(session_state: Any, username: str) -> None:
    """Mark a session signed in with the keys streamlit-authenticator reads (the sign-in form
    does this; so do the tests and benchmarks for their AppTest sessions)."""
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
    auth = stauth.Authenticate(
        _cookie_credentials(runtime),
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
    problem = None
    if not logout_rendered:
        _sign_in_from_cookie(auth)
    if not st.session_state.get("authentication_status"):
        problem = _sign_in_form(runtime, auth)

    if not st.session_state.get("authentication_status"):
        forget_session()
        heading.title("VLM — Virtual License Manager")
        if problem:
            heading.error(problem)
        elif NOTICE_KEY in st.session_state:
            heading.error(st.session_state[NOTICE_KEY])
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
