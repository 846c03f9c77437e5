"""Who may do what (DESIGN.md §3 rule 4), checked with the acting user inside services."""

from __future__ import annotations

from vlm.domain import Actor, NotFound, PermissionDenied, Role
from vlm.store import Database


def require_admin(actor: Actor) -> None:
    if actor.role is not Role.ADMIN:
        raise PermissionDenied(f"{actor.username} ({actor.role.value}) is not an admin")


def require_can_write(actor: Actor) -> None:
    if actor.role is Role.ANALYST:
        raise PermissionDenied(f"{actor.username} is an analyst and may not change anything")


def pool_manager(db: Database, pool_id: int) -> str:
    """The manager of a pool, or NotFound."""
    manager = db.scalar("SELECT manager FROM pools WHERE id = ?", [pool_id])
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


def pool_scope_sql(actor: Actor, alias: str = "p") -> tuple[str, list[object]]:
    """A WHERE fragment that limits pool rows to what the actor may see."""
    if actor.role is Role.MANAGER:
        return f"{alias}.manager = ?", [actor.username]
    return "TRUE", []
