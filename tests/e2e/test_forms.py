"""In chromium: forms say what is wrong next to the field (issue #8 item 2) and a bulk import
shows its result where the user is looking (item 3). What only a browser shows: a number input
refusing a value on its own, a banner left from an earlier run, an expander collapsing."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.helpers import (
    click_button,
    download_csv,
    expand,
    fill_text,
    open_page,
    sign_in,
    wait_for_app,
)
from vlm.demo import DEMO_USERS
from vlm.domain import Role

pytestmark = pytest.mark.e2e

AVAILABLE = re.compile(r"^(\d+) available \(VLM total \d+\)")


def demo(role: Role):
    return next(u for u in DEMO_USERS if u.role == role)


def first_quantity(form: Locator) -> tuple[Locator, Locator, str, int]:
    """The form's first quantity input, the column it is in, its feature label and the
    availability written under it."""
    box = form.get_by_test_id("stNumberInput").first
    label = box.locator("label").inner_text().strip()
    column = form.get_by_test_id("stColumn").filter(
        has=form.page.get_by_test_id("stNumberInput").filter(has_text=label)
    )
    caption = column.get_by_test_id("stCaptionContainer").first.inner_text().strip()
    match = AVAILABLE.match(caption)
    assert match, caption
    return box.locator("input"), column, label, int(match.group(1))


def test_create_pool_above_availability_shows_the_reason_under_the_field(
    browser: Browser, app_server
):
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    open_page(page, "Virtual Pools")
    expand(page, "Create a pool")
    form = page.get_by_test_id("stForm").filter(has_text="Create pool")
    fill_text(page, form.get_by_test_id("stTextInput").first.locator("input"), "Too big")
    box, column, label, available = first_quantity(form)
    fill_text(page, box, str(available + 3))
    click_button(page, "Create pool")

    message = f"{label}: {available + 3} requested, {available} available — 3 over"
    expect(column.get_by_test_id("stAlert").filter(has_text=message)).to_be_visible()
    expect(form.get_by_text("Pool not created")).to_be_visible()
    expect(box).to_have_value(str(available + 3))
    expect(page.get_by_text("Pool 'Too big' created")).to_have_count(0)
    page.context.close()


def edit_form(page: Page) -> Locator:
    return page.get_by_test_id("stForm").filter(has_text="Save changes")


def test_a_saved_banner_does_not_stay_over_a_rejected_edit(browser: Browser, app_server):
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    open_page(page, "Virtual Pools")
    form = edit_form(page)
    description = form.get_by_test_id("stTextInput").filter(has_text="Description").locator("input")
    fill_text(page, description, "Edited in the browser")
    click_button(page, "Save changes")
    saved = page.get_by_test_id("stAlert").filter(has_text="saved.")
    expect(saved).to_be_visible()

    box, column, label, available = first_quantity(form)
    fill_text(page, box, str(available + 1))
    click_button(page, "Save changes")
    expect(column.get_by_text(f"{label}: {available + 1} requested")).to_be_visible()
    wait_for_app(page)
    expect(saved).to_have_count(0)
    page.context.close()


def test_bulk_import_result_is_in_the_open_with_refused_rows_to_download(
    browser: Browser, app_server
):
    manager = demo(Role.MANAGER)
    page = sign_in(browser, app_server.url, manager.username, manager.password)
    open_page(page, "Allocations")
    bulk = expand(page, "Bulk add from CSV")
    text = bulk.get_by_test_id("stTextArea").locator("textarea")
    fill_text(
        page,
        text,
        "host_id,host_type,count,description\n0050569AE2F1,ETHERNET,1,bulk ok\n"
        "not-a-mac,ETHERNET,1,bulk bad",
    )
    click_button(page, "Preview")
    click_button(page, "Allocate 1 ready row(s)")

    result = page.locator("[class*='st-key-bulk_result_']")
    expect(result.get_by_text("1 row(s) accepted and allocated.")).to_be_visible()
    expect(result.get_by_text("1 row(s) refused")).to_be_visible()
    expect(result.get_by_test_id("stDataFrame").first).to_be_visible()
    refused = download_csv(page, "Download the 1 refused row(s) (CSV)")
    assert list(refused.columns) == ["host_id", "host_type", "count", "description", "reason"]
    assert refused["host_id"].tolist() == ["not-a-mac"]
    assert "12 hex digits" in refused["reason"].iloc[0]
    page.context.close()
