"""The quantity_requests table: a manager asks for more of a feature for a pool, an admin decides.

A request names its feature by (name, version), as a pool's quantities do: the pool's portions
per server are planned from that by the pool service when a request is approved.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from vlm.store.access import Scope
from vlm.store.database import Database
from vlm.store.figures import COUNTED, VLM_FEATURE_FIGURES
from vlm.store.frames import NOW

OPEN = "open"
REQUEST_COLUMNS = (
    "id, pool_id, feature_name, feature_version, quantity, reason, requested_by, requested_at, "
    "state, granted, decided_by, decided_at, decision_reason"
)

# Each request with its pool, the pool's quantity of the feature now and the VLM's availability
# of it now (the accounting figures of architecture.md §3, read from VLM_FEATURE_FIGURES).
REQUESTS_SQL = f"""
WITH vf AS ({VLM_FEATURE_FIGURES}),
held AS (
    SELECT pp.pool_id, sf.feature_name, sf.feature_version, SUM(pp.quantity) AS quantity
    FROM pool_portions pp JOIN server_features sf ON sf.id = pp.server_feature_id
    GROUP BY 1, 2, 3
)
SELECT r.id, r.pool_id, p.name AS pool_name, v.name AS vlm_name, p.manager,
    r.feature_name, r.feature_version, r.quantity, r.reason, r.requested_by, r.requested_at,
    r.state, r.granted, r.decided_by, r.decided_at, r.decision_reason,
    COALESCE(held.quantity, 0)::INTEGER AS pool_quantity,
    COALESCE(vf.available, 0)::INTEGER AS vlm_available
FROM quantity_requests r
JOIN pools p ON p.id = r.pool_id
JOIN vlms v ON v.id = p.vlm_id
LEFT JOIN held ON held.pool_id = r.pool_id AND held.feature_name = r.feature_name
    AND held.feature_version = r.feature_version
LEFT JOIN vf ON vf.vlm_id = p.vlm_id AND vf.feature_name = r.feature_name
    AND vf.feature_version = r.feature_version
"""


def requests_frame(db: Database, scope: Scope, *, open_only: bool) -> pd.DataFrame:
    """Requests about the pools in `scope` (open ones, or every one), newest first."""
    where, params = scope
    state = f" AND r.state = '{OPEN}'" if open_only else ""
    return db.query_df(
        f"{REQUESTS_SQL} WHERE {where}{state} ORDER BY r.requested_at DESC, r.id DESC",
        list(params),
    )


def open_count(db: Database) -> int:
    """Open requests about pools that still exist."""
    return int(
        db.scalar(
            f"""SELECT count(*) FROM quantity_requests r JOIN pools p ON p.id = r.pool_id
            WHERE r.state = '{OPEN}'"""
        )
    )


def vlm_carries(cur: duckdb.DuckDBPyConnection, pool_id: int, name: str, version: str) -> bool:
    """Whether the pool's VLM exposes a counted concurrent feature of that name and version."""
    found = cur.execute(
        f"""SELECT count(*) FROM ({VLM_FEATURE_FIGURES}) AS f JOIN pools p ON p.vlm_id = f.vlm_id
        WHERE p.id = ? AND f.feature_name = ? AND f.feature_version = ?
          AND f.license_kind = '{COUNTED}'""",
        [pool_id, name, version],
    ).fetchone()
    return bool(found[0])


def requestable_features(db: Database, pool_id: int) -> pd.DataFrame:
    """The counted features of the pool's VLM: the pool's quantity and the VLM's availability."""
    return db.query_df(
        f"""WITH vf AS ({VLM_FEATURE_FIGURES}),
        held AS (
            SELECT sf.feature_name, sf.feature_version, SUM(pp.quantity) AS quantity
            FROM pool_portions pp JOIN server_features sf ON sf.id = pp.server_feature_id
            WHERE pp.pool_id = ? GROUP BY 1, 2
        )
        SELECT vf.feature_name, vf.feature_version,
            COALESCE(held.quantity, 0)::INTEGER AS pool_quantity,
            vf.available::INTEGER AS vlm_available
        FROM vf JOIN pools p ON p.vlm_id = vf.vlm_id
        LEFT JOIN held ON held.feature_name = vf.feature_name
            AND held.feature_version = vf.feature_version
        WHERE p.id = ? AND vf.license_kind = '{COUNTED}'
        ORDER BY vf.feature_name, vf.feature_version""",
        [pool_id, pool_id],
    )


def insert_request(cur: duckdb.DuckDBPyConnection, row: dict[str, Any]) -> int:
    found = cur.execute(
        """INSERT INTO quantity_requests (pool_id, feature_name, feature_version, quantity,
            reason, requested_by) VALUES (?, ?, ?, ?, ?, ?) RETURNING id""",
        [
            row["pool_id"],
            row["feature_name"],
            row["feature_version"],
            row["quantity"],
            row["reason"],
            row["requested_by"],
        ],
    ).fetchone()
    return int(found[0])


def request_in(cur: duckdb.DuckDBPyConnection, request_id: int) -> dict[str, Any] | None:
    """One request as stored now (inside a write), with its pool's manager and name now."""
    cur.execute(
        f"""SELECT r.{REQUEST_COLUMNS.replace(", ", ", r.")}, p.manager,
            v.name || ' / ' || p.name AS pool_label
        FROM quantity_requests r JOIN pools p ON p.id = r.pool_id JOIN vlms v ON v.id = p.vlm_id
        WHERE r.id = ?""",
        [request_id],
    )
    row = cur.fetchone()
    if row is None:
        return None
    return dict(zip([d[0] for d in cur.description], row, strict=True))


def decide(
    cur: duckdb.DuckDBPyConnection,
    request_id: int,
    state: str,
    granted: int | None,
    decided_by: str,
    reason: str,
) -> None:
    """Close an open request with its decision (approved, partly approved, declined,
    withdrawn)."""
    cur.execute(
        f"""UPDATE quantity_requests SET state = ?, granted = ?, decided_by = ?,
            decided_at = {NOW}, decision_reason = ? WHERE id = ? AND state = '{OPEN}'""",
        [state, granted, decided_by, reason, request_id],
    )


def enabled_admins(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Every enabled admin's username (they hear of new requests)."""
    rows = cur.execute(
        "SELECT username FROM users WHERE role = 'admin' AND NOT disabled ORDER BY username"
    ).fetchall()
    return [str(r[0]) for r in rows]
