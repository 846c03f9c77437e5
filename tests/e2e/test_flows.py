"""End to end in chromium: admin sets up a pool, the manager allocates, the analyst exports."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.e2e.helpers import (
    add_to_multiselect,
    choose,
    click_button,
    delete_row,
    download_csv,
    expand,
    expect_pending,
    fill_text,
    finished_runs,
    link_texts,
    new_page,
    open_page,
    reserved_hosts,
    sidebar_links,
    sign_in,
    sign_in_form,
    type_in_cell,
    wait_for_app,
    wait_until,
)
from vlm.demo import DEMO_USERS
from vlm.domain import Role

pytestmark = pytest.mark.e2e

DEVICE = "0050569AE2E1"
MANAGER = "erin"
MANAGER_PASSWORD = "erins-own-password"


def demo(role: Role):
    return next(u for u in DEMO_USERS if u.role == role)


def add_user(page: Page, username: str, display_name: str) -> str:
    """Add a user through the form (one submit); returns the one-time password shown once."""
    form = expand(page, "Add a user").get_by_test_id("stForm").filter(has_text="Add user")
    form.get_by_test_id("stTextInput").filter(has_text="User name").locator("input").fill(username)
    form.get_by_test_id("stTextInput").filter(has_text="Display name").locator("input").fill(
        display_name
    )
    click_button(page, "Add user")
    expect(page.get_by_text(f"User {username} added as manager.")).to_be_visible()
    box = page.locator(".st-key-one_time_password code")
    expect(box).to_be_visible()
    return box.inner_text().strip()


def admin_creates_manager_vlm_and_pool(browser: Browser, base: str) -> str:
    admin = demo(Role.ADMIN)
    page = sign_in(browser, base, admin.username, admin.password)

    open_page(page, "Users")
    one_time = add_user(page, MANAGER, "Erin E2E")
    assert len(one_time) >= 12

    open_page(page, "Virtual LMs")
    expand(page, "Create a VLM")
    name = page.get_by_test_id("stTextInput").filter(has_text="Name").first.locator("input")
    fill_text(page, name, "E2E Cloud")
    add_to_multiselect(page, "License servers", "cls-cloud")
    click_button(page, "Create VLM")
    expect(page.get_by_text("VLM 'E2E Cloud' created")).to_be_visible()

    open_page(page, "Virtual Pools")
    expand(page, "Create a pool")
    choose(page, "Virtual license manager", "E2E Cloud")
    form = page.get_by_test_id("stForm").filter(has_text="Create pool")
    form.get_by_test_id("stTextInput").filter(has_text="Pool name").locator("input").fill(
        "E2E pool"
    )
    choose(page, "Manager", MANAGER, scope=form)
    fill_text(page, form.get_by_test_id("stNumberInput").first.locator("input"), "3")
    click_button(page, "Create pool")
    expect(page.get_by_text(f"Pool 'E2E pool' created for {MANAGER}")).to_be_visible()
    page.context.close()
    return one_time


def apply_changes(page: Page, count: int) -> None:
    """Review the grid's edits, then apply them (one click each)."""
    click_button(page, "Review changes")
    click_button(page, f"Apply {count} change(s)")


def test_admin_sets_up_a_pool_and_the_manager_allocates_edits_and_removes(
    browser: Browser, app_server, emulators
):
    base = app_server.url
    cloud = emulators["cls-cloud"].url
    one_time = admin_creates_manager_vlm_and_pool(browser, base)

    # the new manager must replace the one-time password first
    page = sign_in(browser, base, MANAGER, one_time)
    expect(page.get_by_role("heading", name="Set your password")).to_be_visible()
    passwords = page.locator("input[type=password]")
    passwords.nth(0).fill(one_time)
    passwords.nth(1).fill(MANAGER_PASSWORD)
    passwords.nth(2).fill(MANAGER_PASSWORD)
    click_button(page, "Set password")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert sidebar_links(page) == [
        "Dashboard",
        "Alerts",
        "Export",
        "My Pools",
        "Allocations",
        "Idle licenses",
        "Profile",
    ]

    # sees only that pool
    open_page(page, "My Pools")
    expect(page.get_by_role("heading", name="Pools (1)")).to_be_visible()
    expect(page.get_by_test_id("stPageLink")).to_have_count(1)
    assert link_texts(page, "stPageLink") == ["Allocations of E2E Cloud / E2E pool"]
    expect(page.get_by_text("CAD team")).to_have_count(0)

    # adds a device id and a mistyped one in the grid, reviews, applies
    open_page(page, "Allocations")
    type_in_cell(page, "host_id", 0, DEVICE, new_row=True)
    type_in_cell(page, "host_id", 1, "not-a-mac", new_row=True)
    expect_pending(page, add=2, edit=0, remove=0)
    click_button(page, "Review changes")
    expect(page.get_by_text("2 to add, 0 to edit, 0 to remove").first).to_be_visible()
    click_button(page, "Apply 2 change(s)")
    wait_until(lambda: DEVICE in reserved_hosts(cloud), timeout=15)
    (entry,) = reserved_hosts(cloud)[DEVICE]
    assert entry["featureCount"] == 1

    # the grid follows the state and keeps the refused row with its problem
    report = page.locator("[class*='st-key-alloc_report_']")
    expect(report.get_by_text("applied ✓")).to_be_visible()
    expect(report.get_by_text("12 hex digits")).to_be_visible()
    grid = download_csv(page, "Download allocations grid (CSV)")
    assert list(grid["Host id"]) == [DEVICE, "not-a-mac"]
    assert list(grid["State"]) == ["applied", "not saved"]
    assert "12 hex digits" in grid["Problem / server reason"].iloc[1]

    # edits the description (and drops the refused row)
    type_in_cell(page, "description", 0, "Lab bench E2E")
    delete_row(page, 1)
    expect_pending(page, add=0, edit=1, remove=0)
    apply_changes(page, 1)
    expect(report.get_by_text("✓ updated")).to_be_visible()
    grid = download_csv(page, "Download allocations grid (CSV)")
    assert list(grid["Description"]) == ["Lab bench E2E"]
    assert DEVICE in reserved_hosts(cloud)

    # deletes it: the reservation is gone from the server
    delete_row(page, 0)
    expect_pending(page, add=0, edit=0, remove=1)
    apply_changes(page, 1)
    wait_until(lambda: DEVICE not in reserved_hosts(cloud), timeout=15)
    expect(report.get_by_text("removed from server ✓")).to_be_visible()
    page.context.close()


def test_the_sign_in_page_does_not_rerun_while_the_form_is_idle(browser: Browser, app_server):
    """The cookie component used to rerun the sign-in page once it had loaded; a submit made
    during that rerun was dropped. The page now runs once and stays idle."""
    page = new_page(browser)
    page.goto(app_server.url)
    expect(sign_in_form(page)).to_be_visible()
    wait_for_app(page, quiet_ms=3_000)
    assert finished_runs(page) == 1
    page.context.close()


def test_a_sign_in_submitted_at_once_on_a_freshly_started_app_is_not_lost(
    browser: Browser, app_server
):
    """A process's first run executes app.py as a legacy pages/ app, so a form drawn by app.py
    got new widget ids on the next run: the text typed and the submit were lost. The form is
    drawn by the login page now; sign_in fills and submits it as soon as it shows."""
    app_server.stop()  # the next request starts a fresh process
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    page.context.close()


def test_a_manager_cannot_reach_an_admin_page_by_url(browser: Browser, app_server):
    manager = demo(Role.MANAGER)
    page = sign_in(browser, app_server.url, manager.username, manager.password)
    notices = {
        "users": "You don't have access to Users.",
        "servers": "You don't have access to Physical LMs.",
        "users_page": "Page not found",  # no page has that URL
    }
    for path, notice in notices.items():
        page.goto(f"{app_server.url}/{path}")
        wait_for_app(page, 1_000)
        expect(page.get_by_text(notice)).to_be_visible()
        expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
        expect(page.get_by_role("heading", name="Users")).to_have_count(0)
        assert "Users" not in sidebar_links(page)
    page.context.close()


def test_analyst_downloads_a_pool_csv_that_matches_the_database(browser: Browser, app_server):
    analyst = demo(Role.ANALYST)
    page = sign_in(browser, app_server.url, analyst.username, analyst.password)
    assert sidebar_links(page) == ["Dashboard", "Alerts", "Export", "Idle licenses", "Profile"]
    open_page(page, "Export")
    exported = download_csv(page, "Download Pools, raw (CSV)")  # machine column names
    page.context.close()

    app_server.stop()  # release the DuckDB file; the next test restarts the app
    with duckdb.connect(str(app_server.db_path), read_only=True) as con:
        expected = con.execute(
            """
            SELECT p.name AS pool_name, sf.feature_name, sf.feature_version,
                SUM(pp.quantity)::INTEGER AS quantity,
                COALESCE((SELECT SUM(a.count) FROM allocations a WHERE a.pool_id = p.id
                    AND a.feature_name = sf.feature_name
                    AND a.feature_version = sf.feature_version
                    AND a.state NOT IN ('removing', 'expiring', 'expired')), 0)::INTEGER
                    AS allocated
            FROM pools p JOIN pool_portions pp ON pp.pool_id = p.id
            JOIN server_features sf ON sf.id = pp.server_feature_id
            GROUP BY p.id, p.name, sf.feature_name, sf.feature_version
            """
        ).df()
    columns = ["pool_name", "feature_name", "feature_version", "quantity", "allocated"]
    got = exported[columns].astype({"quantity": int, "allocated": int})
    key = columns[:3]
    pd.testing.assert_frame_equal(
        got.sort_values(key).reset_index(drop=True),
        expected[columns]
        .astype({"quantity": int, "allocated": int})
        .sort_values(key)
        .reset_index(drop=True),
        check_dtype=False,
    )
    assert len(got) >= 4
