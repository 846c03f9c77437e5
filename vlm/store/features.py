"""Server features (totals, usage, reservations by others) and their utilization snapshots.

Functions taking `cur` run inside a caller's `Database.write` transaction; functions taking `db`
are reads.
"""

from __future__ import annotations

import duckdb
import pandas as pd
import pyarrow as pa

from vlm.store.database import Database
from vlm.store.figures import SERVER_FEATURE_FIGURES
from vlm.store.frames import NOW, affected, execute_for_rows, frame, registered

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


# A stored feature's id and its new figures (FEATURE_DTYPES order without name and version).
UPDATE_TYPES = {
    "id": pa.int64(),
    "total": pa.int64(),
    "used": pa.int64(),
    "reserved": pa.int64(),
    "reserved_by_others": pa.int64(),
    "concurrent": pa.bool_(),
    "uncounted": pa.bool_(),
    "metered": pa.bool_(),
    "expiry": pa.string(),
    "slices": pa.int64(),
}
UPDATE_ONE_FEATURE_SQL = f"""
UPDATE server_features SET total = ?, used = ?, reserved = ?, reserved_by_others = ?,
    concurrent = ?, uncounted = ?, metered = ?, expiry = ?, slices = ?, present = TRUE,
    updated_at = {NOW}
WHERE id = ?
"""
UPDATE_FEATURES_SQL = f"""
UPDATE server_features SET total = u.total, used = u.used, reserved = u.reserved,
    reserved_by_others = u.reserved_by_others, concurrent = u.concurrent,
    uncounted = u.uncounted, metered = u.metered, expiry = u.expiry, slices = u.slices,
    present = TRUE, updated_at = {NOW}
FROM sync_feature_updates u
WHERE server_features.id = u.id
"""


def update_features_by_id(cur: duckdb.DuckDBPyConnection, updates: list[tuple]) -> None:
    """Store new figures of features already stored, by id (UPDATE_TYPES order), as present."""
    execute_for_rows(
        cur,
        updates,
        (UPDATE_ONE_FEATURE_SQL, lambda row: (*row[1:], row[0])),
        (UPDATE_FEATURES_SQL, (), "sync_feature_updates", UPDATE_TYPES),
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
STORED_FEATURES_SQL = (
    f"""SELECT {STORED_FEATURE_COLUMNS} FROM server_features WHERE server_id = ?"""
)


def stored_features(cur: duckdb.DuckDBPyConnection, server_id: int) -> list[tuple]:
    """One server's feature rows as stored now (STORED_FEATURE_COLUMNS order)."""
    return cur.execute(STORED_FEATURES_SQL, [server_id]).fetchall()


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
        return affected(result)


SNAPSHOT_TYPES = {
    "id": pa.int64(),
    "total": pa.int64(),
    "used": pa.int64(),
    "reserved": pa.int64(),
}
INSERT_ONE_SNAPSHOT_SQL = f"""
INSERT INTO utilization_snapshots (server_feature_id, taken_at, total, used, reserved)
VALUES (?, {NOW}, ?, ?, ?)
"""
INSERT_SNAPSHOTS_SQL = f"""
INSERT INTO utilization_snapshots (server_feature_id, taken_at, total, used, reserved)
SELECT id, {NOW}, total, used, reserved FROM sync_snapshots
"""


def insert_snapshots(cur: duckdb.DuckDBPyConnection, figures: list[tuple]) -> int:
    """A snapshot row for each of these features' figures (SNAPSHOT_TYPES order): what a pull
    that updated them by id stored. Returns the rows added."""
    execute_for_rows(
        cur,
        figures,
        (INSERT_ONE_SNAPSHOT_SQL, lambda row: row),
        (INSERT_SNAPSHOTS_SQL, (), "sync_snapshots", SNAPSHOT_TYPES),
    )
    return len(figures)


def update_reserved_by_others(cur: duckdb.DuckDBPyConnection, server_id: int) -> None:
    """Recompute reserved_by_others of one server's features from the mirror's foreign groups."""
    # One grouped read joined in, not a subquery per feature: PostgreSQL does not decorrelate it
    # and scanned the server's whole mirror once per feature (2 s a server on the bench estate).
    cur.execute(
        """
        UPDATE server_features SET reserved_by_others = o.held
        FROM (
            SELECT sf.id, coalesce(sum(m.count), 0) AS held
            FROM server_features sf LEFT JOIN reservation_mirror m
              ON m.server_id = sf.server_id AND NOT m.owned
             AND m.feature_name = sf.feature_name AND m.feature_version = sf.feature_version
            WHERE sf.server_id = ?
            GROUP BY sf.id
        ) AS o
        WHERE server_features.id = o.id AND server_features.reserved_by_others <> o.held
        """,
        [server_id],
    )


ALL_SERVER_FEATURE_FIGURES_SQL = f"""
SELECT * FROM ({SERVER_FEATURE_FIGURES}) AS server_feature_figures
ORDER BY server_name, feature_name, feature_version
"""
ONE_SERVER_FEATURE_FIGURES_SQL = f"""
SELECT * FROM ({SERVER_FEATURE_FIGURES}) AS server_feature_figures WHERE server_id = ?
ORDER BY server_name, feature_name, feature_version
"""


def server_feature_figures(db: Database, server_id: int | None = None) -> pd.DataFrame:
    """Each feature of one server (every server when None) with total, used, reserved, pooled,
    poolable, deficit and expiry (SERVER_FEATURE_FIGURES), by server name and feature."""
    if server_id is None:
        return db.query_df(ALL_SERVER_FEATURE_FIGURES_SQL)
    return db.query_df(ONE_SERVER_FEATURE_FIGURES_SQL, [server_id])
