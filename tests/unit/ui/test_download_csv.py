"""download_csv prepares its CSV only when clicked, on Streamlit's download thread, in the zone
of the user who saw the button (there is no script run there to ask)."""

from __future__ import annotations

import csv
import io
import threading
from zoneinfo import ZoneInfo

import pandas as pd

from vlm.ui import widgets
from vlm.ui.local_time import in_zone, server_zone, user_zone

TOKYO = ZoneInfo("Asia/Tokyo")


def rows(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode())))


def test_the_csv_is_built_on_click_in_the_users_zone(monkeypatch):
    buttons: dict[str, object] = {}
    monkeypatch.setattr(widgets.st, "download_button", lambda *a, **k: buttons.update(k))
    prepared: list[int] = []
    real = widgets.for_people
    monkeypatch.setattr(widgets, "for_people", lambda *a, **k: prepared.append(1) or real(*a, **k))
    stored = pd.Timestamp("2026-07-01 12:00:00")
    frame = pd.DataFrame({"created_at": [stored], "host_id": ["=cmd"]})

    with in_zone(TOKYO):
        widgets.download_csv(frame, "hosts", key="hosts")
    assert prepared == []  # nothing prepared while the page runs

    built: list[bytes] = []
    clicked = threading.Thread(target=lambda: built.append(buttons["data"]()))
    clicked.start()
    clicked.join()
    header, row = rows(built[0])
    assert header == ["Created (Asia/Tokyo)", "Host id"]
    expected = stored.tz_localize(server_zone()).tz_convert(TOKYO)
    assert row == [f"{expected:%Y-%m-%d %H:%M:%S}", "'=cmd"]
    assert user_zone() != TOKYO or server_zone() == TOKYO  # the fixed zone did not leak


def test_a_raw_csv_keeps_the_machine_names_and_stored_times(monkeypatch):
    buttons: dict[str, object] = {}
    monkeypatch.setattr(widgets.st, "download_button", lambda *a, **k: buttons.update(k))
    frame = pd.DataFrame({"created_at": [pd.Timestamp("2026-07-01 12:00:00")], "host_id": ["a"]})
    with in_zone(TOKYO):
        widgets.download_csv(frame, "hosts", key="hosts", raw=True)
    header, row = rows(buttons["data"]())
    assert header == ["created_at", "host_id"]
    assert row == ["2026-07-01 12:00:00", "a"]
