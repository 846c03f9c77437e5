"""A login cookie forged with the example key signs nobody in (#7.5): the app refuses to start
with that key, and with a proper key such a cookie (or a malformed one) only shows the form.

Cookies are forged with PyJWT exactly as streamlit-authenticator 0.4.2 signs them
(CookieModel._token_encode: HS256 over {"username", "exp_date"} with the cookie key) and reach
the app through st.context.cookies, where its CookieModel.get_cookie reads them."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from types import SimpleNamespace

import jwt
import pytest
import streamlit.runtime.context
from streamlit.testing.v1 import AppTest

from tests.app.conftest import (  # noqa: F401  (the AppTest fixtures)
    demo_db,
    demo_emulators,
    demo_template,
    fresh_streamlit_caches,
    new_app,
)
from vlm.config import EXAMPLE_SECRETS, read_secrets_file
from vlm.secret_box import SecretBox

pytestmark = pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
COOKIE_NAME = "vlm_auth"
# the example file's cookie key before issue #7, and the one it holds now
EXAMPLE_KEYS = [
    "replace-with-a-long-random-string-of-at-least-32-bytes",
    str(read_secrets_file(EXAMPLE_SECRETS)["cookie_key"]),
]


def forge(key: str, username: str = "admin") -> str:
    """A cookie as streamlit-authenticator 0.4.2 writes it after a sign-in."""
    exp_date = (datetime.now() + timedelta(days=1)).timestamp()
    return jwt.encode({"username": username, "exp_date": exp_date}, key, algorithm="HS256")


@pytest.fixture
def browser_cookies(monkeypatch) -> dict[str, str]:
    """The cookies the browser sends with the app's requests (st.context.cookies)."""
    jar: dict[str, str] = {}
    client = SimpleNamespace(cookies=jar, headers=[], remote_ip=None)
    monkeypatch.setattr(streamlit.runtime.context, "_get_client_context", lambda: client)
    return jar


@pytest.fixture
def production(request, monkeypatch) -> str:
    """The demo database outside demo mode, with a proper random cookie key (returned) and
    Fernet key."""
    request.getfixturevalue("demo_db")
    key = secrets.token_urlsafe(48)
    monkeypatch.setenv("VLM_DEMO", "0")
    monkeypatch.setenv("VLM_COOKIE_KEY", key)
    monkeypatch.setenv("VLM_SECRET_KEY", SecretBox.generate_key())
    return key


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def signed_in(at: AppTest) -> bool:
    return "authentication_status" in at.session_state and (
        at.session_state["authentication_status"] is True
    )


def shows_sign_in_form(at: AppTest) -> bool:
    return [t.label for t in at.text_input] == ["Username", "Password"]


@pytest.mark.parametrize("example_key", EXAMPLE_KEYS)
def test_the_app_refuses_to_start_with_the_example_key(
    production, browser_cookies, monkeypatch, example_key
):
    monkeypatch.setenv("VLM_COOKIE_KEY", example_key)
    browser_cookies[COOKIE_NAME] = forge(example_key)
    at = run(new_app())
    assert "refuses to start" in at.error[0].value and "VLM_COOKIE_KEY" in at.error[0].value
    assert not signed_in(at) and not at.text_input
    assert not [t for t in at.title if t.value == "Dashboard"]


@pytest.mark.parametrize("example_key", EXAMPLE_KEYS)
def test_a_cookie_forged_with_the_example_key_signs_nobody_in(
    production, browser_cookies, example_key
):
    browser_cookies[COOKIE_NAME] = forge(example_key)
    at = run(new_app())
    assert not signed_in(at) and shows_sign_in_form(at)
    assert not [t for t in at.title if t.value == "Dashboard"]


def test_a_cookie_signed_with_the_real_key_does_sign_in(production, browser_cookies):
    """The control: the forged cookies above did reach the app's cookie check."""
    browser_cookies[COOKIE_NAME] = forge(production)
    at = run(new_app())
    assert signed_in(at) and at.session_state["username"] == "admin"
    assert at.title[0].value == "Dashboard"


@pytest.mark.parametrize(
    "cookie",
    [
        "not-a-jwt",
        jwt.encode({"username": "admin", "exp_date": 9e12}, key=None, algorithm="none"),
        jwt.encode({"username": "admin"}, "k" * 64, algorithm="HS256"),
        jwt.encode({"username": "admin", "exp_date": 9e12}, "k" * 64, algorithm="HS512"),
    ],
    ids=["garbage", "alg-none", "no-exp-date", "hs512"],
)
def test_malformed_or_unsigned_cookies_show_the_form_without_an_error(
    production, browser_cookies, cookie
):
    browser_cookies[COOKIE_NAME] = cookie
    at = run(new_app())
    assert not signed_in(at) and shows_sign_in_form(at)
    assert not at.error
