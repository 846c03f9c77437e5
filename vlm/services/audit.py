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
    cur.execute(
        "INSERT INTO audit_log (actor, action, target_type, target_id, before, after) "
        "VALUES (?, ?, ?, ?, ?, ?)",
        [actor.username, action, target_type, str(target_id), _to_json(before), _to_json(after)],
    )


def record_many(
    cur: duckdb.DuckDBPyConnection,
    actor: Actor,
    rows: Sequence[tuple[str, str, object, Any, Any]],
) -> None:
    """Write many audit rows (action, target_type, target_id, before, after) in one statement."""
    if not rows:
        return
    frame = pd.DataFrame(
        {
            "actor": [actor.username] * len(rows),
            "action": [r[0] for r in rows],
            "target_type": [r[1] for r in rows],
            "target_id": [str(r[2]) for r in rows],
            "before": [_to_json(r[3]) for r in rows],
            "after": [_to_json(r[4]) for r in rows],
        }
    )
    cur.register("audit_rows", frame)
    try:
        cur.execute(
            "INSERT INTO audit_log (actor, action, target_type, target_id, before, after) "
            "SELECT actor, action, target_type, target_id, before, after FROM audit_rows"
        )
    finally:
        cur.unregister("audit_rows")


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
    clauses, params = ["TRUE"], []
    if since is not None:
        clauses.append("happened_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("happened_at <= ?")
        params.append(until)
    if user:
        clauses.append("actor = ?")
        params.append(user)
    if action:
        clauses.append("action = ?")
        params.append(action)
    if target:
        clauses.append("(target_type ILIKE ? OR target_id ILIKE ?)")
        params.extend([f"%{target}%", f"%{target}%"])
    params.append(limit)
    return ctx.db.query_df(
        "SELECT id, happened_at, actor, action, target_type, target_id, before, after "
        f"FROM audit_log WHERE {' AND '.join(clauses)} ORDER BY id DESC LIMIT ?",
        params,
    )


def audit_actions(ctx: ServiceContext, actor: Actor) -> list[str]:
    require_admin(actor)
    return [r[0] for r in ctx.db.query("SELECT DISTINCT action FROM audit_log ORDER BY 1")]
