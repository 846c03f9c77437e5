"""Allocations: a pool's ledger rows, the writes of an allocation change, the allocation lists."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import date
from typing import Any

import duckdb
import pandas as pd

from vlm.store.access import Scope
from vlm.store.database import Database

LEDGER_PORTIONS = """
SELECT pp.server_feature_id, sf.server_id, s.name, sf.feature_name, sf.feature_version,
    pp.quantity,
    (SELECT SUM(quantity) FROM pool_portions x WHERE x.server_feature_id = sf.id)::INTEGER,
    sf.total, sf.reserved_by_others
FROM pool_portions pp
JOIN server_features sf ON sf.id = pp.server_feature_id
JOIN license_servers s ON s.id = sf.server_id
WHERE pp.pool_id = ?
"""

LIVE_ALLOCATIONS = """
SELECT id, server_feature_id, feature_name, feature_version, host_type, host_id,
    count, description, state, starts_on, ends_on, CAST(created_at AS DATE) AS created_on
FROM allocations WHERE pool_id = ? AND state <> 'removing'
"""

INSERT_ALLOCATIONS = """
INSERT INTO allocations (pool_id, server_feature_id, feature_name, feature_version, host_type,
    host_id, count, description, state, created_by, starts_on, ends_on)
SELECT pool_id, server_feature_id, feature_name, feature_version, host_type, host_id, count,
    description, state, created_by, CAST(starts_on AS DATE), CAST(ends_on AS DATE)
FROM new_allocations
RETURNING id
"""

NEW_ALLOCATION_COLUMNS = (
    "server_feature_id",
    "feature_name",
    "feature_version",
    "host_type",
    "host_id",
    "count",
    "description",
    "state",
    "created_by",
    "starts_on",
    "ends_on",
)
DAY_COLUMNS = ("starts_on", "ends_on")

UPDATABLE_COLUMNS = frozenset({"count", "description", "state", "ends_on"})

# An allocation's phase, from its state: scheduled (its start has not come), expired (its end
# has passed: being taken off its server, or history) or active.
PHASE = """CASE WHEN a.state = 'scheduled' THEN 'scheduled'
    WHEN a.state IN ('expiring', 'expired') THEN 'expired' ELSE 'active' END AS phase"""

ALLOCATION_COLUMNS = f"""
    a.id, a.pool_id, p.name AS pool_name, a.feature_name, a.feature_version, a.host_type,
    a.host_id, a.count, a.description, a.state, a.last_error, s.name AS server_name,
    a.created_at, a.created_by, a.updated_at, a.applied_at,
    CAST(a.starts_on AS VARCHAR) AS starts_on, CAST(a.ends_on AS VARCHAR) AS ends_on,
    {PHASE}
"""

POOL_ALLOCATIONS = f"""
SELECT {ALLOCATION_COLUMNS} FROM allocations a JOIN pools p ON p.id = a.pool_id
JOIN server_features sf ON sf.id = a.server_feature_id
JOIN license_servers s ON s.id = sf.server_id
WHERE {{where}} ORDER BY a.id
"""

ALLOCATION_STATES = """
SELECT a.id, a.state, a.last_error FROM allocations a JOIN pools p ON p.id = a.pool_id
WHERE a.id IN ({marks}) AND {scope}
"""

VISIBLE_ALLOCATIONS = f"""SELECT v.name AS vlm_name, {ALLOCATION_COLUMNS} FROM allocations a
    JOIN pools p ON p.id = a.pool_id JOIN vlms v ON v.id = p.vlm_id
    JOIN server_features sf ON sf.id = a.server_feature_id
    JOIN license_servers s ON s.id = sf.server_id
    WHERE a.state <> 'removing' AND {{scope}} ORDER BY a.pool_id, a.id"""


def _day_text(day: date | None) -> str | None:
    """A day as ISO text for a registered frame (cast back to DATE in SQL on both engines)."""
    return None if day is None else day.isoformat()


def _marks(ids: Collection[object]) -> str:
    return ", ".join("?" for _ in ids)


def ledger_portions(cur: duckdb.DuckDBPyConnection, pool_id: int) -> list[tuple]:
    """Per portion of the pool: (server feature id, server id, server name, feature name,
    version, quantity, quantity pooled by every pool on that server feature, its total, reserved
    outside VLM)."""
    return cur.execute(LEDGER_PORTIONS, [pool_id]).fetchall()


def live_allocations(cur: duckdb.DuckDBPyConnection, pool_id: int) -> list[dict[str, Any]]:
    """The pool's allocations that are not being removed, as dicts keyed by column."""
    result = cur.execute(LIVE_ALLOCATIONS, [pool_id])
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def insert_allocations(
    cur: duckdb.DuckDBPyConnection, pool_id: int, rows: Sequence[Mapping[str, Any]]
) -> list[int]:
    """Add allocations to a pool in one statement; returns their new ids in the rows' order
    (starts_on / ends_on are optional: no day given is none)."""
    if not rows:
        return []
    columns = list(NEW_ALLOCATION_COLUMNS)
    frame = pd.DataFrame(
        [
            {c: _day_text(row.get(c)) if c in DAY_COLUMNS else row[c] for c in columns}
            for row in rows
        ],
        columns=columns,
    )
    frame.insert(0, "pool_id", pool_id)
    cur.register("new_allocations", frame)
    try:
        return [r[0] for r in cur.execute(INSERT_ALLOCATIONS).fetchall()]
    finally:
        cur.unregister("new_allocations")


def update_allocation(
    cur: duckdb.DuckDBPyConnection,
    allocation_id: int,
    changes: Mapping[str, Any],
    *,
    reset_attempts: bool = False,
) -> None:
    """Set the given columns (count, description, state, ends_on) of an allocation and its
    updated_at; reset_attempts also clears its retry bookkeeping (attempts, next attempt, last
    error)."""
    unknown = set(changes) - UPDATABLE_COLUMNS
    if unknown:
        raise ValueError(f"allocation columns that cannot be set: {sorted(unknown)}")
    sets = ", ".join(f"{column} = ?" for column in changes)
    reset = ", attempts = 0, next_attempt_at = NULL, last_error = NULL" if reset_attempts else ""
    cur.execute(
        f"""UPDATE allocations SET {sets}{reset}, updated_at = current_timestamp WHERE id = ?""",
        [*changes.values(), allocation_id],
    )


def delete_allocations(cur: duckdb.DuckDBPyConnection, ids: Collection[int]) -> None:
    """Delete allocation rows outright (failed ones never reached a server)."""
    if ids:
        ordered = sorted(ids)
        cur.execute(f"""DELETE FROM allocations WHERE id IN ({_marks(ordered)})""", ordered)


def mark_removing(cur: duckdb.DuckDBPyConnection, ids: Collection[int]) -> None:
    """Mark allocations removing: the reconciler takes them off their servers, then deletes them."""
    if ids:
        ordered = sorted(ids)
        cur.execute(
            f"""UPDATE allocations SET state = 'removing', updated_at = current_timestamp
            WHERE id IN ({_marks(ordered)})""",
            ordered,
        )


def pool_allocations(
    db: Database,
    pool_id: int,
    feature: tuple[str, str] | None = None,
    *,
    include_removing: bool = False,
) -> pd.DataFrame:
    """A pool's allocations (of one feature when given; removing ones on request), by id."""
    clauses, params = ["a.pool_id = ?"], [pool_id]
    if feature is not None:
        clauses.append("a.feature_name = ? AND a.feature_version = ?")
        params.extend(feature)
    if not include_removing:
        clauses.append("a.state <> 'removing'")
    frame = db.query_df(POOL_ALLOCATIONS.format(where=" AND ".join(clauses)), params)
    return days_as_dates(frame)


def days_as_dates(frame: pd.DataFrame) -> pd.DataFrame:
    """The start and end columns (read as ISO text: a day has no time zone, and exports must
    not label it with one) as dates, None when empty."""
    for column in DAY_COLUMNS:
        if column in frame.columns:
            values = pd.to_datetime(frame[column])
            frame[column] = values.dt.date.astype(object).where(values.notna(), None)
    return frame


def allocation_states(db: Database, ids: Sequence[int], scope: Scope) -> pd.DataFrame:
    """id, state and last error of the given allocations whose pool is in scope (alias p)."""
    where, params = scope
    return db.query_df(ALLOCATION_STATES.format(marks=_marks(ids), scope=where), [*ids, *params])


def visible_allocations_sql(scope: Scope) -> tuple[str, list[object]]:
    """The SQL and parameters of every live allocation of the pools in scope (alias p), with its
    VLM name, by pool and id."""
    where, params = scope
    return VISIBLE_ALLOCATIONS.format(scope=where), params
