"""What a role must not see (issue #7, item 15) and whose rows a manager may retry (item 16).

Two managers hold a pool each on one server feature that other teams use too. Every figure a
manager can reach (the pool trend, the KPI tiles, the pool stack, the exports) carries only
their own pool's numbers; the server-wide ones (total, in use, reserved) and the other pool's
stay with admins and analysts.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.sync.conftest import (
    add_synced_server,
    allocation,
    control,
    feature,
    feature_id,
)
from tests.unit.services.estate import add_people
from vlm.context import ServiceContext
from vlm.domain import NotFound, PermissionDenied
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.services import allocations, exports, pools, reports, servers, vlms
from vlm.sync import pull_inventory, reconcile_server

CAD = ("cad", "1.0")
SERVER_TOTAL = 65
BOB_HOSTS = {"b1": 4, "b2": 5}  # 9 of a pool of 27
CAROL_HOSTS = {"c1": 11, "c2": 6}  # 17 of a pool of 20
CHECKOUTS = {"b1": 3, "c1": 11, "c2": 6, "outsider": 35}  # 55 in use on the server


@dataclass(frozen=True)
class SharedFeature:
    server_id: int
    bob_pool: int
    carol_pool: int
    used: int


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator({"features": [feature("cad", SERVER_TOTAL)]}) as emu:
        yield emu


def _allocate(ctx: ServiceContext, actor, pool_id: int, hosts: dict[str, int]) -> None:
    for host, count in hosts.items():
        allocations.allocate(ctx, actor, pool_id, CAD, "USER", host, count)


def _check_out(emu: RunningEmulator, host: str, count: int) -> None:
    body = {"hostid": {"type": "USER", "value": host}, "featureName": "cad"}
    control(emu, "POST", "checkout", {**body, "featureVersion": "1.0", "count": count})


@pytest.fixture
def shared(ctx: ServiceContext, emulator: RunningEmulator) -> SharedFeature:
    """Bob's pool of 27 and Carol's of 20 on one 65-seat feature, reserved on the server and in
    use by both teams and by an outsider; the inventory then records the server's figures."""
    add_people(ctx)
    server_id = add_synced_server(ctx, emulator.url)
    vlm_id = vlms.create_vlm(ctx, ADMIN, "shared", [feature_id(ctx, server_id, "cad")])
    bob_pool = pools.create_pool(ctx, ADMIN, vlm_id, "bob team", MANAGER.username, {CAD: 27})
    carol_pool = pools.create_pool(
        ctx, ADMIN, vlm_id, "carol team", OTHER_MANAGER.username, {CAD: 20}
    )
    _allocate(ctx, MANAGER, bob_pool, BOB_HOSTS)
    _allocate(ctx, OTHER_MANAGER, carol_pool, CAROL_HOSTS)
    assert reconcile_server(ctx, server_id).applied == len(BOB_HOSTS) + len(CAROL_HOSTS)
    for host, count in CHECKOUTS.items():
        _check_out(emulator, host, count)
    assert pull_inventory(ctx, server_id).ok
    used = int(ctx.db.scalar("SELECT used FROM server_features WHERE server_id = ?", [server_id]))
    return SharedFeature(server_id, bob_pool, carol_pool, used)


SERVER_WIDE = {"total", "used", "reserved", "reserved_by_others", "pooled", "poolable"}


def test_the_server_figures_exist_and_admins_and_analysts_see_them(ctx, shared) -> None:
    assert shared.used == sum(CHECKOUTS.values())
    for actor in (ADMIN, ANALYST):
        last = reports.server_trend(ctx, actor, shared.server_id, days=1).iloc[-1]
        assert (last["total"], last["used"]) == (SERVER_TOTAL, shared.used)
        assert reports.kpis(ctx, actor)["used"] == shared.used


@pytest.mark.parametrize(
    ("manager", "pool_attr", "quantity", "hosts"),
    [(MANAGER, "bob_pool", 27, BOB_HOSTS), (OTHER_MANAGER, "carol_pool", 20, CAROL_HOSTS)],
)
def test_a_managers_trend_kpis_and_exports_carry_only_their_pools_figures(
    ctx, shared, manager, pool_attr: str, quantity: int, hosts: dict[str, int]
) -> None:
    pool_id = getattr(shared, pool_attr)
    allocated = sum(hosts.values())

    trend = reports.pool_trend(ctx, manager, pool_id, days=7)
    assert list(trend.columns) == ["taken_at", "quantity", "allocated"]
    assert trend[["quantity", "allocated"]].values.tolist() == [[quantity, allocated]]

    assert reports.kpis(ctx, manager) == {
        "pools": 1,
        "pool_quantity": quantity,
        "allocated": allocated,
        "pool_available": quantity - allocated,
        "pending": 0,
        "failed": 0,
        "over_committed_pool_features": 0,
        "idle_days": 30,
        "idle_seats": 0,
    }
    stack = reports.pool_stack(ctx, manager)
    assert stack[["pool_id", "quantity", "allocated", "available"]].values.tolist() == [
        [pool_id, quantity, allocated, quantity - allocated]
    ]

    features = exports.pools_with_features(ctx, manager)
    assert not SERVER_WIDE & set(features.columns)
    assert features[
        ["pool_id", "quantity", "allocated", "available", "allocations"]
    ].values.tolist() == [[pool_id, quantity, allocated, quantity - allocated, len(hosts)]]
    rows = list(csv.DictReader(io.StringIO(exports.allocations_csv(ctx, manager).decode())))
    assert {r["host_id"]: int(r["count"]) for r in rows} == hosts
    assert not SERVER_WIDE & set(rows[0])


@pytest.mark.parametrize(
    "estate_view",
    [
        lambda ctx, a, s: reports.server_trend(ctx, a, s.server_id),
        lambda ctx, a, s: reports.server_trend(ctx, a, None),
        lambda ctx, a, s: reports.server_stack(ctx, a),
        lambda ctx, a, s: reports.vlm_stack(ctx, a),
        lambda ctx, a, s: reports.over_committed(ctx, a),
        lambda ctx, a, s: reports.utilization_history(ctx, a),
        lambda ctx, a, s: exports.utilization_csv(ctx, a),
        lambda ctx, a, s: exports.server_features_export(ctx, a),
        lambda ctx, a, s: servers.server_features(ctx, a),
    ],
)
def test_a_manager_is_refused_every_server_wide_view(ctx, shared, estate_view) -> None:
    with pytest.raises(PermissionDenied):
        estate_view(ctx, MANAGER, shared)
    assert "used" not in reports.kpis(ctx, MANAGER)


def test_a_manager_cannot_read_another_managers_pool(ctx, shared) -> None:
    """Reads of a pool that is not theirs answer as if it did not exist (its existence is not
    revealed either)."""
    for read in (
        lambda: reports.pool_trend(ctx, MANAGER, shared.carol_pool),
        lambda: pools.pool_features(ctx, MANAGER, shared.carol_pool),
        lambda: allocations.list_allocations(ctx, MANAGER, shared.carol_pool),
    ):
        with pytest.raises(NotFound):
            read()
    assert reports.pool_trend(ctx, ADMIN, shared.carol_pool)["allocated"].iloc[-1] == 17


def _fail(ctx: ServiceContext, allocation_id: int, reason: str) -> None:
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET state = 'failed', last_error = ? WHERE id = ?",
            [reason, allocation_id],
        )
    )


def _ids(ctx: ServiceContext, pool_id: int) -> list[int]:
    return [r[0] for r in ctx.db.query("SELECT id FROM allocations WHERE pool_id = ?", [pool_id])]


def test_a_manager_cannot_retry_another_managers_rows(ctx, shared) -> None:
    carols = _ids(ctx, shared.carol_pool)
    for allocation_id in carols:
        _fail(ctx, allocation_id, "not enough unreserved licenses")
    before = ctx.db.query("SELECT id, state, last_error FROM allocations ORDER BY id")

    with pytest.raises(PermissionDenied):
        allocations.retry_allocations(ctx, MANAGER, shared.carol_pool, carols)
    with pytest.raises(PermissionDenied):
        allocations.retry_allocations(ctx, ANALYST, shared.carol_pool, carols)
    # through their own pool, another pool's rows are refused one by one
    results = allocations.retry_allocations(ctx, MANAGER, shared.bob_pool, carols)
    assert [r.ok for r in results] == [False, False]
    assert all("not in this pool" in r.message for r in results)

    assert ctx.db.query("SELECT id, state, last_error FROM allocations ORDER BY id") == before


def test_retry_sets_failed_rows_back_to_pending_and_pushes_their_server(ctx, shared) -> None:
    pushed: list[set[int]] = []
    ctx.on_allocations_changed = lambda ids: pushed.append(set(ids))
    failed, applied = _ids(ctx, shared.bob_pool)
    _fail(ctx, failed, "not enough unreserved licenses")

    results = allocations.retry_allocations(ctx, MANAGER, shared.bob_pool, [failed, applied])

    assert [(r.ok, r.message) for r in results] == [
        (True, "queued for retry"),
        (False, "only failed allocations can be retried"),
    ]
    row = allocation(ctx, failed)
    assert (row["state"], row["last_error"], row["attempts"]) == ("pending", None, 0)
    assert allocation(ctx, applied)["state"] == "applied"
    assert pushed == [{shared.server_id}]
    assert reconcile_server(ctx, shared.server_id).applied == 1
    assert allocation(ctx, failed)["state"] == "applied"
