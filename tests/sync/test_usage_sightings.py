"""Each inventory pull records who the server shows using each feature (GET /clients), as
change-only episodes: opened when a host is first seen holding a feature, closed on the first
pull that no longer sees it, nothing written while it lasts (over real HTTP to the emulator)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.sync.conftest import add_synced_server, feature
from vlm.flexnet.emulator.server import start_emulator
from vlm.store.usage import open_sightings, sighting_history
from vlm.sync import pull_inventory

ANN = "A1A1A1A1A1A1"
BEN = "B2B2B2B2B2B2"
FIXTURE = {"features": [feature("cad", 10), feature("viz", 4)], "reservationGroups": []}


@pytest.fixture
def emu():
    with start_emulator(FIXTURE) as running:
        yield running


def _usage(emu: Any, action: str, host: str, name: str, count: int = 1) -> None:
    body = {"hostid": {"type": "ETHERNET", "value": host}, "featureName": name}
    body |= {"featureVersion": "1.0", "count": count}
    httpx.post(f"{emu.url}/_emulator/{action}", json=body, timeout=10).raise_for_status()


def _pull(ctx, server_id: int) -> None:
    result = pull_inventory(ctx, server_id)
    assert result.ok and result.usage_error is None, result


def test_a_host_seen_using_a_feature_opens_an_episode(ctx, emu) -> None:
    server_id = add_synced_server(ctx, emu.url)
    assert open_sightings(ctx.db, server_id) == set()

    _usage(emu, "checkout", ANN, "cad")
    _usage(emu, "checkout", BEN, "viz", 2)
    _pull(ctx, server_id)

    assert open_sightings(ctx.db, server_id) == {
        ("ETHERNET", ANN, "cad", "1.0"),
        ("ETHERNET", BEN, "viz", "1.0"),
    }


def test_an_episode_closes_on_the_first_pull_that_no_longer_sees_it(ctx, emu) -> None:
    server_id = add_synced_server(ctx, emu.url)
    _usage(emu, "checkout", ANN, "cad")
    _usage(emu, "checkout", BEN, "cad")
    _pull(ctx, server_id)

    _usage(emu, "checkin", ANN, "cad")
    _pull(ctx, server_id)

    assert open_sightings(ctx.db, server_id) == {("ETHERNET", BEN, "cad", "1.0")}
    history = sighting_history(ctx.db, server_id)
    ann = history[history["host_id"] == ANN]
    assert len(ann) == 1 and ann["seen_until"].notna().all()
    assert (ann["seen_until"] >= ann["seen_from"]).all()


def test_nothing_is_written_while_the_usage_lasts(ctx, emu) -> None:
    server_id = add_synced_server(ctx, emu.url)
    _usage(emu, "checkout", ANN, "cad")
    _pull(ctx, server_id)
    before = sighting_history(ctx.db, server_id)

    _usage(emu, "checkout", BEN, "viz")
    _usage(emu, "checkin", BEN, "viz")
    _pull(ctx, server_id)
    _pull(ctx, server_id)

    after = sighting_history(ctx.db, server_id)
    assert len(after) == len(before) == 1
    assert after.equals(before)


def test_using_again_after_a_pause_opens_a_second_episode(ctx, emu) -> None:
    server_id = add_synced_server(ctx, emu.url)
    for action in ("checkout", "checkin", "checkout"):
        _usage(emu, action, ANN, "cad")
        _pull(ctx, server_id)

    history = sighting_history(ctx.db, server_id)
    assert len(history) == 2
    assert history["seen_until"].isna().tolist() == [False, True]


def test_a_failing_clients_answer_leaves_the_pull_ok_and_the_episodes_as_they_were(
    ctx, emu
) -> None:
    server_id = add_synced_server(ctx, emu.url)
    _usage(emu, "checkout", ANN, "cad")
    _pull(ctx, server_id)
    fault = {"error_rate": 1.0, "error_paths": ["/clients"], "error_statuses": [500]}
    httpx.post(f"{emu.url}/_emulator/faults", json=fault, timeout=10).raise_for_status()
    _usage(emu, "checkin", ANN, "cad")

    result = pull_inventory(ctx, server_id)

    assert result.ok and result.usage_error and "500" in result.usage_error
    assert open_sightings(ctx.db, server_id) == {("ETHERNET", ANN, "cad", "1.0")}
    httpx.delete(f"{emu.url}/_emulator/faults", timeout=10).raise_for_status()
    _pull(ctx, server_id)
    assert open_sightings(ctx.db, server_id) == set()
