"""The alert_rules, alerts and alert_deliveries tables, and the conditions alert rules watch.

An alert is one episode of a rule's condition holding for one subject (a pool, a server, a server
feature): its row is written when the condition starts and closed (cleared_at) when it stops, so
the history is change-only. A delivery is one message (fired, cleared or test) to one destination
of a rule, or one message to one of a user's own destinations (username set, rule_id NULL),
retried until delivered or given up, never dropped without a trace.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd

from vlm.domain import Role
from vlm.store.database import Database
from vlm.store.frames import NOW
from vlm.store.usage import HELD_USAGE_SQL

RULE_COLUMNS = "id, name, kind, threshold, pool_id, owner, destination_labels, enabled, created_at"
ALERT_COLUMNS = (
    "a.id, a.rule_id, r.name AS rule_name, r.kind, a.subject, a.title, a.detail, a.pool_id, "
    "a.opened_at, a.cleared_at, a.acknowledged_by, a.acknowledged_at"
)
DELIVERY_COLUMNS = (
    "d.id, d.rule_id, r.name AS rule_name, d.username, d.alert_id, d.event, d.destination_label, "
    "d.title, "
    "d.attempts, d.created_at, d.next_attempt_at, d.delivered_at, d.gave_up_at, d.last_error"
)

# What each kind of rule watches: rows (subject, pool_id, name, value, figures) where the
# condition holds now. `?` is the rule's threshold (or the moment it is measured against);
# Feature expiry is read by expiring_features().
POOL_FULL_SQL = """
SELECT 'pool:' || CAST(p.id AS VARCHAR) AS subject, p.id AS pool_id,
       v.name || ' / ' || p.name AS name,
       100.0 * coalesce(a.allocated, 0) / q.quantity AS value,
       CAST(coalesce(a.allocated, 0) AS VARCHAR) || ' of ' || CAST(q.quantity AS VARCHAR)
           || ' allocated' AS figures
FROM pools p
JOIN vlms v ON v.id = p.vlm_id
JOIN (SELECT pool_id, sum(quantity) AS quantity FROM pool_portions GROUP BY pool_id) q
  ON q.pool_id = p.id
LEFT JOIN (SELECT pool_id, sum(count) AS allocated FROM allocations
           WHERE state NOT IN ('removing', 'expiring', 'expired')
           GROUP BY pool_id) a ON a.pool_id = p.id
WHERE q.quantity > 0 AND 100.0 * coalesce(a.allocated, 0) / q.quantity >= ?
"""
FEATURE_EXHAUSTED_SQL = """
SELECT 'feature:' || CAST(sf.id AS VARCHAR) AS subject, NULL AS pool_id,
       s.name || ': ' || sf.feature_name || ' ' || sf.feature_version AS name,
       100.0 * least(sf.used + sf.reserved, sf.total) / sf.total AS value,
       CAST(sf.used AS VARCHAR) || ' in use and ' || CAST(sf.reserved AS VARCHAR)
           || ' reserved of ' || CAST(sf.total AS VARCHAR) AS figures
FROM server_features sf JOIN license_servers s ON s.id = sf.server_id
WHERE sf.present AND sf.total > 0 AND NOT sf.uncounted AND NOT sf.metered
  AND 100.0 * least(sf.used + sf.reserved, sf.total) / sf.total >= ?
"""
SERVER_FAILING_SQL = """
SELECT 'server:' || CAST(s.id AS VARCHAR) AS subject, NULL AS pool_id, s.name AS name,
       0.0 AS value, s.last_error AS figures
FROM license_servers s
WHERE s.last_error IS NOT NULL AND coalesce(s.last_success_at, s.created_at) <= ?
"""
OVER_COMMITTED_SQL = """
SELECT 'over:' || CAST(sf.id AS VARCHAR) AS subject, NULL AS pool_id,
       s.name || ': ' || sf.feature_name || ' ' || sf.feature_version AS name,
       CAST(p.pooled - (sf.total - sf.reserved_by_others) AS DOUBLE PRECISION) AS value,
       'pooled ' || CAST(p.pooled AS VARCHAR) || ', total ' || CAST(sf.total AS VARCHAR)
           || ' minus ' || CAST(sf.reserved_by_others AS VARCHAR) || ' reserved by others'
           AS figures
FROM server_features sf
JOIN license_servers s ON s.id = sf.server_id
JOIN (SELECT server_feature_id, sum(quantity) AS pooled FROM pool_portions
      GROUP BY server_feature_id) p ON p.server_feature_id = sf.id
WHERE p.pooled - (sf.total - sf.reserved_by_others) >= ?
"""
DRIFT_SQL = """
SELECT 'drift:' || CAST(s.id AS VARCHAR) AS subject, NULL AS pool_id, s.name AS name,
       CAST(count(*) AS DOUBLE PRECISION) AS value,
       CAST(count(*) AS VARCHAR) || ' finding(s): ' || string_agg(DISTINCT c.kind, ', ')
           AS figures
FROM sync_conflicts c JOIN license_servers s ON s.id = c.server_id
WHERE c.kind <> 'over_committed'
GROUP BY s.id, s.name
HAVING count(*) >= ?
"""
FAILING_SQL = """
SELECT 'failing:' || CAST(p.id AS VARCHAR) AS subject, p.id AS pool_id,
       v.name || ' / ' || p.name AS name, CAST(count(*) AS DOUBLE PRECISION) AS value,
       CAST(count(*) AS VARCHAR) || ' allocation(s) refused by the license server, e.g. '
           || min(a.last_error) AS figures
FROM allocations a JOIN pools p ON p.id = a.pool_id JOIN vlms v ON v.id = p.vlm_id
WHERE a.state = 'failed' AND a.updated_at <= ?
GROUP BY p.id, v.name, p.name
"""
# One subject per pool and end day: allocations still holding (or waiting for) their license
# whose end day is on or before `?` (today + N days); extended or expired ones leave it.
ENDING_SQL = """
SELECT 'ending:' || CAST(p.id AS VARCHAR) || ':' || CAST(a.ends_on AS VARCHAR) AS subject,
       p.id AS pool_id,
       v.name || ' / ' || p.name || ' ending on ' || CAST(a.ends_on AS VARCHAR) AS name,
       CAST(count(*) AS DOUBLE PRECISION) AS value,
       CAST(count(*) AS VARCHAR) || ' allocation(s) end on ' || CAST(a.ends_on AS VARCHAR)
           || ', e.g. ' || min(a.host_type || ' ' || a.host_id || ' (' || a.feature_name || ')')
           || '; extend them on the Allocations page to keep them' AS figures
FROM allocations a JOIN pools p ON p.id = a.pool_id JOIN vlms v ON v.id = p.vlm_id
WHERE a.state IN ('scheduled', 'pending', 'applied', 'failed', 'disabled')
  AND a.ends_on IS NOT NULL AND a.ends_on <= ?
GROUP BY p.id, v.name, p.name, a.ends_on
"""
EXPIRING_SQL = """
SELECT sf.id, s.name || ': ' || sf.feature_name || ' ' || sf.feature_version AS name, sf.expiry
FROM server_features sf JOIN license_servers s ON s.id = sf.server_id
WHERE sf.present AND sf.expiry IS NOT NULL AND sf.expiry <> ''
"""
IDLE_SQL = f"""
SELECT 'idle:' || CAST(held.pool_id AS VARCHAR) AS subject, held.pool_id,
       held.vlm || ' / ' || held.pool AS name, CAST(count(*) AS DOUBLE PRECISION) AS value,
       CAST(sum(held.count) AS VARCHAR) || ' reserved seat(s) nobody used, the longest since '
           || CAST(CAST(min(held.idle_since) AS DATE) AS VARCHAR) AS figures
FROM ({HELD_USAGE_SQL}) AS held
WHERE held.idle_since <= ?
GROUP BY held.pool_id, held.vlm, held.pool
"""
POOL_KINDS_SQL = {
    "pool_nearly_full": POOL_FULL_SQL,
    "allocations_failing": FAILING_SQL,
    "allocations_idle": IDLE_SQL,
    "allocation_ending": ENDING_SQL,
}
CONDITION_SQL = {
    **POOL_KINDS_SQL,
    "feature_nearly_exhausted": FEATURE_EXHAUSTED_SQL,
    "server_unreachable": SERVER_FAILING_SQL,
    "over_committed": OVER_COMMITTED_SQL,
    "drift": DRIFT_SQL,
}


def holding(db: Database, kind: str, parameter: object) -> list[tuple]:
    """Rows (subject, pool_id, name, value, figures) where a rule of `kind` holds now."""
    return db.query(CONDITION_SQL[kind], [parameter])


def expiring_features(db: Database) -> list[tuple[int, str, str]]:
    """(server feature id, name, expiry text) of every present feature that has an expiry."""
    return db.query(EXPIRING_SQL)


def owner_roles(db: Database) -> dict[str, Role]:
    """The role of every enabled user (a disabled or deleted owner's rules watch nothing)."""
    rows = db.query("SELECT username, role FROM users WHERE NOT disabled")
    return {str(name): Role(role) for name, role in rows}


def pools_by_manager(db: Database) -> dict[str, set[int]]:
    """Every manager's pools."""
    found: dict[str, set[int]] = {}
    for pool_id, manager in db.query("SELECT id, manager FROM pools"):
        found.setdefault(str(manager), set()).add(int(pool_id))
    return found


def pools_of(db: Database, manager: str) -> list[int]:
    return [int(r[0]) for r in db.query("SELECT id FROM pools WHERE manager = ?", [manager])]


# -- rules ------------------------------------------------------------------------------------


def insert_rule(cur: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> int:
    found = cur.execute(
        """
        INSERT INTO alert_rules (name, kind, threshold, pool_id, owner, destinations_encrypted,
            destination_labels, enabled)
        VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id
        """,
        [
            row["name"],
            row["kind"],
            row["threshold"],
            row["pool_id"],
            row["owner"],
            row["destinations_encrypted"],
            row["destination_labels"],
            row["enabled"],
        ],
    ).fetchone()
    return int(found[0])


def rule_in(cur: duckdb.DuckDBPyConnection, rule_id: int) -> dict[str, Any] | None:
    """One rule as stored now (inside a write), encrypted destinations included."""
    cur.execute(
        f"SELECT {RULE_COLUMNS}, destinations_encrypted FROM alert_rules WHERE id = ?", [rule_id]
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def set_rule_enabled(cur: duckdb.DuckDBPyConnection, rule_id: int, enabled: bool) -> None:
    cur.execute("UPDATE alert_rules SET enabled = ? WHERE id = ?", [enabled, rule_id])


def delete_rule(cur: duckdb.DuckDBPyConnection, rule_id: int, reason: str) -> None:
    """The rule goes; its open alerts close and its undelivered messages are given up with
    `reason` (both stay in the history)."""
    cur.execute(
        f"UPDATE alerts SET cleared_at = {NOW} WHERE rule_id = ? AND cleared_at IS NULL", [rule_id]
    )
    cur.execute(
        f"""UPDATE alert_deliveries SET gave_up_at = {NOW}, last_error = ?
        WHERE rule_id = ? AND delivered_at IS NULL AND gave_up_at IS NULL""",
        [reason, rule_id],
    )
    cur.execute("DELETE FROM alert_rules WHERE id = ?", [rule_id])


def rules_frame(db: Database, owner: str | None = None) -> pd.DataFrame:
    """Rules (every one, or those `owner` made), newest first; destinations as labels only."""
    where, params = ("WHERE r.owner = ?", [owner]) if owner is not None else ("", [])
    columns = ", ".join(f"r.{c.strip()}" for c in RULE_COLUMNS.split(","))
    return db.query_df(
        f"""SELECT {columns}, v.name || ' / ' || p.name AS pool_name FROM alert_rules r
        LEFT JOIN pools p ON p.id = r.pool_id LEFT JOIN vlms v ON v.id = p.vlm_id
        {where} ORDER BY r.id DESC""",
        params,
    )


def enabled_rules(db: Database) -> list[dict[str, Any]]:
    return db.query_dicts(
        f"SELECT {RULE_COLUMNS}, destinations_encrypted FROM alert_rules WHERE enabled ORDER BY id"
    )


# -- alerts -----------------------------------------------------------------------------------


OPEN_ALERTS_SQL = "SELECT rule_id, subject, id FROM alerts WHERE cleared_at IS NULL"


def open_alerts(db: Database) -> dict[tuple[int, str], int]:
    """(rule id, subject) → id of every alert not cleared yet (inside a write, as it stands in
    that write)."""
    rows = db.query(OPEN_ALERTS_SQL)
    return {(int(rule_id), str(subject)): int(alert_id) for rule_id, subject, alert_id in rows}


def insert_alert(
    cur: duckdb.DuckDBPyConnection,
    rule_id: int,
    subject: str,
    title: str,
    detail: str,
    pool_id: int | None,
    at: datetime,
) -> int:
    found = cur.execute(
        """INSERT INTO alerts (rule_id, subject, title, detail, pool_id, opened_at)
        VALUES (?, ?, ?, ?, ?, ?) RETURNING id""",
        [rule_id, subject, title, detail, pool_id, at],
    ).fetchone()
    return int(found[0])


def clear_alert(cur: duckdb.DuckDBPyConnection, alert_id: int, at: datetime) -> dict[str, Any]:
    """Close an open alert; returns its rule id, title and detail."""
    cur.execute(
        "UPDATE alerts SET cleared_at = ? WHERE id = ? AND cleared_at IS NULL", [at, alert_id]
    )
    row = cur.execute(
        "SELECT rule_id, title, detail FROM alerts WHERE id = ?", [alert_id]
    ).fetchone()
    return {"rule_id": int(row[0]), "title": str(row[1]), "detail": str(row[2])}


def _alert_scope(pools: Sequence[int] | None) -> tuple[str, list[object]]:
    if pools is None:
        return "", []
    if not pools:
        return " AND FALSE", []
    return f" AND a.pool_id IN ({', '.join('?' for _ in pools)})", list(pools)


def alerts_frame(db: Database, *, open_only: bool, pools: Sequence[int] | None) -> pd.DataFrame:
    """Alerts (open ones, or every one) newest first; `pools` limits them to alerts about those
    pools (None: every alert)."""
    where, params = _alert_scope(pools)
    state = " AND a.cleared_at IS NULL" if open_only else ""
    return db.query_df(
        f"""SELECT {ALERT_COLUMNS} FROM alerts a LEFT JOIN alert_rules r ON r.id = a.rule_id
        WHERE TRUE{state}{where} ORDER BY a.opened_at DESC, a.id DESC""",
        params,
    )


def unacknowledged_open_count(db: Database, pools: Sequence[int] | None) -> int:
    where, params = _alert_scope(pools)
    return int(
        db.scalar(
            f"""SELECT count(*) FROM alerts a WHERE a.cleared_at IS NULL
            AND a.acknowledged_at IS NULL{where}""",
            params,
        )
    )


def alerts_in(cur: duckdb.DuckDBPyConnection, alert_ids: Sequence[int]) -> list[dict[str, Any]]:
    marks = ", ".join("?" for _ in alert_ids)
    cur.execute(
        f"""SELECT id, pool_id, title, acknowledged_at FROM alerts WHERE id IN ({marks})""",
        list(alert_ids),
    )
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def acknowledge(cur: duckdb.DuckDBPyConnection, alert_ids: Sequence[int], username: str) -> None:
    marks = ", ".join("?" for _ in alert_ids)
    cur.execute(
        f"""UPDATE alerts SET acknowledged_by = ?, acknowledged_at = {NOW}
        WHERE id IN ({marks}) AND acknowledged_at IS NULL""",
        [username, *alert_ids],
    )


# -- deliveries -------------------------------------------------------------------------------


def insert_deliveries(cur: duckdb.DuckDBPyConnection, rows: Sequence[tuple]) -> list[int]:
    """Rows of (rule_id, alert_id, event, destination index, label, title, body); their ids."""
    ids = []
    for row in rows:
        found = cur.execute(
            """INSERT INTO alert_deliveries (rule_id, alert_id, event, destination,
                destination_label, title, body) VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id""",
            list(row),
        ).fetchone()
        ids.append(int(found[0]))
    return ids


def insert_user_deliveries(
    cur: duckdb.DuckDBPyConnection, username: str, event: str, rows: Sequence[tuple[str, str, str]]
) -> list[int]:
    """Messages to a user's own destinations: rows of (label, title, body) in destination
    order; their ids."""
    ids = []
    for index, (label, title, body) in enumerate(rows):
        found = cur.execute(
            """INSERT INTO alert_deliveries (username, event, destination, destination_label,
                title, body) VALUES (?, ?, ?, ?, ?, ?) RETURNING id""",
            [username, event, index, label, title, body],
        ).fetchone()
        ids.append(int(found[0]))
    return ids


def due_deliveries(db: Database, now: datetime, ids: Sequence[int] | None = None) -> list[dict]:
    """Undelivered messages whose next attempt is due (or exactly these ids, due or not), oldest
    first."""
    if ids:
        when, params = f"d.id IN ({', '.join('?' for _ in ids)})", list(ids)
    else:
        when, params = "d.next_attempt_at <= ?", [now]
    return db.query_dicts(
        f"""SELECT d.id, d.rule_id, d.username, d.event, d.destination, d.destination_label,
               d.title, d.body, d.attempts,
               CASE WHEN d.rule_id IS NULL THEN u.notify_destinations_encrypted
                    ELSE r.destinations_encrypted END AS destinations_encrypted
        FROM alert_deliveries d LEFT JOIN alert_rules r ON r.id = d.rule_id
        LEFT JOIN users u ON u.username = d.username
        WHERE d.delivered_at IS NULL AND d.gave_up_at IS NULL AND {when}
        ORDER BY d.id""",
        params,
    )


def mark_delivered(cur: duckdb.DuckDBPyConnection, delivery_id: int, at: datetime) -> None:
    cur.execute(
        """UPDATE alert_deliveries SET delivered_at = ?, attempts = attempts + 1,
        last_error = NULL WHERE id = ?""",
        [at, delivery_id],
    )


def mark_failed(
    cur: duckdb.DuckDBPyConnection,
    delivery_id: int,
    error: str,
    next_attempt_at: datetime,
    gave_up_at: datetime | None,
) -> None:
    cur.execute(
        """UPDATE alert_deliveries SET attempts = attempts + 1, last_error = ?,
        next_attempt_at = ?, gave_up_at = ? WHERE id = ?""",
        [error, next_attempt_at, gave_up_at, delivery_id],
    )


def deliveries_frame(db: Database, owner: str | None = None, limit: int = 500) -> pd.DataFrame:
    """The latest deliveries (every one, or those of the rules `owner` made and those sent to
    `owner` personally), newest first."""
    where, params = (
        ("WHERE r.owner = ? OR d.username = ?", [owner, owner]) if owner is not None else ("", [])
    )
    return db.query_df(
        f"""SELECT {DELIVERY_COLUMNS} FROM alert_deliveries d
        LEFT JOIN alert_rules r ON r.id = d.rule_id {where}
        ORDER BY d.id DESC LIMIT {int(limit)}""",
        params,
    )
