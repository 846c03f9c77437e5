"""Driving the Streamlit app in chromium: waits, sign-in, widgets, the allocation grid.

Every helper acts once; it (or the test) then expects what the action must produce, with
Playwright's auto-waiting expect. Nothing is retried: a lost submit fails the test. Before
acting, a helper waits until the app is idle: connected, no script running, and no run started
or finished for QUIET_MS (runs the app starts by itself, like the cookie component's after a
sign-in, begin a little after the run that caused them). The sign-in form is the exception: it
is filled and submitted as soon as it shows, because nothing may rerun the sign-in page.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

# Allocation grid geometry (fixed column widths in vlm/ui/grid/view.py).
HEADER, ROW, MARKER = 35, 35, 33
VIEWPORT = {"width": 1400, "height": 1000}
COOKIE = "vlm_auth"
COLUMNS = {"host_type": 110, "host_id": 170, "count": 70, "description": 260}
QUIET_MS = 600
IDLE_TIMEOUT_MS = 30_000
# the h1 of each page, by its menu title
HEADINGS = {
    "Virtual LMs": "Virtual License Managers",
    "Physical LMs": "Physical License Managers",
    "Audit": "Audit log",
}

# Records when the script state last changed (or the test last acted), for wait_for_app, and
# counts the script runs that finished.
RUN_TRACKER = """
window.__vlmLastActivity = performance.now();
window.__vlmRuns = 0;
new MutationObserver(records => {
    window.__vlmLastActivity = performance.now();
    window.__vlmRuns += records.filter(r => r.oldValue === "running").length;
}).observe(document, {
    subtree: true, attributes: true, attributeOldValue: true,
    attributeFilter: ["data-test-script-state"],
});
"""
IDLE = """quiet => {
    const app = document.querySelector("[data-testid='stApp']");
    return !!app
        && app.getAttribute("data-test-connection-state") === "CONNECTED"
        && app.getAttribute("data-test-script-state") === "notRunning"
        && performance.now() - window.__vlmLastActivity >= quiet;
}"""


def wait_for_app(page: Page, quiet_ms: int = QUIET_MS) -> None:
    """Wait until the app is connected and no script has run for quiet_ms."""
    page.wait_for_function(IDLE, arg=quiet_ms, polling=50, timeout=IDLE_TIMEOUT_MS)


def mark_activity(page: Page) -> None:
    """Count an action as activity, so the next wait_for_app lets its rerun start first."""
    page.evaluate("window.__vlmLastActivity = performance.now()")


def act(page: Page, action: Callable[[], Any]) -> None:
    """Wait for an idle app, do one interaction that reruns the script, wait for idle again."""
    wait_for_app(page)
    action()
    mark_activity(page)
    wait_for_app(page)


def finished_runs(page: Page) -> int:
    """Script runs (full or fragment) that finished since the page loaded."""
    return int(page.evaluate("window.__vlmRuns"))


def new_page(browser: Browser) -> Page:
    """A page in a fresh browser context (no cookies), with the run tracker."""
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    context.add_init_script(RUN_TRACKER)
    return context.new_page()


def sign_in(
    browser: Browser, base_url: str, username: str, password: str, cookie_timeout: float = 15
) -> Page:
    """A fresh browser context signed in as username with one submit of the sign-in form; it
    returns once the browser holds the sign-in cookie (within cookie_timeout seconds)."""
    page = new_page(browser)
    page.goto(base_url)
    form = sign_in_form(page)
    form.locator("input[aria-label='Username']").fill(username)
    form.locator("input[type=password]").fill(password)
    form.get_by_test_id("stFormSubmitButton").locator("button").click()
    expect(page.get_by_test_id("stSidebar").get_by_text("Signed in as")).to_be_visible()
    wait_until(
        lambda: any(c["name"] == COOKIE for c in page.context.cookies()), timeout=cookie_timeout
    )
    # the app draws the cookie writer until it reports the cookie stored (that report reruns
    # the app); once the writer is gone, nothing reruns the app by itself
    expect(page.locator(".st-key-set")).to_have_count(0)
    mark_activity(page)
    wait_for_app(page)
    return page


def sign_in_form(page: Page) -> Locator:
    return page.get_by_test_id("stForm").filter(has_text="Sign in")


def open_page(page: Page, title: str) -> None:
    """Open a page from the sidebar menu; it is open once its link is current and its
    heading shows."""
    link = page.get_by_test_id("stSidebarNavLink").filter(has_text=title)
    act(page, link.click)
    expect(link).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", level=1, name=HEADINGS.get(title, title))).to_be_visible()


def link_texts(page: Page, test_id: str) -> list[str]:
    """Link labels (a material icon's ligature name is on its own line before the label)."""
    return [
        t.strip().splitlines()[-1].strip() for t in page.get_by_test_id(test_id).all_inner_texts()
    ]


def sidebar_links(page: Page) -> list[str]:
    return link_texts(page, "stSidebarNavLink")


def fill_text(page: Page, box: Locator, text: str) -> None:
    """Type into a text or number input and leave it (Tab), which hands the value over."""
    wait_for_app(page)
    box.fill(text)
    act(page, lambda: box.press("Tab"))
    expect(box).to_have_value(text)


def _shows(locator: Locator, timeout_ms: int = 2_000) -> bool:
    try:
        locator.wait_for(state="visible", timeout=timeout_ms)
    except PlaywrightTimeoutError:
        return False
    return True


def pick_in_list(page: Page, box: Locator, option: str) -> None:
    """Open a selectbox's list and click an option (a second click when the first only
    scrolled the box into view and the list closed again)."""
    choice = page.get_by_role("option", name=option, exact=True)
    box.locator("input").click()
    if not _shows(choice):
        box.locator("input").click()
    act(page, choice.click)


def choose(page: Page, label: str, option: str, scope: Page | Locator | None = None) -> None:
    """Pick an option of a selectbox by its label; the box then shows it."""
    box = (scope or page).get_by_test_id("stSelectbox").filter(has_text=label)
    wait_for_app(page)
    pick_in_list(page, box, option)
    expect(box.locator("input")).to_have_value(option)


def add_to_multiselect(page: Page, label: str, option: str) -> None:
    """Add an option to a multiselect by its label; it then shows as a chosen tag."""
    box = page.get_by_test_id("stMultiSelect").filter(has_text=label)
    wait_for_app(page)
    box.locator("input").click()
    act(page, page.get_by_role("option", name=option, exact=True).click)
    page.keyboard.press("Escape")
    expect(box.get_by_text(option, exact=True)).to_be_visible()


def click_button(page: Page, name: str) -> None:
    """Click a button once (the caller then expects what it must produce)."""
    act(page, page.get_by_role("button", name=name, exact=True).click)


def expand(page: Page, title: str) -> Locator:
    """Open an expander by its title; returns it. Opening a lazy expander reruns the page to
    draw its content: the rerun is waited for."""
    expander = page.get_by_test_id("stExpander").filter(has_text=title)
    act(page, expander.locator("summary").click)
    expect(expander.locator("details")).to_have_attribute("open", "")
    return expander


def _cell(column: str, row: int) -> dict[str, float]:
    x = MARKER
    for name, width in COLUMNS.items():
        if name == column:
            return {"x": x + width / 2, "y": HEADER + ROW * row + ROW / 2}
        x += width
    raise KeyError(column)


def point_at_grid(page: Page, position: dict[str, float]) -> Locator:
    """Move the pointer onto the grid and wait until its toolbar shows: a click made as the
    pointer enters the grid is swallowed while the toolbar appears. Returns the grid."""
    grid = page.get_by_test_id("stDataFrame").first  # the grid; an apply's report comes below
    wait_for_app(page)
    grid.hover(position=position)
    expect(grid.get_by_test_id("stElementToolbar")).to_have_css("opacity", "1")
    return grid


def type_in_cell(page: Page, column: str, row: int, text: str, *, new_row: bool = False) -> None:
    """Edit one grid cell: open its editor (on the trailing empty row a click adds the row and
    may open it already), fill it, press Enter."""
    position = _cell(column, row)
    overlay = page.get_by_test_id("portal").locator("input, textarea").first
    grid = point_at_grid(page, position)
    if new_row:
        act(page, lambda: grid.click(position=position))
    if not overlay.is_visible():
        grid.dblclick(position=position)
    expect(overlay).to_be_visible()
    overlay.fill(text)
    act(page, lambda: page.keyboard.press("Enter"))
    expect(overlay).to_be_hidden()


def expect_pending(page: Page, add: int, edit: int, remove: int) -> None:
    """The grid's caption counts the edits the app received."""
    caption = f"Pending: {add} to add, {edit} to edit, {remove} to remove."
    expect(page.get_by_text(caption)).to_be_visible()


def delete_row(page: Page, row: int) -> None:
    """Select a row by its marker and delete it with the grid toolbar's button (a Delete key
    press depends on keyboard focus)."""
    position = {"x": MARKER / 2, "y": HEADER + ROW * row + ROW / 2}
    grid = point_at_grid(page, position)
    grid.click(position=position)
    act(page, page.get_by_role("button", name="Delete row(s)").click)


def download_csv(page: Page, button: str) -> pd.DataFrame:
    wait_for_app(page)
    with page.expect_download() as info:
        page.get_by_test_id("stDownloadButton").filter(has_text=button).locator(
            "button, a"
        ).first.click()
    path = info.value.path()
    with open(path, encoding="utf-8") as handle:
        return pd.read_csv(io.StringIO(handle.read()), dtype=str, keep_default_na=False)


def reserved_hosts(emulator_url: str) -> dict[str, list[dict[str, Any]]]:
    """host id → reservation entries of every reservation group on an emulated server."""
    state = httpx.get(f"{emulator_url}/_emulator/state", timeout=5).json()
    hosts: dict[str, list[dict[str, Any]]] = {}
    for group in state["reservationGroups"]:
        for reservation in group["reservations"]:
            hosts.setdefault(reservation["hostId"]["value"], []).extend(
                reservation["reservationEntries"]
            )
    return hosts


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> None:
    """Poll predicate() until it holds; raises when it did not within timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
