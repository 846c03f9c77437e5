"""The audit log: every change writes a row (when, who, action, target, before, after)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import duckdb
import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import Actor
from vlm.services.permissions import require_admin
from vlm.store import audit as store


def _to_json(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=_json_default, sort_keys=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def _pool_of(target_type: str, target_id: object, before: Any, after: Any) -> int | None:
    """The pool a change concerns: a pool's own id, or the pool its after (else before) names;
    stored with the row so a pool's trend reads only its own rows."""
    if target_type == "pool":
        return int(target_id) if str(target_id).isdigit() else None
    named = after if isinstance(after, dict) else before
    pool_id = named.get("pool_id") if isinstance(named, dict) else None
    return pool_id if isinstance(pool_id, int) and not isinstance(pool_id, bool) else None


def _count_of(audited: Any) -> int:
    """An audited allocation's count; a missing or non-whole one counts as 0."""
    count = audited.get("count") if isinstance(audited, dict) else None
    return count if isinstance(count, int) and not isinstance(count, bool) else 0


def _count_change(target_type: str, before: Any, after: Any) -> int | None:
    """How many licenses an allocation row added (negative: freed); None for other targets.
    Stored with the row so a pool's trend sums it without reading the JSON."""
    if target_type != "allocation":
        return None
    return _count_of(after) - _count_of(before)


def _audit_row(
    actor: Actor, action: str, target_type: str, target_id: object, before: Any, after: Any
) -> store.AuditRow:
    return (
        actor.username,
        action,
        target_type,
        str(target_id),
        _to_json(before),
        _to_json(after),
        _pool_of(target_type, target_id, before, after),
        _count_change(target_type, before, after),
    )


def record(
    cur: duckdb.DuckDBPyConnection,
    actor: Actor,
    action: str,
    target_type: str,
    target_id: object,
    before: Any = None,
    after: Any = None,
) -> None:
    """Write one audit row inside the caller's transaction."""
    store.insert_audit_row(cur, _audit_row(actor, action, target_type, target_id, before, after))


def record_many(
    cur: duckdb.DuckDBPyConnection,
    actor: Actor,
    rows: Sequence[tuple[str, str, object, Any, Any]],
) -> None:
    """Write many audit rows (action, target_type, target_id, before, after) in one statement."""
    store.insert_audit_rows(cur, [_audit_row(actor, *row) for row in rows])


def audit_log(
    ctx: ServiceContext,
    actor: Actor,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    user: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 5000,
) -> pd.DataFrame:
    """The audit log, newest first, filtered by time, user, action and target (admins only)."""
    require_admin(actor)
    return store.audit_rows(
        ctx.db, since=since, until=until, actor=user, action=action, target=target, limit=limit
    )


def audit_actions(ctx: ServiceContext, actor: Actor) -> list[str]:
    require_admin(actor)
    return store.audit_action_names(ctx.db)
