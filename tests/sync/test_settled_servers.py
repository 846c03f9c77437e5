"""A server whose last plan found every host settled is not planned again while what the plan
reads is unchanged (vlm.sync.plan.SettledServers); any change it reads is planned and repaired."""

from __future__ import annotations

import pytest

from tests.sync.conftest import (
    add_pool,
    add_synced_server,
    allocate,
    control,
    desired_state,
    feature_id,
    new_client,
    remove,
    server_state,
)
from vlm.store.reservations import every_plan_inputs, plan_inputs
from vlm.sync import plan as plan_module
from vlm.sync import pull_inventory, reconcile_server
from vlm.sync.plan import SettledServers

HOSTS = [f"0050569A20{i:02d}" for i in range(4)]


@pytest.fixture
def plan_reads(monkeypatch) -> list[int]:
    """The server ids plan_rows is run for from now on."""
    calls: list[int] = []
    original = plan_module.plan_rows

    def counting(db, server_id, force, prefix):
        calls.append(server_id)
        return original(db, server_id, force, prefix)

    monkeypatch.setattr(plan_module, "plan_rows", counting)
    return calls


def _settled_server(ctx, emulator) -> tuple[int, int, int]:
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    pool = add_pool(ctx, {cad: 20})
    for host in HOSTS:
        allocate(ctx, pool, cad, host, 1)
    assert reconcile_server(ctx, server).applied == len(HOSTS)
    return server, pool, cad


def test_a_settled_server_is_not_planned_again_until_its_inputs_change(
    ctx, emulator, plan_reads
) -> None:
    server, pool, cad = _settled_server(ctx, emulator)
    first = reconcile_server(ctx, server)
    planned = len(plan_reads)
    quiet = reconcile_server(ctx, server)
    on_duckdb = ctx.db.dialect == "duckdb"
    assert (quiet.hosts, quiet.hosts_changed, quiet.operations) == (len(HOSTS), 0, 0)
    assert (first.hosts, first.hosts_changed) == (quiet.hosts, quiet.hosts_changed)
    assert len(plan_reads) == planned + (0 if on_duckdb else 1)

    allocate(ctx, pool, cad, "0050569A2099", 2)
    report = reconcile_server(ctx, server)
    assert report.applied == 1 and len(plan_reads) == planned + (1 if on_duckdb else 2)
    assert server_state(emulator) == desired_state(ctx, server)


def test_a_group_deleted_on_the_server_is_repaired_after_a_remembered_pass(
    ctx, emulator, plan_reads
) -> None:
    server, _, _ = _settled_server(ctx, emulator)
    reconcile_server(ctx, server)
    reconcile_server(ctx, server)
    group = next(g for g in control(emulator, "GET", "state")["reservationGroups"])
    with new_client(ctx, server) as api:
        api.delete_group(group["id"])
    assert pull_inventory(ctx, server).ok
    planned = len(plan_reads)
    report = reconcile_server(ctx, server)
    assert len(plan_reads) == planned + 1, "the mirror changed: planned again"
    assert report.operations >= 1 and report.ok
    assert server_state(emulator) == desired_state(ctx, server)


def test_a_removed_allocation_is_planned_and_freed(ctx, emulator, plan_reads) -> None:
    server, _, _ = _settled_server(ctx, emulator)
    reconcile_server(ctx, server)
    victim = ctx.db.scalar("SELECT min(id) FROM allocations")
    remove(ctx, victim)
    report = reconcile_server(ctx, server)
    assert report.removed == 1
    assert server_state(emulator) == desired_state(ctx, server)


def test_a_write_between_the_two_fingerprints_is_not_remembered(ctx, emulator, monkeypatch) -> None:
    if ctx.db.dialect != "duckdb":
        pytest.skip("PostgreSQL has no fingerprint: every pass plans")
    server, _, _ = _settled_server(ctx, emulator)
    original = plan_module.plan_rows
    read_before: list[tuple] = []

    def planned_then_written(db, server_id, force, prefix):
        read_before.append(plan_inputs(db, server_id))
        rows = original(db, server_id, force, prefix)
        db.write(
            lambda cur: cur.execute(
                "UPDATE allocations SET state = 'pending' "
                "WHERE id = (SELECT max(id) FROM allocations)"
            )
        )
        return rows

    monkeypatch.setattr(plan_module, "plan_rows", planned_then_written)
    reconcile_server(ctx, server)
    prefix = ctx.settings.group_prefix
    assert ctx.owned(SettledServers).settled(server, prefix, read_before[0]) is None
    monkeypatch.setattr(plan_module, "plan_rows", original)
    report = reconcile_server(ctx, server)
    assert report.applied == 1, "the pending row is planned (and found on the server)"


def test_a_steady_pass_reads_the_fingerprints_of_every_server_at_once(
    ctx, emulator, emulator2, monkeypatch
) -> None:
    if ctx.db.dialect != "duckdb":
        pytest.skip("PostgreSQL has no fingerprint: every pass plans")
    server, _, _ = _settled_server(ctx, emulator)
    empty = add_synced_server(ctx, emulator2.url, "lls-b")
    every = every_plan_inputs(ctx.db)
    assert every == {s: plan_inputs(ctx.db, s) for s in (server, empty)}
    assert every[empty] == (0, None, 0, None)
    for _ in range(2):
        reconcile_server(ctx, server)
        reconcile_server(ctx, empty)

    reads: list[str] = []
    for name in ("every_plan_inputs", "plan_inputs", "plan_rows"):
        original = getattr(plan_module, name)
        monkeypatch.setattr(
            plan_module, name, lambda *a, _f=original, _n=name: reads.append(_n) or _f(*a)
        )
    generation = ctx.db.generation
    assert reconcile_server(ctx, server).hosts == len(HOSTS)
    assert reconcile_server(ctx, empty).hosts == 0
    assert ctx.db.generation == generation, "a steady pass writes nothing"
    assert reads == [], "the fingerprints read by the last pass are still current: no read"

    ctx.db.write(lambda cur: None)
    reconcile_server(ctx, server)
    reconcile_server(ctx, empty)
    assert reads == ["every_plan_inputs"], "after a write: one read for both servers"
