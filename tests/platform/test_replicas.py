"""Many replicas on one PostgreSQL database (issue #10).

First as services: two service contexts on one database are two replicas, and the login
lockout, one-time passwords, API tokens and idempotency keys hold across them because they live
in the database. Then served: a `streamlit run server.py` replica with three emulated license
servers, and the CLI's `users add` and `sync` beside it (the two-replica kill -9 failover is
tests/e2e/test_replicas.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import ADMIN
from tests.platform.conftest import ServedApp
from tests.sync.conftest import (
    DEFAULT_FEATURES,
    MIA,
    PREFIX,
    add_pool,
    add_staff,
    add_synced_server,
    desired_state,
    feature_id,
    server_state,
)
from tests.sync.test_leader import CREATE_GROUP, TAKEOVER_LIMIT, requests, wait_for
from vlm.cli import fresh_keys
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR, Conflict, Role, ValidationError
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.secret_box import SecretBox
from vlm.services import idempotency, logins, tokens, users
from vlm.services.logins import SignInOutcome
from vlm.store import open_database
from vlm.store.leadership import current_leader

ROOT = Path(__file__).resolve().parents[2]
APPLY_LIMIT = 30.0
PASSWORD = "password-123"


class Replicas:
    """Service contexts on one database, as many replicas' services see it."""

    def __init__(self, url: str, max_login_attempts: int = 3) -> None:
        self.url = url
        self.key = SecretBox.generate_key()
        self.attempts = max_login_attempts
        self.contexts: list[ServiceContext] = []

    def context(self) -> ServiceContext:
        settings = Settings(
            db_url=self.url,
            secret_key=self.key,
            group_prefix=PREFIX,
            max_login_attempts=self.attempts,
        )
        ctx = ServiceContext(open_database(self.url), settings, SecretBox(self.key))
        self.contexts.append(ctx)
        return ctx

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.db.close()


@pytest.fixture
def database(postgres_server) -> Iterator[str]:
    url = postgres_server.fresh_database()
    yield url
    postgres_server.drop(url)


@pytest.fixture
def two(database: str) -> Iterator[tuple[ServiceContext, ServiceContext]]:
    group = Replicas(database)
    try:
        yield group.context(), group.context()
    finally:
        group.close()


def add_member(ctx: ServiceContext, name: str = "erin", role: Role = Role.MANAGER) -> str:
    """A user with a known password, next to the staff (ADMIN resets passwords)."""
    add_staff(ctx)
    users.add_user(ctx, SYSTEM_ACTOR, name, role, password=PASSWORD)
    return name


# -- state that must live in the database -----------------------------------------------------


def test_the_login_lockout_counts_attempts_on_every_replica(two) -> None:
    a, b = two
    name = add_member(a)

    outcomes = [logins.sign_in(ctx, name, "wrong").outcome for ctx in (a, b, a)]
    assert outcomes == [SignInOutcome.WRONG] * 3
    assert logins.sign_in(b, name, PASSWORD).outcome is SignInOutcome.LOCKED
    assert logins.failed_attempts(b, [name]) == {name: 3}

    users.reset_password(a, ADMIN, name)  # clears the count on every replica

    assert logins.failed_attempts(b, [name]) == {name: 0}


def test_parallel_guesses_on_two_replicas_never_pass_the_limit(two) -> None:
    a, b = two
    name = add_member(a)
    allowed: list[bool] = []
    lock = threading.Lock()

    def guess(ctx: ServiceContext) -> None:
        verdict = logins.register_login_attempt(ctx, name)
        with lock:
            allowed.append(verdict)

    threads = [threading.Thread(target=guess, args=(ctx,)) for ctx in (a, b) * 6]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(allowed) == [False] * 9 + [True] * 3
    assert logins.failed_attempts(a, [name]) == {name: 3}


def test_a_one_time_password_from_one_replica_signs_in_on_the_other_and_is_replaced(
    two,
) -> None:
    a, b = two
    one_time = users.reset_password(a, ADMIN, add_member(a))

    assert logins.sign_in(b, "erin", one_time).ok
    assert users.get_user(b, "erin")["must_change_password"]
    users.set_own_password(b, users.actor_for(b, "erin"), one_time, "a-new-password-1")

    assert not users.get_user(a, "erin")["must_change_password"]
    assert logins.sign_in(a, "erin", one_time).outcome is SignInOutcome.WRONG
    assert logins.sign_in(a, "erin", "a-new-password-1").ok


def test_an_api_token_made_on_one_replica_works_and_is_revoked_on_the_other(two) -> None:
    a, b = two
    actor = users.actor_for(a, add_member(a))
    made = tokens.create_token(a, actor, "script")

    assert tokens.authenticate(b, made.token).username == actor.username
    tokens.revoke_token(b, actor, made.id)

    with pytest.raises(tokens.InvalidToken, match="revoked"):
        tokens.authenticate(a, made.token)


def test_an_idempotency_key_claimed_on_one_replica_replays_on_the_other(two) -> None:
    a, b = two
    actor = users.actor_for(a, add_member(a))
    first = idempotency.request_fingerprint("POST", "/pools/1/allocations", b"{}")

    assert idempotency.begin(a, actor, "key-1", first) is None
    with pytest.raises(Conflict, match="still running"):
        idempotency.begin(b, actor, "key-1", first)
    answer = idempotency.StoredResponse(201, "application/json", '{"id": 7}')
    idempotency.finish(a, actor, "key-1", answer)

    assert idempotency.begin(b, actor, "key-1", first) == answer
    other = idempotency.request_fingerprint("POST", "/pools/2/allocations", b"{}")
    with pytest.raises(ValidationError, match="another request"):
        idempotency.begin(b, actor, "key-1", other)


# -- two served replicas ----------------------------------------------------------------------

VERSIONS = ("1.0", "2.0", "3.0")  # one per server, so each allocation's server is known


@pytest.fixture
def emulators() -> Iterator[list[RunningEmulator]]:
    started = []
    try:
        for number, version in enumerate(VERSIONS, start=1):
            features = [{**f, "featureVersion": version} for f in DEFAULT_FEATURES]
            fixture = {"features": features, "instanceId": f"EMULATOR000{number}"}
            started.append(start_emulator(fixture))
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
        self.secret_key = secret_key
        settings = Settings(db_url=url, secret_key=secret_key, group_prefix=PREFIX)
        self.ctx = ServiceContext(open_database(url), settings, SecretBox(secret_key))
        self.servers = [
            add_synced_server(self.ctx, emu.url, f"lls-{n}") for n, emu in enumerate(emulators)
        ]
        cads = [
            feature_id(self.ctx, server, "cad", version)
            for server, version in zip(self.servers, VERSIONS, strict=True)
        ]
        self.pool = add_pool(self.ctx, dict.fromkeys(cads, 10))
        self.token = tokens.create_token(self.ctx, MIA, "provisioning").token

    def app_settings(self) -> dict[str, str]:
        return {"VLM_DB_URL": self.url, "VLM_SYNC_INTERVAL": "3600", "VLM_GROUP_PREFIX": PREFIX}

    def client(self, app: ServedApp) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=f"{app.url}/api/v1", headers=headers, timeout=30)

    def converged(self) -> bool:
        return all(
            server_state(emu) == desired_state(self.ctx, server)
            for emu, server in zip(self.emulators, self.servers, strict=True)
        )


@pytest.fixture
def estate(database: str, emulators, tmp_path: Path) -> Iterator[Estate]:
    made = Estate(database, emulators, tmp_path)
    try:
        yield made
    finally:
        made.ctx.db.close()


def leader_pid(estate: Estate) -> int | None:
    name = current_leader(estate.ctx.db)
    return None if name is None else int(name.rsplit(" ", 1)[1])


def allocate_on_every_server(client: httpx.Client, pool: int, host_ids: list[str]) -> list[int]:
    """One allocation per server (cad of its version) through the REST API."""
    made = []
    for version, host_id in zip(VERSIONS, host_ids, strict=True):
        body = {"feature_name": "cad", "feature_version": version, "host_type": "ETHERNET"}
        response = client.post(
            f"/pools/{pool}/allocations", json={**body, "host_id": host_id, "count": 2}
        )
        assert response.status_code == 201, response.text
        made.append(response.json()["id"])
    return made


def all_applied(client: httpx.Client, pool: int, ids: list[int]) -> Callable[[], bool]:
    def check() -> bool:
        states = [client.get(f"/pools/{pool}/allocations/{i}").json()["state"] for i in ids]
        return states == ["applied"] * len(ids)

    return check


def run_cli(
    estate: Estate, folder: Path, *args: str, stdin: str = ""
) -> subprocess.CompletedProcess:
    """`python -m vlm ARGS --db URL` in a folder without secrets.toml, keys from the environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VLM_")}
    env.update(VLM_SECRET_KEY=estate.secret_key, VLM_GROUP_PREFIX=PREFIX, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "vlm", *args, "--db", estate.url],
        cwd=folder,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_cli_adds_users_and_syncs_beside_the_live_replicas(
    serve, estate: Estate, tmp_path: Path
) -> None:
    app = serve(estate.app_settings(), estate.secrets)
    wait_for(lambda: leader_pid(estate) == app.proc.pid, TAKEOVER_LIMIT, "the app to lead")
    with estate.client(app) as client:
        made = allocate_on_every_server(
            client, estate.pool, ["0050569A0301", "0050569A0302", "0050569A0303"]
        )
        wait_for(all_applied(client, estate.pool, made), APPLY_LIMIT, "applied")
    folder = tmp_path / "cli"
    folder.mkdir()

    added = run_cli(
        estate, folder, "users", "add", "frank", "--role", "analyst", stdin="pw-frank-123\n"
    )
    synced = run_cli(estate, folder, "sync")

    assert added.returncode == 0, added.stderr
    assert logins.sign_in(estate.ctx, "frank", "pw-frank-123").ok
    assert synced.returncode == 0, synced.stderr
    assert synced.stdout.count("; ok") == 3
    assert estate.converged()
    assert [requests(emu)[CREATE_GROUP] for emu in estate.emulators] == [1, 1, 1]
