"""Time boxes at the reconciler's boundary: before a server's pass, its allocations whose start
day has come go pending (so the pass pushes them) and those whose end day has passed go expiring
(so the pass takes them off through the same ownership-checked removal as any other) or straight
to expired when they never reached the server. Each change is audited by the system actor;
nothing is deleted."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import duckdb

from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR, AllocationState
from vlm.store import timebox as store
from vlm.store.audit import AuditRow, insert_audit_rows

SCHEDULED = AllocationState.SCHEDULED.value


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, default=_day_text, sort_keys=True)


def _day_text(value: object) -> str:
    return value.isoformat() if isinstance(value, date | datetime) else str(value)


def _audit_row(row: dict[str, Any], today: date) -> AuditRow:
    """allocation.start (scheduled -> pending) or allocation.expire; an expiry frees the
    count in the pool's trend (its after carries no count)."""
    allocation_id = int(row["id"])
    pool_id = int(row["pool_id"])
    ended = row["ends_on"] is not None and row["ends_on"] < today
    if not ended:
        after = {**row, "state": AllocationState.PENDING.value}
        return (
            SYSTEM_ACTOR.username,
            "allocation.start",
            "allocation",
            str(allocation_id),
            _json(row),
            _json(after),
            pool_id,
            0,
        )
    never_held = row["state"] in (SCHEDULED, AllocationState.FAILED.value)
    state = AllocationState.EXPIRED if never_held else AllocationState.EXPIRING
    after = {"id": allocation_id, "pool_id": pool_id, "state": state.value, "count": 0}
    return (
        SYSTEM_ACTOR.username,
        "allocation.expire",
        "allocation",
        str(allocation_id),
        _json(row),
        _json(after),
        pool_id,
        -int(row["count"]),
    )


def advance_time_boxes(ctx: ServiceContext, server_id: int) -> int:
    """Start and end the server's due allocations as of ctx.today(); how many moved on. A
    pass with nothing due reads one EXISTS and writes nothing."""
    today = ctx.today()
    if not store.any_due(ctx.db, server_id, today):
        return 0

    def write(cur: duckdb.DuckDBPyConnection) -> int:
        rows = store.advance(cur, server_id, today)
        insert_audit_rows(cur, [_audit_row(row, today) for row in rows])
        return len(rows)

    return ctx.db.write(write)
