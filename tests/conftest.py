"""Shared fixtures: an isolated service context on a real DuckDB file, seeded estates."""

from __future__ import annotations

import os

os.environ.setdefault("VLM_BCRYPT_ROUNDS", "4")

import pytest

from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import Actor, Role
from vlm.secret_box import SecretBox
from vlm.store import open_database

ADMIN = Actor("alice", Role.ADMIN)
MANAGER = Actor("bob", Role.MANAGER)
OTHER_MANAGER = Actor("carol", Role.MANAGER)
ANALYST = Actor("dave", Role.ANALYST)


@pytest.fixture
def ctx(tmp_path) -> ServiceContext:
    key = SecretBox.generate_key()
    settings = Settings(db_path=str(tmp_path / "vlm.duckdb"), secret_key=key)
    context = ServiceContext(open_database(settings.db_path), settings, SecretBox(key))
    yield context
    context.db.close()
