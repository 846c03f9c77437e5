"""Time-boxed allocations: which of a server's allocations reach their start or pass their end
day, and the state change that follows (scheduled -> pending; ended -> expiring or expired).

Both are one SQL predicate over the allocations table (no per-row Python over the estate); a
pass with nothing due reads one EXISTS and writes nothing.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import pandas as pd

from vlm.store.database import Database
from vlm.store.frames import NOW, affected, registered

# Rows of one server ($sid) whose start day has come or whose end day has passed ($today).
DUE_WHERE = """
a.server_feature_id IN (SELECT id FROM server_features WHERE server_id = $sid)
AND ((a.state = 'scheduled' AND a.starts_on <= $today)
     OR (a.ends_on < $today
         AND a.state IN ('scheduled', 'pending', 'applied', 'failed', 'disabled')))
"""

DUE_EXISTS_SQL = f"""SELECT EXISTS (SELECT 1 FROM allocations a WHERE {DUE_WHERE})"""

DUE_ROWS_SQL = f"""
SELECT a.id, a.pool_id, a.feature_name, a.feature_version, a.host_type, a.host_id, a.count,
    a.description, a.state, a.starts_on, a.ends_on
FROM allocations a WHERE {DUE_WHERE} ORDER BY a.id
"""

# An ended row that never reached a server (scheduled, failed) is expired at once; one that may
# be on it is expiring until the reconciler has taken it off (then expired).
ADVANCE_SQL = f"""
UPDATE allocations SET state = CASE
        WHEN ends_on < $today AND state IN ('scheduled', 'failed') THEN 'expired'
        WHEN ends_on < $today THEN 'expiring'
        ELSE 'pending' END,
    attempts = 0, next_attempt_at = NULL, updated_at = {NOW}
WHERE id IN (SELECT a.id FROM allocations a WHERE {DUE_WHERE})
"""

ROW_COLUMNS = (
    "id",
    "pool_id",
    "feature_name",
    "feature_version",
    "host_type",
    "host_id",
    "count",
    "description",
    "state",
    "starts_on",
    "ends_on",
)


def any_due(db: Database, server_id: int, today: date) -> bool:
    """True when an allocation of the server starts or ends as of today."""
    return bool(db.scalar(DUE_EXISTS_SQL, {"sid": server_id, "today": today}))


def advance(cur: duckdb.DuckDBPyConnection, server_id: int, today: date) -> list[dict[str, Any]]:
    """Move the server's due allocations on (see ADVANCE_SQL); returns each as it was before."""
    params = {"sid": server_id, "today": today}
    result = cur.execute(DUE_ROWS_SQL, params)
    rows = [dict(zip(ROW_COLUMNS, row, strict=True)) for row in result.fetchall()]
    if rows:
        cur.execute(ADVANCE_SQL, params)
    return rows


def finish_expiring(cur: duckdb.DuckDBPyConnection, ids: list[int]) -> int:
    """Expiring allocations whose reservation is gone from the server become expired."""
    if not ids:
        return 0
    frame = pd.DataFrame({"id": pd.Series(ids, dtype="int64")})
    with registered(cur, "sync_expired", frame):
        return affected(
            cur.execute(
                f"""UPDATE allocations SET state = 'expired', updated_at = {NOW}
                WHERE state = 'expiring' AND id IN (SELECT id FROM sync_expired)"""
            )
        )
