"""The cookie component around sign-in (issue #14 item 8: submits lost to reruns).

streamlit-authenticator's cookie component reruns the app once it has loaded; a rerun that
lands while a submit is handled replaces that run and the submit is lost. So the signed-out
page draws it only when the browser sent a sign-in cookie to check, and after a sign-in with the
form the cookie writer is drawn until it reports the cookie stored.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import streamlit.runtime.context
from streamlit.testing.v1 import AppTest

from tests.app.conftest import demo_user
from tests.app.test_login import sign_in
from vlm.domain import Role
from vlm.ui.auth import COOKIE_WRITER_KEY

COOKIE_NAME = "vlm_auth"


@pytest.fixture
def browser_cookies(monkeypatch) -> dict[str, str]:
    """The cookies the browser sent with the session's first request (st.context.cookies)."""
    jar: dict[str, str] = {}
    client = SimpleNamespace(cookies=jar, headers=[], remote_ip=None)
    monkeypatch.setattr(streamlit.runtime.context, "_get_client_context", lambda: client)
    return jar


def cookie_components(at: AppTest) -> list[str]:
    """The keys of the cookie manager's components drawn in the last run."""
    return [
        str(e.proto.id).rsplit("-", 1)[-1]
        for e in at.get("component_instance")
        if e.proto.component_name.endswith("CookieManager.cookie_manager")
    ]


def test_the_signed_out_page_draws_no_cookie_component_without_a_cookie(app, browser_cookies):
    at = app()
    assert [t.label for t in at.text_input] == ["Username", "Password"]
    assert cookie_components(at) == []
    at.run()
    assert cookie_components(at) == []


def test_a_cookie_to_check_brings_the_cookie_component(app, browser_cookies):
    browser_cookies[COOKIE_NAME] = "not-a-signed-token"
    at = app()
    assert cookie_components(at)[0] == "init"
    assert at.session_state["authentication_status"] is not True


def test_the_cookie_writer_stays_until_it_reports_the_cookie_stored(app, browser_cookies):
    admin = demo_user(Role.ADMIN)
    at = sign_in(app(), admin.username, admin.password)
    assert at.title[0].value == "Dashboard"
    assert cookie_components(at) == ["init", COOKIE_WRITER_KEY]
    at.run()  # a rerun before the browser ran the writer (the cookie component's, say)
    assert cookie_components(at) == ["init", COOKIE_WRITER_KEY]
    at.session_state[COOKIE_WRITER_KEY] = True  # what the writer reports once it stored it
    at.run()
    assert cookie_components(at) == ["init"]
    at.run()
    assert cookie_components(at) == ["init"]
    assert at.session_state["authentication_status"] is True
