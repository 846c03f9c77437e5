"""Sign-in, lockout, one-time passwords, disabled users, logout, and the refusal to start."""

from __future__ import annotations

import secrets

from streamlit.testing.v1 import AppTest

from tests.app.conftest import demo_user, new_app, service_context, unexpected_errors
from vlm.config import DEMO_COOKIE_KEY
from vlm.domain import SYSTEM_ACTOR, Role
from vlm.secret_box import SecretBox
from vlm.services import logins, users
from vlm.services.logins import SignInOutcome


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input[0].input(username)
    at.text_input[1].input(password)
    at.button[0].click()
    return at.run()


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_signed_out_users_see_only_the_sign_in_form_and_demo_logins(app):
    at = app()
    assert at.title[0].value == "VLM — Virtual License Manager"
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    logins = at.table[0].value
    assert set(logins["User"]) == {"admin", "mia", "max", "ana"}
    assert {info["page_name"] for info in at._registered_pages.values()} == {"Sign in"}


def test_each_demo_user_signs_in_with_the_form(app):
    for role in Role:
        user = demo_user(role)
        at = sign_in(app(), user.username, user.password)
        assert at.session_state["authentication_status"] is True
        assert at.title[0].value == "Dashboard"
        assert not unexpected_errors(at)


def test_wrong_password_then_lockout(app, monkeypatch):
    monkeypatch.setenv("VLM_MAX_LOGIN_ATTEMPTS", "2")
    mia = demo_user(Role.MANAGER)
    at = app()
    sign_in(at, mia.username, "wrong-password")
    assert errors(at) == ["Wrong user name or password."]
    sign_in(at, mia.username, "wrong-again")
    # a new session with the right password is still locked out
    fresh = new_app()
    fresh.run()
    sign_in(fresh, mia.username, mia.password)
    assert fresh.session_state["authentication_status"] is not True
    assert any("Too many failed sign-in attempts" in e for e in errors(fresh))


def test_one_time_password_must_be_replaced_first(app):
    app()  # opens the runtime
    ctx = service_context()
    otp = users.add_user(ctx, SYSTEM_ACTOR, "erin", Role.MANAGER, display_name="Erin")
    at = sign_in(new_app().run(), "erin", otp)
    at.run()
    assert at.title[0].value == "Set your password"
    assert {info["page_name"] for info in at._registered_pages.values()} == {"Set your password"}
    at.text_input[0].input(otp)
    at.text_input[1].input("erins-own-password")
    at.text_input[2].input("erins-own-password")
    at.button[0].click()
    at.run()
    assert not errors(at)
    assert at.title[0].value == "Dashboard"
    assert users.get_user(ctx, "erin")["must_change_password"] is False


def test_set_password_reports_mismatch_and_wrong_current(app):
    app()
    ctx = service_context()
    otp = users.add_user(ctx, SYSTEM_ACTOR, "erin", Role.ANALYST)
    at = sign_in(new_app().run(), "erin", otp)
    at.text_input[0].input(otp)
    at.text_input[1].input("first-choice-pw")
    at.text_input[2].input("second-choice-pw")
    at.button[0].click()
    at.run()
    assert errors(at) == ["The two new passwords differ."]
    at.text_input[0].input("not-the-otp")
    at.text_input[2].input("first-choice-pw")
    at.button[0].click()
    at.run()
    assert errors(at) == ["the current password is wrong"]


def test_a_disabled_user_loses_access_at_the_next_run(app):
    at = app("max")
    assert at.title[0].value == "Dashboard"
    users.set_disabled(service_context(), SYSTEM_ACTOR, "max", True)
    at.run()
    assert any("unknown or disabled" in e for e in errors(at))
    assert not [t for t in at.title if t.value == "Dashboard"]
    assert at.session_state["authentication_status"] is None


def test_logout_returns_to_the_sign_in_form(app):
    at = app("ana")
    at.sidebar.button(key="vlm_logout").click()
    at.run()
    assert at.session_state["authentication_status"] is None
    assert [t.label for t in at.text_input] == ["Username", "Password"]


def test_refuses_to_start_outside_demo_mode_without_keys(demo_db, monkeypatch):
    monkeypatch.setenv("VLM_DEMO", "0")
    at = new_app()
    at.run()
    assert "refuses to start" in errors(at)[0]
    assert "VLM_COOKIE_KEY" in errors(at)[0]
    assert not at.text_input


def test_refuses_the_demo_cookie_key_outside_demo_mode(demo_db, monkeypatch):
    monkeypatch.setenv("VLM_DEMO", "0")
    monkeypatch.setenv("VLM_COOKIE_KEY", DEMO_COOKIE_KEY)
    monkeypatch.setenv("VLM_SECRET_KEY", SecretBox.generate_key())
    at = new_app()
    at.run()
    assert "refuses to start" in errors(at)[0] and "VLM_COOKIE_KEY" in errors(at)[0]
    assert not at.text_input


def test_keys_from_secrets_are_accepted(demo_db, monkeypatch):
    monkeypatch.setenv("VLM_DEMO", "0")
    at = new_app()
    at.secrets["auth"] = {"cookie_key": secrets.token_urlsafe(48)}
    at.secrets["vlm"] = {"secret_key": SecretBox.generate_key()}
    at.run()
    assert not errors(at)
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.table  # no demo logins outside demo mode


def test_weak_keys_from_secrets_are_refused(demo_db, monkeypatch):
    monkeypatch.setenv("VLM_DEMO", "0")
    at = new_app()
    at.secrets["auth"] = {"cookie_key": "k" * 48}
    at.secrets["vlm"] = {"secret_key": SecretBox.generate_key()}
    at.run()
    assert not at.exception
    assert "refuses to start" in errors(at)[0] and "not random" in errors(at)[0]
    assert not at.text_input


def test_an_invalid_fernet_key_gets_the_refusal_a_missing_one_gets(demo_db, monkeypatch):
    monkeypatch.setenv("VLM_DEMO", "0")
    monkeypatch.setenv("VLM_COOKIE_KEY", secrets.token_urlsafe(48))
    shown = {}
    for case, key in (("missing", None), ("invalid", "not-a-fernet-key")):
        if key is None:
            monkeypatch.delenv("VLM_SECRET_KEY", raising=False)
        else:
            monkeypatch.setenv("VLM_SECRET_KEY", key)
        at = new_app()
        at.run()
        assert not at.exception, case
        assert not at.text_input, case
        shown[case] = errors(at)
    for case, texts in shown.items():
        assert len(texts) == 1 and texts[0].startswith("VLM refuses to start: the Fernet key")
        assert "VLM_SECRET_KEY" in texts[0] and "python -m vlm init" in texts[0], case
    assert "not a valid Fernet key" in shown["invalid"][0]


def test_an_empty_group_prefix_is_refused_from_secrets_and_environment_alike(demo_db, monkeypatch):
    at = new_app()
    at.secrets["vlm"] = {"group_prefix": ""}
    at.run()
    from_secrets = errors(at)
    monkeypatch.setenv("VLM_GROUP_PREFIX", "")
    at = new_app()
    at.run()
    from_environment = errors(at)
    assert from_secrets == from_environment
    assert "refuses to start" in from_secrets[0] and "group prefix" in from_secrets[0]


def test_a_disabled_user_hears_wrong_password_until_the_password_is_right(app):
    app()
    users.set_disabled(service_context(), SYSTEM_ACTOR, "max", True)
    at = sign_in(app(), "max", "wrong-password")
    assert errors(at) == ["Wrong user name or password."]
    at = sign_in(app(), "nobody", "wrong-password")
    assert errors(at) == ["Wrong user name or password."]
    at = sign_in(app(), "max", "max-demo-pw")
    assert errors(at) == ["Your account is disabled. Ask an admin to enable it."]
    assert at.session_state["authentication_status"] is not True


def test_the_form_and_the_service_share_one_lockout(app, monkeypatch):
    monkeypatch.setenv("VLM_MAX_LOGIN_ATTEMPTS", "3")
    mia = demo_user(Role.MANAGER)
    app()
    ctx = service_context()
    for _ in range(3):
        assert logins.sign_in(ctx, mia.username, "wrong-password").outcome is SignInOutcome.WRONG
    at = sign_in(app(), mia.username, mia.password)
    assert at.session_state["authentication_status"] is not True
    assert any("Too many failed sign-in attempts" in e for e in errors(at))
