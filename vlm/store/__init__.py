"""DuckDB storage: the Database class, schema migrations and the queries services use."""

from vlm.store.database import Database, DatabaseLockedError
from vlm.store.migrations import migrate

__all__ = ["Database", "DatabaseLockedError", "migrate", "open_database"]


def open_database(path: str, **kwargs: object) -> Database:
    """Open (creating if needed) and migrate the database at path."""
    db = Database(path, **kwargs)  # type: ignore[arg-type]
    migrate(db)
    return db
