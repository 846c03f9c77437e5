"""This suite runs on every database backend (VLM_TEST_BACKENDS, default DuckDB and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import BACKENDS, both_backends
from vlm.store import open_database

backend = pytest.fixture(params=BACKENDS)(both_backends)


@pytest.fixture
def fresh_db(db_target: str) -> Iterator[Any]:
    """A migrated, empty database of the backend under test."""
    database = open_database(db_target)
    yield database
    database.close()
