"""This suite runs on every database backend (VLM_TEST_BACKENDS, default DuckDB and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.conftest import BACKENDS, both_backends

backend = pytest.fixture(params=BACKENDS)(both_backends)


@pytest.fixture
def frame_reads(ctx, monkeypatch) -> list[str]:
    """The SQL of every DataFrame read the context's database runs from now on."""
    calls: list[str] = []
    original = ctx.db.query_df

    def counting(sql, params=()):
        calls.append(sql)
        return original(sql, params)

    monkeypatch.setattr(ctx.db, "query_df", counting)
    return calls
