"""Sign-in: the form asks vlm.services.logins.sign_in (lockout, password, disabled flag, the local
sign-in switch); streamlit-authenticator keeps the signed cookie and the session keys
(docs/architecture.md §10). With identity providers in secrets.toml, an OIDC identity from
Streamlit's st.login signs the session in through vlm.ui.sso instead."""

from __future__ import annotations

from dataclasses import dataclass

import jwt
import pandas as pd
import streamlit as st
import streamlit_authenticator as stauth

from vlm.domain import Actor, VlmError
from vlm.services import logins, sso, users
from vlm.services.logins import SignInOutcome
from vlm.ui import sso as ui_sso
from vlm.ui.memo import remembered
from vlm.ui.runtime import Runtime, get_runtime

FORM_KEY = "vlm_login"
USERNAME_KEY = "vlm_login_username"
PASSWORD_KEY = "vlm_login_password"
NOTICE_KEY = "vlm_login_notice"
PROBLEM_KEY = "vlm_login_problem"
# set by a sign-in with the form; kept until the browser holds the cookie ("_vlm_": dropped
# with the rest of the session on sign-out)
WRITE_COOKIE_KEY = "_vlm_write_cookie"
# the key of the cookie writer streamlit-authenticator draws (extra-streamlit-components'
# CookieManager.set); its value turns True once the browser stored the cookie
COOKIE_WRITER_KEY = "set"
SESSION_PREFIXES = ("_vlm_", "_alloc_grid_", "_bulk_report_", "_confirm_", "alloc_", "bulk_")
LOCKED_MESSAGE = (
    "Too many failed sign-in attempts for this user. Wait 15 minutes or ask an admin to reset "
    "your password."
)
SIGN_IN_PROBLEMS = {
    SignInOutcome.WRONG: "Wrong user name or password.",
    SignInOutcome.LOCKED: LOCKED_MESSAGE,
    SignInOutcome.DISABLED: "Your account is disabled. Ask an admin to enable it.",
    SignInOutcome.LOCAL_OFF: (
        "Password sign-in is switched off for this account. Sign in with your company account "
        "above."
    ),
}
LOCAL_OFF_NOTICE = (
    "Password sign-in was switched off for your account. Sign in with your company account."
)
GONE_NOTICE = "Your account is disabled or no longer exists. Sign in as someone else."


@dataclass(frozen=True)
class SignedIn:
    """The user this session acts for, re-read from the users table on every run."""

    actor: Actor
    display_name: str
    must_change_password: bool


def _hide_cookie_component() -> None:
    """The cookie manager's zero-height iframes (read, write, delete) take no room."""
    st.html(
        f"<style>.st-key-init,.st-key-{COOKIE_WRITER_KEY},.st-key-delete{{display:none}}</style>"
    )


def _logout_button(auth: stauth.Authenticate) -> None:
    """Logout button in the sidebar (clicking it signs out in this very run)."""
    auth.logout("Log out", location="sidebar", key="vlm_logout", use_container_width=True)


def _cookie_credentials(runtime: Runtime, signed_in_as: str | None = None) -> dict:
    """The enabled users for the cookie check, without their password hashes (never needed);
    read again after any write (a user disabled or added), and a fresh copy on every run, as
    streamlit-authenticator marks in it who signed in.

    A session already signed in (by the form or by a cookie checked on an earlier run) checks
    no cookie: streamlit-authenticator only marks that user signed out on a logout, so it gets
    that user's entry alone (none if the user is no longer enabled) instead of a copy of
    every user's on each run."""

    def read() -> dict:
        credentials = users.authenticator_credentials(runtime.ctx)
        for entry in credentials["usernames"].values():
            entry.pop("password", None)
        return credentials

    kept = remembered(runtime.ctx.db, ("sign-in: cookie credentials",), read)["usernames"]
    if signed_in_as is not None:
        names = (signed_in_as,) if signed_in_as in kept else ()
    else:
        names = tuple(kept)
    return {
        "usernames": {name: {**kept[name], "roles": list(kept[name]["roles"])} for name in names}
    }


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


def sign_in_form() -> None:
    """The sign-in form, drawn by the login page. Inside a page its widgets keep one identity on
    every run; in app.py they would not: the process's first run executes app.py as a legacy
    `pages/` app, so a form drawn there was replaced by the next rerun (the cookie component
    causes one) and lost what was typed and its submit. The submit is handled by a callback,
    before app.py runs, so that very run already shows the signed-in pages."""
    with st.form(key=FORM_KEY, clear_on_submit=False):
        st.subheader("Sign in")
        st.text_input("Username", key=USERNAME_KEY, autocomplete="off")
        st.text_input("Password", type="password", key=PASSWORD_KEY, autocomplete="off")
        st.form_submit_button("Sign in", on_click=_submit_sign_in)


def _submit_sign_in() -> None:
    """Check the submitted form with the sign-in service; a right password marks the session
    signed in (authenticate() then writes the cookie), a wrong one leaves the problem to show."""
    username = str(st.session_state.get(USERNAME_KEY) or "")
    password = str(st.session_state.get(PASSWORD_KEY) or "")
    st.session_state[PASSWORD_KEY] = ""
    result = logins.sign_in(get_runtime().ctx, username, password)
    if not result.ok:
        st.session_state["authentication_status"] = False
        st.session_state[PROBLEM_KEY] = SIGN_IN_PROBLEMS[result.outcome]
        return
    _mark_signed_in(result.username)
    st.session_state[WRITE_COOKIE_KEY] = True


def forget_session() -> None:
    """Drop what a signed-out session remembered for its last user (grids, passwords, prompts)."""
    for key in list(st.session_state.keys()):
        if str(key).startswith(SESSION_PREFIXES):
            del st.session_state[key]


def _mark_signed_in(username: str) -> None:
    """Mark the session signed in with the keys streamlit-authenticator reads."""
    st.session_state["authentication_status"] = True
    st.session_state["username"] = username
    st.session_state["name"] = username
    st.session_state["roles"] = []
    st.session_state["logout"] = None


def _resolve(runtime: Runtime, username: str) -> SignedIn:
    """Who the session's user is now: read again after any write (a role changed, the account
    disabled), so a disabled user is signed out on the next run."""

    def read() -> SignedIn:
        actor = users.actor_for(runtime.ctx, username)
        profile = users.get_user(runtime.ctx, username) or {}
        return SignedIn(
            actor,
            str(profile.get("display_name") or username),
            bool(profile.get("must_change_password")),
        )

    return remembered(runtime.ctx.db, ("sign-in: signed in", username), read)


def _show_identity(box: st.delta_generator.DeltaGenerator, signed_in: SignedIn) -> None:
    role = signed_in.actor.role.value
    box.markdown(
        f"Signed in as **{signed_in.display_name}**  \n"
        f"`{signed_in.actor.username}` · role **{role}**"
    )


def _authenticator(runtime: Runtime, signed_in_as: str | None = None) -> stauth.Authenticate:
    """streamlit-authenticator over the enabled users, or only over the user a session is
    already signed in as (it draws the cookie component)."""
    settings = runtime.settings
    return stauth.Authenticate(
        _cookie_credentials(runtime, signed_in_as),
        settings.cookie_name,
        settings.cookie_key,
        settings.cookie_expiry_days,
        auto_hash=False,
        login_sleep_time=0,
    )


def _write_cookie(auth: stauth.Authenticate) -> None:
    """Draw the cookie writer on every run until it reports that the browser stored the
    cookie: a run replaced by a rerun (the cookie component's own, right after a sign-in) could
    remove the writer before its iframe ran, leaving no cookie to survive a reload."""
    if st.session_state.get(COOKIE_WRITER_KEY) is True:
        st.session_state.pop(WRITE_COOKIE_KEY, None)
    else:
        auth.cookie_controller.set_cookie()


def _has_sign_in_cookie(runtime: Runtime) -> bool:
    """Whether the browser sent a cookie under VLM's cookie name (valid or not)."""
    return runtime.settings.cookie_name in st.context.cookies


def _show_signed_out(heading: st.delta_generator.DeltaGenerator, problem: str | None) -> None:
    forget_session()
    st.session_state.setdefault("authentication_status", None)
    heading.title("VLM — Virtual License Manager")
    if problem:
        heading.error(problem)
    elif NOTICE_KEY in st.session_state:
        heading.error(st.session_state[NOTICE_KEY])


def _password_allowed(runtime: Runtime, username: str) -> bool:
    """Whether a password session may go on (local sign-in on, or a break-glass account); read
    again after any write."""
    return remembered(
        runtime.ctx.db,
        ("sign-in: password allowed", username),
        lambda: logins.local_sign_in_allowed(runtime.ctx, username),
    )


def _url_notice(runtime: Runtime) -> None:
    """A refusal /sso/refused put in the URL becomes the login page's notice (once)."""
    code = st.query_params.get(ui_sso.NOTICE_PARAM)
    if code is None:
        return
    provider = st.query_params.get(ui_sso.PROVIDER_PARAM, "")
    text = ui_sso.notice_text(code, provider, runtime.settings.sso.providers)
    if text:
        st.session_state[NOTICE_KEY] = text
    del st.query_params[ui_sso.NOTICE_PARAM]
    if ui_sso.PROVIDER_PARAM in st.query_params:
        del st.query_params[ui_sso.PROVIDER_PARAM]


def _sso_sign_out_button() -> None:
    if st.sidebar.button(
        "Log out", key="vlm_sso_logout", icon=":material/logout:", width="stretch"
    ):
        forget_session()
        ui_sso.sign_out()
        st.stop()


def _sso_signed_in(runtime: Runtime, claims: dict) -> SignedIn | None:
    """The session of an OIDC identity: signed in through logins.sign_in_oidc on its first run
    (or when the identity changed), re-read from the database on every later one. A refusal,
    then or later (account disabled), leaves through /sso/refused with its reason."""
    provider = str(claims.get("provider") or "default")
    subject = str(claims.get("sub") or "")
    mapped = st.session_state.get(ui_sso.SSO_SESSION_KEY)
    if not mapped or tuple(mapped[:2]) != (provider, subject):
        result = logins.sign_in_oidc(runtime.ctx, provider, claims)
        if not result.ok:
            _show_refusal(runtime, ui_sso.refusal_code(result), provider)
            return None
        forget_session()
        st.session_state[ui_sso.SSO_SESSION_KEY] = (provider, subject, result.username)
        st.session_state.pop(NOTICE_KEY, None)
    username = st.session_state[ui_sso.SSO_SESSION_KEY][2]
    try:
        signed_in = _resolve(runtime, username)
    except VlmError:
        forget_session()
        _show_refusal(runtime, ui_sso.GONE, provider)
        return None
    # the password is the IdP's business: no "set your password" page for an OIDC session
    signed_in = SignedIn(signed_in.actor, signed_in.display_name, False)
    identity = st.sidebar.container()
    _sso_sign_out_button()
    _show_identity(identity, signed_in)
    identity.caption(f"via {_display_name(runtime, provider)}")
    return signed_in


def _show_refusal(runtime: Runtime, code: str, provider: str) -> None:
    """The reason, while the browser leaves through /sso/refused (which shows it again)."""
    st.title("VLM — Virtual License Manager")
    text = ui_sso.notice_text(code, provider, runtime.settings.sso.providers)
    st.error(text or "Sign-in refused.")
    ui_sso.refuse(code, provider)


def _display_name(runtime: Runtime, provider: str) -> str:
    found = runtime.settings.sso.provider(provider)
    return found.display_name if found else provider


def sso_providers(runtime: Runtime) -> tuple:
    return sso.configured(runtime.ctx)


def local_form_open(runtime: Runtime) -> bool:
    """Whether the login page shows the password form for everyone (else only for break-glass
    accounts, folded away under the provider buttons)."""
    return sso.local_sign_in_enabled(runtime.ctx)


def authenticate(runtime: Runtime) -> SignedIn | None:
    """Who is signed in (with the account box in the sidebar), or None: then the heading and any
    sign-in problem are shown and the login page draws the form.

    An OIDC identity (st.user, only with providers configured) goes first; else the local path.

    The cookie component reruns the app once it has loaded and whenever the cookies change; a
    rerun that lands while a submit is being handled replaces that run and the submit is lost.
    So a signed-out session without a cookie to check does not draw it: nothing reruns the
    login page under the user's typing or submit."""
    _hide_cookie_component()
    if runtime.settings.sso.providers:
        claims = ui_sso.oidc_claims()
        if claims is not None:
            return _sso_signed_in(runtime, claims)
        st.session_state.pop(ui_sso.SSO_SESSION_KEY, None)
        _url_notice(runtime)
    was_signed_in = bool(st.session_state.get("authentication_status"))
    if was_signed_in:
        auth = _authenticator(runtime, str(st.session_state.get("username") or ""))
    else:
        auth = _authenticator(runtime) if _has_sign_in_cookie(runtime) else None
    # the sidebar is drawn only for a signed-in session: the sign-in page has none
    identity = st.sidebar.container() if was_signed_in else None
    if auth is not None and was_signed_in:
        _logout_button(auth)
    heading = st.container()
    problem = st.session_state.pop(PROBLEM_KEY, None)
    if auth is not None and not was_signed_in:
        _sign_in_from_cookie(auth)

    if auth is None or not st.session_state.get("authentication_status"):
        _show_signed_out(heading, problem)
        return None
    try:
        signed_in = _resolve(runtime, st.session_state["username"])
    except VlmError as exc:
        auth.logout(location="unrendered")
        heading.error(f"{exc.message}. Ask an admin to enable your account.")
        return None
    if not _password_allowed(runtime, signed_in.actor.username):
        auth.logout(location="unrendered")
        forget_session()
        heading.error(LOCAL_OFF_NOTICE)
        return None
    st.session_state.pop(NOTICE_KEY, None)
    if st.session_state.get(WRITE_COOKIE_KEY):
        _write_cookie(auth)
    if identity is None:
        identity = st.sidebar.container()
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
