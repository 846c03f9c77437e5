"""Settings from the environment reach the database they configure."""

from __future__ import annotations

from vlm.config import Settings
from vlm.secret_box import SecretBox
from vlm.services.context import ServiceContext


def test_duckdb_memory_limit_comes_from_the_environment(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VLM_DB_MEMORY_LIMIT", "300MB")
    settings = Settings.from_env(
        db_path=str(tmp_path / "vlm.duckdb"), secret_key=SecretBox.generate_key()
    )
    assert settings.db_memory_limit == "300MB"
    ctx = ServiceContext.open(settings)
    try:
        limit = ctx.db.scalar("SELECT current_setting('memory_limit')")
    finally:
        ctx.db.close()
    assert limit.replace(" ", "") in {"286.1MiB", "300.0MB", "300MB"}, limit
