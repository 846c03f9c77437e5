"""record_sightings writes only the differences from the open episodes, a few pairs one statement
each and many registered at once, and nothing when the pairs seen are the open ones."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.unit.store.sync_estate import add_server
from vlm.store import Database
from vlm.store.frames import FEW_ROWS
from vlm.store.usage import open_sightings, record_sightings, sighting_history

START = datetime(2026, 3, 2, 9, 0)


def pairs(hosts: range) -> set[tuple[str, str, str, str]]:
    return {("ETHERNET", f"H{i:011d}", "cad", "1.0") for i in hosts}


def record(db: Database, server_id: int, seen: set[tuple], hours: int) -> tuple[int, int]:
    at = START + timedelta(hours=hours)
    return db.write(lambda cur: record_sightings(cur, server_id, seen, at))


@pytest.mark.parametrize("size", [3, FEW_ROWS + 5], ids=["few", "many"])
def test_only_the_differences_are_written(fresh_db: Database, size: int) -> None:
    east, west = add_server(fresh_db, "east"), add_server(fresh_db, "west")
    first, second = pairs(range(size)), pairs(range(size // 2, size + size // 2))
    assert record(fresh_db, east, first, 0) == (size, 0)
    assert record(fresh_db, west, first, 0) == (size, 0)

    assert record(fresh_db, east, set(first), 1) == (0, 0)
    assert fresh_db.scalar("SELECT count(*) FROM usage_sightings WHERE seen_until IS NULL") == (
        2 * size
    )

    assert record(fresh_db, east, second, 2) == (size // 2, size // 2)
    assert open_sightings(fresh_db, east) == second
    assert open_sightings(fresh_db, west) == first
    history = sighting_history(fresh_db, east)
    closed = history[history["seen_until"].notna()]
    assert set(closed["host_id"]) == {pair[1] for pair in first - second}
    assert set(closed["seen_until"]) == {START + timedelta(hours=2)}
    reopened = history[history["seen_from"] == START + timedelta(hours=2)]
    assert set(reopened["host_id"]) == {pair[1] for pair in second - first}
    assert len(history) == size + size // 2

    assert record(fresh_db, east, set(), 3) == (0, size)
    assert open_sightings(fresh_db, east) == set()
    assert record(fresh_db, east, first, 4) == (size, 0)
