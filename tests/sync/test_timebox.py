"""Time-boxed allocations against an emulated server over loopback HTTP: a scheduled one is not
on the server before its start day and is pushed when it comes; an ended one is taken off the
server and stays in the database as expired, audited by the system actor; a foreign group that
holds the same host is never touched. Time is ctx.today, moved on by the test."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.faults.conftest import create_foreign_group
from tests.sync.conftest import (
    MIA,
    PREFIX,
    add_pool,
    add_synced_server,
    allocation,
    emulator_groups,
    feature_id,
    feature_key,
    new_client,
    server_state,
)
from vlm.domain import reservation_group_name
from vlm.services import allocations
from vlm.store.timebox import any_due
from vlm.sync import reconcile_server

TODAY = date(2026, 12, 2)
H1, H2, H3 = "0050569A0001", "0050569A0002", "0050569A0003"


@pytest.fixture
def clock(ctx):
    """The day the services and the reconciler see; the test moves it on."""
    days = {"today": TODAY}
    ctx.today = lambda: days["today"]
    return days


@pytest.fixture
def cad(ctx, emulator, clock):
    server = add_synced_server(ctx, emulator.url)
    sf = feature_id(ctx, server, "cad")
    pool = add_pool(ctx, {sf: 10})
    return server, sf, pool


def _allocate(ctx, sf, pool, host, **days) -> int:
    return allocations.allocate(ctx, MIA, pool, feature_key(ctx, sf), "ETHERNET", host, 2, **days)


def _group(host: str) -> str:
    return reservation_group_name(PREFIX, "ETHERNET", host)


def _audit(ctx, alloc_id: int) -> list[tuple]:
    return ctx.db.query(
        "SELECT actor, action, count_change FROM audit_log "
        "WHERE target_type = 'allocation' AND target_id = ? ORDER BY id",
        [str(alloc_id)],
    )


def test_scheduled_allocation_reaches_the_server_on_its_start_day(ctx, emulator, cad, clock):
    server, sf, pool = cad
    alloc_id = _allocate(ctx, sf, pool, H1, starts_on=TODAY + timedelta(days=7))
    assert allocation(ctx, alloc_id)["state"] == "scheduled"

    reconcile_server(ctx, server)
    assert _group(H1) not in server_state(emulator)
    assert allocation(ctx, alloc_id)["state"] == "scheduled"

    clock["today"] = TODAY + timedelta(days=6)
    reconcile_server(ctx, server)
    assert _group(H1) not in server_state(emulator)

    clock["today"] = TODAY + timedelta(days=7)
    reconcile_server(ctx, server)
    assert server_state(emulator)[_group(H1)] == {("ETHERNET", H1): {("cad", "1.0"): 2}}
    assert allocation(ctx, alloc_id)["state"] == "applied"
    assert _audit(ctx, alloc_id)[-1] == ("system", "allocation.start", 0)


def test_ended_allocation_leaves_the_server_and_stays_as_expired(ctx, emulator, cad, clock):
    server, sf, pool = cad
    ending = _allocate(ctx, sf, pool, H1, ends_on=TODAY + timedelta(days=3))
    staying = _allocate(ctx, sf, pool, H2)
    reconcile_server(ctx, server)
    assert set(server_state(emulator)) == {_group(H1), _group(H2)}

    clock["today"] = TODAY + timedelta(days=3)  # the end day itself still holds the license
    reconcile_server(ctx, server)
    assert set(server_state(emulator)) == {_group(H1), _group(H2)}
    assert allocation(ctx, ending)["state"] == "applied"

    clock["today"] = TODAY + timedelta(days=4)
    report = reconcile_server(ctx, server)
    assert set(server_state(emulator)) == {_group(H2)}
    assert report.removed == 1
    row = allocation(ctx, ending)
    assert row is not None and row["state"] == "expired"
    assert row["ends_on"] == TODAY + timedelta(days=3)
    assert allocation(ctx, staying)["state"] == "applied"
    assert _audit(ctx, ending)[-1] == ("system", "allocation.expire", -2)
    frame = allocations.list_allocations(ctx, MIA, pool)
    assert frame.set_index("id").loc[ending, "phase"] == "expired"

    # the seat is free again: the pool counts only the live allocation
    assert not any_due(ctx.db, server, clock["today"])
    reconcile_server(ctx, server)
    assert _audit(ctx, ending)[-1] == ("system", "allocation.expire", -2)


def test_scheduled_allocation_that_ended_before_it_was_pushed_expires_without_a_request(
    ctx, emulator, cad, clock
):
    server, sf, pool = cad
    alloc_id = _allocate(
        ctx, sf, pool, H1, starts_on=TODAY + timedelta(days=1), ends_on=TODAY + timedelta(days=2)
    )
    clock["today"] = TODAY + timedelta(days=5)
    reconcile_server(ctx, server)
    assert allocation(ctx, alloc_id)["state"] == "expired"
    assert _group(H1) not in server_state(emulator)


def test_expiry_never_touches_a_foreign_group_of_the_same_host(ctx, emulator, cad, clock):
    server, sf, pool = cad
    with new_client(ctx, server) as api:
        create_foreign_group(api, "team-x", H3, {"cad": 1}, host_type="ETHERNET")
    foreign_before = [g for g in emulator_groups(emulator) if g["name"] == "team-x"]
    alloc_id = _allocate(ctx, sf, pool, H3, ends_on=TODAY + timedelta(days=1))
    reconcile_server(ctx, server)

    clock["today"] = TODAY + timedelta(days=2)
    reconcile_server(ctx, server)
    reconcile_server(ctx, server)
    assert [g for g in emulator_groups(emulator) if g["name"] == "team-x"] == foreign_before
    assert _group(H3) not in server_state(emulator)
    assert allocation(ctx, alloc_id)["state"] == "expired"
