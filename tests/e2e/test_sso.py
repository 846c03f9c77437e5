"""Single sign-on in chromium (issue 13): through a mock OpenID provider on loopback, a user signs
in, lands on the mapped role's pages, signs out (VLM session, identity cookie and the IdP's
session), a group change takes effect on the next sign-in, an unknown user is refused when the
provider creates none, a disabled user is refused, and a token for another audience is refused."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import (
    choose,
    click_button,
    new_page,
    open_page,
    sidebar_links,
    sign_in,
    wait_for_app,
    wait_until,
)
from tests.e2e.sso import IDENTITY_COOKIE
from vlm.demo import DEMO_USERS
from vlm.domain import Role
from vlm.ui.navigation import pages_for

pytestmark = pytest.mark.e2e


def titles(role: Role) -> list[str]:
    return [spec.title_for(role) for spec in pages_for(role)]


def sso_sign_in(browser: Browser, base: str, provider: str, sub: str) -> Page:
    """Click "Sign in with <provider>", answer the IdP's form as sub, come back to VLM."""
    page = new_page(browser)
    page.goto(base)
    page.get_by_role("button", name=f"Sign in with {provider}").click()
    page.wait_for_url(re.compile(r".*/oauth2/authorize.*"))
    page.locator("input[name=sub]").first.fill(sub)
    page.get_by_role("button", name="Authorize").click()
    page.wait_for_url(re.compile(rf"^{re.escape(base)}/.*"))
    return page


def expect_signed_in(page: Page, role: Role) -> None:
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Signed in as")).to_be_visible()
    expect(sidebar.get_by_text(f"role {role.value}")).to_be_visible()
    wait_for_app(page)
    assert sorted(sidebar_links(page)) == sorted(titles(role))


def expect_no_identity_cookie(page: Page) -> None:
    """The identity cookie is gone soon: the refusal or the sign-in page can show before the
    response that deletes the cookie has reached the browser."""
    cookies = page.context.cookies
    wait_until(lambda: not [c for c in cookies() if c["name"].startswith(IDENTITY_COOKIE)], 10)


def expect_refused(page: Page, text: str) -> None:
    expect(page.get_by_test_id("stAlert").filter(has_text=text)).to_be_visible()
    expect(page.get_by_test_id("stSidebar")).to_have_count(0)
    expect_no_identity_cookie(page)
    expect(page.get_by_role("button", name="Sign in with Demo IdP")).to_be_visible()


def sign_out(page: Page) -> None:
    """Log out in VLM; the mock IdP asks to end its session too (Streamlit's RP-initiated
    logout), then sends the browser back to VLM's sign-in page."""
    page.get_by_test_id("stSidebar").get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="End session").click()
    expect(page.get_by_role("button", name="Sign in with Demo IdP")).to_be_visible()
    expect_no_identity_cookie(page)


def test_sign_in_role_mapping_group_change_and_sign_out(browser, sso_server, sso_provider):
    base = sso_server.url
    sso_provider.set_user(
        "idp-ada",
        email="ada@idp.example",
        email_verified=True,
        name="Ada From IdP",
        preferred_username="ada-sso",
        groups=["vlm-managers", "staff"],
    )
    page = sso_sign_in(browser, base, "Demo IdP", "idp-ada")
    expect_signed_in(page, Role.MANAGER)
    expect(page.get_by_test_id("stSidebar").get_by_text("ada-sso")).to_be_visible()
    open_page(page, "My Pools")
    sign_out(page)
    # in reload, still signed out (the identity cookie is gone)
    page.reload()
    expect(page.get_by_role("button", name="Sign in with Demo IdP")).to_be_visible()
    page.context.close()

    # the IdP moves ada to the analysts: the next sign-in makes her an analyst
    sso_provider.set_user(
        "idp-ada", email="ada@idp.example", preferred_username="ada-sso", groups=["vlm-analysts"]
    )
    page = sso_sign_in(browser, base, "Demo IdP", "idp-ada")
    expect_signed_in(page, Role.ANALYST)
    sign_out(page)
    page.context.close()

    # in no VLM group at all: refused, and the role is not kept
    sso_provider.set_user("idp-ada", email="ada@idp.example", groups=["sales"])
    page = sso_sign_in(browser, base, "Demo IdP", "idp-ada")
    expect_refused(page, "none of your groups gives a VLM role")
    page.context.close()


def test_unknown_user_is_refused_when_the_provider_creates_none(browser, sso_server, sso_provider):
    sso_provider.set_user("idp-stranger", email="stranger@idp.example", groups=["vlm-admins"])
    page = sso_sign_in(browser, sso_server.url, "Strict IdP", "idp-stranger")
    expect_refused(page, "there is no VLM account for you")
    page.context.close()


def test_a_disabled_user_is_refused_although_the_idp_accepts(browser, sso_server, sso_provider):
    base = sso_server.url
    sso_provider.set_user(
        "idp-dora", email="dora@idp.example", preferred_username="dora", groups=["vlm-analysts"]
    )
    page = sso_sign_in(browser, base, "Demo IdP", "idp-dora")
    expect_signed_in(page, Role.ANALYST)
    page.context.close()

    admin = next(u for u in DEMO_USERS if u.role is Role.ADMIN)
    admin_page = sign_in(browser, base, admin.username, admin.password)
    open_page(admin_page, "Users")
    choose(admin_page, "User", "dora")
    click_button(admin_page, "Disable…")
    click_button(admin_page, "Disable dora")
    expect(admin_page.get_by_text("dora is disabled.")).to_be_visible()
    admin_page.context.close()

    page = sso_sign_in(browser, base, "Demo IdP", "idp-dora")
    expect_refused(page, "Your VLM account is disabled")
    page.context.close()


def test_a_token_for_another_audience_is_refused(browser, sso_server, sso_provider):
    sso_provider.set_user("idp-eve", email="eve@idp.example", groups=["vlm-admins"])
    sso_provider.tamper.mode = "audience-azp"
    try:
        page = sso_sign_in(browser, sso_server.url, "Demo IdP", "idp-eve")
        expect_refused(page, "issued your sign-in for another application")
    finally:
        sso_provider.tamper.mode = None
    page.context.close()
