"""In chromium (issue #8 item 8): a reservation deleted on the license server outside VLM shows in
the Drift tab's history as found (missing) and then repaired, and the history downloads as CSV."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.helpers import act, choose, click_button, download_csv, open_page, sign_in
from vlm.demo import DEMO_USERS, EMULATOR_ADMIN_PASSWORD
from vlm.domain import Role
from vlm.flexnet import FlexNetClient

pytestmark = pytest.mark.e2e

HOST = ("USER", "jsmith")  # a demo allocation of Mia's CAD pool


def api(url: str) -> FlexNetClient:
    return FlexNetClient(url, username="admin", password=EMULATOR_ADMIN_PASSWORD)


def hosts_reservation(url: str) -> tuple[int, int] | None:
    """(group id, reservation id) of HOST's reservation on a server, or None."""
    with api(url) as client:
        for group in client.reservation_groups_with_reservations():
            for reservation in group.reservations:
                if (reservation.host_id.type, reservation.host_id.value) == HOST:
                    return int(group.id), int(reservation.id)
    return None


def test_a_reservation_deleted_on_the_server_is_found_and_repaired_in_the_history(
    browser: Browser, app_server, emulators
) -> None:
    admin = next(u for u in DEMO_USERS if u.role == Role.ADMIN)
    page = sign_in(browser, app_server.url, admin.username, admin.password)
    [(server, (group_id, reservation_id))] = [
        (name, found)
        for name, emulator in emulators.items()
        if (found := hosts_reservation(emulator.url)) is not None
    ]
    with api(emulators[server].url) as client:
        client.delete_reservation(group_id, reservation_id)
    assert hosts_reservation(emulators[server].url) is None

    open_page(page, "Physical LMs")
    click_button(page, "Sync now")
    expect(page.get_by_text("Sync finished: 3 ok")).to_be_visible()
    choose(page, "License server", server)
    act(page, page.get_by_role("tab", name="Drift").click)

    assert hosts_reservation(emulators[server].url) is not None  # repaired by VLM
    expect(page.get_by_role("heading", name="Drift history")).to_be_visible()
    history = download_csv(page, "Download drift history (CSV)")
    events = history[history["Host id"] == HOST[1]][["What happened", "Event"]].values.tolist()
    assert events[0] == ["repaired", "repaired"]  # newest first
    assert ["found", "missing"] in events[1:]
