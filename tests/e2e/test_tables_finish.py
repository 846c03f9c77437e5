"""Issue #8 item 6 in the browser: tables read like a finished product.

The sign-in page has no sidebar; tables title their columns for people, leave empty cells blank
and show times in the browser's own zone (named in the title); destructive buttons are red and
confirm with their impact; an audit row opens its before/after; a pool row links to its grid.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.e2e.helpers import (
    COOKIE,
    RUN_TRACKER,
    VIEWPORT,
    act,
    choose,
    download_csv,
    mark_activity,
    new_page,
    open_page,
    sign_in,
    sign_in_form,
    wait_for_app,
    wait_until,
)
from vlm.demo import DEMO_USERS
from vlm.domain import Role

pytestmark = pytest.mark.e2e
BROWSER_ZONE = "Asia/Tokyo"
RED = "rgb(198, 40, 40)"  # widgets.DANGER_RED
EMPTY_TEXTS = {"None", "nan", "NaN", "<NA>", "NaT"}


def demo(role: Role):
    return next(u for u in DEMO_USERS if u.role == role)


def sign_in_from_zone(browser: Browser, base_url: str, zone: str) -> Page:
    """The admin signed in from a browser whose clock runs in `zone`."""
    admin = demo(Role.ADMIN)
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, timezone_id=zone)
    context.add_init_script(RUN_TRACKER)
    page = context.new_page()
    page.goto(base_url)
    form = sign_in_form(page)
    form.locator("input[aria-label='Username']").fill(admin.username)
    form.locator("input[type=password]").fill(admin.password)
    form.get_by_test_id("stFormSubmitButton").locator("button").click()
    expect(page.get_by_test_id("stSidebar").get_by_text("Signed in as")).to_be_visible()
    wait_until(lambda: any(c["name"] == COOKIE for c in page.context.cookies()), timeout=15)
    expect(page.locator(".st-key-set")).to_have_count(0)
    mark_activity(page)
    wait_for_app(page)
    return page


def table(page: Page, key: str) -> Locator:
    return page.locator(f".st-key-table_{key}").get_by_test_id("stDataFrame")


def test_sign_in_page_has_no_sidebar(browser: Browser, app_server):
    page = new_page(browser)
    page.goto(app_server.url)
    expect(sign_in_form(page)).to_be_visible()
    wait_for_app(page)
    expect(page.get_by_test_id("stSidebar")).to_have_count(0)
    expect(page.get_by_test_id("stSidebarCollapsedControl")).to_have_count(0)
    page.context.close()


def test_times_show_in_the_browsers_zone_and_csvs_read_like_the_table(browser: Browser, app_server):
    page = sign_in_from_zone(browser, app_server.url, BROWSER_ZONE)
    open_page(page, "Audit")
    expect(page.get_by_text(f"Between (days in {BROWSER_ZONE})")).to_be_visible()
    log = download_csv(page, "Download audit log (CSV)")
    assert f"When ({BROWSER_ZONE})" in log.columns
    assert {"Id", "User", "Action", "Target type", "Changed keys", "Before", "After"} <= set(
        log.columns
    )
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", v) for v in log.iloc[:, 1])

    open_page(page, "Physical LMs")
    servers = download_csv(page, "Download license servers (CSV)")
    assert "Last error" in servers.columns and "last_error" not in servers.columns
    assert f"Last sync ({BROWSER_ZONE})" in servers.columns
    for column in servers.columns:
        assert not EMPTY_TEXTS & set(servers[column]), column
    page.context.close()


def test_destructive_buttons_are_red_and_state_their_impact(browser: Browser, app_server):
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    open_page(page, "Virtual Pools")
    delete = page.locator(".st-key-danger_delete_pool button")
    expect(delete).to_have_css("background-color", RED)
    save = page.get_by_role("button", name="Save changes")
    assert save.evaluate("b => getComputedStyle(b).backgroundColor") != RED
    act(page, delete.click)
    expect(page.get_by_text(re.compile(r"This removes its \d+ allocation\(s\)"))).to_be_visible()
    confirm = page.locator("[class*='st-key-danger_delete_pool_'][class*='_confirm'] button")
    expect(confirm).to_have_css("background-color", RED)
    act(page, page.get_by_role("button", name="Cancel").click)
    expect(confirm).to_have_count(0)

    open_page(page, "Users")
    choose(page, "User", "ana")
    expect(page.locator(".st-key-danger_users_disable button")).to_have_css("background-color", RED)
    act(page, page.locator(".st-key-danger_users_reset button").click)
    expect(page.get_by_text("Their current password stops working at once")).to_be_visible()
    page.context.close()


def test_an_audit_row_opens_before_and_after(browser: Browser, app_server):
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    open_page(page, "Audit")
    grid = table(page, "audit_log")
    first_row = {"x": 18, "y": 35 + 35 / 2}  # the row's selection marker
    wait_for_app(page)
    grid.hover(position=first_row)
    expect(grid.get_by_test_id("stElementToolbar")).to_have_css("opacity", "1")
    act(page, lambda: grid.click(position=first_row))
    detail = page.locator(".st-key-audit_detail")
    expect(detail).to_be_visible()
    expect(detail.get_by_text(re.compile(r"key\(s\) changed \(highlighted\)"))).to_be_visible()
    titles = headers_in_view(page, detail.get_by_test_id("stDataFrame"))
    assert titles[:3] == ["Key", "Before", "After"], titles
    for side in ("Before", "After"):
        expect(detail.locator("strong").get_by_text(side, exact=True)).to_be_visible()
    page.context.close()


def headers_in_view(page: Page, grid: Locator) -> list[str]:
    """The column titles the grid draws in its visible area (glide mirrors the drawn cells in
    an accessible table; columns scrolled out of view are not in it)."""
    wait_for_app(page)
    expect(grid.locator("th").first).to_be_attached()
    return grid.locator("th").all_inner_texts()


def test_wide_tables_keep_their_key_columns_in_view(browser: Browser, app_server):
    page = sign_in_from_zone(browser, app_server.url, BROWSER_ZONE)
    open_page(page, "Physical LMs")
    servers = headers_in_view(page, page.get_by_test_id("stDataFrame").first)
    assert {"Name", "Status", "Base URL", "Instance", f"Last sync ({BROWSER_ZONE})"} <= set(
        servers
    ), servers
    open_page(page, "Virtual LMs")
    vlms = headers_in_view(page, page.get_by_test_id("stDataFrame").first)
    assert {"VLM", f"Created ({BROWSER_ZONE})"} <= set(vlms), vlms
    open_page(page, "Audit")
    audit = headers_in_view(page, table(page, "audit_log"))
    assert {f"When ({BROWSER_ZONE})", "Action", "Changed keys"} <= set(audit), audit
    page.context.close()


def test_a_pool_row_links_to_its_allocation_grid(browser: Browser, app_server):
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    open_page(page, "Virtual Pools")
    pools = download_csv(page, "Download virtual pools (CSV)")
    assert "Allocated of quantity" in pools.columns
    assert all(re.fullmatch(r"\d+%", v) for v in pools["Allocated of quantity"])
    grid = page.get_by_test_id("stDataFrame").first
    titles = headers_in_view(page, grid)
    assert {"Allocation grid", "Allocated of quantity"} <= set(titles), titles
    column = titles.index("Allocation grid")
    second_pool = grid.get_by_test_id(f"glide-cell-{column}-1")
    expect(second_pool).to_have_text(re.compile(r"^allocations\?pool=\d+$"))
    link = second_pool.inner_text()
    # the same row's pool name (other browser tests may have added pools before this one)
    name = grid.get_by_test_id(f"glide-cell-{titles.index('Pool')}-1").inner_text().strip()
    assert name

    page.goto(f"{app_server.url}/{link}")  # where the link leads from /pools
    wait_for_app(page)
    expect(page.get_by_role("heading", level=1, name="Allocations")).to_be_visible()
    pool_box = page.get_by_test_id("stSelectbox").filter(has_text="Pool")
    expect(pool_box.locator("input")).to_have_value(re.compile(f"/ {re.escape(name)} \\("))
    page.context.close()
