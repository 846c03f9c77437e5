"""Each role sees exactly its pages, cannot open another role's page, and every page renders."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.app.conftest import PAGES_DIR, demo_user, open_page, unexpected_errors
from vlm.domain import Role
from vlm.ui.navigation import PAGES, pages_for

EXPECTED = {
    Role.ADMIN: [
        "Dashboard", "Alerts", "My Pools", "Allocations", "Idle licenses", "Physical LMs",
        "Virtual LMs", "Virtual Pools", "Requests", "Users", "Audit", "Export", "Profile",
    ],
    Role.MANAGER: [
        "Dashboard", "Alerts", "My Pools", "Allocations", "Idle licenses", "Export", "Profile",
    ],
    Role.ANALYST: ["Dashboard", "Alerts", "Idle licenses", "Export", "Profile"],
}  # fmt: skip
PAGE_NAMES = [spec.script.removesuffix("_page.py") for spec in PAGES]


def registered_scripts(at: AppTest) -> set[str]:
    return {
        Path(str(info["script_path"])).name
        for info in at._registered_pages.values()
        if info.get("script_path")
    }


@pytest.mark.parametrize("role", list(Role))
def test_role_page_sets(role):
    assert [spec.title for spec in pages_for(role)] == EXPECTED[role]


@pytest.mark.parametrize("role", list(Role))
def test_each_role_is_given_exactly_its_pages(app, role):
    at = app(demo_user(role).username)
    assert registered_scripts(at) == {spec.script for spec in pages_for(role)}
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert f"role **{role.value}**" in sidebar
    assert at.title[0].value == "Dashboard"


@pytest.mark.parametrize("role", list(Role))
def test_every_allowed_page_renders_and_others_cannot_be_opened(app, role):
    at = app(demo_user(role).username)
    allowed = {spec.script for spec in pages_for(role)}
    for spec, name in zip(PAGES, PAGE_NAMES, strict=True):
        if spec.script in allowed:
            open_page(at, name)
            assert at.title[0].value, name
            assert not unexpected_errors(at), (name, unexpected_errors(at))
            assert any("Signed in as" in m.value for m in at.sidebar.markdown)
        else:
            with pytest.raises(ValueError):
                at.switch_page(str(PAGES_DIR / spec.script))


def test_a_page_opened_without_the_entrypoint_shows_nothing(demo_db):
    at = AppTest.from_file(str(PAGES_DIR / "users_page.py"), default_timeout=30)
    at.session_state["authentication_status"] = True
    at.session_state["username"] = "admin"
    at.run()
    assert [e.value for e in at.error] == ["Open VLM from its start page."]
    assert not at.title and not at.dataframe


def _menu_pages(at: AppTest, role: Role) -> list:
    sections, _landing = at.session_state["_vlm_menus"][role]
    return [page for pages in sections.values() for page in pages]


def test_the_menu_is_built_once_per_session_and_reused_on_every_run(app):
    at = app("admin")
    first = _menu_pages(at, Role.ADMIN)
    assert len(first) == len(PAGES)
    open_page(at, "users")
    at.run()
    assert [id(page) for page in _menu_pages(at, Role.ADMIN)] == [id(page) for page in first]
    assert at.title[0].value == "Users"


def test_sessions_never_share_their_menu_pages(app):
    one, two = app("admin"), app("admin")
    shared = {id(p) for p in _menu_pages(one, Role.ADMIN)} & {
        id(p) for p in _menu_pages(two, Role.ADMIN)
    }
    assert not shared
