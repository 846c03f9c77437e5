"""Fixtures for sync tests: a fresh database, emulated license servers and SQL seeding helpers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from vlm.config import Settings
from vlm.domain import reservation_group_name
from vlm.flexnet import FlexNetClient
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.secret_box import SecretBox
from vlm.services.context import ServiceContext
from vlm.store import open_database
from vlm.sync.clients import client_for_server
from vlm.sync.inventory import pull_inventory
from vlm.sync.store_queries import load_server

PREFIX = "vlm-"
HostFeatures = dict[tuple[str, str], int]
State = dict[str, dict[tuple[str, str], HostFeatures]]


def feature(name: str, count: int, version: str = "1.0", **extra: Any) -> dict[str, Any]:
    return {"featureName": name, "featureVersion": version, "featureCount": count, **extra}


DEFAULT_FEATURES = [feature("cad", 50), feature("viz", 30), feature("sim", 20)]


@pytest.fixture
def ctx(tmp_path) -> Iterator[ServiceContext]:
    key = SecretBox.generate_key()
    settings = Settings(db_path=str(tmp_path / "t.duckdb"), secret_key=key, group_prefix=PREFIX)
    context = ServiceContext(open_database(settings.db_path), settings, SecretBox(key))
    yield context
    context.db.close()


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator({"features": DEFAULT_FEATURES}) as emu:
        yield emu


@pytest.fixture
def emulator2() -> Iterator[RunningEmulator]:
    with start_emulator({"features": DEFAULT_FEATURES, "instanceId": "EMULATOR0002"}) as emu:
        yield emu


# -- seeding -----------------------------------------------------------------------------------


def add_server(
    ctx: ServiceContext,
    url: str,
    name: str = "lls-a",
    *,
    password: str = "admin",
    timeout: float = 5.0,
) -> int:
    """Insert a license_servers row (user admin, password encrypted) and return its id."""
    return ctx.db.write(
        lambda cur: cur.execute(
            "INSERT INTO license_servers (name, base_url, username, password_encrypted, "
            "timeout_seconds) VALUES (?, ?, 'admin', ?, ?) RETURNING id",
            [name, url, ctx.secrets.encrypt(password), timeout],
        ).fetchone()[0]
    )


def add_synced_server(ctx: ServiceContext, url: str, name: str = "lls-a") -> int:
    server_id = add_server(ctx, url, name)
    assert pull_inventory(ctx, server_id).ok
    return server_id


def feature_id(ctx: ServiceContext, server_id: int, name: str, version: str = "1.0") -> int:
    return ctx.db.scalar(
        "SELECT id FROM server_features WHERE server_id = ? AND feature_name = ? "
        "AND feature_version = ?",
        [server_id, name, version],
    )


def add_pool(ctx: ServiceContext, portions: dict[int, int], name: str = "pool") -> int:
    """A pool with these portions in the one test VLM (which exposes their server features)."""

    def write(cur) -> int:
        cur.execute(
            "INSERT INTO vlms (name, created_by) VALUES ('main', 'admin') ON CONFLICT DO NOTHING"
        )
        vlm_id = cur.execute("SELECT id FROM vlms WHERE name = 'main'").fetchone()[0]
        pool_id = cur.execute(
            "INSERT INTO pools (vlm_id, name, manager, created_by) "
            "VALUES (?, ?, 'mia', 'admin') RETURNING id",
            [vlm_id, name],
        ).fetchone()[0]
        for sf_id, quantity in portions.items():
            cur.execute(
                "INSERT INTO vlm_features VALUES (?, ?) ON CONFLICT DO NOTHING", [vlm_id, sf_id]
            )
            cur.execute("INSERT INTO pool_portions VALUES (?, ?, ?)", [pool_id, sf_id, quantity])
        return pool_id

    return ctx.db.write(write)


def allocate(
    ctx: ServiceContext,
    pool_id: int,
    sf_id: int,
    host_id: str,
    count: int,
    host_type: str = "ETHERNET",
) -> int:
    """Insert a pending allocation the way the services do and return its id."""
    return ctx.db.write(
        lambda cur: cur.execute(
            "INSERT INTO allocations (pool_id, server_feature_id, feature_name, feature_version, "
            "host_type, host_id, count, created_by) SELECT ?, id, feature_name, feature_version, "
            "?, ?, ?, 'mia' FROM server_features WHERE id = ? RETURNING id",
            [pool_id, host_type, host_id, count, sf_id],
        ).fetchone()[0]
    )


def set_count(ctx: ServiceContext, alloc_id: int, count: int) -> None:
    """A manager's count edit: back to pending with a fresh retry budget."""
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET count = ?, state = 'pending', attempts = 0, "
            "next_attempt_at = NULL, last_error = NULL WHERE id = ?",
            [count, alloc_id],
        )
    )


def remove(ctx: ServiceContext, alloc_id: int) -> None:
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET state = 'removing' WHERE id = ?", [alloc_id]
        )
    )


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
        "WHERE sf.server_id = ? AND a.state IN ('pending', 'applied') GROUP BY ALL",
        [server_id],
    )
    state: State = {}
    for host_type, host_id, name, version, count in rows:
        group = reservation_group_name(prefix, host_type, host_id)
        state.setdefault(group, {}).setdefault((host_type, host_id), {})[(name, version)] = int(
            count
        )
    return state


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
