"""Storage: DuckDB (the embedded default) or PostgreSQL (many replicas), schema migrations and
the queries services use."""

from __future__ import annotations

from typing import Any

from vlm.dburl import is_postgres_url, redact_url
from vlm.store.database import Database, DatabaseLockedError
from vlm.store.migrations import migrate

__all__ = [
    "Database",
    "DatabaseLockedError",
    "is_postgres_url",
    "migrate",
    "open_database",
    "redact_url",
]


def open_database(target: str, **kwargs: Any) -> Any:
    """Open (creating if needed) and migrate the database: a PostgreSQL URL or a DuckDB path."""
    if is_postgres_url(target):
        from vlm.store.postgres import PostgresDatabase

        db: Any = PostgresDatabase(target, **{k: v for k, v in kwargs.items() if k == "max_size"})
    else:
        db = Database(target, **kwargs)
    migrate(db)
    return db
