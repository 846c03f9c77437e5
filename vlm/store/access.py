"""The rows behind permission checks: a user's stored role and disabled flag, a pool's manager.

Also the WHERE fragment that limits pool rows to one manager's pools (`Scope`): services decide
who sees which pools and hand the fragment to the reads that list pools and their figures.
"""

from __future__ import annotations

import duckdb

from vlm.store.database import Database

Scope = tuple[str, list[object]]
"""A WHERE fragment over a pools alias and its `?` parameters."""


def role_and_disabled(cur: duckdb.DuckDBPyConnection, username: str) -> tuple[str, bool] | None:
    """A user's stored role and disabled flag, or None when there is no such user."""
    return cur.execute(
        """SELECT role, disabled FROM users WHERE username = ?""", [username]
    ).fetchone()


def pool_manager(db: Database, pool_id: int) -> str | None:
    """The stored manager of a pool, or None when there is no such pool."""
    return db.scalar("""SELECT manager FROM pools WHERE id = ?""", [pool_id])


def pool_manager_in(cur: duckdb.DuckDBPyConnection, pool_id: int) -> str | None:
    """Inside a write: the manager of a pool as stored now, or None when there is no such pool."""
    row = cur.execute("""SELECT manager FROM pools WHERE id = ?""", [pool_id]).fetchone()
    return None if row is None else row[0]


def managed_by(alias: str, manager: str) -> Scope:
    """Only the pools (rows of alias) that manager manages."""
    return f"{alias}.manager = ?", [manager]


def every_pool() -> Scope:
    """Every pool."""
    return "TRUE", []
