"""This suite runs on every database backend (VLM_TEST_BACKENDS, default DuckDB and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS, both_backends

backend = pytest.fixture(params=BACKENDS)(both_backends)
