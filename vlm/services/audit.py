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
    store.insert_audit_row(
        cur,
        (actor.username, action, target_type, str(target_id), _to_json(before), _to_json(after)),
    )


def record_many(
    cur: duckdb.DuckDBPyConnection,
    actor: Actor,
    rows: Sequence[tuple[str, str, object, Any, Any]],
) -> None:
    """Write many audit rows (action, target_type, target_id, before, after) in one statement."""
    store.insert_audit_rows(
        cur,
        [
            (actor.username, action, target_type, str(target_id), _to_json(before), _to_json(after))
            for action, target_type, target_id, before, after in rows
        ],
    )


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
