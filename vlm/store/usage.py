"""Who the license servers saw using each feature (usage_sightings), seat prices, the idle-release
policy, and the idle-allocation report built from them.

A sighting is one episode of a host holding a feature on a server: opened by the pull that first
sees it, closed by the first pull that no longer does. While it lasts nothing is written, so the
history is change-only. An open episode counts as seen up to the server's last successful read.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

from vlm.store.database import Database
from vlm.store.frames import affected, execute_for_rows

SIGHTING_TYPES = {
    "host_type": pa.string(),
    "host_id": pa.string(),
    "feature_name": pa.string(),
    "feature_version": pa.string(),
}
_SAME_PAIR = (
    "u.host_type = s.host_type AND u.host_id = s.host_id "
    "AND u.feature_name = s.feature_name AND u.feature_version = s.feature_version"
)
OPEN_PAIRS_SQL = """
SELECT host_type, host_id, feature_name, feature_version FROM usage_sightings
WHERE server_id = ? AND seen_until IS NULL
"""
CLOSE_ONE_SIGHTING_SQL = """
UPDATE usage_sightings SET seen_until = ?
WHERE server_id = ? AND seen_until IS NULL AND host_type = ? AND host_id = ?
  AND feature_name = ? AND feature_version = ?
"""
CLOSE_SIGHTINGS_SQL = f"""
UPDATE usage_sightings AS u SET seen_until = ?
WHERE u.server_id = ? AND u.seen_until IS NULL
  AND EXISTS (SELECT 1 FROM sync_gone AS s WHERE {_SAME_PAIR})
"""
OPEN_ONE_SIGHTING_SQL = """
INSERT INTO usage_sightings (server_id, host_type, host_id, feature_name, feature_version,
    seen_from)
VALUES (?, ?, ?, ?, ?, ?)
"""
OPEN_SIGHTINGS_SQL = """
INSERT INTO usage_sightings (server_id, host_type, host_id, feature_name, feature_version,
    seen_from)
SELECT ?, host_type, host_id, feature_name, feature_version, ? FROM sync_new
"""

# Every allocation holding a reservation (applied), with when its host was last seen using its
# feature on its server and since when it has been idle (the last sighting, else since it was
# applied). Parameters: none; filter on the outer query.
HELD_USAGE_SQL = """
SELECT a.id, a.pool_id, p.name AS pool, v.name AS vlm, p.manager, sf.server_id,
       s.name AS server, a.feature_name, a.feature_version, a.host_type, a.host_id, a.count,
       a.description, coalesce(a.applied_at, a.created_at) AS held_since,
       seen.last_seen,
       coalesce(seen.last_seen, a.applied_at, a.created_at) AS idle_since,
       price.seat_price, a.count * price.seat_price AS seat_cost, a.idle_warned_at,
       s.last_error IS NULL AS server_ok
FROM allocations a
JOIN server_features sf ON sf.id = a.server_feature_id
JOIN license_servers s ON s.id = sf.server_id
JOIN pools p ON p.id = a.pool_id
JOIN vlms v ON v.id = p.vlm_id
LEFT JOIN (
    SELECT u.server_id, u.host_type, u.host_id, u.feature_name, u.feature_version,
           max(coalesce(u.seen_until, ls.last_success_at)) AS last_seen
    FROM usage_sightings u JOIN license_servers ls ON ls.id = u.server_id
    GROUP BY u.server_id, u.host_type, u.host_id, u.feature_name, u.feature_version
) seen ON seen.server_id = sf.server_id AND seen.host_type = upper(a.host_type)
      AND seen.host_id = a.host_id AND seen.feature_name = a.feature_name
      AND seen.feature_version = a.feature_version
LEFT JOIN feature_prices price
  ON price.feature_name = a.feature_name AND price.feature_version = a.feature_version
WHERE a.state = 'applied'
"""
IDLE_COLUMNS = (
    "id, pool_id, pool, vlm, manager, server, feature_name, feature_version, host_type, "
    "host_id, count, description, held_since, last_seen, idle_since, seat_price, seat_cost, "
    "idle_warned_at"
)


def record_sightings(
    cur: duckdb.DuckDBPyConnection, server_id: int, seen: Iterable[tuple], at: datetime
) -> tuple[int, int]:
    """Close the episodes of pairs no longer seen and open those of pairs newly seen: (opened,
    closed). Pairs are (host type, host id, feature name, feature version). The open pairs are
    read first: nothing is written when they are the pairs seen, else only the differences."""
    seen_pairs = {tuple(pair) for pair in seen}
    open_rows = [tuple(row) for row in cur.execute(OPEN_PAIRS_SQL, [server_id]).fetchall()]
    open_pairs = set(open_rows)
    if open_pairs == seen_pairs:
        return 0, 0
    gone = sorted(open_pairs - seen_pairs)
    new = sorted(seen_pairs - open_pairs)
    _close_sightings(cur, server_id, gone, at)
    _open_sightings(cur, server_id, new, at)
    return len(new), sum(1 for row in open_rows if row not in seen_pairs)


def _close_sightings(
    cur: duckdb.DuckDBPyConnection, server_id: int, gone: list[tuple], at: datetime
) -> None:
    """End at `at` the open episodes of these pairs."""
    execute_for_rows(
        cur,
        gone,
        (CLOSE_ONE_SIGHTING_SQL, lambda pair: (at, server_id, *pair)),
        (CLOSE_SIGHTINGS_SQL, [at, server_id], "sync_gone", SIGHTING_TYPES),
    )


def _open_sightings(
    cur: duckdb.DuckDBPyConnection, server_id: int, new: list[tuple], at: datetime
) -> None:
    """Open an episode from `at` for each of these pairs."""
    execute_for_rows(
        cur,
        new,
        (OPEN_ONE_SIGHTING_SQL, lambda pair: (server_id, *pair, at)),
        (OPEN_SIGHTINGS_SQL, [server_id, at], "sync_new", SIGHTING_TYPES),
    )


def open_sightings(db: Database, server_id: int) -> set[tuple[str, str, str, str]]:
    rows = db.query(OPEN_PAIRS_SQL, [server_id])
    return {(str(a), str(b), str(c), str(d)) for a, b, c, d in rows}


def sighting_history(db: Database, server_id: int) -> pd.DataFrame:
    return db.query_df(
        "SELECT host_type, host_id, feature_name, feature_version, seen_from, seen_until "
        "FROM usage_sightings WHERE server_id = ? ORDER BY seen_from, id",
        [server_id],
    )


def _scope(pool_ids: list[int] | None) -> tuple[str, list[Any]]:
    if pool_ids is None:
        return "", []
    if not pool_ids:
        return " AND FALSE", []
    return f" AND pool_id IN ({', '.join('?' * len(pool_ids))})", list(pool_ids)


def idle_allocations(
    db: Database, idle_before: datetime, pool_ids: list[int] | None = None
) -> pd.DataFrame:
    """Allocations holding a reservation whose host was last seen using the feature before
    idle_before (or never, and applied before it); pool_ids limits them (None: every pool)."""
    scope, params = _scope(pool_ids)
    return db.query_df(
        f"SELECT {IDLE_COLUMNS} FROM ({HELD_USAGE_SQL}) AS held "
        f"WHERE idle_since <= ?{scope} ORDER BY idle_since, id",
        [idle_before, *params],
    )


def idle_seat_count(db: Database, idle_before: datetime, pool_ids: list[int] | None = None) -> int:
    """Seats reserved by allocations idle since before idle_before (the dashboard's figure)."""
    scope, params = _scope(pool_ids)
    return int(
        db.scalar(
            f"SELECT coalesce(sum(count), 0) FROM ({HELD_USAGE_SQL}) AS held "
            f"WHERE idle_since <= ?{scope}",
            [idle_before, *params],
        )
    )


def idle_of(
    db: Database, allocation_ids: list[int], idle_before: datetime
) -> dict[int, dict[str, Any]]:
    """Of these allocations, those still idle since before idle_before, by id."""
    if not allocation_ids:
        return {}
    marks = ", ".join("?" * len(allocation_ids))
    rows = db.query(
        f"SELECT id, pool_id, idle_since, idle_warned_at, server_ok "
        f"FROM ({HELD_USAGE_SQL}) AS held WHERE idle_since <= ? AND id IN ({marks})",
        [idle_before, *allocation_ids],
    )
    names = ("pool_id", "idle_since", "idle_warned_at", "server_ok")
    return {int(row[0]): dict(zip(names, row[1:], strict=True)) for row in rows}


def due_for_warning(db: Database, idle_before: datetime) -> list[tuple[int, int, str]]:
    """(id, pool id, manager) of allocations idle since before idle_before whose current idle
    spell has not been warned about yet, on servers read without error."""
    return [
        (int(i), int(p), str(m))
        for i, p, m in db.query(
            f"SELECT id, pool_id, manager FROM ({HELD_USAGE_SQL}) AS held "
            "WHERE idle_since <= ? AND server_ok "
            "AND (idle_warned_at IS NULL OR idle_warned_at < idle_since) ORDER BY pool_id, id",
            [idle_before],
        )
    ]


def due_for_release(
    db: Database, idle_before: datetime, warned_before: datetime
) -> list[tuple[int, int]]:
    """(id, pool id) of allocations idle since before idle_before, warned about during this idle
    spell before warned_before, on servers read without error."""
    return [
        (int(i), int(p))
        for i, p in db.query(
            f"SELECT id, pool_id FROM ({HELD_USAGE_SQL}) AS held "
            "WHERE idle_since <= ? AND server_ok AND idle_warned_at >= idle_since "
            "AND idle_warned_at <= ? ORDER BY pool_id, id",
            [idle_before, warned_before],
        )
    ]


def mark_warned(cur: duckdb.DuckDBPyConnection, allocation_ids: list[int], at: datetime) -> int:
    if not allocation_ids:
        return 0
    marks = ", ".join("?" * len(allocation_ids))
    return affected(
        cur.execute(
            f"UPDATE allocations SET idle_warned_at = ? WHERE id IN ({marks})",
            [at, *allocation_ids],
        )
    )


# -- prices ------------------------------------------------------------------------------------


def list_prices(db: Database) -> pd.DataFrame:
    return db.query_df(
        "SELECT feature_name, feature_version, seat_price, updated_by, updated_at "
        "FROM feature_prices ORDER BY feature_name, feature_version"
    )


def price_of(cur: duckdb.DuckDBPyConnection, name: str, version: str) -> float | None:
    row = cur.execute(
        "SELECT seat_price FROM feature_prices WHERE feature_name = ? AND feature_version = ?",
        [name, version],
    ).fetchone()
    return None if row is None else float(row[0])


def set_price(
    cur: duckdb.DuckDBPyConnection, name: str, version: str, price: float | None, by: str
) -> None:
    """Set (or with None remove) the price of one seat of a feature."""
    cur.execute(
        "DELETE FROM feature_prices WHERE feature_name = ? AND feature_version = ?",
        [name, version],
    )
    if price is not None:
        cur.execute(
            "INSERT INTO feature_prices (feature_name, feature_version, seat_price, updated_by) "
            "VALUES (?, ?, ?, ?)",
            [name, version, price, by],
        )


def feature_known(cur: duckdb.DuckDBPyConnection, name: str, version: str) -> bool:
    return (
        cur.execute(
            "SELECT 1 FROM server_features WHERE feature_name = ? AND feature_version = ? LIMIT 1",
            [name, version],
        ).fetchone()
        is not None
    )


# -- policy ------------------------------------------------------------------------------------

POLICY_COLUMNS = ("enabled", "warn_after_days", "release_after_days", "updated_by", "updated_at")


def harvest_policy(db: Database) -> dict[str, Any] | None:
    rows = db.query(f"SELECT {', '.join(POLICY_COLUMNS)} FROM harvest_policy WHERE id = 1")
    return dict(zip(POLICY_COLUMNS, rows[0], strict=True)) if rows else None


def set_harvest_policy(
    cur: duckdb.DuckDBPyConnection, enabled: bool, warn_days: int, release_days: int, by: str
) -> None:
    cur.execute("DELETE FROM harvest_policy WHERE id = 1")
    cur.execute(
        "INSERT INTO harvest_policy (id, enabled, warn_after_days, release_after_days, "
        "updated_by) VALUES (1, ?, ?, ?, ?)",
        [enabled, warn_days, release_days, by],
    )
