"""The SQL the sync needs: inventory upserts, mirror replacement, desired state, outcomes, drift.

Functions taking `cur` run inside a caller's `Database.write` transaction; functions taking `db`
are reads. Bulk data always travels as a registered DataFrame (`INSERT ... SELECT FROM frame`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from vlm.domain import GROUP_NAME_MAX_LENGTH, redact_userinfo
from vlm.store import Database

NOW = "current_timestamp::TIMESTAMP"
MAX_BACKOFF_SECONDS = 60

MIRROR_COLUMNS = [
    "server_id",
    "group_id",
    "group_name",
    "owned",
    "reservation_id",
    "host_type",
    "host_id",
    "entry_id",
    "feature_name",
    "feature_version",
    "count",
    "entry_state",
]
MIRROR_TYPES = {
    "server_id": pa.int64(),
    "group_id": pa.int64(),
    "group_name": pa.string(),
    "owned": pa.bool_(),
    "reservation_id": pa.int64(),
    "host_type": pa.string(),
    "host_id": pa.string(),
    "entry_id": pa.int64(),
    "feature_name": pa.string(),
    "feature_version": pa.string(),
    "count": pa.int64(),
    "entry_state": pa.string(),
}
FEATURE_DTYPES = {
    "feature_name": "object",
    "feature_version": "object",
    "total": "int64",
    "used": "int64",
    "reserved": "int64",
    "reserved_by_others": "int64",
    "concurrent": "bool",
    "uncounted": "bool",
    "metered": "bool",
    "expiry": "object",
    "slices": "int64",
}
OUTCOME_DTYPES = {"id": "int64", "count": "int64", "state": "object", "message": "object"}


def frame(rows: list[tuple], dtypes: dict[str, str]) -> pd.DataFrame:
    """A DataFrame with fixed column types, also when there are no rows (built column by
    column: about twice as fast as from_records + astype for the mirror's 10,000s of rows)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(dtypes)
    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=dtype)
            for (name, dtype), values in zip(dtypes.items(), columns, strict=True)
        }
    )


@contextmanager
def registered(
    cur: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame | pa.Table
) -> Iterator[None]:
    """Expose df to SQL as `name` for the duration of the block."""
    cur.register(name, df)
    try:
        yield
    finally:
        cur.unregister(name)


def _affected(result: duckdb.DuckDBPyConnection) -> int:
    rows = result.fetchall()
    return int(rows[0][0]) if rows else 0


# -- license servers ---------------------------------------------------------------------------

SERVER_COLUMNS = (
    "id, name, base_url, instance, username, password_encrypted, verify_tls, ca_path, "
    "timeout_seconds, status, last_sync_at, last_success_at, last_error, last_latency_ms"
)


def load_server(db: Database, server_id: int) -> dict[str, Any] | None:
    rows = db.query_dicts(f"SELECT {SERVER_COLUMNS} FROM license_servers WHERE id = ?", [server_id])
    return rows[0] if rows else None


def load_servers(db: Database) -> list[dict[str, Any]]:
    return db.query_dicts(f"SELECT {SERVER_COLUMNS} FROM license_servers ORDER BY name, id")


def record_server_success(
    cur: duckdb.DuckDBPyConnection, server_id: int, latency_ms: float
) -> None:
    cur.execute(
        f"UPDATE license_servers SET status = 'ok', last_sync_at = {NOW}, "
        f"last_success_at = {NOW}, last_error = NULL, last_latency_ms = ? WHERE id = ?",
        [latency_ms, server_id],
    )


def record_server_error(
    cur: duckdb.DuckDBPyConnection, server_id: int, message: str, latency_ms: float | None
) -> None:
    cur.execute(
        f"UPDATE license_servers SET status = 'error', last_sync_at = {NOW}, last_error = ?, "
        "last_latency_ms = coalesce(?, last_latency_ms) WHERE id = ?",
        [redact_userinfo(message), latency_ms, server_id],
    )


# -- inventory ---------------------------------------------------------------------------------


def upsert_features(cur: duckdb.DuckDBPyConnection, server_id: int, features: pd.DataFrame) -> None:
    """Insert or update the listed features of one server (present again, fresh figures)."""
    if features.empty:
        return
    with registered(cur, "sync_features_in", features):
        cur.execute(
            f"""
            INSERT INTO server_features (server_id, feature_name, feature_version, total, used,
                reserved, reserved_by_others, concurrent, uncounted, metered, expiry, slices,
                present, updated_at)
            SELECT ?, feature_name, feature_version, total, used, reserved, reserved_by_others,
                concurrent, uncounted, metered, expiry, slices, TRUE, {NOW}
            FROM sync_features_in
            ON CONFLICT (server_id, feature_name, feature_version) DO UPDATE SET
                total = excluded.total, used = excluded.used, reserved = excluded.reserved,
                reserved_by_others = excluded.reserved_by_others,
                concurrent = excluded.concurrent, uncounted = excluded.uncounted,
                metered = excluded.metered, expiry = excluded.expiry, slices = excluded.slices,
                present = TRUE, updated_at = excluded.updated_at
            """,
            [server_id],
        )


def mark_absent_features(
    cur: duckdb.DuckDBPyConnection, server_id: int, absent: list[tuple[str, str]]
) -> None:
    """Features the server no longer lists keep their row (portions point at it) with total 0."""
    if not absent:
        return
    keys = frame(absent, {"feature_name": "object", "feature_version": "object"})
    with registered(cur, "sync_absent", keys):
        cur.execute(
            f"""
            UPDATE server_features SET present = FALSE, total = 0, used = 0, reserved = 0,
                reserved_by_others = coalesce((
                    SELECT sum(m.count) FROM reservation_mirror m
                    WHERE m.server_id = server_features.server_id AND NOT m.owned
                      AND m.feature_name = server_features.feature_name
                      AND m.feature_version = server_features.feature_version), 0),
                updated_at = {NOW}
            WHERE server_id = ? AND EXISTS (
                SELECT 1 FROM sync_absent l
                WHERE l.feature_name = server_features.feature_name
                  AND l.feature_version = server_features.feature_version)
            """,
            [server_id],
        )


STORED_FEATURE_COLUMNS = (
    "id, feature_name, feature_version, total, used, reserved, reserved_by_others, concurrent, "
    "uncounted, metered, expiry, slices, present"
)


def stored_features(cur: duckdb.DuckDBPyConnection, server_id: int) -> list[tuple]:
    """One server's feature rows as stored now (STORED_FEATURE_COLUMNS order)."""
    return cur.execute(
        f"SELECT {STORED_FEATURE_COLUMNS} FROM server_features WHERE server_id = ?", [server_id]
    ).fetchall()


def insert_changed_snapshots(
    cur: duckdb.DuckDBPyConnection, server_id: int, previous: pd.DataFrame
) -> int:
    """Add a snapshot row for every feature of the server whose figures moved.

    `previous` holds the (id, total, used, reserved) read before this pull stored its own. Every
    pull records a snapshot for each change it stores, so those figures are the features' last
    snapshot rows: comparing with them avoids reading the whole history. New features get
    their first row.
    """
    with registered(cur, "sync_previous", previous):
        result = cur.execute(
            f"""
            INSERT INTO utilization_snapshots (server_feature_id, taken_at, total, used, reserved)
            SELECT sf.id, {NOW}, sf.total, sf.used, sf.reserved
            FROM server_features sf LEFT JOIN sync_previous p ON p.id = sf.id
            WHERE sf.server_id = $sid
              AND (p.id IS NULL OR p.total <> sf.total OR p.used <> sf.used
                   OR p.reserved <> sf.reserved)
            """,
            {"sid": server_id},
        )
        return _affected(result)


def replace_mirror(cur: duckdb.DuckDBPyConnection, server_id: int, rows: pa.Table) -> None:
    """Replace every mirrored reservation row of one server."""
    cur.execute("DELETE FROM reservation_mirror WHERE server_id = ?", [server_id])
    _insert_mirror(cur, rows)


def replace_mirror_groups(
    cur: duckdb.DuckDBPyConnection, server_id: int, group_names: list[str], rows: pa.Table
) -> None:
    """Replace the mirrored rows of the named groups of one server."""
    if not group_names:
        return
    names = pd.DataFrame({"group_name": pd.Series(group_names, dtype="object")})
    with registered(cur, "sync_touched_groups", names):
        cur.execute(
            "DELETE FROM reservation_mirror WHERE server_id = ? "
            "AND group_name IN (SELECT group_name FROM sync_touched_groups)",
            [server_id],
        )
    _insert_mirror(cur, rows)


def _insert_mirror(cur: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
    if rows.num_rows == 0:
        return
    with registered(cur, "sync_mirror_in", rows):
        cur.execute(
            f"INSERT INTO reservation_mirror ({', '.join(MIRROR_COLUMNS)}) "
            f"SELECT {', '.join(MIRROR_COLUMNS)} FROM sync_mirror_in"
        )


def update_reserved_by_others(cur: duckdb.DuckDBPyConnection, server_id: int) -> None:
    """Recompute reserved_by_others of one server's features from the mirror's foreign groups."""
    cur.execute(
        """
        UPDATE server_features SET reserved_by_others = coalesce((
            SELECT sum(m.count) FROM reservation_mirror m
            WHERE m.server_id = server_features.server_id AND NOT m.owned
              AND m.feature_name = server_features.feature_name
              AND m.feature_version = server_features.feature_version), 0)
        WHERE server_id = ?
        """,
        [server_id],
    )


# -- reconciler --------------------------------------------------------------------------------


PLAN_ROWS_SQL = f"""
WITH wanted AS (
    SELECT a.host_type, a.host_id, a.feature_name, a.feature_version, SUM(a.count) AS want,
           BOOL_AND(a.state = 'applied') AS settled
    FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
    WHERE sf.server_id = $sid AND a.state IN ('pending', 'applied', 'disabled', 'removing')
    GROUP BY ALL),
hosts AS (
    SELECT host_type, host_id, BOOL_AND(settled) AS settled, COUNT(*) AS keys,
           $prefix || host_type || '-' || host_id AS group_name
    FROM wanted GROUP BY host_type, host_id
    HAVING regexp_full_match(host_type || '-' || host_id, '[A-Za-z0-9_.\\-]+')
       AND length($prefix || host_type || '-' || host_id) <= {GROUP_NAME_MAX_LENGTH}),
mirror AS (
    SELECT * FROM reservation_mirror WHERE server_id = $sid AND owned),
shapes AS (
    SELECT group_name,
           COUNT(DISTINCT (reservation_id, host_type, host_id))
               FILTER (WHERE NOT (host_type = '' AND host_id = '')) AS reservations,
           MIN(upper(host_type)) AS host_type, MIN(host_id) AS host_id,
           MAX(upper(host_type)) AS host_type_max, MAX(host_id) AS host_id_max,
           COUNT(*) FILTER (WHERE feature_name <> '') AS entries,
           COUNT(DISTINCT (feature_name, feature_version))
               FILTER (WHERE feature_name <> '') AS keys
    FROM mirror GROUP BY group_name),
matched AS (
    SELECT w.host_type, w.host_id, COUNT(*) AS keys
    FROM wanted w JOIN mirror m
      ON m.group_name = $prefix || w.host_type || '-' || w.host_id
     AND m.feature_name = w.feature_name AND m.feature_version = w.feature_version
     AND m.count = w.want
    GROUP BY w.host_type, w.host_id),
settled AS (
    SELECT h.group_name, h.host_type, h.host_id
    FROM hosts h
    JOIN shapes g ON g.group_name = h.group_name
    JOIN matched x ON x.host_type = h.host_type AND x.host_id = h.host_id
    WHERE h.settled AND g.reservations = 1
      AND g.host_type = upper(h.host_type) AND g.host_type_max = upper(h.host_type)
      AND g.host_id = h.host_id AND g.host_id_max = h.host_id
      AND g.entries = h.keys AND g.keys = h.keys AND x.keys = h.keys)
SELECT 'allocation' AS kind, a.id, NULL::BIGINT, NULL::VARCHAR, NULL::BIGINT, a.host_type,
       a.host_id, NULL::BIGINT, a.feature_name, a.feature_version, a.count, a.state,
       (a.state <> 'pending' OR $force OR a.next_attempt_at IS NULL
        OR a.next_attempt_at <= {NOW}) AS due,
       a.host_type AS t1, a.host_id AS t2, a.feature_name AS t3, a.feature_version AS t4,
       NULL::BIGINT AS n1, a.id AS n2
FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
WHERE sf.server_id = $sid AND a.state IN ('pending', 'applied', 'disabled', 'removing')
  AND NOT EXISTS (SELECT 1 FROM settled s
                  WHERE s.host_type = a.host_type AND s.host_id = a.host_id)
UNION ALL
SELECT 'mirror', NULL, m.group_id, m.group_name, m.reservation_id, m.host_type, m.host_id,
       m.entry_id, m.feature_name, m.feature_version, m.count, m.entry_state, NULL,
       m.group_name, NULL, NULL, NULL, m.reservation_id, m.entry_id
FROM mirror m
WHERE m.group_name NOT IN (SELECT group_name FROM settled)
UNION ALL
SELECT 'settled', (SELECT COUNT(*) FROM settled), NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
ORDER BY kind, t1, t2, t3, t4, n1, n2
"""


def plan_rows(
    db: Database, server_id: int, force: bool, prefix: str
) -> tuple[list[tuple], list[tuple], int]:
    """What the reconciler must look at on one server, read in one consistent query.

    Returns (allocation rows, owned mirror rows, settled hosts). A host is settled (and left
    out of both lists) when all its allocations are applied and its VLM group, under the
    plain name VLM gives it, holds exactly one reservation for that host with one entry per
    feature carrying the applied sum: a reconcile pass could not change anything for it.
    Allocation rows: (id, host_type, host_id, feature_name, feature_version, count, state,
    due), `due` False for backed-off rows. Mirror rows: MIRROR_COLUMNS order.
    """
    allocations: list[tuple] = []
    mirror: list[tuple] = []
    settled = 0
    rows = db.query(PLAN_ROWS_SQL, {"sid": server_id, "force": force, "prefix": prefix})
    for row in rows:
        kind = row[0]
        if kind == "allocation":
            allocations.append((row[1], row[5], row[6], row[8], row[9], row[10], row[11], row[12]))
        elif kind == "mirror":
            mirror.append((server_id, row[2], row[3], True, *row[4:12]))
        else:
            settled = int(row[1])
    return allocations, mirror, settled


def mark_applied(cur: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    """pending -> applied for rows whose count and state are still what the diff saw."""
    if rows.empty:
        return 0
    with registered(cur, "sync_applied", rows):
        return _affected(
            cur.execute(
                f"""
                UPDATE allocations SET state = 'applied', last_error = NULL, attempts = 0,
                    next_attempt_at = NULL, applied_at = {NOW}
                FROM sync_applied u
                WHERE allocations.id = u.id AND allocations.count = u.count
                  AND allocations.state = u.state
                """
            )
        )


def mark_failed(cur: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    """Refused by the server: failed with its message, unless the row changed meanwhile."""
    if rows.empty:
        return 0
    with registered(cur, "sync_failed", rows):
        return _affected(
            cur.execute(
                """
                UPDATE allocations SET state = 'failed', last_error = u.message,
                    next_attempt_at = NULL
                FROM sync_failed u
                WHERE allocations.id = u.id AND allocations.count = u.count
                  AND allocations.state = u.state
                """
            )
        )


def mark_retry(cur: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    """Transient failure: stay pending, count the attempt and back off (1, 2, 4 ... 60 s)."""
    if rows.empty:
        return 0
    with registered(cur, "sync_retry", rows):
        return _affected(
            cur.execute(
                f"""
                UPDATE allocations SET last_error = u.message,
                    attempts = allocations.attempts + 1,
                    next_attempt_at = {NOW} + to_seconds(
                        least({MAX_BACKOFF_SECONDS}, pow(2, least(allocations.attempts, 16))))
                FROM sync_retry u
                WHERE allocations.id = u.id AND allocations.count = u.count
                  AND allocations.state = u.state AND allocations.state = 'pending'
                """
            )
        )


def retry_pending_of_server(
    cur: duckdb.DuckDBPyConnection, server_id: int, message: str, force: bool = False
) -> int:
    """The server could not be read: its due pending allocations (all of them when the pass
    was forced) count an attempt and back off."""
    return _affected(
        cur.execute(
            f"""
            UPDATE allocations SET last_error = ?, attempts = attempts + 1,
                next_attempt_at = {NOW} + to_seconds(
                    least({MAX_BACKOFF_SECONDS}, pow(2, least(attempts, 16))))
            WHERE state = 'pending'
              AND (? OR next_attempt_at IS NULL OR next_attempt_at <= {NOW})
              AND server_feature_id IN (SELECT id FROM server_features WHERE server_id = ?)
            """,
            [redact_userinfo(message), force, server_id],
        )
    )


def requeue_failed(cur: duckdb.DuckDBPyConnection, server_id: int) -> int:
    """Failed allocations of a server get another try (a full pass retries them: the cause,
    e.g. a foreign group holding the host, may be gone). The server's reason stays shown."""
    return _affected(
        cur.execute(
            """
            UPDATE allocations SET state = 'pending', attempts = 0, next_attempt_at = NULL
            WHERE state = 'failed' AND server_feature_id IN (
                SELECT id FROM server_features WHERE server_id = ?)
            """,
            [server_id],
        )
    )


def delete_removed(cur: duckdb.DuckDBPyConnection, ids: list[int]) -> int:
    """Delete 'removing' allocations whose reservation is gone from the server."""
    if not ids:
        return 0
    with registered(cur, "sync_removed", pd.DataFrame({"id": pd.Series(ids, dtype="int64")})):
        return _affected(
            cur.execute(
                "DELETE FROM allocations WHERE state = 'removing' "
                "AND id IN (SELECT id FROM sync_removed)"
            )
        )


# -- scheduling --------------------------------------------------------------------------------


def seconds_until_next_retry(db: Database) -> float | None:
    """Seconds until the earliest backed-off pending allocation is due (None if there is none)."""
    value = db.scalar(
        f"SELECT date_diff('millisecond', {NOW}, min(next_attempt_at)) FROM allocations "
        "WHERE state = 'pending' AND next_attempt_at IS NOT NULL"
    )
    return None if value is None else max(0.0, value / 1000.0)


def servers_with_due_retries(db: Database) -> list[int]:
    rows = db.query(
        f"""
        SELECT DISTINCT sf.server_id FROM allocations a
        JOIN server_features sf ON sf.id = a.server_feature_id
        WHERE a.state = 'pending' AND a.next_attempt_at IS NOT NULL AND a.next_attempt_at <= {NOW}
        ORDER BY 1
        """
    )
    return [int(r[0]) for r in rows]


# -- drift -------------------------------------------------------------------------------------

DRIFT_SQL = """
WITH desired AS (
    SELECT sf.server_id, a.host_type, a.host_id, a.feature_name, a.feature_version,
           sum(a.count)::BIGINT AS want
    FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
    WHERE a.state IN ('pending', 'applied', 'disabled') AND ($sid IS NULL OR sf.server_id = $sid)
    GROUP BY ALL),
disabled AS (
    SELECT server_id, 'disabled_by_server' AS kind, host_type, host_id, feature_name,
           feature_version, NULL::BIGINT AS expected, sum(count)::BIGINT AS actual,
           NULL::BIGINT AS deficit
    FROM reservation_mirror
    WHERE owned AND feature_name <> '' AND upper(entry_state) = 'DISABLED'
      AND ($sid IS NULL OR server_id = $sid)
    GROUP BY ALL),
actual AS (
    SELECT server_id, host_type, host_id, feature_name, feature_version,
           sum(count)::BIGINT AS have
    FROM reservation_mirror
    WHERE owned AND feature_name <> '' AND ($sid IS NULL OR server_id = $sid)
    GROUP BY ALL),
reservations AS (
    SELECT coalesce(d.server_id, x.server_id) AS server_id,
           CASE WHEN x.have IS NULL THEN 'missing' WHEN d.want IS NULL THEN 'extra'
                ELSE 'changed' END AS kind,
           coalesce(d.host_type, x.host_type) AS host_type,
           coalesce(d.host_id, x.host_id) AS host_id,
           coalesce(d.feature_name, x.feature_name) AS feature_name,
           coalesce(d.feature_version, x.feature_version) AS feature_version,
           d.want AS expected, x.have AS actual, NULL::BIGINT AS deficit
    FROM desired d FULL OUTER JOIN actual x
      ON d.server_id = x.server_id AND d.host_type = x.host_type AND d.host_id = x.host_id
     AND d.feature_name = x.feature_name AND d.feature_version = x.feature_version
    WHERE x.have IS NULL OR d.want IS NULL OR x.have <> d.want),
held AS (
    SELECT DISTINCT sf.server_id, 'host_held_elsewhere' AS kind, a.host_type, a.host_id,
           NULL AS feature_name, NULL AS feature_version, NULL::BIGINT AS expected,
           NULL::BIGINT AS actual, NULL::BIGINT AS deficit, m.group_name
    FROM allocations a
    JOIN server_features sf ON sf.id = a.server_feature_id
    JOIN reservation_mirror m ON m.server_id = sf.server_id AND NOT m.owned
     AND m.host_type = a.host_type AND m.host_id = a.host_id
    WHERE a.state IN ('pending', 'applied', 'failed') AND ($sid IS NULL OR sf.server_id = $sid)),
pooled AS (
    SELECT server_feature_id, sum(quantity)::BIGINT AS pooled
    FROM pool_portions GROUP BY server_feature_id),
over AS (
    SELECT sf.server_id, 'over_committed' AS kind, NULL AS host_type, NULL AS host_id,
           sf.feature_name, sf.feature_version, p.pooled AS expected,
           (sf.total - sf.reserved_by_others)::BIGINT AS actual,
           (p.pooled - (sf.total - sf.reserved_by_others))::BIGINT AS deficit,
           sf.total, sf.reserved_by_others
    FROM server_features sf JOIN pooled p ON p.server_feature_id = sf.id
    WHERE p.pooled > sf.total - sf.reserved_by_others AND ($sid IS NULL OR sf.server_id = $sid))
SELECT server_id, kind, host_type, host_id, feature_name, feature_version, expected, actual,
       deficit,
       CASE kind
         WHEN 'missing' THEN format('{} reserved for {}:{} in VLM, not held on the server',
                                    expected, host_type, host_id)
         WHEN 'extra' THEN format('{} reserved for {}:{} on the server, not allocated in VLM',
                                  actual, host_type, host_id)
         ELSE format('{}:{} holds {} on the server, VLM allocates {}',
                     host_type, host_id, actual, expected) END AS detail
FROM reservations
UNION ALL
SELECT server_id, kind, host_type, host_id, feature_name, feature_version, expected, actual,
       deficit,
       format('{} reserved for {}:{} is disabled by the license server (count dropped)',
              actual, host_type, host_id) AS detail
FROM disabled
UNION ALL
SELECT server_id, kind, host_type, host_id, feature_name, feature_version, expected, actual,
       deficit,
       format('{}:{} is held by reservation group ''{}'' not managed by VLM',
              host_type, host_id, group_name) AS detail
FROM held
UNION ALL
SELECT server_id, kind, host_type, host_id, feature_name, feature_version, expected, actual,
       deficit,
       format('pooled {} exceeds total {} minus {} reserved by others: deficit {}',
              expected, total, reserved_by_others, deficit) AS detail
FROM over
ORDER BY server_id, kind, host_type, host_id, feature_name, feature_version
"""


def drift_rows(db: Database, server_id: int | None) -> pd.DataFrame:
    return db.query_df(DRIFT_SQL, {"sid": server_id})


def replace_conflicts(cur: duckdb.DuckDBPyConnection, server_id: int, rows: pd.DataFrame) -> None:
    """Replace one server's conflicts; a conflict already known keeps its first found_at."""
    if (
        rows.empty
        and not cur.execute(
            "SELECT 1 FROM sync_conflicts WHERE server_id = ? LIMIT 1", [server_id]
        ).fetchall()
    ):
        return
    keep = rows[["kind", "host_type", "host_id", "feature_name", "feature_version", "detail"]]
    with registered(cur, "sync_conflicts_in", keep):
        merged = cur.execute(
            f"""
            SELECT n.kind, n.host_type, n.host_id, n.feature_name, n.feature_version, n.detail,
                   coalesce(min(o.found_at), {NOW}) AS found_at
            FROM sync_conflicts_in n
            LEFT JOIN sync_conflicts o ON o.server_id = ? AND o.kind = n.kind
              AND o.host_type IS NOT DISTINCT FROM n.host_type
              AND o.host_id IS NOT DISTINCT FROM n.host_id
              AND o.feature_name IS NOT DISTINCT FROM n.feature_name
              AND o.feature_version IS NOT DISTINCT FROM n.feature_version
            GROUP BY ALL
            """,
            [server_id],
        ).df()
    cur.execute("DELETE FROM sync_conflicts WHERE server_id = ?", [server_id])
    if merged.empty:
        return
    with registered(cur, "sync_conflicts_merged", merged):
        cur.execute(
            "INSERT INTO sync_conflicts (server_id, kind, host_type, host_id, feature_name, "
            "feature_version, detail, found_at) SELECT ?, kind, host_type, host_id, feature_name, "
            "feature_version, detail, found_at FROM sync_conflicts_merged",
            [server_id],
        )


# -- what a read of the server proved -----------------------------------------------------------

DRIFT_EVENT_COLUMNS = (
    "server_id",
    "kind",
    "group_name",
    "host_type",
    "host_id",
    "feature_name",
    "feature_version",
    "count",
    "detail",
)
DRIFT_EVENT_DTYPES = {
    "server_id": "int64",
    "kind": "object",
    "group_name": "object",
    "host_type": "object",
    "host_id": "object",
    "feature_name": "object",
    "feature_version": "object",
    "count": "Int64",
    "detail": "object",
}
OBSERVED_DTYPES = {
    "id": "int64",
    "count": "int64",
    "state": "object",
    "new_state": "object",
    "message": "object",
}


def server_identity(cur: duckdb.DuckDBPyConnection, server_id: int) -> tuple[str | None, bool]:
    """The instance id stored for a server and whether it was ever read successfully."""
    row = cur.execute(
        "SELECT instance_id, last_success_at IS NOT NULL FROM license_servers WHERE id = ?",
        [server_id],
    ).fetchone()
    return (None, False) if row is None else (row[0], bool(row[1]))


def set_instance_id(cur: duckdb.DuckDBPyConnection, server_id: int, instance_id: str) -> None:
    cur.execute("UPDATE license_servers SET instance_id = ? WHERE id = ?", [instance_id, server_id])


def stored_owned_group_ids(cur: duckdb.DuckDBPyConnection, server_id: int) -> list[tuple[int, str]]:
    """(group id, name) of every VLM group the mirror remembers on a server."""
    return cur.execute(
        "SELECT DISTINCT group_id, group_name FROM reservation_mirror "
        "WHERE server_id = ? AND owned AND group_id IS NOT NULL",
        [server_id],
    ).fetchall()


def held_allocation_rows(cur: duckdb.DuckDBPyConnection, server_id: int) -> list[tuple]:
    """(id, host_type, host_id, feature_name, feature_version, count, state) of every
    allocation of a server that VLM believes the server holds (applied or disabled)."""
    return cur.execute(
        """
        SELECT a.id, a.host_type, a.host_id, a.feature_name, a.feature_version, a.count, a.state
        FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
        WHERE sf.server_id = ? AND a.state IN ('applied', 'disabled')
        """,
        [server_id],
    ).fetchall()


def set_observed_states(cur: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> int:
    """Move allocations to the state a read of the server proved, unless they changed since."""
    if rows.empty:
        return 0
    with registered(cur, "sync_observed", rows):
        return _affected(
            cur.execute(
                """
                UPDATE allocations SET state = u.new_state, last_error = u.message,
                    attempts = 0, next_attempt_at = NULL
                FROM sync_observed u
                WHERE allocations.id = u.id AND allocations.count = u.count
                  AND allocations.state = u.state
                """
            )
        )


def insert_drift_events(cur: duckdb.DuckDBPyConnection, rows: list[tuple]) -> int:
    """Append drift events (DRIFT_EVENT_COLUMNS order) to the history."""
    if not rows:
        return 0
    events = frame(rows, DRIFT_EVENT_DTYPES)
    with registered(cur, "sync_drift_events", events):
        cur.execute(
            f"INSERT INTO drift_events ({', '.join(DRIFT_EVENT_COLUMNS)}) "
            f"SELECT {', '.join(DRIFT_EVENT_COLUMNS)} FROM sync_drift_events"
        )
    return len(rows)


def record_repairs(cur: duckdb.DuckDBPyConnection, rows: pd.DataFrame, missing: str) -> int:
    """A drift event for each pending allocation about to be applied that had gone missing."""
    if rows.empty:
        return 0
    with registered(cur, "sync_repaired", rows):
        return _affected(
            cur.execute(
                """
                INSERT INTO drift_events (server_id, kind, host_type, host_id, feature_name,
                    feature_version, count, detail)
                SELECT sf.server_id, 'repaired', a.host_type, a.host_id, a.feature_name,
                       a.feature_version, a.count,
                       'reservation re-created on the license server'
                FROM allocations a JOIN sync_repaired u ON u.id = a.id AND u.count = a.count
                    AND u.state = a.state
                JOIN server_features sf ON sf.id = a.server_feature_id
                WHERE a.state = 'pending' AND a.last_error = ?
                """,
                [missing],
            )
        )
