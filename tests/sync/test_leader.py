"""One sync leader per database: two service contexts on one PostgreSQL database are two replicas.

Exactly one scheduler leads (the advisory lock), a save on a follower wakes the leader through
NOTIFY, a follower reconciles nothing, the lead passes on when the leader's session or process
dies, and a CLI pass waits for a server's turn. On DuckDB the one process always leads."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest

from tests.sync.conftest import (
    PREFIX,
    add_pool,
    add_synced_server,
    allocate,
    allocation,
    desired_state,
    feature_id,
    server_state,
)
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.runtime import Runtime
from vlm.secret_box import SecretBox
from vlm.store import open_database
from vlm.store.leadership import (
    LEADER_LOCK_KEY,
    SERVER_TURN_CLASS,
    current_leader,
    server_turn_holders,
)
from vlm.store.postgres import PostgresDatabase
from vlm.sync import SyncScheduler, sync_all
from vlm.sync.leader import AdvisoryLeadership, server_turn

ROOT = Path(__file__).resolve().parents[2]
H1, H2, H3 = "0050569A0001", "0050569A0002", "0050569A0003"
TAKEOVER_LIMIT = 10.0  # issue #10: another replica leads within 10 s of the leader's death
APPLY_LIMIT = 10.0
CREATE_GROUP = "POST /api/1.0/reservationgroups"


def wait_for(predicate: Callable[[], bool], limit: float, what: str) -> None:
    """Poll until predicate() holds; fail after limit seconds."""
    deadline = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def requests(emu: RunningEmulator) -> dict[str, int]:
    import httpx

    response = httpx.get(f"{emu.url}/_emulator/state", timeout=10)
    response.raise_for_status()
    return response.json()["stats"]["requests"]


class Replicas:
    """Service contexts on one PostgreSQL database (each one a replica), with their schedulers."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.key = SecretBox.generate_key()
        self.contexts: list[ServiceContext] = []
        self.schedulers: list[SyncScheduler] = []

    def context(self) -> ServiceContext:
        settings = Settings(db_url=self.url, secret_key=self.key, group_prefix=PREFIX)
        ctx = ServiceContext(open_database(self.url), settings, SecretBox(self.key))
        self.contexts.append(ctx)
        return ctx

    def scheduler(self, ctx: ServiceContext, name: str) -> SyncScheduler:
        """A started scheduler of that replica, named for the leader lock."""
        scheduler = SyncScheduler(
            ctx, interval_seconds=3600, leadership=AdvisoryLeadership(ctx.db, name)
        )
        self.schedulers.append(scheduler)
        scheduler.start()
        return scheduler

    def close(self) -> None:
        for scheduler in self.schedulers:
            scheduler.stop()
        for ctx in self.contexts:
            ctx.db.close()


@pytest.fixture
def replicas(postgres_server) -> Iterator[Replicas]:
    url = postgres_server.fresh_database()
    group = Replicas(url)
    try:
        yield group
    finally:
        group.close()
        postgres_server.drop(url)


def leaders(*schedulers: SyncScheduler) -> list[SyncScheduler]:
    return [s for s in schedulers if s.is_leader]


def terminate_leader_session(url: str) -> int:
    """End the database session that holds the leader lock, as a crash of its host would."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name LIKE 'vlm-leader %' AND datname = current_database()"
        ).fetchall()
    return len(rows)


# -- one leader -------------------------------------------------------------------------------


def test_exactly_one_replica_leads_and_the_lead_is_taken_again_when_its_session_ends(
    replicas: Replicas,
) -> None:
    a = replicas.scheduler(replicas.context(), "replica-a")
    wait_for(lambda: a.is_leader, TAKEOVER_LIMIT, "the first replica to lead")
    b = replicas.scheduler(replicas.context(), "replica-b")
    wait_for(lambda: b.running, TAKEOVER_LIMIT, "the second scheduler to run")

    assert leaders(a, b) == [a]
    assert current_leader(b._ctx.db) == a.leader_name() == "replica-a"
    assert b.shared and not b.is_leader

    assert terminate_leader_session(replicas.url) == 1
    wait_for(lambda: "lost the sync lead" in (a.last_error or ""), TAKEOVER_LIMIT, "the loss")
    wait_for(lambda: current_leader(b._ctx.db) is not None, TAKEOVER_LIMIT, "a new leader")
    wait_for(lambda: len(leaders(a, b)) == 1, TAKEOVER_LIMIT, "one scheduler to lead")

    (leader,) = leaders(a, b)
    assert leader.leader_name() == {a: "replica-a", b: "replica-b"}[leader]
    assert a.running and b.running, "a scheduler that lost the lead lives on as a follower"


def test_a_stopped_leader_hands_over_and_holds_nothing(replicas: Replicas) -> None:
    a = replicas.scheduler(replicas.context(), "replica-a")
    wait_for(lambda: a.is_leader, TAKEOVER_LIMIT, "the first replica to lead")
    b = replicas.scheduler(replicas.context(), "replica-b")

    a.stop()

    assert not a.is_leader and not a.running
    wait_for(lambda: b.is_leader, TAKEOVER_LIMIT, "the follower to take over")
    assert current_leader(b._ctx.db) == "replica-b"


LEADER_SCRIPT = """
import sys, time
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.secret_box import SecretBox
from vlm.store import open_database
from vlm.sync import SyncScheduler
from vlm.sync.leader import AdvisoryLeadership

url, key = sys.argv[1], sys.argv[2]
ctx = ServiceContext(open_database(url), Settings(db_url=url, secret_key=key, group_prefix="vlm-"),
                     SecretBox(key))
scheduler = SyncScheduler(ctx, interval_seconds=3600,
                          leadership=AdvisoryLeadership(ctx.db, "doomed"))
scheduler.start()
while not scheduler.is_leader:
    time.sleep(0.05)
print("leading", flush=True)
while True:
    time.sleep(1)
"""


def start_leader_process(url: str, key: str) -> subprocess.Popen:
    """A replica in a process of its own that reports once it leads."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLM_DB")}
    proc = subprocess.Popen(
        [sys.executable, "-c", LEADER_SCRIPT, url, key],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "leading", "the replica process never led"
    return proc


def test_kill_9_of_the_leading_process_hands_the_lead_over_and_nothing_saved_is_lost(
    replicas: Replicas, emulator: RunningEmulator
) -> None:
    ctx = replicas.context()
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    pool = add_pool(ctx, {cad: 10})
    doomed = start_leader_process(replicas.url, replicas.key)
    try:
        survivor = replicas.scheduler(ctx, "survivor")
        first = allocate(ctx, pool, cad, H1, 1)  # NOTIFY: the process that leads applies it
        wait_for(lambda: allocation(ctx, first)["state"] == "applied", APPLY_LIMIT, "applied")
        assert not survivor.is_leader and survivor.leader_name() == "doomed"

        doomed.send_signal(signal.SIGKILL)
        doomed.wait(timeout=10)
        second = allocate(ctx, pool, cad, H2, 2)  # saved while the lead may be vacant

        wait_for(lambda: survivor.is_leader, TAKEOVER_LIMIT, "the survivor to take over")
        wait_for(lambda: allocation(ctx, second)["state"] == "applied", APPLY_LIMIT, "applied")
    finally:
        doomed.kill()
        doomed.wait(timeout=10)
    assert server_state(emulator) == desired_state(ctx, server)
    assert requests(emulator)[CREATE_GROUP] == 2, "each host's group created exactly once"


def test_the_runtime_says_which_replica_leads_the_sync(replicas: Replicas) -> None:
    a_ctx, b_ctx = replicas.context(), replicas.context()
    a = replicas.scheduler(a_ctx, "replica-a")
    wait_for(lambda: a.is_leader, TAKEOVER_LIMIT, "the first replica to lead")
    b = replicas.scheduler(b_ctx, "replica-b")
    wait_for(lambda: b.running, TAKEOVER_LIMIT, "the second scheduler to run")

    leading = Runtime(a_ctx.settings, a_ctx, a).sync_status
    following = Runtime(b_ctx.settings, b_ctx, b).sync_status

    assert leading == "This replica leads the background sync."
    assert following == (
        "Another replica (replica-a) leads the background sync; this one only serves."
    )
    a.stop()
    assert Runtime(a_ctx.settings, a_ctx, a).sync_status == "The background sync is stopped."


def test_a_pass_holds_its_servers_turn_outside_the_pool(replicas: Replicas) -> None:
    """Each server's pass holds its turn (a session lock) on a connection of its own, so the
    pass's reads and writes still find a pooled connection: a replica whose pool has 2 (one of
    them held by its leader session) syncs 4 servers. With the turn on a pooled connection the
    pass waits for a third that never comes."""
    seeding = replicas.context()
    with ExitStack() as running:
        emulators = [running.enter_context(start_emulator(None)) for _ in range(4)]
        servers = [
            add_synced_server(seeding, emu.url, f"lls-{n}") for n, emu in enumerate(emulators)
        ]
        small = ServiceContext(
            PostgresDatabase(replicas.url, max_size=2), seeding.settings, seeding.secrets
        )
        replicas.contexts.append(small)
        scheduler = replicas.scheduler(small, "small-pool")
        wait_for(lambda: len(scheduler.last_full_pass) == 4, 20, "the first full pass")
        assert [r.server_id for r in scheduler.last_full_pass] == servers
        assert all(r.ok for r in scheduler.last_full_pass), scheduler.last_full_pass
        assert scheduler.last_error is None


# -- saves reach the leader -------------------------------------------------------------------


def test_a_save_on_a_follower_wakes_the_leader_and_the_follower_reconciles_nothing(
    replicas: Replicas, emulator: RunningEmulator, emulator2: RunningEmulator
) -> None:
    leader_ctx, follower_ctx = replicas.context(), replicas.context()
    a = add_synced_server(follower_ctx, emulator.url, "lls-a")
    b = add_synced_server(follower_ctx, emulator2.url, "lls-b")
    cad, viz = feature_id(follower_ctx, a, "cad"), feature_id(follower_ctx, b, "viz", "2.0")
    pool = add_pool(follower_ctx, {cad: 10, viz: 10})
    leader = replicas.scheduler(leader_ctx, "leader")
    wait_for(lambda: leader.is_leader, TAKEOVER_LIMIT, "the leader to lead")
    follower = replicas.scheduler(follower_ctx, "follower")
    wait_for(lambda: follower.running, TAKEOVER_LIMIT, "the follower to run")

    on_a = allocate(follower_ctx, pool, cad, H1, 3)  # the follower's own hook is not the push
    on_b = allocate(follower_ctx, pool, viz, H2, 4)

    wait_for(lambda: allocation(leader_ctx, on_a)["state"] == "applied", APPLY_LIMIT, "a")
    wait_for(lambda: allocation(leader_ctx, on_b)["state"] == "applied", APPLY_LIMIT, "b")
    follower.push([a, b])  # a follower drops pushes: only the leader reconciles
    assert not follower.is_leader and follower.last_full_pass == []
    assert server_state(emulator) == desired_state(leader_ctx, a)
    assert server_state(emulator2) == desired_state(leader_ctx, b)
    assert requests(emulator)[CREATE_GROUP] == 1
    assert requests(emulator2)[CREATE_GROUP] == 1


def test_the_new_leader_applies_what_was_saved_while_nobody_led(
    replicas: Replicas, emulator: RunningEmulator
) -> None:
    ctx = replicas.context()
    server = add_synced_server(ctx, emulator.url)
    cad = feature_id(ctx, server, "cad")
    alloc = allocate(ctx, add_pool(ctx, {cad: 10}), cad, H3, 1)  # nobody listens yet

    scheduler = replicas.scheduler(replicas.context(), "late")

    wait_for(lambda: scheduler.last_full_pass != [], APPLY_LIMIT, "the first full pass")
    assert allocation(ctx, alloc)["state"] == "applied"
    assert scheduler.is_leader
    assert [r.server_name for r in scheduler.last_full_pass] == ["lls-a"]
    assert server_state(emulator) == desired_state(ctx, server)


# -- a server's turn --------------------------------------------------------------------------


def test_a_cli_pass_waits_for_the_server_turn_the_leader_holds(
    replicas: Replicas, emulator: RunningEmulator
) -> None:
    app_ctx, cli_ctx = replicas.context(), replicas.context()
    server = add_synced_server(app_ctx, emulator.url)
    cad = feature_id(app_ctx, server, "cad")
    alloc = allocate(app_ctx, add_pool(app_ctx, {cad: 10}), cad, H1, 1)
    before = requests(emulator)
    results: list = []

    with server_turn(app_ctx, server):
        assert server_turn_holders(cli_ctx.db, server) == 1
        cli = threading.Thread(target=lambda: results.extend(sync_all(cli_ctx)))
        cli.start()
        wait_for(lambda: _waiting_for_turn(replicas.url, server), 10.0, "the CLI to wait")
        assert requests(emulator) == before, "the CLI pass touched the server out of turn"
        assert cli.is_alive()
    cli.join(timeout=30)

    assert not cli.is_alive() and [r.ok for r in results] == [True]
    assert allocation(app_ctx, alloc)["state"] == "applied"
    assert server_turn_holders(cli_ctx.db, server) == 0


def _waiting_for_turn(url: str, server_id: int) -> bool:
    """Whether some session waits for (has not been granted) that server's turn."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND objsubid = 2 AND classid::bigint = %s AND objid::bigint = %s",
            [SERVER_TURN_CLASS, server_id],
        ).fetchone()
    return bool(row and row[0])


# -- DuckDB: the one process ------------------------------------------------------------------


def test_on_duckdb_the_scheduler_leads_while_it_runs_and_saves_push_through_the_hook(
    tmp_path: Path,
) -> None:
    key = SecretBox.generate_key()
    target = str(tmp_path / "vlm.duckdb")
    ctx = ServiceContext(
        open_database(target), Settings(db_path=target, secret_key=key), SecretBox(key)
    )
    scheduler = SyncScheduler(ctx, interval_seconds=3600)
    try:
        assert not scheduler.shared and not scheduler.is_leader
        scheduler.start()
        assert scheduler.is_leader and ctx.on_allocations_changed == scheduler.push
        assert scheduler.leader_name() is None
        status = Runtime(ctx.settings, ctx, scheduler).sync_status
        assert status == "The background sync runs in this process."
        thread_names = {t.name for t in threading.enumerate()}
        assert "vlm-sync-leader" not in thread_names
    finally:
        scheduler.stop()
        ctx.db.close()
    assert not scheduler.is_leader


def test_a_lock_taken_before_its_session_is_named_reads_as_no_leader_yet(
    replicas: Replicas,
) -> None:
    ctx = replicas.context()
    with psycopg.connect(replicas.url, autocommit=True, application_name="vlm-leader ") as conn:
        assert conn.execute("SELECT pg_try_advisory_lock(%s)", [LEADER_LOCK_KEY]).fetchone()[0]
        assert current_leader(ctx.db) is None
        conn.execute("SET application_name = 'vlm-leader replica-z'")
        assert current_leader(ctx.db) == "replica-z"
