"""The allocation grid in chromium never acts on the wrong feature (issue #8, item 1).

Max (a demo manager) has one pool with two features and no allocations, so his pool's first
feature is the one the page opens with; every test works on the second one.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from playwright.sync_api import Browser, Dialog, Locator, Page, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.helpers import (
    act,
    click_button,
    download_csv,
    expect_pending,
    open_page,
    pick_in_list,
    reserved_hosts,
    sign_in,
    type_in_cell,
    wait_for_app,
    wait_until,
)
from vlm.demo import DEMO_USERS, SIM_FEATURE

pytestmark = pytest.mark.e2e

MAX = next(u for u in DEMO_USERS if u.username == "max")


def selectbox(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stSelectbox").filter(has_text=label)


def shown(box: Locator) -> str:
    return box.locator("input").input_value()


def _listed(page: Page) -> bool:
    try:
        page.get_by_role("option").first.wait_for(state="visible", timeout=2_000)
    except PlaywrightTimeoutError:
        return False
    return True


def feature_options(page: Page) -> list[str]:
    """The Feature selector's option labels, read by opening it (and closing it again)."""
    box = selectbox(page, "Feature")
    wait_for_app(page)
    box.locator("input").click()
    if not _listed(page):  # the first click only scrolled the box into view
        box.locator("input").click()
    options = page.get_by_role("option").all_inner_texts()
    page.keyboard.press("Escape")
    return [o.strip() for o in options]


def pick_feature(page: Page, label: str) -> None:
    box = selectbox(page, "Feature")
    wait_for_app(page)
    pick_in_list(page, box, label)
    expect(box.locator("input")).to_have_value(label)


def feature_name(label: str) -> str:
    return label.split(" ", 1)[0]


def feature_param(label: str) -> str:
    """'name version — n of m available' → 'name version', as the URL names a feature."""
    return label.split(" — ", 1)[0]


def available(label: str) -> tuple[int, int]:
    found = re.search(r"(\d+) of (\d+) available", label)
    assert found, label
    return int(found.group(1)), int(found.group(2))


def entries_of(emulators: dict, host: str) -> list[dict]:
    """The reservation entries a host id holds on any demo server."""
    return [
        e for emulator in emulators.values() for e in reserved_hosts(emulator.url).get(host, [])
    ]


def apply(page: Page, count: int) -> None:
    click_button(page, "Review changes")
    click_button(page, f"Apply {count} change(s)")


def tile(page: Page, label: str) -> Locator:
    return page.get_by_test_id("stMetric").filter(has_text=label).get_by_test_id("stMetricValue")


def test_typing_after_an_apply_stays_in_the_chosen_feature(browser: Browser, app_server, emulators):
    page = sign_in(browser, app_server.url, MAX.username, MAX.password)
    open_page(page, "Allocations")
    first, second = feature_options(page)
    # the demo's fea_solver (two Simulation nodes, its east count dropped) is the busiest
    # feature of Max's pool: the page's default
    assert shown(selectbox(page, "Feature")) == first
    assert feature_name(first) == SIM_FEATURE[0]
    pick_feature(page, second)
    free, quantity = available(second)

    type_in_cell(page, "host_id", 0, "0050569AF801", new_row=True)
    expect_pending(page, add=1, edit=0, remove=0)
    apply(page, 1)
    expect(page.get_by_text("Applied 1 change(s).", exact=False)).to_be_visible()

    # the selector still shows the chosen feature, and its label agrees with the tiles
    box = selectbox(page, "Feature")
    label = shown(box)
    assert feature_name(label) == feature_name(second)
    assert available(label) == (free - 1, quantity)
    expect(tile(page, "Available")).to_have_text(str(free - 1))

    # typing in the empty row does not throw the grid back to the first feature
    type_in_cell(page, "host_id", 1, "0050569AF802", new_row=True)
    expect_pending(page, add=1, edit=0, remove=0)
    assert feature_name(shown(box)) == feature_name(second)
    apply(page, 1)
    expect(page.get_by_text("Applied 1 change(s).", exact=False)).to_be_visible()
    assert available(shown(box)) == (free - 2, quantity)

    wanted = feature_name(second)
    for host in ("0050569AF801", "0050569AF802"):
        wait_until(lambda h=host: entries_of(emulators, h), timeout=15)
        assert {e["featureName"] for e in entries_of(emulators, host)} == {wanted}
    page.context.close()


def url_choice(page: Page) -> dict[str, str]:
    query = parse_qs(urlparse(page.url).query)
    return {k: v[-1] for k, v in query.items()}


def open_allocations_by_url(page: Page, base: str, query: str) -> None:
    page.goto(f"{base}/allocations?{query}")
    expect(page.get_by_role("heading", level=1, name="Allocations")).to_be_visible()
    wait_for_app(page)


def test_the_chosen_feature_is_in_the_url_and_survives_a_reload(browser: Browser, app_server):
    page = sign_in(browser, app_server.url, MAX.username, MAX.password)
    open_page(page, "Allocations")
    first, second = feature_options(page)
    pick_feature(page, second)
    wait_until(lambda: url_choice(page).get("feature") == feature_param(second), timeout=10)
    pool = url_choice(page)["pool"]

    page.reload()
    expect(page.get_by_role("heading", level=1, name="Allocations")).to_be_visible()
    wait_for_app(page)
    assert feature_name(shown(selectbox(page, "Feature"))) == feature_name(second)
    assert url_choice(page) == {"pool": pool, "feature": feature_param(second)}

    # a link opens the same grid in a new session
    other = sign_in(browser, app_server.url, MAX.username, MAX.password)
    open_allocations_by_url(other, app_server.url, urlencode(url_choice(page)))
    assert feature_name(shown(selectbox(other, "Feature"))) == feature_name(second)
    # an unknown feature falls back to the pool's default, and says so
    open_allocations_by_url(other, app_server.url, urlencode({"pool": pool, "feature": "nope 1"}))
    expect(other.get_by_text("has no feature 'nope 1'")).to_be_visible()
    fallback = shown(selectbox(other, "Feature"))
    assert url_choice(other) == {"pool": pool, "feature": feature_param(fallback)}
    other.context.close()
    page.context.close()


def test_a_link_to_another_managers_pool_shows_a_message_not_the_pool(browser: Browser, app_server):
    mia = next(u for u in DEMO_USERS if u.username == "mia")
    page = sign_in(browser, app_server.url, mia.username, mia.password)
    open_page(page, "Allocations")
    wait_until(lambda: "pool" in url_choice(page), timeout=10)
    mias_pool = url_choice(page)["pool"]
    page.context.close()

    page = sign_in(browser, app_server.url, MAX.username, MAX.password)
    open_allocations_by_url(page, app_server.url, f"pool={mias_pool}")
    expect(
        page.get_by_text(f"pool '{mias_pool}', which is not a pool you can open")
    ).to_be_visible()
    expect(selectbox(page, "Pool").locator("input")).to_have_value(re.compile("manager max"))
    expect(page.get_by_text("CAD team")).to_have_count(0)
    assert url_choice(page)["pool"] != mias_pool
    page.context.close()


def switch_warning(page: Page) -> Locator:
    return page.locator(".st-key-alloc_switch")


def test_switching_feature_with_unsaved_edits_asks_first(browser: Browser, app_server, emulators):
    page = sign_in(browser, app_server.url, MAX.username, MAX.password)
    open_page(page, "Allocations")
    first, second = feature_options(page)
    start = shown(selectbox(page, "Feature"))
    other = second if start == first else first
    rows = len(download_csv(page, "Download allocations grid (CSV)"))
    type_in_cell(page, "host_id", rows, "0050569AF821", new_row=True)
    expect_pending(page, add=1, edit=0, remove=0)

    # another widget's rerun keeps the typed row
    bulk = page.get_by_test_id("stExpander").filter(has_text="Bulk add")
    bulk.locator("summary").click()
    box = bulk.get_by_test_id("stTextArea").locator("textarea")
    box.fill("host_id\n0050569AF829")
    act(page, lambda: box.press("Tab"))
    expect_pending(page, add=1, edit=0, remove=0)

    # picking the other feature holds the switch and asks
    pick_in_list(page, selectbox(page, "Feature"), other)
    expect(switch_warning(page)).to_be_visible()
    expect(page.get_by_text("The grid has edits you have not applied")).to_be_visible()
    expect_pending(page, add=1, edit=0, remove=0)
    click_button(page, "Keep editing")
    expect(switch_warning(page)).to_have_count(0)
    expect(selectbox(page, "Feature").locator("input")).to_have_value(start)
    expect_pending(page, add=1, edit=0, remove=0)

    # discarding switches; the typed row reached no feature
    pick_in_list(page, selectbox(page, "Feature"), other)
    click_button(page, "Discard changes")
    expect(switch_warning(page)).to_have_count(0)
    expect(selectbox(page, "Feature").locator("input")).to_have_value(other)
    expect_pending(page, add=0, edit=0, remove=0)
    assert entries_of(emulators, "0050569AF821") == []
    page.context.close()


def test_leaving_the_page_with_unsaved_edits_asks_first(browser: Browser, app_server):
    page = sign_in(browser, app_server.url, MAX.username, MAX.password)
    open_page(page, "Allocations")
    dialogs: list[str] = []

    def answer(dialog: Dialog) -> None:
        dialogs.append(dialog.type)
        dialog.dismiss()

    page.on("dialog", answer)
    # nothing typed: the menu leaves without asking
    open_page(page, "My Pools")
    open_page(page, "Allocations")
    assert dialogs == []

    rows = len(download_csv(page, "Download allocations grid (CSV)"))
    type_in_cell(page, "host_id", rows, "0050569AF831", new_row=True)
    expect_pending(page, add=1, edit=0, remove=0)
    link = page.get_by_test_id("stSidebarNavLink").filter(has_text="My Pools")
    link.click()
    wait_until(lambda: dialogs == ["confirm"], timeout=10)
    wait_for_app(page)
    expect(page.get_by_role("heading", level=1, name="Allocations")).to_be_visible()
    expect_pending(page, add=1, edit=0, remove=0)

    # closing (or reloading) the tab asks the browser's own question; dismissed, the tab stays
    with page.expect_event("dialog"):
        page.close(run_before_unload=True)
    assert dialogs == ["confirm", "beforeunload"]
    expect_pending(page, add=1, edit=0, remove=0)
    page.context.close()
