"""The login page with and without identity providers (issue 13), OIDC sessions from st.user,
refusals shown with their reason, and the password form folded away when local sign-in is off."""

from __future__ import annotations

import time
from dataclasses import replace

from streamlit.testing.v1 import AppTest

from tests.app.conftest import new_app, open_page, service_context, unexpected_errors
from vlm.domain import SYSTEM_ACTOR
from vlm.services import audit, sso, users
from vlm.sso_config import read_sso_settings

SECRETS = {
    "auth": {
        "redirect_uri": "http://localhost:8501/oauth2callback",
        "cookie_secret": "app-test-cookie-secret-5d1c9a7e3b2f4a6c8e0d",
        "okta": {
            "client_id": "vlm-okta",
            "client_secret": "okta-secret",
            "server_metadata_url": "https://okta.example/.well-known/openid-configuration",
        },
        "keycloak": {
            "client_id": "vlm-kc",
            "client_secret": "kc-secret",
            "server_metadata_url": "https://kc.example/realms/x/.well-known/openid-configuration",
        },
    },
    "vlm": {
        "sso": {
            "okta": {
                "display_name": "Okta",
                "auto_create": True,
                "manager": ["vlm-managers"],
                "analyst": ["vlm-analysts"],
            }
        }
    },
}


def sso_app(user: dict | None = None, query: dict | None = None) -> AppTest:
    at = new_app()
    at.secrets["auth"] = SECRETS["auth"]
    at.secrets["vlm"] = SECRETS["vlm"]
    if user is not None:
        at.user = user
    for key, value in (query or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [(e.value, e.stack_trace) for e in at.exception]
    return at


def okta_user(sub: str, groups: list[str], **claims) -> dict:
    return {
        "is_logged_in": True,
        "provider": "okta",
        "sub": sub,
        "aud": "vlm-okta",
        "iat": int(time.time()),
        "groups": groups,
        **claims,
    }


def buttons(at: AppTest) -> list[str]:
    return [b.label for b in at.button]


def test_without_providers_the_page_is_the_password_form_as_before(app):
    at = app()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not [label for label in buttons(at) if label.startswith("Sign in with")]
    assert not at.expander


def test_with_providers_a_button_each_beside_the_password_form(demo_db):
    at = sso_app()
    assert buttons(at)[:2] == ["Sign in with Keycloak", "Sign in with Okta"]
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert "Or sign in with a VLM account:" in [c.value for c in at.caption]
    assert not at.expander


def test_local_sign_in_off_folds_the_form_away_for_break_glass_accounts(demo_db):
    at = sso_app()
    ctx = service_context()
    ctx = replace(ctx, settings=replace(ctx.settings, sso=read_sso_settings(SECRETS)))
    sso.set_break_glass(ctx, SYSTEM_ACTOR, "admin", True)
    sso.set_local_sign_in(ctx, SYSTEM_ACTOR, False)
    at.run()
    assert [e.label for e in at.expander] == ["Break-glass sign-in (local account)"]
    assert [t.label for t in at.expander[0].text_input] == ["Username", "Password"]
    # a password account that is not break-glass is told to use SSO
    at.expander[0].text_input[0].input("mia")
    at.expander[0].text_input[1].input("mia-demo-pw")
    at.expander[0].button[0].click()
    at.run()
    assert any("Password sign-in is switched off" in e.value for e in at.error)
    assert at.session_state["authentication_status"] is not True


def test_an_oidc_identity_signs_in_with_the_mapped_role(demo_db):
    at = sso_app(okta_user("okta-1", ["vlm-managers"], email="kai@corp.example", name="Kai"))
    assert at.title[0].value == "Dashboard" and not unexpected_errors(at)
    identity = " ".join(m.value for m in at.sidebar.markdown)
    assert "Signed in as **Kai**" in identity and "role **manager**" in identity
    assert at.session_state["_vlm_sso"] == ("okta", "okta-1", "kai")
    assert "Log out" in [b.label for b in at.sidebar.button]
    ctx = service_context()
    assert users.get_user(ctx, "kai")["role"] == "manager"
    signed = audit.audit_log(ctx, SYSTEM_ACTOR, action="user.sign_in")
    assert list(signed["actor"]) == ["kai"]
    # later runs do not sign in again
    at.run()
    assert len(audit.audit_log(ctx, SYSTEM_ACTOR, action="user.sign_in")) == 1
    # disabled meanwhile: the next run refuses the session with the reason
    users.set_disabled(ctx, SYSTEM_ACTOR, "kai", True)
    at.run()
    assert any("disabled or no longer exists" in e.value for e in at.error)
    assert "_vlm_sso" not in at.session_state


def test_an_oidc_identity_in_no_mapped_group_is_refused_with_the_reason(demo_db):
    at = sso_app(okta_user("okta-2", ["sales"], email="sid@corp.example"))
    assert any("none of your groups gives a VLM role" in e.value for e in at.error)
    assert at.title[0].value == "VLM — Virtual License Manager"
    assert users.get_user(service_context(), "sid") is None


def test_a_refusal_in_the_url_is_shown_once_on_the_login_page(demo_db):
    at = sso_app(query={"sso_notice": "unknown_user", "provider": "keycloak"})
    assert any("Keycloak signed you in, but there is no VLM account" in e.value for e in at.error)
    assert "sso_notice" not in at.query_params
    unknown = sso_app(query={"sso_notice": "<script>", "provider": "okta"})
    assert not unknown.error


def test_users_page_shows_sign_in_methods_and_edits_a_mapping(demo_db):
    at = new_app("admin")
    at.secrets["auth"] = SECRETS["auth"]
    at.secrets["vlm"] = SECRETS["vlm"]
    at.run()
    open_page(at, "users")
    methods = next(d.value for d in at.dataframe if "sign_in_methods" in d.value.columns)
    assert set(methods["sign_in_methods"]) == {"password"}
    assert [e.label for e in at.expander][-2:] == [
        "Keycloak (keycloak): role mapping from secrets.toml",
        "Okta (okta): role mapping from secrets.toml",
    ]
    okta = at.expander[-1]
    assert [t.value for t in okta.text_input] == ["groups", "", "vlm-managers", "vlm-analysts"]
    okta.text_input[0].input("roles")
    okta.text_input[2].input("leads, ops-team")
    okta.button[0].click()
    at.run()
    assert not at.exception
    view = sso.effective_provider(sso_ctx(), "okta")
    assert view.source == "Users page" and view.provider.role_claim == "roles"
    assert view.provider.values_for("manager") == ["leads", "ops-team"]
    # a claim value given for two roles is refused next to the field, nothing stored
    at.expander[-1].text_input[3].input("leads")
    at.expander[-1].button[0].click()
    at.run()
    assert any("given for both manager and analyst" in e.value for e in at.expander[-1].error)
    assert sso.effective_provider(sso_ctx(), "okta").provider.values_for("analyst") == [
        "vlm-analysts"
    ]


def sso_ctx():
    ctx = service_context()
    return replace(ctx, settings=replace(ctx.settings, sso=read_sso_settings(SECRETS)))
