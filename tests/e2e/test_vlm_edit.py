"""In chromium: an admin edits a VLM (issue #8 item 5). A removal pools depend on is refused
next to the feature picker, naming the pools, with the typed values kept; the corrected edit
saves, says what changed, and the renamed VLM stays selected."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.conftest import AppServer
from tests.e2e.helpers import act, choose, click_button, open_page, sign_in, wait_for_app
from vlm.context import ServiceContext
from vlm.demo import DEMO_USERS, demo_settings, prepare_demo_database
from vlm.domain import SYSTEM_ACTOR, Role
from vlm.secret_box import SecretBox
from vlm.services import vlms
from vlm.store import open_database

pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class EditCase:
    """The app over a demo database with a second VLM, and the features the test picks."""

    server: AppServer
    db_path: Path
    used: str  # an Engineering feature the CAD team pool draws on (picker label)
    free: str  # a free cls-cloud feature (picker label)


def picker_label(row) -> str:
    return f"{row['feature_name']} {row['feature_version']} @ {row['server_name']}"


def add_cloud_vlm(db_path: Path) -> tuple[str, str]:
    """Add VLM 'Cloud' (one cls-cloud feature, so the list holds two VLMs and Engineering is
    not the first); return a feature CAD team uses and a cls-cloud feature still free."""
    settings = demo_settings(str(db_path))
    ctx = ServiceContext(open_database(str(db_path)), settings, SecretBox(settings.secret_key))
    try:
        frame = vlms.list_vlms(ctx, SYSTEM_ACTOR)
        engineering = int(frame.loc[frame["name"] == "Engineering", "id"].iloc[0])
        choices = vlms.feature_choices(ctx, SYSTEM_ACTOR, engineering)
        cloud = choices[~choices["exposed"]]
        vlms.create_vlm(ctx, SYSTEM_ACTOR, "Cloud", [int(cloud["server_feature_id"].iloc[0])])
        used = choices[choices["pools"].str.contains("CAD team")].iloc[0]
        return picker_label(used), picker_label(cloud.iloc[1])
    finally:
        ctx.db.close()


@pytest.fixture(scope="module")
def edit_case(tmp_path_factory, emulators) -> Iterator[EditCase]:
    """An app of its own: the edits here must not reach the other browser tests' estate."""
    folder = tmp_path_factory.mktemp("e2e_vlm_edit")
    db_path = folder / "vlm.duckdb"
    prepare_demo_database(str(db_path), {n: e.url for n, e in emulators.items()})
    used, free = add_cloud_vlm(db_path)
    server = AppServer(db_path, folder / "streamlit.log")
    server.start()
    yield EditCase(server, db_path, used, free)
    server.stop()


@pytest.fixture
def app_server(edit_case: EditCase) -> AppServer:
    """This module's app (its log is what a failure report saves)."""
    return edit_case.server


def edit_form(page: Page) -> Locator:
    return page.locator(".st-key-edit_vlm_form")


def features_box(page: Page) -> Locator:
    return edit_form(page).get_by_test_id("stMultiSelect")


def remove_feature(page: Page, label: str) -> None:
    box = features_box(page)
    act(page, box.get_by_label(f"Remove {label}", exact=True).click)
    expect(box.get_by_label(label, exact=True)).to_have_count(0)


def add_feature(page: Page, label: str) -> None:
    box = features_box(page)
    wait_for_app(page)
    box.locator("input").fill(label)
    act(page, page.get_by_role("option", name=label, exact=True).click)
    page.keyboard.press("Escape")
    expect(box.get_by_label(label, exact=True)).to_be_visible()


def below_features(page: Page) -> Locator:
    """The element right below the feature picker inside the form."""
    picker = (
        edit_form(page)
        .get_by_test_id("stElementContainer")
        .filter(has=page.get_by_test_id("stMultiSelect"))
    )
    return picker.locator("xpath=following-sibling::*[1]")


def test_admin_renames_a_vlm_and_changes_its_features(
    browser: Browser, edit_case: EditCase, app_server: AppServer
):
    admin = next(u for u in DEMO_USERS if u.role == Role.ADMIN)
    page = sign_in(browser, edit_case.server.url, admin.username, admin.password)
    open_page(page, "Virtual LMs")
    choose(page, "VLM", "Engineering")
    click_button(page, "Edit VLM…")
    form = edit_form(page)
    expect(form.get_by_text("Edit VLM 'Engineering'")).to_be_visible()
    name = form.get_by_test_id("stTextInput").filter(has_text="Name").locator("input")
    expect(name).to_have_value("Engineering")
    expect(features_box(page).get_by_label(edit_case.used, exact=True)).to_be_visible()

    # a removal the CAD team pool depends on: refused next to the picker, typed values kept
    name.fill("Engineering EU")
    act(page, lambda: name.press("Tab"))
    remove_feature(page, edit_case.used)
    click_button(page, "Save changes")
    refusal = below_features(page)
    expect(refusal).to_contain_text("Cannot remove features that pools still draw on")
    expect(refusal).to_contain_text("CAD team")
    expect(name).to_have_value("Engineering EU")
    expect(features_box(page).get_by_label(edit_case.used, exact=True)).to_have_count(0)
    expect(page.get_by_text("saved:")).to_have_count(0)

    # put it back, add a cloud feature, save: the message names the changes, the refusal goes
    add_feature(page, edit_case.free)
    add_feature(page, edit_case.used)
    click_button(page, "Save changes")
    added = edit_case.free.replace(" @ ", " on ")
    expect(
        page.get_by_text(
            f"VLM 'Engineering EU' saved: renamed from 'Engineering'; added {added}.", exact=True
        )
    ).to_be_visible()
    expect(page.get_by_text("Cannot remove features")).to_have_count(0)
    expect(edit_form(page)).to_have_count(0)
    selector = page.get_by_test_id("stSelectbox").filter(has_text="VLM").locator("input")
    expect(selector).to_have_value("Engineering EU")

    # the next interaction still acts on the renamed VLM (not on 'Cloud', the first one)
    click_button(page, "Edit VLM…")
    expect(edit_form(page).get_by_text("Edit VLM 'Engineering EU'")).to_be_visible()
    expect(selector).to_have_value("Engineering EU")

    edit_case.server.stop()
    with duckdb.connect(str(edit_case.db_path), read_only=True) as con:
        names = sorted(r[0] for r in con.execute("SELECT name FROM vlms").fetchall())
        audit_rows = con.execute(
            "SELECT actor, before, after FROM audit_log WHERE action = 'vlm.update'"
        ).fetchall()
    assert names == ["Cloud", "Engineering EU"]
    [(actor, before, after)] = audit_rows
    assert actor == admin.username
    assert json.loads(before)["name"] == "Engineering"
    assert json.loads(after)["name"] == "Engineering EU"
    assert set(json.loads(after)["features"]) - set(json.loads(before)["features"]) == {added}
