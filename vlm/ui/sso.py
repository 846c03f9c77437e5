"""Single sign-on in the UI over Streamlit's native OIDC (st.login / st.user / st.logout).

Streamlit runs the whole OAuth flow (/auth/login, /oauth2callback: Authlib checks the ID token's
signature, issuer, audience, expiry and nonce) and keeps the identity in its signed, HttpOnly
cookie. VLM's part: the first run of a session whose st.user is signed in hands the claims to
logins.sign_in_oidc (match, role mapping, refusals, audit); later runs re-read the user from the
database like the local path. A refused identity leaves through /sso/refused (see
`refused_route`), which drops Streamlit's identity cookie and lands on the login page with the
reason; signing out calls st.logout(), which also ends the IdP session when the provider offers
an end_session_endpoint.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import streamlit as st

from vlm.services import logins
from vlm.services.logins import OidcOutcome
from vlm.sso_config import SsoProvider

# (provider, subject, username) of the OIDC sign-in this session made
SSO_SESSION_KEY = "_vlm_sso"
NOTICE_PARAM = "sso_notice"
PROVIDER_PARAM = "provider"
REFUSED_PATH = "/sso/refused"
# the cookies Streamlit keeps the OIDC identity in (its chunks add _1, _2 …)
IDENTITY_COOKIE_PREFIX = "_streamlit_user"
GONE = "gone"
NOTICES: dict[str, str] = {
    OidcOutcome.UNKNOWN_USER.name.lower(): (
        "{provider} signed you in, but there is no VLM account for you and this provider does "
        "not create one. Ask a VLM admin to add you."
    ),
    OidcOutcome.NO_ROLE.name.lower(): (
        "{provider} signed you in, but none of your groups gives a VLM role. Ask your identity "
        "admin to add you to a VLM group."
    ),
    OidcOutcome.DISABLED.name.lower(): (
        "Your VLM account is disabled. Ask a VLM admin to enable it."
    ),
    OidcOutcome.CONFLICT.name.lower(): (
        "Your {provider} account cannot be matched to one VLM account, or its role change is "
        "not allowed. Ask a VLM admin (the audit log names the reason)."
    ),
    OidcOutcome.STALE.name.lower(): "Your {provider} sign-in is too old. Sign in again.",
    OidcOutcome.UNKNOWN_PROVIDER.name.lower(): (
        "That identity provider is no longer configured. Sign in another way."
    ),
    OidcOutcome.WRONG_AUDIENCE.name.lower(): (
        "{provider} issued your sign-in for another application. Sign-in refused."
    ),
    OidcOutcome.NO_SUBJECT.name.lower(): (
        "{provider} sent no user id (sub claim). Ask your identity admin."
    ),
    GONE: "Your VLM account is disabled or no longer exists. Sign in as someone else.",
}


def oidc_claims() -> dict[str, Any] | None:
    """st.user's claims when Streamlit's identity cookie signed this session in, else None."""
    try:
        user = st.user.to_dict()
    except Exception:  # no secrets file at all: st.user cannot be read, nobody is signed in
        return None
    return dict(user) if user.get("is_logged_in") else None


def notice_text(code: str, provider: str, providers: tuple[SsoProvider, ...]) -> str | None:
    """The login page's message for a refusal code from the URL (unknown codes: none)."""
    template = NOTICES.get(code)
    if template is None:
        return None
    display = next((p.display_name for p in providers if p.name == provider), "Your provider")
    return template.format(provider=display)


def refused_url(code: str, provider: str) -> str:
    return f"{REFUSED_PATH}?{urlencode({'notice': code, PROVIDER_PARAM: provider})}"


def leave_to(url: str) -> None:
    """Send the browser to url, as st.logout() sends it to /auth/logout: this session's st.user
    is cleared first, so its remaining runs see nobody signed in."""
    from streamlit import runtime
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    if ctx is None:
        return
    if runtime.exists():
        runtime.get_instance().clear_user_info_for_session(ctx.session_id)
    ctx.user_info.clear()
    message = ForwardMsg()
    message.auth_redirect.url = url
    ctx.enqueue(message)


def refuse(code: str, provider: str) -> None:
    """Leave a refused OIDC identity: drop Streamlit's cookie, show the reason on the login page."""
    st.session_state.pop(SSO_SESSION_KEY, None)
    leave_to(refused_url(code, provider))


def refusal_code(result: logins.OidcSignIn) -> str:
    return result.outcome.name.lower()


def sign_in_buttons(providers: tuple[SsoProvider, ...]) -> None:
    """One "Sign in with <provider>" button per configured provider."""
    for provider in providers:
        if st.button(
            f"Sign in with {provider.display_name}",
            key=f"vlm_sso_login_{provider.name}",
            type="primary",
            icon=":material/login:",
            width="stretch",
        ):
            st.login(provider.name)


def sign_out() -> None:
    """End the VLM session and Streamlit's identity cookie (and the IdP session, when the
    provider offers RP-initiated logout)."""
    st.session_state.pop(SSO_SESSION_KEY, None)
    st.logout()


async def sso_refused(request: Any) -> Any:
    """GET /sso/refused?notice=<code>&provider=<name>: drop Streamlit's identity cookies (so a
    refused identity does not sign in again on every visit) and land on the login page, which
    shows the reason. Only known codes and a provider-like name pass into the URL."""
    from starlette.responses import RedirectResponse

    code = request.query_params.get("notice", "")
    provider = request.query_params.get(PROVIDER_PARAM, "")
    params = {NOTICE_PARAM: code if code in NOTICES else GONE}
    if provider.isascii() and provider.replace("-", "").isalnum() and len(provider) <= 64:
        params[PROVIDER_PARAM] = provider
    response = RedirectResponse(f"/?{urlencode(params)}", status_code=302)
    for name in request.cookies:
        if name.startswith(IDENTITY_COOKIE_PREFIX):
            response.delete_cookie(name, path="/")
    return response


def sso_routes() -> list:
    from starlette.routing import Route

    return [Route(REFUSED_PATH, sso_refused, methods=["GET"])]
