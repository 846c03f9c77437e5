"""Screenshots of the dashboard, the allocation grid, alerts, quantity requests and idle licenses
for the README.

They are written to docs/screenshots/ when VLM_UPDATE_SCREENSHOTS=1 (otherwise to a temporary
folder, so a test run never changes tracked files):

    VLM_UPDATE_SCREENSHOTS=1 .venv/bin/python -m pytest tests/e2e/test_docs_screenshots.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.helpers import (
    click_button,
    expect_pending,
    open_page,
    sign_in,
    type_in_cell,
    wait_for_app,
)
from vlm.demo import DEMO_ALLOCATIONS, DEMO_TIMEBOXED, DEMO_USERS
from vlm.domain import Role

pytestmark = pytest.mark.e2e
DOCS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


@pytest.fixture
def shots(tmp_path) -> Path:
    return DOCS if os.environ.get("VLM_UPDATE_SCREENSHOTS") == "1" else tmp_path


def demo(role: Role):
    return next(u for u in DEMO_USERS if u.role == role)


def test_dashboard_screenshot(browser: Browser, app_server, shots):
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    page.set_viewport_size({"width": 1400, "height": 1720})
    wait_for_app(page)
    expect(page.get_by_test_id("stPlotlyChart")).to_have_count(4, timeout=15_000)
    page.mouse.move(5, 5)
    page.wait_for_timeout(1_000)  # let plotly finish drawing
    page.screenshot(path=shots / "dashboard.png")
    assert (shots / "dashboard.png").stat().st_size > 20_000
    page.context.close()


def test_allocations_screenshot(browser: Browser, app_server, shots):
    manager = demo(Role.MANAGER)
    page = sign_in(browser, app_server.url, manager.username, manager.password)
    open_page(page, "Allocations")
    new_row = len(DEMO_ALLOCATIONS) + len(DEMO_TIMEBOXED)
    type_in_cell(page, "host_id", new_row, "0050569A0004", new_row=True)
    type_in_cell(page, "description", new_row, "CAD workstation 04 (Dana)")
    expect_pending(page, add=1, edit=0, remove=0)
    click_button(page, "Review changes")
    expect(page.get_by_text("1 to add, 0 to edit, 0 to remove").first).to_be_visible()
    wait_for_app(page)
    page.mouse.move(5, 5)
    page.screenshot(path=shots / "allocations.png")
    assert (shots / "allocations.png").stat().st_size > 20_000
    page.context.close()


def test_alerts_screenshot(browser: Browser, app_server, shots):
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    page.set_viewport_size({"width": 1400, "height": 1500})
    open_page(page, "Alerts")
    expect(page.get_by_text("Open alerts", exact=True)).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    wait_for_app(page)
    page.screenshot(path=shots / "alerts.png")
    assert (shots / "alerts.png").stat().st_size > 20_000
    page.context.close()


def test_requests_screenshot(browser: Browser, app_server, shots):
    admin = demo(Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    page.set_viewport_size({"width": 1400, "height": 1100})
    open_page(page, "Requests")
    expect(page.get_by_text("Open requests", exact=True)).to_be_visible()
    expect(page.get_by_test_id("stDataFrame").first).to_be_visible()
    page.get_by_text("Approve partly", exact=True).click()
    expect(page.get_by_text("Grant (1 to 1)")).to_be_visible()
    wait_for_app(page)
    page.mouse.move(5, 5)
    page.screenshot(path=shots / "requests.png")
    assert (shots / "requests.png").stat().st_size > 20_000
    page.context.close()


def test_idle_licenses_screenshot(browser: Browser, app_server, shots):
    manager = demo(Role.MANAGER)
    page = sign_in(browser, app_server.url, manager.username, manager.password)
    page.set_viewport_size({"width": 1400, "height": 1000})
    open_page(page, "Idle licenses")
    expect(page.get_by_role("heading", name="Idle allocations")).to_be_visible()
    expect(page.get_by_test_id("stMetric").first).to_be_visible()
    wait_for_app(page)
    page.mouse.move(5, 5)
    page.screenshot(path=shots / "idle.png")
    assert (shots / "idle.png").stat().st_size > 20_000
    page.context.close()
