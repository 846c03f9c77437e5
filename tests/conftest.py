"""Shared fixtures: an isolated service context on a real DuckDB file, seeded estates."""

from __future__ import annotations

import os

os.environ.setdefault("VLM_BCRYPT_ROUNDS", "4")

import pytest

from tests.postgres_server import PostgresServer
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import Actor, Role
from vlm.secret_box import SecretBox
from vlm.store import is_postgres_url, open_database

ADMIN = Actor("alice", Role.ADMIN)
MANAGER = Actor("bob", Role.MANAGER)
OTHER_MANAGER = Actor("carol", Role.MANAGER)
ANALYST = Actor("dave", Role.ANALYST)


BACKENDS = [
    name.strip()
    for name in os.environ.get("VLM_TEST_BACKENDS", "duckdb,postgres").split(",")
    if name.strip()
]


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    """One throwaway PostgreSQL server for the session, started when a test first needs it."""
    server = PostgresServer()
    try:
        server.create_template()
        yield server
    finally:
        server.stop()


@pytest.fixture
def backend() -> str:
    """The database engine under test: DuckDB here; suites that run on both override this."""
    return "duckdb"


@pytest.fixture
def db_target(request, backend, tmp_path) -> str:
    """A fresh, migrated database of the backend: a DuckDB file path or a PostgreSQL URL."""
    if backend == "duckdb":
        yield str(tmp_path / "vlm.duckdb")
        return
    server = request.getfixturevalue("postgres_server")
    url = server.fresh_database()
    yield url
    server.drop(url)


def database_setting(target: str) -> dict[str, str]:
    """The Settings field that names target: db_url for PostgreSQL, db_path for DuckDB."""
    return {"db_url": target} if is_postgres_url(target) else {"db_path": target}


def base_tables(db) -> list[str]:
    """The names of the schema's tables, sorted, on either engine."""
    return [
        name
        for (name,) in db.query(
            "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1"
        )
    ]


def every_row(db, table: str) -> list[tuple]:
    """All rows of a table in one stable order on either engine (ORDER BY ALL is DuckDB's)."""
    return sorted(db.query(f'SELECT * FROM "{table}"'), key=repr)


def both_backends(request) -> str:
    """The body of a directory's `backend` fixture when its suite runs on every backend."""
    return request.param


@pytest.fixture
def ctx(db_target) -> ServiceContext:
    key = SecretBox.generate_key()
    settings = Settings(**database_setting(db_target), secret_key=key)
    context = ServiceContext(open_database(db_target), settings, SecretBox(key))
    yield context
    context.db.close()
