"""Who may do what (docs/architecture.md §3 rule 4), checked with the acting user inside services.

Two kinds of checks live here. The plain ones (`require_admin`, `require_pool_write`, …) look
at the Actor the caller built at sign-in and the committed data; they are a fast path that
refuses early. The `*_in(cur, …)` ones run first thing inside the write transaction
(`ctx.db.write(fn)` hands `fn` the cursor) and read the role, the disabled flag and the pool's
manager as they are stored now, so a handover, demotion or disabling that committed a moment
earlier is honoured. Writes hold one lock, so nothing can change those rows between the inside
check and the commit: the inside check is the one that counts.
"""

from __future__ import annotations

import duckdb

from vlm.domain import SYSTEM_ACTOR, Actor, NotFound, PermissionDenied, Role
from vlm.store import Database, access
from vlm.store.access import Scope


def require_admin(actor: Actor) -> None:
    if actor.role is not Role.ADMIN:
        raise PermissionDenied(f"{actor.username} ({actor.role.value}) is not an admin")


def require_can_write(actor: Actor) -> None:
    if actor.role is Role.ANALYST:
        raise PermissionDenied(f"{actor.username} is an analyst and may not change anything")


def pool_manager(db: Database, pool_id: int) -> str:
    """The manager of a pool, or NotFound."""
    manager = access.pool_manager(db, pool_id)
    if manager is None:
        raise NotFound(f"pool {pool_id} does not exist", field="pool")
    return manager


def require_pool_write(db: Database, actor: Actor, pool_id: int) -> None:
    """Admins act on any pool, managers only on their own, analysts on none."""
    require_can_write(actor)
    manager = pool_manager(db, pool_id)
    if actor.role is Role.MANAGER and manager != actor.username:
        raise PermissionDenied(f"pool {pool_id} is managed by someone else", field="pool")


def require_pool_read(db: Database, actor: Actor, pool_id: int) -> None:
    """Managers read only their own pools; admins and analysts read all."""
    manager = pool_manager(db, pool_id)
    if actor.role is Role.MANAGER and manager != actor.username:
        raise NotFound(f"pool {pool_id} does not exist", field="pool")


def pool_scope_sql(actor: Actor, alias: str = "p") -> Scope:
    """A WHERE fragment that limits pool rows to what the actor may see."""
    if actor.role is Role.MANAGER:
        return access.managed_by(alias, actor.username)
    return access.every_pool()


def require_active_user_in(cur: duckdb.DuckDBPyConnection, actor: Actor) -> Role:
    """The actor's role as stored now; refuses a user who is unknown or disabled.

    The process's own SYSTEM_ACTOR (that very object, as used by the CLI and the demo seeding,
    never one rebuilt from a sign-in) has no users row and acts as an admin.
    """
    if actor is SYSTEM_ACTOR:
        return Role.ADMIN
    if getattr(actor, "read_only", False):  # an API token made read-only (services/tokens.py)
        raise PermissionDenied("this API token is read-only and may not change anything")
    row = access.role_and_disabled(cur, actor.username)
    if row is None:
        raise PermissionDenied(f"user '{actor.username}' does not exist")
    if row[1]:
        raise PermissionDenied(f"user '{actor.username}' is disabled")
    return Role(row[0])


def require_admin_in(cur: duckdb.DuckDBPyConnection, actor: Actor) -> None:
    """Inside a write: the actor is, as stored now, an enabled admin."""
    role = require_active_user_in(cur, actor)
    if role is not Role.ADMIN:
        raise PermissionDenied(f"{actor.username} ({role.value}) is not an admin")


def require_pool_write_in(cur: duckdb.DuckDBPyConnection, actor: Actor, pool_id: int) -> None:
    """Inside a write: the pool exists and the actor, as stored now, may change it."""
    role = require_active_user_in(cur, actor)
    if role is Role.ANALYST:
        raise PermissionDenied(f"{actor.username} is an analyst and may not change anything")
    manager = access.pool_manager_in(cur, pool_id)
    if manager is None:
        raise NotFound(f"pool {pool_id} does not exist", field="pool")
    if role is Role.MANAGER and manager != actor.username:
        raise PermissionDenied(f"pool {pool_id} is managed by someone else", field="pool")
