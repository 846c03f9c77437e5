"""The audit_log table: one row per change (when, who, action, target, before, after as JSON)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import duckdb
import pandas as pd

from vlm.store.database import Database

AuditRow = tuple[str, str, str, str, str | None, str | None, int | None, int | None]
"""(actor, action, target_type, target_id, before JSON, after JSON, pool_id, count_change)"""

AUDIT_COLUMNS = (
    "actor",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "pool_id",
    "count_change",
)
INSERT_COLUMNS = ", ".join(AUDIT_COLUMNS)


def insert_audit_row(cur: duckdb.DuckDBPyConnection, row: AuditRow) -> None:
    cur.execute(
        f"""INSERT INTO audit_log ({INSERT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
        list(row),
    )


def insert_audit_rows(cur: duckdb.DuckDBPyConnection, rows: Sequence[AuditRow]) -> None:
    """Insert many audit rows in one statement."""
    if not rows:
        return
    frame = pd.DataFrame(
        {name: [row[i] for row in rows] for i, name in enumerate(AUDIT_COLUMNS)},
        columns=list(AUDIT_COLUMNS),
    ).astype({"pool_id": "Int64", "count_change": "Int64"})
    cur.register("audit_rows", frame)
    try:
        cur.execute(
            f"""INSERT INTO audit_log ({INSERT_COLUMNS})
            SELECT {INSERT_COLUMNS} FROM audit_rows"""
        )
    finally:
        cur.unregister("audit_rows")


def audit_rows(
    db: Database,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    actor: str | None = None,
    action: str | None = None,
    target: str | None = None,
    limit: int = 5000,
) -> pd.DataFrame:
    """Audit rows newest first: at or after since, at or before until, by actor, of action, and
    with target (case-insensitive, in the target type or id) when each is given."""
    clauses, params = ["TRUE"], []
    if since is not None:
        clauses.append("happened_at >= ?")
        params.append(since)
    if until is not None:
        clauses.append("happened_at <= ?")
        params.append(until)
    if actor:
        clauses.append("actor = ?")
        params.append(actor)
    if action:
        clauses.append("action = ?")
        params.append(action)
    if target:
        clauses.append("(target_type ILIKE ? OR target_id ILIKE ?)")
        params.extend([f"%{target}%", f"%{target}%"])
    params.append(limit)
    return db.query_df(
        f"""SELECT id, happened_at, actor, action, target_type, target_id, before, after
        FROM audit_log WHERE {" AND ".join(clauses)} ORDER BY id DESC LIMIT ?""",
        params,
    )


def audit_action_names(db: Database) -> list[str]:
    """Every action the audit log holds, sorted."""
    return [r[0] for r in db.query("""SELECT DISTINCT action FROM audit_log ORDER BY 1""")]
