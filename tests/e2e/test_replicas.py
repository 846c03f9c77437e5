"""Two app replicas on one PostgreSQL database, end to end (issue #10).

One throwaway PostgreSQL, three emulated license servers and two `streamlit run server.py`
processes (A and B) on one database. A manager allocates through A's REST API and B shows the
rows applied over its API; every reservation write reaches its server once (one leader). Then
A, the leader, is killed with SIGKILL while one of its writes is held in flight by a slow
server: B takes the lead within 10 s, says so on its Physical LMs page in chromium, and
converges: what was saved before, while and after A died is applied (B's Allocations page shows
none pending or failed), and each server holds one group with one reservation per host, each
created by one request."""

from __future__ import annotations

import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.conftest import ADMIN
from tests.e2e.helpers import open_page, sign_in
from tests.platform.conftest import ServedApp
from tests.sync.conftest import (
    DEFAULT_FEATURES,
    MIA,
    PREFIX,
    add_pool,
    add_synced_server,
    control,
    desired_state,
    emulator_groups,
    feature_id,
    server_state,
)
from vlm.cli import fresh_keys
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.secret_box import SecretBox
from vlm.services import tokens
from vlm.store import open_database
from vlm.store.leadership import current_leader

pytestmark = pytest.mark.e2e

VERSIONS = ("1.0", "2.0", "3.0")  # cad in one version per server: each allocation's server is known
PASSWORD = "password-123"  # the staff's password (tests/sync/conftest.py add_staff)
TAKEOVER_LIMIT = 10.0  # issue #10: another replica leads within 10 s of the leader's death
APPLY_LIMIT = 30.0
COOKIE_LIMIT = 60.0
CREATE_GROUP = "POST /api/1.0/reservationgroups"
# holds the leader's group requests (reads and its write) long enough to kill it mid-write,
# and below the servers' 5 s client timeout (tests/sync/conftest.py add_server)
SLOW_GROUP_REQUESTS = {"latency_ms": 3_000, "slow_paths": ["/reservationgroups"]}
WRITE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
FIRST = ("0050569A1001", "0050569A1002", "0050569A1003")  # saved on A, both replicas alive
IN_FLIGHT = "0050569A2001"  # saved on A; A dies while its group write is in flight
LEADERLESS = ("0050569A2002", "0050569A2003")  # saved on B right after A died
AFTER = ("0050569A3001", "0050569A3002", "0050569A3003")  # saved on B once it leads


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def database(postgres_server) -> Iterator[str]:
    url = postgres_server.fresh_database()
    yield url
    postgres_server.drop(url)


@pytest.fixture
def license_servers() -> Iterator[list[RunningEmulator]]:
    started: list[RunningEmulator] = []
    try:
        for number, version in enumerate(VERSIONS, start=1):
            features = [{**f, "featureVersion": version} for f in DEFAULT_FEATURES]
            started.append(
                start_emulator({"features": features, "instanceId": f"REPLICA0000{number}"})
            )
        yield started
    finally:
        for emulator in started:
            emulator.stop()


class Estate:
    """Three synced servers, MIA's pool over cad on each, MIA's API token, the app's keys."""

    def __init__(self, url: str, emulators: list[RunningEmulator], folder: Path) -> None:
        cookie_key, secret_key = fresh_keys()
        self.url, self.emulators = url, emulators
        self.secrets = folder / "secrets.toml"
        self.secrets.write_text(
            f'[auth]\ncookie_key = "{cookie_key}"\n\n[vlm]\nsecret_key = "{secret_key}"\n',
            encoding="utf-8",
        )
        settings = Settings(db_url=url, secret_key=secret_key, group_prefix=PREFIX)
        self.ctx = ServiceContext(open_database(url), settings, SecretBox(secret_key))
        self.servers = [
            add_synced_server(self.ctx, emu.url, f"lls-{n}") for n, emu in enumerate(emulators, 1)
        ]
        cads = [
            feature_id(self.ctx, server, "cad", version)
            for server, version in zip(self.servers, VERSIONS, strict=True)
        ]
        self.pool = add_pool(self.ctx, dict.fromkeys(cads, 10))
        self.token = tokens.create_token(self.ctx, MIA, "provisioning").token

    def app_settings(self) -> dict[str, str]:
        """A replica's environment: the database URL; full passes only on taking the lead."""
        return {"VLM_DB_URL": self.url, "VLM_SYNC_INTERVAL": "3600", "VLM_GROUP_PREFIX": PREFIX}

    def leader_pid(self) -> int | None:
        """The process id in the leading replica's name ("host pid N"); None while none leads
        (or the leader has taken the lock but not yet named its session)."""
        found = re.search(r" pid (\d+)$", current_leader(self.ctx.db) or "")
        return int(found.group(1)) if found else None

    def converged(self) -> bool:
        return all(
            server_state(emu) == desired_state(self.ctx, server)
            for emu, server in zip(self.emulators, self.servers, strict=True)
        )


@pytest.fixture
def estate(database: str, license_servers, tmp_path: Path) -> Iterator[Estate]:
    made = Estate(database, license_servers, tmp_path)
    try:
        yield made
    finally:
        made.ctx.db.close()


@pytest.fixture
def start_replica(estate: Estate, tmp_path: Path) -> Iterator[Callable[[str], ServedApp]]:
    """start_replica(name) -> a served replica with its own log folder; all killed at the end."""
    started: list[ServedApp] = []

    def start(name: str) -> ServedApp:
        folder = tmp_path / name
        folder.mkdir()
        app = ServedApp(folder, estate.app_settings(), estate.secrets)
        started.append(app)
        return app.start()

    yield start
    for app in started:
        app.kill()


# -- helpers ----------------------------------------------------------------------------------


def wait_until(predicate: Callable[[], bool], deadline: float, what: str) -> None:
    """Poll predicate() until it holds; fail once the monotonic deadline has passed."""
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def within(seconds: float) -> float:
    return time.monotonic() + seconds


def api(app: ServedApp, token: str) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"}
    return httpx.Client(base_url=f"{app.url}/api/v1", headers=headers, timeout=30)


def allocate(client: httpx.Client, pool: int, server: int, host_id: str) -> int:
    """One allocation of 2 cad on server `server` (0-based) through the REST API."""
    body = {
        "feature_name": "cad",
        "feature_version": VERSIONS[server],
        "host_type": "ETHERNET",
        "host_id": host_id,
        "count": 2,
    }
    response = client.post(f"/pools/{pool}/allocations", json=body)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def states(client: httpx.Client, pool: int, ids: list[int]) -> list[str]:
    return [client.get(f"/pools/{pool}/allocations/{i}").json()["state"] for i in ids]


def all_applied(client: httpx.Client, pool: int, ids: list[int]) -> Callable[[], bool]:
    return lambda: states(client, pool, ids) == ["applied"] * len(ids)


def emulator_stats(emu: RunningEmulator) -> dict[str, Any]:
    response = httpx.get(f"{emu.url}/_emulator/state", timeout=10)
    response.raise_for_status()
    return response.json()["stats"]


def writes(emu: RunningEmulator) -> dict[str, int]:
    """The server's request log, writes only (a sign-in is not a reservation write)."""
    return {
        request: count
        for request, count in emulator_stats(emu)["requests"].items()
        if request.split(" ")[0] in WRITE_METHODS and not request.endswith("/authorize")
    }


def hosts_held(emu: RunningEmulator) -> dict[str, tuple[int, int, int]]:
    """host id -> (VLM groups, reservations, cad licenses reserved) on the emulated server."""
    groups: Counter[str] = Counter()
    reservations: Counter[str] = Counter()
    licenses: Counter[str] = Counter()
    for group in emulator_groups(emu):
        if not group["name"].startswith(PREFIX):
            continue
        hosts = {r["hostId"]["value"] for r in group["reservations"]}
        groups.update(hosts)
        for reservation in group["reservations"]:
            host = reservation["hostId"]["value"]
            reservations[host] += 1
            licenses[host] += sum(e["featureCount"] for e in reservation["reservationEntries"])
    return {host: (groups[host], reservations[host], licenses[host]) for host in groups}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def signed_in(browser: Browser, base_url: str, username: str) -> Page:
    """A fresh browser session signed in, once its browser holds the sign-in cookie: until then
    the cookie component reruns the app and can replace the run a menu click started. Two
    replicas, three emulators and PostgreSQL on two cores can delay the cookie well past
    sign_in's usual limit."""
    return sign_in(browser, base_url, username, PASSWORD, cookie_timeout=COOKIE_LIMIT)


def sync_caption(page: Page) -> str:
    """What the Physical LMs page says about the background sync, drawn afresh."""
    open_page(page, "Users")
    open_page(page, "Physical LMs")
    caption = page.get_by_test_id("stCaptionContainer").filter(has_text="background sync")
    expect(caption).to_have_count(1)
    return caption.inner_text().strip()


def allocation_tiles(page: Page) -> dict[str, str]:
    """The figures the Allocations page shows for the feature it opens with, by label, after
    checking which feature that is (the pool's first, cad 1.0, on a tie: lls-1's hosts)."""
    open_page(page, "Allocations")
    feature = page.get_by_test_id("stSelectbox").filter(has_text="Feature").locator("input")
    expect(feature).to_have_value(re.compile(rf"^cad {re.escape(VERSIONS[0])} "))
    tiles = page.get_by_test_id("stMetric")
    expect(tiles).to_have_count(5)
    labels = [tile.get_by_test_id("stMetricLabel").inner_text().strip() for tile in tiles.all()]
    values = [tile.get_by_test_id("stMetricValue").inner_text().strip() for tile in tiles.all()]
    return dict(zip(labels, values, strict=True))


# -- the test ---------------------------------------------------------------------------------


def test_two_replicas_one_leader_and_kill_9_of_the_leader_hands_over_without_loss(
    browser: Browser, estate: Estate, start_replica
) -> None:
    a = start_replica("a")
    wait_until(lambda: estate.leader_pid() == a.proc.pid, within(TAKEOVER_LIMIT), "A to lead")
    b = start_replica("b")
    admin_on_b = signed_in(browser, b.url, ADMIN.username)
    assert re.search(rf"Another replica \(.+ pid {a.proc.pid}\) leads", sync_caption(admin_on_b))
    slow_server = estate.emulators[0]

    with api(a, estate.token) as on_a, api(b, estate.token) as on_b:
        # a manager allocates on A; B shows the rows applied; one write each (one leader)
        first = [allocate(on_a, estate.pool, n, host) for n, host in enumerate(FIRST)]
        wait_until(all_applied(on_b, estate.pool, first), within(APPLY_LIMIT), "applied on B")
        assert [writes(emu) for emu in estate.emulators] == [{CREATE_GROUP: 1}] * 3
        assert estate.leader_pid() == a.proc.pid

        # A's write to a slow server is in flight when A is killed
        control(slow_server, "POST", "faults", SLOW_GROUP_REQUESTS)
        in_flight = allocate(on_a, estate.pool, 0, IN_FLIGHT)
        wait_until(
            lambda: emulator_stats(slow_server)["delayed"].get(CREATE_GROUP) == 1,
            within(APPLY_LIMIT),
            "A's group write to reach the slow server",
        )
        killed_at = time.monotonic()
        a.kill()  # SIGKILL: its database session ends, and the leader lock with it
        assert not alive(a.proc.pid)
        assert states(on_b, estate.pool, [in_flight]) == ["pending"]  # A died before the answer

        # saved on B while nobody may lead yet; B leads within 10 s of A's death
        leaderless = [allocate(on_b, estate.pool, n, h) for n, h in enumerate(LEADERLESS, 1)]
        wait_until(
            lambda: estate.leader_pid() == b.proc.pid,
            killed_at + TAKEOVER_LIMIT,
            "B to take the lead",
        )
        wait_until(
            lambda: IN_FLIGHT in hosts_held(slow_server),
            within(APPLY_LIMIT),
            "the slow server to finish A's last write",
        )
        control(slow_server, "DELETE", "faults")

        # saved on B once it leads: its own NOTIFY wakes it
        after = [allocate(on_b, estate.pool, n, host) for n, host in enumerate(AFTER)]
        every = [*first, in_flight, *leaderless, *after]
        wait_until(all_applied(on_b, estate.pool, every), within(APPLY_LIMIT), "all applied")

    assert sync_caption(admin_on_b) == "This replica leads the background sync."
    manager_on_b = signed_in(browser, b.url, MIA.username)
    # lls-1's three allocations of 2 (FIRST[0], IN_FLIGHT, AFTER[0]): none pending or failed
    assert allocation_tiles(manager_on_b) == {
        "Quantity": "10",
        "Allocated": "6",
        "Available": "4",
        "Pending": "0",
        "Failed": "0",
    }

    assert estate.converged()
    expected_hosts = [
        {FIRST[0], IN_FLIGHT, AFTER[0]},
        {FIRST[1], LEADERLESS[0], AFTER[1]},
        {FIRST[2], LEADERLESS[1], AFTER[2]},
    ]
    for emu, hosts in zip(estate.emulators, expected_hosts, strict=True):
        assert hosts_held(emu) == dict.fromkeys(hosts, (1, 1, 2))
        assert writes(emu) == {CREATE_GROUP: 3}  # each group created by one request, no repairs
    assert "Traceback" not in b.log()
    admin_on_b.context.close()
    manager_on_b.context.close()
