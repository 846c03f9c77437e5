"""Demo mode: emulated license servers on loopback and a seeded database with every role."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import httpx

from vlm.alerting.kinds import KINDS
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR, Actor, Role
from vlm.secret_box import SecretBox
from vlm.services import alerts, allocations, harvesting, pools, requests, servers, users, vlms
from vlm.store import open_database
from vlm.store.demo import (
    backdate_allocations,
    backdate_failures,
    backdate_server,
    insert_synthetic_history,
)
from vlm.store.hourly import rebuild_hourly

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "demo"
EMULATOR_ADMIN_PASSWORD = "admin"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    role: Role
    display_name: str


@dataclass(frozen=True)
class DemoServer:
    name: str
    fixture: str
    port_offset: int
    description: str


DEMO_USERS = [
    DemoUser("admin", "admin-demo-pw", Role.ADMIN, "Ada Admin"),
    DemoUser("mia", "mia-demo-pw", Role.MANAGER, "Mia Manager (CAD team)"),
    DemoUser("max", "max-demo-pw", Role.MANAGER, "Max Manager (Simulation team)"),
    DemoUser("ana", "ana-demo-pw", Role.ANALYST, "Ana Analyst"),
]

DEMO_SERVERS = [
    DemoServer("lls-east", "lls-east.json", 0, "Local License Server, east data centre"),
    DemoServer("lls-west", "lls-west.json", 1, "Local License Server, west data centre"),
    DemoServer("cls-cloud", "cls-cloud.json", 2, "Cloud License Server instance"),
]

DEMO_ALLOCATIONS = [
    ("ETHERNET", "0050569A0001", 1, "CAD workstation 01 (Anna)"),
    ("ETHERNET", "0050569A0002", 1, "CAD workstation 02 (Ben)"),
    ("USER", "jsmith", 1, "John Smith, remote"),
    ("ETHERNET", "00155D0A0101", 1, "eng-ws-101 (in daily use)"),
    ("ETHERNET", "00155D0A0102", 1, "eng-ws-102 (in daily use)"),
]
# John Smith's seat was reserved 45 days ago and never used: the idle report and the policy
# (warn after 30 days, release after 60) show it; the ws hosts check the feature out.
IDLE_DEMO_HOST, IDLE_DEMO_DAYS = "jsmith", 45
DEMO_SEAT_PRICE = 2400.0
# Time-boxed: (host type, host id, count, description, start, end in days from today). The
# expired one is allocated as of 30 days ago and expires on the first sync; the one ending in
# three days fires Mia's allocation_ending rule.
DEMO_TIMEBOXED = [
    ("USER", "intern-kim", 1, "Intern (Kim), starts next week", 7, 97),
    ("ETHERNET", "0050569A0010", 1, "Contractor laptop (Lee), ends in three days", None, 3),
    ("USER", "trainee-ola", 1, "Training course (Ola), over", -30, -3),
]


# The Simulation team's story, for an alert of every kind: a node holds fea_solver, then the
# east server's fea_solver count drops to 1 (its entry turns DISABLED: drift; the pool holds more
# than the server has: over-committed), and a second node's reservation is refused (failing).
# A lab server has been unreachable since yesterday.
SIM_FEATURE = ("fea_solver", "2024.1")
SIM_COUNT_ON_EAST = 1
SIM_HELD = ("ETHERNET", "00155D0A0203", 2, "Simulation node 03")
SIM_REFUSED = ("ETHERNET", "00155D0A0204", 2, "Simulation node 04 (refused: count dropped)")
OFFLINE_SERVER = servers.ServerInput(
    name="lls-lab",
    base_url="http://127.0.0.1:9",
    username="admin",
    password=EMULATOR_ADMIN_PASSWORD,
    description="Test lab license server, switched off since yesterday",
    timeout_seconds=2,
)


def start_demo_emulators(base_port: int | None = None) -> dict:
    """Start one emulator per demo server (free ports when base_port is None)."""
    from vlm.flexnet.emulator.server import start_emulator

    running = {}
    for server in DEMO_SERVERS:
        port = 0 if base_port is None else base_port + server.port_offset
        running[server.name] = start_emulator(
            DEMO_DIR / server.fixture, admin_password=EMULATOR_ADMIN_PASSWORD, port=port
        )
    return running


def _point_servers(ctx: ServiceContext, urls: dict[str, str]) -> None:
    """Keep stored servers pointing at this run's emulator URLs."""
    stored = servers.list_servers(ctx, SYSTEM_ACTOR)
    existing = {row.name: (int(row.id), row.base_url) for row in stored.itertuples()}
    for server in DEMO_SERVERS:
        if server.name not in urls:
            continue
        data = servers.ServerInput(
            name=server.name,
            base_url=urls[server.name],
            username="admin",
            password=EMULATOR_ADMIN_PASSWORD,
            description=server.description,
            timeout_seconds=5,
        )
        if server.name in existing:
            server_id, base_url = existing[server.name]
            if base_url != urls[server.name]:
                servers.edit_server(ctx, SYSTEM_ACTOR, server_id, data, keep_password=True)
        else:
            servers.add_server(ctx, SYSTEM_ACTOR, data)


def _seed_catalog(ctx: ServiceContext) -> None:
    """Users, a VLM over the two LLS servers, a pool for each manager and a few allocations."""
    for user in DEMO_USERS:
        users.add_user(
            ctx,
            SYSTEM_ACTOR,
            user.username,
            user.role,
            display_name=user.display_name,
            password=user.password,
        )
    features = servers.server_features(ctx, SYSTEM_ACTOR)
    chosen = features[
        features["can_pool"]
        & features["present"]
        & features["server_name"].isin(["lls-east", "lls-west"])
    ]
    vlm_id = vlms.create_vlm(
        ctx,
        SYSTEM_ACTOR,
        "Engineering",
        chosen["server_feature_id"].tolist(),
        description="CAD and simulation licenses of both data centres",
    )
    figures = vlms.vlm_features(ctx, SYSTEM_ACTOR, vlm_id).sort_values("available", ascending=False)
    keys = [(r.feature_name, r.feature_version, int(r.available)) for r in figures.itertuples()]
    cad = {(n, v): max(1, a // 3) for n, v, a in keys[:2] if a > 0}
    sim = {(n, v): max(1, a // 4) for n, v, a in keys[2:4] if a > 0}
    cad_pool = pools.create_pool(
        ctx, SYSTEM_ACTOR, vlm_id, "CAD team", "mia", cad, description="Design engineers"
    )
    pools.create_pool(
        ctx, SYSTEM_ACTOR, vlm_id, "Simulation team", "max", sim, description="CAE analysts"
    )
    manager = Actor("mia", Role.MANAGER)
    feature = next(iter(cad))
    changes = [
        allocations.AllocationChange("add", i, None, feature[0], feature[1], t, h, c, d)
        for i, (t, h, c, d) in enumerate(DEMO_ALLOCATIONS)
    ]
    allocations.apply_allocation_changes(ctx, manager, cad_pool, changes)
    _seed_timeboxed(ctx, manager, cad_pool, feature)


def _seed_timeboxed(ctx: ServiceContext, manager: Actor, pool_id: int, feature) -> None:
    """DEMO_TIMEBOXED through the allocation service; a row that starts in the past is
    allocated as of its start day (a context whose calendar is set back)."""
    today = ctx.today()
    for i, (host_type, host_id, count, description, start, end) in enumerate(DEMO_TIMEBOXED):
        first = today + timedelta(days=start or 0)
        as_of = replace(ctx, today=lambda first=first: min(first, today))
        change = allocations.AllocationChange(
            "add",
            i,
            None,
            feature[0],
            feature[1],
            host_type,
            host_id,
            count,
            description,
            None if start is None else first,
            today + timedelta(days=end),
        )
        allocations.apply_allocation_changes(as_of, manager, pool_id, [change])


# (owner, kind, threshold, pool name or None): a rule of every kind, and Mia's subscriptions
DEMO_ALERT_RULES = (
    ("admin", "pool_nearly_full", 50, None),
    ("admin", "feature_nearly_exhausted", 50, None),
    ("admin", "server_unreachable", 15, None),
    ("admin", "feature_expiring", 30, None),
    ("admin", "over_committed", 1, None),
    ("admin", "drift", 1, None),
    ("admin", "allocations_failing", 10, None),
    ("admin", "allocations_idle", 30, None),
    ("mia", "pool_nearly_full", 25, "CAD team"),
    ("mia", "allocations_idle", 30, "CAD team"),
    ("mia", "allocation_ending", 7, "CAD team"),
)


def _seed_alert_rules(ctx: ServiceContext) -> None:
    """Alert rules without destinations (a site adds its own mail or chat URLs)."""
    roles = {user.username: user.role for user in DEMO_USERS}
    listed = pools.list_pools(ctx, SYSTEM_ACTOR)
    pool_ids = dict(zip(listed["name"], listed["id"], strict=True))
    for owner, kind, threshold, pool in DEMO_ALERT_RULES:
        alerts.create_rule(
            ctx,
            Actor(owner, roles[owner]),
            name=KINDS[kind].label,
            kind=kind,
            threshold=threshold,
            pool_id=None if pool is None else int(pool_ids[pool]),
        )


def _seed_harvesting(ctx: ServiceContext) -> None:
    """A seat price for the CAD team's features, the release policy, and an idle seat."""
    listed = pools.list_pools(ctx, SYSTEM_ACTOR)
    pool_id = int(listed.loc[listed["name"] == "CAD team", "id"].iloc[0])
    features = pools.pool_features(ctx, SYSTEM_ACTOR, pool_id)
    for name, version in zip(features["feature_name"], features["feature_version"], strict=True):
        harvesting.set_price(ctx, SYSTEM_ACTOR, (str(name), str(version)), DEMO_SEAT_PRICE)
    harvesting.set_harvest_policy(
        ctx, SYSTEM_ACTOR, enabled=True, warn_after_days=30, release_after_days=60
    )
    ctx.db.write(lambda cur: backdate_allocations(cur, IDLE_DEMO_HOST, IDLE_DEMO_DAYS))


DEMO_REQUEST_REASON = "Two designers join the CAD team in January"


def _lower_sim_count(urls: dict[str, str]) -> None:
    """The east server's fea_solver count drops (on every start: an emulator starts from its
    fixture)."""
    if "lls-east" not in urls:
        return
    name, version = SIM_FEATURE
    body = {"featureName": name, "featureVersion": version, "count": SIM_COUNT_ON_EAST}
    httpx.post(f"{urls['lls-east']}/_emulator/features/count", json=body, timeout=10)


def _allocate_sim(ctx: ServiceContext, allocation: tuple[str, str, int, str]) -> None:
    listed = pools.list_pools(ctx, SYSTEM_ACTOR)
    pool_id = int(listed.loc[listed["name"] == "Simulation team", "id"].iloc[0])
    host_type, host_id, count, description = allocation
    change = allocations.AllocationChange(
        "add", 0, None, *SIM_FEATURE, host_type, host_id, count, description
    )
    allocations.apply_allocation_changes(ctx, Actor("max", Role.MANAGER), pool_id, [change])


def _seed_trouble(ctx: ServiceContext, urls: dict[str, str]) -> None:
    """After the first sync (the held node applied): the count drops, the second node is
    refused for a quarter of an hour already, and the lab server is added, unreachable."""
    from vlm.sync.scheduler import sync_all

    _lower_sim_count(urls)
    _allocate_sim(ctx, SIM_REFUSED)
    servers.add_server(ctx, SYSTEM_ACTOR, OFFLINE_SERVER)
    ctx.db.write(lambda cur: backdate_server(cur, OFFLINE_SERVER.name, 1))
    sync_all(ctx)
    ctx.db.write(lambda cur: backdate_failures(cur, SIM_REFUSED[1], 15))


def _seed_request(ctx: ServiceContext) -> None:
    """Mia asks for two more of the CAD team's first feature: an open request for admins."""
    mia = Actor("mia", Role.MANAGER)
    listed = pools.list_pools(ctx, mia)
    cad_pool = int(listed[listed["name"] == "CAD team"]["id"].iloc[0])
    held = pools.pool_features(ctx, mia, cad_pool).iloc[0]
    feature = (str(held["feature_name"]), str(held["feature_version"]))
    requests.create_request(ctx, mia, cad_pool, feature, 2, DEMO_REQUEST_REASON)


def _seed_history(ctx: ServiceContext, days: int = 21) -> None:
    """Synthetic working-hours usage for the trend charts, older than the first real pull (the
    hourly summary is rebuilt: this history comes after the pull's snapshots were summed)."""

    def write(cur) -> None:
        insert_synthetic_history(cur, days)
        rebuild_hourly(cur)

    ctx.db.write(write)


def seed_demo(ctx: ServiceContext, urls: dict[str, str]) -> None:
    """Idempotent: point servers at the emulators, pull inventory, seed the catalog once."""
    from vlm.alerting.evaluate import evaluate_alerts
    from vlm.sync.scheduler import sync_all

    _point_servers(ctx, urls)
    if users.has_users(ctx):
        _lower_sim_count(urls)
    sync_all(ctx)
    if not users.has_users(ctx):
        _seed_history(ctx)
        _seed_catalog(ctx)
        _seed_alert_rules(ctx)
        _seed_request(ctx)
        _allocate_sim(ctx, SIM_HELD)
        sync_all(ctx)
        _seed_trouble(ctx, urls)
        _seed_harvesting(ctx)
        harvesting.apply_harvest_policy(ctx)
        evaluate_alerts(ctx)


def demo_settings(db_path: str) -> Settings:
    return Settings.from_env(db_path=db_path, demo=True)


def prepare_demo_database(db_path: str, urls: dict[str, str]) -> None:
    """Open, seed and close the demo database so another process can own it."""
    settings = demo_settings(db_path)
    ctx = ServiceContext(open_database(db_path), settings, SecretBox(settings.secret_key))
    try:
        seed_demo(ctx, urls)
    finally:
        ctx.db.close()
