"""A pass pushed by a save skips the read of every group (issue 11, lever 1): it must still
apply, remove and repair exactly what a full pass would, keep to the in-flight bound per server,
and the scheduler works on the servers of one save at the same time."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from tests.faults.conftest import restart
from tests.sync.conftest import (
    PREFIX,
    add_pool,
    add_synced_server,
    allocate,
    allocate_many,
    allocation,
    control,
    desired_state,
    emulator_groups,
    feature_id,
    new_client,
    remove,
    server_state,
    set_count,
)
from vlm.domain import reservation_group_name
from vlm.sync import SyncScheduler, reconcile_all, reconcile_server, sync_all

H1, H2, H3 = "0050569A0001", "0050569A0002", "0050569A0003"


def _group_requests(emu, method: str) -> int:
    """Requests of that method the server answered on its reservation group list (a GET reads
    every group or one by name, a POST creates a group)."""
    requests = control(emu, "GET", "state")["stats"]["requests"]
    return sum(
        n
        for key, n in requests.items()
        if key.startswith(f"{method} ") and key.endswith("/reservationgroups")
    )


def test_a_pushed_pass_creates_new_hosts_without_reading_any_group(ctx, emulator) -> None:
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    pool = add_pool(ctx, {cad: 10})
    ids = allocate_many(ctx, pool, cad, [H1, H2, H3], 2)
    reads, posts = _group_requests(emulator, "GET"), _group_requests(emulator, "POST")

    report = reconcile_server(ctx, server, read_first=False)

    assert [allocation(ctx, a)["state"] for a in ids] == ["applied"] * 3
    assert (report.applied, report.operations) == (3, 3)
    assert _group_requests(emulator, "GET") == reads
    assert _group_requests(emulator, "POST") == posts + 3
    assert server_state(emulator) == desired_state(ctx, server)


def test_a_full_pass_reads_the_groups_first(ctx, emulator) -> None:
    """The counterpart: the default pass reads the server's groups before it writes."""
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    allocate(ctx, add_pool(ctx, {cad: 10}), cad, H1, 1)
    reads = _group_requests(emulator, "GET")

    reconcile_server(ctx, server)

    assert _group_requests(emulator, "GET") > reads


def test_a_full_pass_plans_from_its_inventory_read_without_reading_again(ctx, emulator) -> None:
    """sync_server (the periodic full pass, "Sync now") reads the groups once: the reconcile
    plans from what the pull just read and stored in the same server turn. A group deleted
    outside VLM before the pass is re-created by that pass."""
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    alloc = allocate(ctx, add_pool(ctx, {cad: 10}), cad, H1, 2)
    reconcile_server(ctx, server)
    assert allocation(ctx, alloc)["state"] == "applied"
    with new_client(ctx, server) as client:
        (group,) = client.reservation_groups(name=reservation_group_name(PREFIX, "ETHERNET", H1))
        client.delete_group(group.id)
    reads = _group_requests(emulator, "GET")

    result = sync_all(ctx)[0]

    assert result.ok and result.reconcile.applied == 1
    assert _group_requests(emulator, "GET") == reads + 1
    assert allocation(ctx, alloc)["state"] == "applied"
    assert server_state(emulator) == desired_state(ctx, server)


def _forget_mirror(ctx, server: int) -> None:
    """VLM's copy of the server's groups is lost, as after a pass that crashed between its
    writes and its record: the server holds a VLM group the plan does not know of."""
    ctx.db.write(
        lambda cur: cur.execute("DELETE FROM reservation_mirror WHERE server_id = ?", [server])
    )


def test_a_pushed_removal_reads_the_group_by_name_when_the_mirror_knows_none(ctx, emulator) -> None:
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    alloc = allocate(ctx, add_pool(ctx, {cad: 10}), cad, H1, 2)
    reconcile_server(ctx, server)
    assert allocation(ctx, alloc)["state"] == "applied"
    _forget_mirror(ctx, server)

    remove(ctx, alloc)
    reconcile_server(ctx, server, read_first=False)

    assert allocation(ctx, alloc) is None
    names = [g["name"] for g in emulator_groups(emulator)]
    assert reservation_group_name(PREFIX, "ETHERNET", H1) not in names
    assert server_state(emulator) == desired_state(ctx, server) == {}


def test_a_pushed_edit_recreates_the_group_a_restarted_server_lost(ctx, emulator) -> None:
    """The mirror still shows the host's group; the server came back empty. The task's read by
    name finds nothing, so it creates the group with everything the host wants."""
    server = add_synced_server(ctx, emulator.url)
    cad, viz = feature_id(ctx, server, "cad"), feature_id(ctx, server, "viz")
    pool = add_pool(ctx, {cad: 10, viz: 10})
    first = allocate(ctx, pool, cad, H1, 2)
    reconcile_server(ctx, server)
    restart(emulator)

    second = allocate(ctx, pool, viz, H1, 1)
    set_count(ctx, first, 3)
    reconcile_server(ctx, server, read_first=False)

    assert [allocation(ctx, a)["state"] for a in (first, second)] == ["applied", "applied"]
    assert server_state(emulator) == desired_state(ctx, server)


def _counting(call: Callable[..., Any]) -> tuple[Callable[..., Any], list[int]]:
    """Wrap a client call; the list holds the most calls that were in flight at once."""
    lock = threading.Lock()
    now, most = [0], [0]

    def counted(*args: Any) -> Any:
        with lock:
            now[0] += 1
            most[0] = max(most[0], now[0])
        try:
            return call(*args)
        finally:
            with lock:
                now[0] -= 1

    return counted, most


def test_a_pass_keeps_at_most_sync_in_flight_writes_in_flight(ctx, emulator) -> None:
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    hosts = [f"0050569B{i:04X}" for i in range(12)]
    allocate_many(ctx, add_pool(ctx, {cad: 20}), cad, hosts)
    control(emulator, "POST", "faults", {"latency_ms": 150})
    narrow = replace(ctx, settings=replace(ctx.settings, sync_in_flight=3))
    with new_client(ctx, server) as api:
        api.create_reservation_group, most = _counting(api.create_reservation_group)
        report = reconcile_server(narrow, server, api, read_first=False)

    assert report.applied == 12
    assert most == [3]


def test_a_save_on_two_servers_is_applied_on_the_fast_one_while_the_slow_one_waits(
    ctx, emulator, emulator2
) -> None:
    """The scheduler reconciles the servers of one push at the same time: a slow first server
    does not hold back the second."""
    slow = add_synced_server(ctx, emulator.url, "lls-a")
    fast = add_synced_server(ctx, emulator2.url, "lls-b")
    cad_slow, cad_fast = feature_id(ctx, slow, "cad"), feature_id(ctx, fast, "cad")
    pool = add_pool(ctx, {cad_slow: 5, cad_fast: 5})
    scheduler = SyncScheduler(ctx, interval_seconds=3600)
    scheduler.start()
    try:
        deadline = time.monotonic() + 10
        while not scheduler.last_full_pass:
            assert time.monotonic() < deadline, "no first full pass"
            time.sleep(0.02)
        control(emulator, "POST", "faults", {"latency_ms": 3000})
        on_slow = allocate(ctx, pool, cad_slow, H1, 1)
        on_fast = allocate(ctx, pool, cad_fast, H2, 1)
        while allocation(ctx, on_fast)["state"] != "applied":
            assert time.monotonic() < deadline + 10, "the fast server's row was not applied"
            time.sleep(0.02)
        assert allocation(ctx, on_slow)["state"] == "pending"
        while allocation(ctx, on_slow)["state"] != "applied":
            assert time.monotonic() < deadline + 20, "the slow server's row was not applied"
            time.sleep(0.05)
    finally:
        scheduler.stop()
    assert server_state(emulator) == desired_state(ctx, slow)
    assert server_state(emulator2) == desired_state(ctx, fast)


def test_a_pass_over_every_server_does_not_wait_for_a_slow_one(ctx, emulator, emulator2) -> None:
    """reconcile_all works on the servers at the same time: the second server's row is applied
    while the first (slow) server's pass still runs, and both end applied."""
    slow = add_synced_server(ctx, emulator.url, "lls-a")
    fast = add_synced_server(ctx, emulator2.url, "lls-b")
    cad_slow, cad_fast = feature_id(ctx, slow, "cad"), feature_id(ctx, fast, "cad")
    pool = add_pool(ctx, {cad_slow: 5, cad_fast: 5})
    on_slow = allocate(ctx, pool, cad_slow, H1, 1)
    on_fast = allocate(ctx, pool, cad_fast, H2, 1)
    control(emulator, "POST", "faults", {"latency_ms": 2000})
    reports: list = []
    passing = threading.Thread(target=lambda: reports.extend(reconcile_all(ctx)))
    passing.start()
    deadline = time.monotonic() + 10
    while allocation(ctx, on_fast)["state"] != "applied":
        assert time.monotonic() < deadline, "the fast server's row was not applied"
        time.sleep(0.02)
    assert passing.is_alive() and allocation(ctx, on_slow)["state"] == "pending"
    passing.join(30)
    assert [r.server_id for r in reports] == [slow, fast] and all(r.error is None for r in reports)
    assert allocation(ctx, on_slow)["state"] == "applied"
