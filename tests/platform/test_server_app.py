"""`streamlit run server.py` serves UI, API and health on one port; its lifespan owns the database
and the sync scheduler (which runs with no browser session open) and closes both on a signal."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from tests.sync.conftest import (
    DEFAULT_FEATURES,
    add_pool,
    add_synced_server,
    allocate,
    feature_id,
    server_state,
)
from vlm.cli import fresh_keys
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.demo import DEMO_SERVERS, DEMO_USERS, OFFLINE_SERVER
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.secret_box import SecretBox
from vlm.store import open_database

HOST = "0050569AB001"
# uvicorn shuts down gracefully, then raises the signal again with the default handler: SIGTERM
# ends the process by that signal, SIGINT as a KeyboardInterrupt that the click CLI turns into 1
EXIT_AFTER = {signal.SIGTERM: -signal.SIGTERM, signal.SIGINT: 1}
SYNC_TIMEOUT = 30.0


@dataclass(frozen=True)
class Estate:
    """A database with one synced server and a pending allocation; its keys in secrets.toml."""

    db_path: Path
    secrets: Path
    allocation_id: int
    synced_at: datetime


@pytest.fixture
def emulator() -> Iterator[RunningEmulator]:
    with start_emulator({"features": DEFAULT_FEATURES}) as emu:
        yield emu


def write_secrets(path: Path, cookie_key: str, secret_key: str, db_path: Path) -> None:
    path.write_text(
        f'[auth]\ncookie_key = "{cookie_key}"\n\n'
        f'[vlm]\nsecret_key = "{secret_key}"\ndb_path = "{db_path}"\n',
        encoding="utf-8",
    )


@pytest.fixture
def estate(tmp_path: Path, emulator: RunningEmulator) -> Estate:
    cookie_key, secret_key = fresh_keys()
    db_path, secrets = tmp_path / "vlm.duckdb", tmp_path / "secrets.toml"
    write_secrets(secrets, cookie_key, secret_key, db_path)
    settings = Settings(db_path=str(db_path), cookie_key=cookie_key, secret_key=secret_key)
    ctx = ServiceContext(open_database(db_path), settings, SecretBox(secret_key))
    try:
        server_id = add_synced_server(ctx, emulator.url)
        cad = feature_id(ctx, server_id, "cad")
        allocation_id = allocate(ctx, add_pool(ctx, {cad: 5}), cad, HOST, 2)
        synced_at = ctx.db.scalar("SELECT last_sync_at FROM license_servers")
        assert ctx.db.scalar("SELECT state FROM allocations") == "pending"
    finally:
        ctx.db.close()
    assert server_state(emulator) == {}, "nothing may reach the server before the app runs"
    return Estate(db_path, secrets, allocation_id, synced_at)


def read_only(db_path: Path) -> duckdb.DuckDBPyConnection:
    """A connection of this process (fails while the server still holds the file)."""
    return duckdb.connect(str(db_path), read_only=True)


def wait_until(predicate: Callable[[], Any], timeout: float = SYNC_TIMEOUT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:g} s: {predicate.__doc__ or predicate}")
        time.sleep(0.2)
    return value


def reserved_hosts(emulator: RunningEmulator) -> set[str]:
    """Host ids in the emulator's reservation groups."""
    return {host for group in server_state(emulator).values() for _, host in group}


def test_ui_api_and_health_answer_on_one_port(serve, estate: Estate) -> None:
    app = serve({"VLM_SYNC_INTERVAL": "3600"}, estate.secrets)

    assert app.get("/_stcore/health").text == "ok"
    page = app.get("/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<div id="root">' in page.text
    api = app.get("/api/v1/openapi.json")
    assert api.status_code == 200
    assert api.json()["openapi"].startswith("3.")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
def test_the_server_syncs_without_a_browser_and_a_signal_closes_the_database(
    serve, estate: Estate, emulator: RunningEmulator, sig: signal.Signals
) -> None:
    app = serve({"VLM_SYNC_INTERVAL": "3600"}, estate.secrets)

    wait_until(lambda: HOST in reserved_hosts(emulator))  # the scheduler, no session open
    assert app.stop_with(sig) == EXIT_AFTER[sig]

    assert not estate.db_path.with_name(estate.db_path.name + ".wal").exists()
    with read_only(estate.db_path) as con:
        state = con.execute("SELECT state FROM allocations WHERE id = ?", [estate.allocation_id])
        assert state.fetchone() == ("applied",)
        (synced_at,) = con.execute("SELECT last_sync_at FROM license_servers").fetchone()
    assert synced_at > estate.synced_at
    assert "Traceback" not in app.log()


def test_demo_mode_runs_its_emulators_and_seeds_inside_the_lifespan(serve, tmp_path) -> None:
    db_path = tmp_path / "demo.duckdb"
    settings = {"VLM_DEMO": "1", "VLM_DEMO_EMULATOR_PORT": "0", "VLM_DB_PATH": str(db_path)}
    app = serve({**settings, "VLM_SYNC_INTERVAL": "3600"})

    assert app.get("/_stcore/health").text == "ok"
    assert app.stop_with(signal.SIGTERM) == EXIT_AFTER[signal.SIGTERM]

    with read_only(db_path) as con:
        users = {name for (name,) in con.execute("SELECT username FROM users").fetchall()}
        servers = con.execute("SELECT name, base_url, last_sync_at FROM license_servers")
        servers = servers.fetchall()
        states = con.execute("SELECT DISTINCT state FROM allocations").fetchall()
    assert users == {user.username for user in DEMO_USERS}
    demo_servers = {server.name for server in DEMO_SERVERS} | {OFFLINE_SERVER.name}
    assert {name for name, _, _ in servers} == demo_servers
    assert all(synced is not None for _, _, synced in servers)
    # applied, and the demo's time-boxed and refused rows (vlm.demo's stories)
    assert {state for (state,) in states} == {
        "applied",
        "scheduled",
        "expired",
        "disabled",
        "failed",
    }
    for _, url, _ in servers:  # the emulators stopped with the server
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/api/1.0/health", timeout=2)
    assert "Traceback" not in app.log()


def test_unsafe_settings_serve_the_refusal_and_open_no_database(serve, tmp_path) -> None:
    db_path = tmp_path / "never.duckdb"
    app = serve({"VLM_DB_PATH": str(db_path)})  # not demo, no keys anywhere

    assert app.get("/_stcore/health").text == "ok"
    assert app.get("/").status_code == 200
    assert app.stop_with(signal.SIGTERM) == EXIT_AFTER[signal.SIGTERM]

    assert not db_path.exists()
    log = app.log()
    assert "VLM refuses to start" in log
    assert "the Fernet key (VLM_SECRET_KEY or [vlm] secret_key in secrets.toml) is missing" in log
