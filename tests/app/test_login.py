"""Sign-in, lockout, one-time passwords, disabled users, logout, and the refusal to start."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import demo_user, new_app, service_context
from vlm.config import DEMO_COOKIE_KEY
from vlm.domain import SYSTEM_ACTOR, Role
from vlm.services import users


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
    assert set(logins["user"]) == {"admin", "mia", "max", "ana"}
    assert {info["page_name"] for info in at._registered_pages.values()} == {"Sign in"}


def test_each_demo_user_signs_in_with_the_form(app):
    for role in Role:
        user = demo_user(role)
        at = sign_in(app(), user.username, user.password)
        assert at.session_state["authentication_status"] is True
        assert at.title[0].value == "Dashboard"
        assert not errors(at)


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
    monkeypatch.setenv("VLM_SECRET_KEY", "x" * 44)
    at = new_app()
    at.run()
    assert "refuses to start" in errors(at)[0]


def test_keys_from_secrets_are_accepted(demo_db, monkeypatch):
    from vlm.secret_box import SecretBox

    monkeypatch.setenv("VLM_DEMO", "0")
    at = new_app()
    at.secrets["auth"] = {"cookie_key": "k" * 48}
    at.secrets["vlm"] = {"secret_key": SecretBox.generate_key()}
    at.run()
    assert not errors(at)
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert not at.table  # no demo logins outside demo mode
