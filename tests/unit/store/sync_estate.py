"""Builders for the sync's tables (servers, features, allocations, mirror) on a real DuckDB."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from vlm.store import Database
from vlm.store.features import FEATURE_DTYPES, stored_features, upsert_features
from vlm.store.frames import frame
from vlm.store.reservations import MIRROR_TYPES, replace_mirror
from vlm.store.servers import insert_server

PREFIX = "vlm-"


def add_server(db: Database, name: str) -> int:
    return db.write(lambda cur: insert_server(cur, {"name": name, "base_url": f"http://{name}"}))


def feature_row(
    name: str,
    total: int,
    *,
    version: str = "1.0",
    used: int = 0,
    reserved: int = 0,
    others: int = 0,
    metered: bool = False,
    uncounted: bool = False,
) -> tuple:
    """One row in FEATURE_DTYPES order (a concurrent feature unless metered or uncounted)."""
    return (name, version, total, used, reserved, others, True, uncounted, metered, None, 1)


def add_features(db: Database, server_id: int, *rows: tuple) -> dict[str, int]:
    """Store the feature rows (feature_row) of a server; returns their ids by feature name."""
    db.write(lambda cur: upsert_features(cur, server_id, frame(list(rows), FEATURE_DTYPES)))
    stored = db.write(lambda cur: stored_features(cur, server_id))
    return {row[1]: row[0] for row in stored}


def add_allocation(
    db: Database,
    server_feature_id: int,
    host_id: str,
    count: int,
    state: str = "pending",
    *,
    host_type: str = "USER",
    backed_off: bool = False,
    last_error: str | None = None,
    pool_id: int = 1,
) -> int:
    """An allocation row of a feature (its name and version copied from the feature row)."""

    def write(cur) -> int:
        return cur.execute(
            """
            INSERT INTO allocations (pool_id, server_feature_id, feature_name, feature_version,
                host_type, host_id, count, state, last_error, next_attempt_at, created_by)
            SELECT ?, id, feature_name, feature_version, ?, ?, ?, ?, ?,
                   CASE WHEN ? THEN current_timestamp::TIMESTAMP + INTERVAL '1 hour' END, 'ada'
            FROM server_features WHERE id = ?
            RETURNING id
            """,
            [pool_id, host_type, host_id, count, state, last_error, backed_off, server_feature_id],
        ).fetchone()[0]

    return db.write(write)


def add_portion(db: Database, pool_id: int, server_feature_id: int, quantity: int) -> None:
    db.write(
        lambda cur: cur.execute(
            "INSERT INTO pool_portions (pool_id, server_feature_id, quantity) VALUES (?, ?, ?)",
            [pool_id, server_feature_id, quantity],
        )
    )


def allocation(db: Database, allocation_id: int) -> dict:
    rows = db.query_dicts(
        "SELECT state, last_error, attempts, next_attempt_at IS NOT NULL AS backed_off, "
        "applied_at IS NOT NULL AS stamped FROM allocations WHERE id = ?",
        [allocation_id],
    )
    return rows[0] if rows else {}


def entry(
    server_id: int,
    group_id: int | None,
    group: str,
    host_id: str,
    feature: str,
    count: int,
    *,
    entry_id: int | None = None,
    state: str | None = "ACTIVE",
    host_type: str = "USER",
    reservation_id: int | None = 1,
) -> tuple:
    """One mirror row (MIRROR_COLUMNS order); owned when the group name has the prefix."""
    owned = group.startswith(PREFIX)
    return (server_id, group_id, group, owned, reservation_id, host_type, host_id, entry_id) + (
        feature,
        "1.0",
        count,
        state,
    )


def mirror(rows: Iterable[tuple]) -> pa.Table:
    """Mirror rows as the Arrow table replace_mirror takes."""
    columns = list(zip(*rows, strict=True)) or [()] * len(MIRROR_TYPES)
    return pa.table(
        {
            name: pa.array(values, type=kind)
            for (name, kind), values in zip(MIRROR_TYPES.items(), columns, strict=True)
        }
    )


def store_mirror(db: Database, server_id: int, *rows: tuple) -> None:
    db.write(lambda cur: replace_mirror(cur, server_id, mirror(rows)))


def mirror_of(db: Database, server_id: int) -> list[tuple]:
    """(group_name, host_id, feature_name, count) of one server's mirror, sorted."""
    return db.query(
        "SELECT group_name, host_id, feature_name, count FROM reservation_mirror "
        "WHERE server_id = ? ORDER BY group_name, host_id, feature_name, count",
        [server_id],
    )
