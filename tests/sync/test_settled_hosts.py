"""The reconciler leaves out settled hosts only when a full plan would change nothing for them."""

from __future__ import annotations

import httpx

from tests.sync.conftest import (
    PREFIX,
    add_pool,
    add_synced_server,
    allocate,
    control,
    desired_state,
    feature_id,
    remove,
    server_state,
    set_count,
)
from vlm.domain import reservation_group_name
from vlm.store.reservations import MIRROR_COLUMNS
from vlm.sync import pull_inventory, reconcile_server
from vlm.sync.mirror import groups_from_mirror
from vlm.sync.plan import HostPlan, in_sync, plan_unsettled

HOSTS = [f"0050569A10{i:02d}" for i in range(8)]
LONG_USER = "someone with spaces and a rather long name that needs a hashed group name"


def _full_plans(ctx, server_id: int) -> dict[str, HostPlan]:
    """Every host's plan, built from all allocation and owned mirror rows (no filtering)."""
    allocations = ctx.db.query(
        "SELECT a.id, a.host_type, a.host_id, a.feature_name, a.feature_version, a.count, "
        "a.state, TRUE FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id "
        "WHERE sf.server_id = ? AND a.state IN ('pending', 'applied', 'removing') "
        "ORDER BY a.host_type, a.host_id, a.feature_name, a.feature_version, a.id",
        [server_id],
    )
    mirror = ctx.db.query(
        f"SELECT {', '.join(MIRROR_COLUMNS)} FROM reservation_mirror WHERE server_id = ? "
        "AND owned ORDER BY group_name, reservation_id, entry_id",
        [server_id],
    )
    groups = groups_from_mirror(mirror)
    plans: dict[str, HostPlan] = {}
    for aid, host_type, host_id, fname, fver, count, state, _ in allocations:
        name = reservation_group_name(PREFIX, host_type, host_id)
        if name not in plans:
            plans[name] = HostPlan(host_type, host_id, name, groups.pop(name, None))
        plans[name].rows.append(_row(aid, fname, fver, count, state))
    for name, group in groups.items():
        host = group.reservations[0].host_id if group.reservations else None
        plans[name] = HostPlan(host.type if host else "", host.value if host else "", name, group)
    for plan in plans.values():
        plan.settle()
    return plans


def _row(aid, fname, fver, count, state):
    from vlm.sync.ownership import AllocRow

    return AllocRow(int(aid), (fname, fver), int(count), state, True)


def _check_filter(ctx, server_id: int) -> int:
    """Left-out hosts are in sync with only applied rows; kept hosts match the full plan."""
    full = _full_plans(ctx, server_id)
    kept, settled = plan_unsettled(ctx, server_id, force=True)
    kept_names = {p.group_name for p in kept}
    assert len(kept) + settled == len(full)
    for name, plan in full.items():
        if name in kept_names:
            continue
        assert in_sync(plan), name
        assert all(r.state == "applied" for r in plan.rows), name
    for plan in kept:
        assert plan.want == full[plan.group_name].want
    return settled


def test_settled_hosts_are_skipped_and_drift_is_still_repaired(ctx, emulator) -> None:
    server = add_synced_server(ctx, emulator.url)
    cad, viz = feature_id(ctx, server, "cad"), feature_id(ctx, server, "viz")
    pool = add_pool(ctx, {cad: 20, viz: 20})
    other = add_pool(ctx, {cad: 5}, "other")
    for host in HOSTS:
        allocate(ctx, pool, cad, host, 1)
        allocate(ctx, pool, viz, host, 2)
    allocate(ctx, other, cad, HOSTS[0], 3)
    allocate(ctx, pool, cad, LONG_USER, 1, host_type="USER")
    assert reconcile_server(ctx, server).applied == 2 * len(HOSTS) + 2
    assert _check_filter(ctx, server) == len(HOSTS)

    quiet = reconcile_server(ctx, server)
    assert (quiet.hosts, quiet.hosts_changed, quiet.operations) == (len(HOSTS) + 1, 0, 0)

    first = reservation_group_name(PREFIX, "ETHERNET", HOSTS[1])
    group = next(
        g for g in control(emulator, "GET", "state")["reservationGroups"] if g["name"] == first
    )
    entry = group["reservations"][0]["reservationEntries"][0]
    _delete_entry(emulator, group["id"], group["reservations"][0]["id"], entry["id"])
    assert pull_inventory(ctx, server).ok
    assert _check_filter(ctx, server) == len(HOSTS) - 1

    set_count(ctx, _allocation_id(ctx, HOSTS[2], "viz"), 3)
    remove(ctx, _allocation_id(ctx, HOSTS[3], "cad"))
    assert _check_filter(ctx, server) == len(HOSTS) - 3
    report = reconcile_server(ctx, server)
    assert report.hosts_changed == 3 and report.ok
    assert server_state(emulator) == desired_state(ctx, server)
    assert _check_filter(ctx, server) == len(HOSTS)


def _allocation_id(ctx, host: str, feature: str) -> int:
    return ctx.db.scalar(
        "SELECT min(id) FROM allocations WHERE host_id = ? AND feature_name = ?", [host, feature]
    )


def _delete_entry(emulator, group_id: int, reservation_id: int, entry_id: int) -> None:
    token = httpx.post(
        f"{emulator.url}/api/1.0/instances/~/authorize",
        json={"user": "admin", "password": "admin"},
        timeout=10,
    ).json()["token"]
    response = httpx.delete(
        f"{emulator.url}/api/1.0/instances/~/reservationgroups/{group_id}/reservations/"
        f"{reservation_id}/entries/{entry_id}",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert response.status_code in (200, 204, 410)
