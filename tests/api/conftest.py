"""The REST API over real HTTP: uvicorn serving the /api/v1 routes in this process, with a
runtime (seeded demo database, sync scheduler) installed as the server's lifespan would, the
demo's emulated license servers on loopback, and tokens for users of every role."""

from __future__ import annotations

import os

os.environ.setdefault("VLM_BCRYPT_ROUNDS", "4")

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette

from tests.conftest import BACKENDS
from vlm.api import api_routes
from vlm.context import ServiceContext
from vlm.demo import demo_settings, prepare_demo_database, start_demo_emulators
from vlm.domain import SYSTEM_ACTOR, Actor, Role
from vlm.runtime import Runtime, current_runtime, install_runtime, open_runtime
from vlm.services import tokens, users

ADMIN = Actor("admin", Role.ADMIN)
MANAGER = Actor("mia", Role.MANAGER)  # manages the CAD team pool
OTHER_MANAGER = Actor("max", Role.MANAGER)  # manages the Simulation team pool
ANALYST = Actor("ana", Role.ANALYST)
CAD_POOL = "CAD team"
SIM_POOL = "Simulation team"


@dataclass
class RunningApi:
    """A served API: its base URL (…/api/v1), the runtime behind it and helpers to act."""

    url: str
    runtime: Runtime
    emulators: dict[str, Any]
    _tokens: dict[tuple[str, bool], str] = field(default_factory=dict)

    @property
    def ctx(self) -> ServiceContext:
        return self.runtime.ctx

    def token(self, actor: Actor, *, read_only: bool = False) -> str:
        """A token of this user (one per user and kind, created through the token service)."""
        key = (actor.username, read_only)
        if key not in self._tokens:
            made = tokens.create_token(self.ctx, actor, f"tests {key}", read_only=read_only)
            self._tokens[key] = made.token
        return self._tokens[key]

    def client(self, actor: Actor | None = None, *, read_only: bool = False) -> httpx.Client:
        headers = (
            {}
            if actor is None
            else {"Authorization": f"Bearer {self.token(actor, read_only=read_only)}"}
        )
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def new_user(self, role: Role) -> Actor:
        """A fresh user of that role (for tests that disable, demote or delete)."""
        name = f"u{uuid.uuid4().hex[:10]}"
        users.add_user(self.ctx, SYSTEM_ACTOR, name, role, password="password-123")
        return Actor(name, role)

    def pool_id(self, name: str) -> int:
        rows = self.ctx.db.query("""SELECT id FROM pools WHERE name = ?""", [name])
        assert len(rows) == 1, f"{len(rows)} pools named {name}"
        return rows[0][0]


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def api_database(request, tmp_path_factory, backend: str, name: str) -> Iterator[str]:
    """Where a served API keeps its data: a DuckDB file, or a PostgreSQL database dropped after."""
    if backend != "postgres":
        yield str(tmp_path_factory.mktemp(name) / "vlm.duckdb")
        return
    server = request.getfixturevalue("postgres_server")
    url = server.fresh_database()
    try:
        yield url
    finally:
        server.drop(url)


@contextmanager
def serve_api(db_path: Path | str) -> Iterator[RunningApi]:
    """Emulators, a seeded demo database, the runtime installed, uvicorn serving the routes."""
    emulators = start_demo_emulators(None)
    previous = current_runtime()
    runtime: Runtime | None = None
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None
    try:
        prepare_demo_database(str(db_path), {n: e.url for n, e in emulators.items()})
        runtime = open_runtime(demo_settings(str(db_path)))
        install_runtime(runtime)
        sock = _free_socket()
        port = sock.getsockname()[1]
        config = uvicorn.Config(Starlette(routes=api_routes()), log_level="warning", lifespan="off")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield RunningApi(f"http://127.0.0.1:{port}/api/v1", runtime, emulators)
    finally:
        if server is not None and thread is not None:
            server.should_exit = True
            thread.join(timeout=15)
        install_runtime(previous)
        if runtime is not None:
            runtime.close()
        for emulator in emulators.values():
            emulator.stop()


@pytest.fixture(scope="package", params=BACKENDS)
def api(request, tmp_path_factory) -> Iterator[RunningApi]:
    """One served API per backend for the package's tests (they leave the demo estate usable)."""
    with (
        api_database(request, tmp_path_factory, request.param, "api") as target,
        serve_api(target) as running,
    ):
        yield running


@pytest.fixture
def admin(api: RunningApi) -> Iterator[httpx.Client]:
    with api.client(ADMIN) as client:
        yield client


@pytest.fixture
def manager(api: RunningApi) -> Iterator[httpx.Client]:
    with api.client(MANAGER) as client:
        yield client


@pytest.fixture
def other_manager(api: RunningApi) -> Iterator[httpx.Client]:
    with api.client(OTHER_MANAGER) as client:
        yield client


@pytest.fixture
def analyst(api: RunningApi) -> Iterator[httpx.Client]:
    with api.client(ANALYST) as client:
        yield client


@pytest.fixture
def read_only_admin(api: RunningApi) -> Iterator[httpx.Client]:
    with api.client(ADMIN, read_only=True) as client:
        yield client


def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict:
    """The response is an RFC 9457 problem document of that status (naming field, if given)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["title"] and body["detail"]
    if field is not None:
        assert field in [e["field"] for e in body["errors"]], body
    return body
