"""Fixtures for sync tests: a fresh database, emulated license servers, and seeding helpers that
set up servers, the VLM, pools and allocations through the services, acting as real users."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest

from tests.conftest import ADMIN, BACKENDS, both_backends, database_setting
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR, Actor, Role, reservation_group_name
from vlm.flexnet import FlexNetClient
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.secret_box import SecretBox
from vlm.services import allocations, pools, servers, users, vlms
from vlm.services.allocations import AllocationChange
from vlm.services.ledger import FeatureKey
from vlm.services.servers import ServerInput
from vlm.store import open_database
from vlm.store.servers import load_server
from vlm.sync.clients import client_for_server
from vlm.sync.inventory import pull_inventory

PREFIX = "vlm-"
HostFeatures = dict[tuple[str, str], int]
State = dict[str, dict[tuple[str, str], HostFeatures]]


def feature(name: str, count: int, version: str = "1.0", **extra: Any) -> dict[str, Any]:
    return {"featureName": name, "featureVersion": version, "featureCount": count, **extra}


DEFAULT_FEATURES = [feature("cad", 50), feature("viz", 30), feature("sim", 20)]


def fixture_group(
    name: str, host: str, entries: dict[str, int], host_type: str = "ETHERNET"
) -> dict[str, Any]:
    """A reservation group as an emulator fixture lists it: one host, version 1.0 entries."""
    return {
        "name": name,
        "reservations": [
            {
                "hostId": {"type": host_type, "value": host},
                "reservationEntries": [
                    {"featureName": f, "featureVersion": "1.0", "featureCount": c}
                    for f, c in entries.items()
                ],
            }
        ],
    }


backend = pytest.fixture(params=BACKENDS)(both_backends)


@pytest.fixture
def ctx(db_target: str) -> Iterator[ServiceContext]:
    key = SecretBox.generate_key()
    settings = Settings(**database_setting(db_target), secret_key=key, group_prefix=PREFIX)
    context = ServiceContext(open_database(db_target), settings, SecretBox(key))
    yield context
    context.db.close()


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator({"features": DEFAULT_FEATURES}) as emu:
        yield emu


SECOND_VERSION = "2.0"
SECOND_FEATURES = [{**f, "featureVersion": SECOND_VERSION} for f in DEFAULT_FEATURES]


@pytest.fixture
def emulator2() -> Iterator[RunningEmulator]:
    """A second server with the same features in another version, so that a pool spanning both
    servers holds each feature on one of them and the allocation service's placement is known."""
    with start_emulator({"features": SECOND_FEATURES, "instanceId": "EMULATOR0002"}) as emu:
        yield emu


# -- seeding through the services ----------------------------------------------------------------

MIA = Actor("mia", Role.MANAGER)
VLM_NAME = "main"
STAFF = (ADMIN, MIA)


def add_staff(ctx: ServiceContext) -> None:
    """The admin (ADMIN) and the pool manager (MIA) who act in these tests, once per database."""
    present = {name for (name,) in ctx.db.query("SELECT username FROM users")}
    for actor in STAFF:
        if actor.username not in present:
            users.add_user(ctx, SYSTEM_ACTOR, actor.username, actor.role, password="password-123")


def add_server(
    ctx: ServiceContext,
    url: str,
    name: str = "lls-a",
    *,
    password: str = "admin",
    timeout: float = 5.0,
) -> int:
    """The admin connects a license server (user admin) through the server service."""
    add_staff(ctx)
    data = ServerInput(name, url, username="admin", password=password, timeout_seconds=timeout)
    return servers.add_server(ctx, ADMIN, data)


def add_synced_server(ctx: ServiceContext, url: str, name: str = "lls-a") -> int:
    server_id = add_server(ctx, url, name)
    assert pull_inventory(ctx, server_id).ok
    return server_id


def feature_id(ctx: ServiceContext, server_id: int, name: str, version: str | None = None) -> int:
    """The server feature of that name (and version, when the server has several)."""
    sql = "SELECT id FROM server_features WHERE server_id = ? AND feature_name = ?"
    params: list[object] = [server_id, name]
    if version is not None:
        sql += " AND feature_version = ?"
        params.append(version)
    rows = ctx.db.query(sql, params)
    assert len(rows) == 1, f"{len(rows)} features '{name}' {version or ''} on server {server_id}"
    return rows[0][0]


def feature_key(ctx: ServiceContext, sf_id: int) -> FeatureKey:
    """(name, version) of a server feature, as the pool and allocation services take it."""
    rows = ctx.db.query(
        "SELECT feature_name, feature_version FROM server_features WHERE id = ?", [sf_id]
    )
    assert rows, f"no server feature {sf_id}"
    return rows[0]


def pool_portions(ctx: ServiceContext, pool_id: int) -> dict[int, int]:
    """The pool's quantity per server feature, as the pool service stored it."""
    return dict(
        ctx.db.query(
            "SELECT server_feature_id, quantity FROM pool_portions WHERE pool_id = ?", [pool_id]
        )
    )


def _test_vlm(ctx: ServiceContext, server_feature_ids: list[int]) -> int:
    """The one test VLM, created or widened by the admin so that it exposes these features."""
    existing = vlms.list_vlms(ctx, ADMIN)
    existing = existing[existing["name"] == VLM_NAME]
    if existing.empty:
        return vlms.create_vlm(ctx, ADMIN, VLM_NAME, server_feature_ids)
    vlm_id = int(existing["id"].iloc[0])
    exposed = vlms.vlm_server_features(ctx, ADMIN, vlm_id)
    wanted = sorted(set(exposed) | set(server_feature_ids))
    if wanted != exposed:
        vlms.update_vlm(
            ctx, ADMIN, vlm_id, name=VLM_NAME, description="", server_feature_ids=wanted
        )
    return vlm_id


def add_pool(ctx: ServiceContext, portions: dict[int, int], name: str = "pool") -> int:
    """MIA's pool in the test VLM, created by the admin through the pool service.

    The service takes a quantity per feature and splits it over the servers itself; the pool
    must come out with exactly these portions (give a feature on two servers two versions).
    """
    add_staff(ctx)
    vlm_id = _test_vlm(ctx, sorted(portions))
    quantities: Counter[FeatureKey] = Counter()
    for sf_id, quantity in portions.items():
        quantities[feature_key(ctx, sf_id)] += quantity
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, name, MIA.username, dict(quantities))
    assert pool_portions(ctx, pool_id) == portions, "the pool service split the pool otherwise"
    return pool_id


def _assert_placed(ctx: ServiceContext, alloc_ids: list[int], sf_id: int) -> None:
    """The allocation service put every one of them on that server feature (rule 3)."""
    marks = ", ".join("?" for _ in alloc_ids)
    placed = ctx.db.query(
        f"SELECT DISTINCT server_feature_id FROM allocations WHERE id IN ({marks})", alloc_ids
    )
    assert placed == [(sf_id,)], f"placed on {placed}, not on server feature {sf_id}"


def allocate(
    ctx: ServiceContext,
    pool_id: int,
    sf_id: int,
    host_id: str,
    count: int,
    host_type: str = "ETHERNET",
) -> int:
    """MIA allocates through the allocation service; it must land on server feature sf_id."""
    key = feature_key(ctx, sf_id)
    alloc_id = allocations.allocate(ctx, MIA, pool_id, key, host_type, host_id, count)
    _assert_placed(ctx, [alloc_id], sf_id)
    return alloc_id


def allocate_many(
    ctx: ServiceContext,
    pool_id: int,
    sf_id: int,
    host_ids: Sequence[str],
    count: int = 1,
    host_type: str = "ETHERNET",
) -> list[int]:
    """MIA saves a grid of new allocations (one service call, one transaction)."""
    name, version = feature_key(ctx, sf_id)
    changes = [
        AllocationChange("add", row, None, name, version, host_type, host_id, count)
        for row, host_id in enumerate(host_ids)
    ]
    results = allocations.apply_allocation_changes(ctx, MIA, pool_id, changes)
    assert [r.message for r in results if not r.ok] == []
    alloc_ids = [r.allocation_id for r in results]
    _assert_placed(ctx, alloc_ids, sf_id)
    return alloc_ids


def _pool_of(ctx: ServiceContext, alloc_id: int) -> int:
    row = allocation(ctx, alloc_id)
    assert row is not None, f"no allocation {alloc_id}"
    return row["pool_id"]


def set_count(ctx: ServiceContext, alloc_id: int, count: int) -> None:
    """MIA edits an allocation's count through the allocation service."""
    allocations.update_allocation(ctx, MIA, _pool_of(ctx, alloc_id), alloc_id, count=count)


def remove(ctx: ServiceContext, alloc_id: int) -> None:
    """MIA removes an allocation through the allocation service."""
    allocations.remove_allocation(ctx, MIA, _pool_of(ctx, alloc_id), alloc_id)


def allocation(ctx: ServiceContext, alloc_id: int) -> dict[str, Any] | None:
    rows = ctx.db.query_dicts("SELECT * FROM allocations WHERE id = ?", [alloc_id])
    return rows[0] if rows else None


def states(ctx: ServiceContext) -> Counter[str]:
    return Counter(dict(ctx.db.query("SELECT state, count(*) FROM allocations GROUP BY state")))


def new_client(ctx: ServiceContext, server_id: int) -> FlexNetClient:
    server = load_server(ctx.db, server_id)
    assert server is not None
    return client_for_server(ctx, server)


# -- comparing desired and actual ------------------------------------------------------------


def desired_state(ctx: ServiceContext, server_id: int, prefix: str = PREFIX) -> State:
    """What VLM wants on a server: group name -> host -> (feature, version) -> summed count."""
    rows = ctx.db.query(
        "SELECT a.host_type, a.host_id, a.feature_name, a.feature_version, sum(a.count) "
        "FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id "
        "WHERE sf.server_id = ? AND a.state IN ('pending', 'applied') "
        "GROUP BY a.host_type, a.host_id, a.feature_name, a.feature_version",
        [server_id],
    )
    state: State = {}
    for host_type, host_id, name, version, count in rows:
        group = reservation_group_name(prefix, host_type, host_id)
        state.setdefault(group, {}).setdefault((host_type, host_id), {})[(name, version)] = int(
            count
        )
    return state


def by_host(state: State) -> dict[tuple[str, str], HostFeatures]:
    """A State flattened to host -> features, whatever group holds each host (batch groups
    hold many); fails on a host held twice."""
    found: dict[tuple[str, str], HostFeatures] = {}
    for hosts in state.values():
        for host, features in hosts.items():
            assert host not in found, f"{host} reserved twice"
            found[host] = features
    return found


def emulator_groups(emu: RunningEmulator) -> list[dict[str, Any]]:
    response = httpx.get(f"{emu.url}/_emulator/state", timeout=10)
    response.raise_for_status()
    return response.json()["reservationGroups"]


def server_state(emu: RunningEmulator, prefix: str | None = PREFIX) -> State:
    """The emulator's groups in the same shape (only prefixed ones unless prefix is None).

    Fails on a duplicate entry for one feature inside a reservation.
    """
    state: State = {}
    for group in emulator_groups(emu):
        if prefix is not None and not group["name"].startswith(prefix):
            continue
        hosts = state.setdefault(group["name"], {})
        for res in group["reservations"]:
            host = (res["hostId"]["type"], res["hostId"]["value"])
            features = hosts.setdefault(host, {})
            for entry in res["reservationEntries"]:
                key = (entry["featureName"], entry["featureVersion"])
                assert key not in features, f"duplicate entry {key} in {group['name']}"
                features[key] = entry["featureCount"]
    return state


def control(emu: RunningEmulator, method: str, path: str, body: Any = None) -> Any:
    """Call an emulator test control (no auth)."""
    response = httpx.request(method, f"{emu.url}/_emulator/{path}", json=body, timeout=10)
    response.raise_for_status()
    return response.json() if response.content else None


def set_feature_count(emu: RunningEmulator, name: str, count: int, version: str = "1.0") -> None:
    """Change a feature's total on the emulated server (entries that no longer fit get disabled)."""
    body = {"featureName": name, "featureVersion": version, "count": count}
    control(emu, "POST", "features/count", body)
