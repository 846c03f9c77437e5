"""Driving the Streamlit app in chromium: waits, sign-in, widgets, the allocation grid."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from typing import Any

import httpx
import pandas as pd
from playwright.sync_api import Browser, Page, expect
from playwright.sync_api import Error as PlaywrightError

# Allocation grid geometry (fixed column widths in vlm/ui/allocation_grid.py).
HEADER, ROW, MARKER = 35, 35, 33
VIEWPORT = {"width": 1400, "height": 1000}
COOKIE = "vlm_auth"
COLUMNS = {"host_type": 110, "host_id": 170, "count": 70, "description": 260}


def wait_for_app(page: Page, settle_ms: int = 400) -> None:
    """Let a rerun start, then wait until the script is idle."""
    page.wait_for_timeout(settle_ms)
    app = page.locator("[data-testid='stApp'][data-test-script-state='notRunning']")
    app.wait_for(state="attached", timeout=30_000)


def sign_in(browser: Browser, base_url: str, username: str, password: str) -> Page:
    """A fresh browser context signed in as username (retrying a submit lost to a rerun)."""
    page = browser.new_context(viewport=VIEWPORT, accept_downloads=True).new_page()
    page.goto(base_url)
    signed_in = page.get_by_test_id("stSidebar").get_by_text("Signed in as")
    for _ in range(5):
        wait_for_app(page, 800)
        if signed_in.is_visible():
            break
        user_box = page.locator("input[aria-label='Username']")
        password_box = page.locator("input[type=password]")
        submit = page.get_by_test_id("stFormSubmitButton").locator("button")
        if user_box.count() == 1 and password_box.count() == 1 and submit.count() == 1:
            try:
                user_box.fill(username, timeout=5_000)
                password_box.fill(password, timeout=5_000)
                submit.click(timeout=5_000)
            except PlaywrightError:
                continue
        try:
            expect(signed_in).to_be_visible(timeout=5_000)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"could not sign in as {username}")
    wait_until(lambda: any(c["name"] == COOKIE for c in page.context.cookies()), timeout=10)
    wait_for_app(page)
    return page


def open_page(page: Page, title: str) -> None:
    page.get_by_test_id("stSidebarNavLink").filter(has_text=title).click()
    wait_for_app(page, 600)
    expect(page.get_by_role("heading", level=1)).to_be_visible()


def link_texts(page: Page, test_id: str) -> list[str]:
    """Link labels (a material icon's ligature name is on its own line before the label)."""
    return [
        t.strip().splitlines()[-1].strip() for t in page.get_by_test_id(test_id).all_inner_texts()
    ]


def sidebar_links(page: Page) -> list[str]:
    return link_texts(page, "stSidebarNavLink")


def choose(page: Page, label: str, option: str) -> None:
    """Pick an option of a selectbox by its label."""
    page.get_by_test_id("stSelectbox").filter(has_text=label).locator("input").click()
    page.get_by_role("option", name=option).first.click()
    wait_for_app(page)


def add_to_multiselect(page: Page, label: str, option: str) -> None:
    box = page.get_by_test_id("stMultiSelect").filter(has_text=label)
    box.locator("input").click()
    page.get_by_role("option", name=option).first.click()
    page.keyboard.press("Escape")
    wait_for_app(page)


def click_button(page: Page, name: str) -> None:
    page.get_by_role("button", name=name).click()
    wait_for_app(page, 600)


def expand(page: Page, title: str) -> None:
    page.get_by_test_id("stExpander").filter(has_text=title).locator("summary").click()
    wait_for_app(page)


def _cell(column: str, row: int) -> dict[str, float]:
    x = MARKER
    for name, width in COLUMNS.items():
        if name == column:
            return {"x": x + width / 2, "y": HEADER + ROW * row + ROW / 2}
        x += width
    raise KeyError(column)


def type_in_cell(page: Page, column: str, row: int, text: str, *, new_row: bool = False) -> None:
    """Edit one grid cell (a click on the trailing empty row adds a row first)."""
    grid = page.get_by_test_id("stDataFrame")
    overlay = page.get_by_test_id("portal").locator("input, textarea")
    grid.click(position=_cell(column, row))  # selects (or, on the trailing row, adds a row)
    page.wait_for_timeout(300)
    if not new_row or overlay.count() == 0:
        grid.dblclick(position=_cell(column, row))
    expect(overlay.first).to_be_visible()
    overlay.first.fill(text)
    page.keyboard.press("Enter")
    wait_for_app(page, 600)


def delete_row(page: Page, row: int) -> None:
    """Select a row by its marker and delete it with the grid toolbar's button (a Delete key
    press depends on keyboard focus, which a rerun can take away)."""
    grid = page.get_by_test_id("stDataFrame")
    delete = page.get_by_role("button", name="Delete row(s)")
    for _ in range(3):
        grid.hover()
        if not delete.is_visible():
            grid.click(position={"x": MARKER / 2, "y": HEADER + ROW * row + ROW / 2})
            page.wait_for_timeout(300)
            grid.hover()
        try:
            delete.click(timeout=5_000)
        except PlaywrightError:
            continue
        wait_for_app(page, 600)
        grid.hover()
        if not delete.is_visible():
            return
    raise AssertionError(f"could not delete row {row} of the grid")


def download_csv(page: Page, button: str) -> pd.DataFrame:
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


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> float:
    """Seconds until predicate() held; raises when it did not within timeout."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)
    return time.monotonic() - started
