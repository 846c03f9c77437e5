"""Pools and their portions: what a pool edit reads and writes, the pool lists and figures."""

from __future__ import annotations

import duckdb
import pandas as pd

from vlm.store.access import Scope
from vlm.store.database import Database
from vlm.store.figures import POOL_FEATURE_FIGURES, SERVER_FEATURE_FIGURES

VLM_FEATURE_ROOMS = f"""
SELECT server_feature_id, server_name, feature_name, feature_version, poolable, deficit
FROM ({SERVER_FEATURE_FIGURES}) AS server_feature_figures WHERE vlm_id = ?
"""

POOL_SUMMARIES = f"""
WITH f AS ({POOL_FEATURE_FIGURES})
SELECT p.id, p.name, v.name AS vlm_name, p.vlm_id, p.manager, p.description,
    COUNT(f.feature_name)::INTEGER AS features,
    COALESCE(SUM(f.quantity), 0)::INTEGER AS quantity,
    COALESCE(SUM(f.allocated), 0)::INTEGER AS allocated,
    COALESCE(SUM(f.available), 0)::INTEGER AS available,
    COALESCE(SUM(f.allocations), 0)::INTEGER AS allocations,
    COALESCE(SUM(f.failed), 0)::INTEGER AS failed,
    COALESCE(BOOL_OR(f.over_committed), FALSE) AS over_committed,
    p.created_at, p.default_duration_days, p.max_duration_days
FROM pools p JOIN vlms v ON v.id = p.vlm_id LEFT JOIN f ON f.pool_id = p.id
WHERE {{scope}}
GROUP BY p.id, p.name, v.name, p.vlm_id, p.manager, p.description, p.created_at,
    p.default_duration_days, p.max_duration_days
ORDER BY v.name, p.name
"""

POOL_SEARCH = """ AND (p.name ILIKE ? OR v.name ILIKE ? OR p.manager ILIKE ?)"""

POOL_FEATURES = f"""
SELECT * FROM ({POOL_FEATURE_FIGURES}) f WHERE {{scope}}
ORDER BY vlm_name, pool_name, feature_name, feature_version
"""

QUANTITY_BOUNDS = f"""
WITH sff AS ({SERVER_FEATURE_FIGURES}),
mine AS (
    SELECT server_feature_id, quantity FROM pool_portions WHERE pool_id = ?
), used AS (
    SELECT server_feature_id, SUM(count) AS allocated FROM allocations
    WHERE pool_id = ? AND state NOT IN ('removing', 'expiring', 'expired') GROUP BY 1
)
SELECT sff.feature_name, sff.feature_version,
    SUM(sff.total)::INTEGER AS total,
    COALESCE(SUM(mine.quantity), 0)::INTEGER AS quantity,
    COALESCE(SUM(used.allocated), 0)::INTEGER AS minimum,
    (COALESCE(SUM(mine.quantity), 0)
     + SUM(CASE WHEN sff.deficit = 0 THEN GREATEST(sff.poolable, 0) ELSE 0 END)
    )::INTEGER AS maximum,
    SUM(sff.deficit)::INTEGER AS deficit
FROM sff
LEFT JOIN mine ON mine.server_feature_id = sff.server_feature_id
LEFT JOIN used ON used.server_feature_id = sff.server_feature_id
WHERE sff.vlm_id = ?
GROUP BY sff.feature_name, sff.feature_version
ORDER BY sff.feature_name, sff.feature_version
"""

DELETION_COUNTS = """
SELECT COUNT(*)::INTEGER,
    COUNT(*) FILTER (WHERE state IN ('applied', 'pending', 'disabled'))::INTEGER,
    COUNT(DISTINCT (a.host_type, a.host_id, sf.server_id))::INTEGER
FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
WHERE a.pool_id = ? AND a.state NOT IN ('removing', 'expiring', 'expired')
"""


def vlm_feature_rooms(
    cur: duckdb.DuckDBPyConnection, vlm_id: int
) -> list[tuple[int, str, str, str, int, int]]:
    """(server feature id, server name, feature name, version, poolable, deficit) of every
    server feature the VLM exposes."""
    return cur.execute(VLM_FEATURE_ROOMS, [vlm_id]).fetchall()


def pool_portions(cur: duckdb.DuckDBPyConnection, pool_id: int) -> dict[int, int]:
    """The pool's portion (quantity) per server feature id."""
    return dict(
        cur.execute(
            """SELECT server_feature_id, quantity FROM pool_portions WHERE pool_id = ?""",
            [pool_id],
        ).fetchall()
    )


def allocated_per_server_feature(cur: duckdb.DuckDBPyConnection, pool_id: int) -> dict[int, int]:
    """The sum of the pool's counted allocation counts (not removing, expiring or expired) per
    server feature id."""
    return dict(
        cur.execute(
            """SELECT server_feature_id, SUM(count)::INTEGER FROM allocations
            WHERE pool_id = ? AND state NOT IN ('removing', 'expiring', 'expired') GROUP BY 1""",
            [pool_id],
        ).fetchall()
    )


def replace_portions(
    cur: duckdb.DuckDBPyConnection, pool_id: int, portions: dict[int, int]
) -> None:
    """Make the pool's portions exactly `portions` (server feature id -> quantity)."""
    cur.execute("""DELETE FROM pool_portions WHERE pool_id = ?""", [pool_id])
    if portions:
        cur.executemany(
            """INSERT INTO pool_portions (pool_id, server_feature_id, quantity) VALUES (?, ?, ?)""",
            [[pool_id, sf, q] for sf, q in sorted(portions.items())],
        )


def feature_quantities(cur: duckdb.DuckDBPyConnection, pool_id: int) -> list[tuple[str, str, int]]:
    """(feature name, version, quantity summed over servers) of the pool, by name and version."""
    return cur.execute(
        """SELECT sf.feature_name, sf.feature_version, SUM(pp.quantity)::INTEGER
        FROM pool_portions pp JOIN server_features sf ON sf.id = pp.server_feature_id
        WHERE pp.pool_id = ? GROUP BY 1, 2 ORDER BY 1, 2""",
        [pool_id],
    ).fetchall()


def vlm_exists(cur: duckdb.DuckDBPyConnection, vlm_id: int) -> bool:
    return cur.execute("""SELECT 1 FROM vlms WHERE id = ?""", [vlm_id]).fetchone() is not None


def pool_name_taken(
    cur: duckdb.DuckDBPyConnection, vlm_id: int, name: str, *, other_than: int | None = None
) -> bool:
    """Whether a pool of the VLM (other than the pool other_than) has this name."""
    if other_than is None:
        row = cur.execute(
            """SELECT 1 FROM pools WHERE vlm_id = ? AND name = ?""", [vlm_id, name]
        ).fetchone()
    else:
        row = cur.execute(
            """SELECT 1 FROM pools WHERE vlm_id = ? AND name = ? AND id <> ?""",
            [vlm_id, name, other_than],
        ).fetchone()
    return row is not None


def insert_pool(
    cur: duckdb.DuckDBPyConnection,
    vlm_id: int,
    name: str,
    manager: str,
    description: str,
    created_by: str,
) -> int:
    """Add a pool row; returns its id."""
    return cur.execute(
        """INSERT INTO pools (vlm_id, name, manager, description, created_by)
        VALUES (?, ?, ?, ?, ?) RETURNING id""",
        [vlm_id, name, manager, description, created_by],
    ).fetchone()[0]


def pool_row(cur: duckdb.DuckDBPyConnection, pool_id: int) -> tuple[int, str, str, str] | None:
    """(vlm id, name, manager, description) of a pool, or None."""
    return cur.execute(
        """SELECT vlm_id, name, manager, description FROM pools WHERE id = ?""", [pool_id]
    ).fetchone()


def pool_name(cur: duckdb.DuckDBPyConnection, pool_id: int) -> str | None:
    """A pool's name, or None when there is no such pool."""
    row = cur.execute("""SELECT name FROM pools WHERE id = ?""", [pool_id]).fetchone()
    return None if row is None else row[0]


def update_pool(
    cur: duckdb.DuckDBPyConnection, pool_id: int, name: str, manager: str, description: str
) -> None:
    cur.execute(
        """UPDATE pools SET name = ?, manager = ?, description = ? WHERE id = ?""",
        [name, manager, description, pool_id],
    )


def deletion_counts(db: Database, pool_id: int) -> tuple[int, int, int]:
    """Of the pool's live allocations: how many, how many hold (or will hold) a reservation on a
    server (applied, pending, disabled), and how many distinct host ids per server."""
    return db.query(DELETION_COUNTS, [pool_id])[0]


def live_allocation_count(cur: duckdb.DuckDBPyConnection, pool_id: int) -> int:
    """How many of the pool's allocations count (not removing, expiring or expired: the
    expired ones go with the pool as history, their audit rows stay)."""
    return cur.execute(
        """SELECT COUNT(*) FROM allocations WHERE pool_id = ?
        AND state NOT IN ('removing', 'expiring', 'expired')""",
        [pool_id],
    ).fetchone()[0]


def servers_of_allocations(cur: duckdb.DuckDBPyConnection, pool_id: int) -> list[int]:
    """The servers the pool's allocations (in any state) are on."""
    return [
        r[0]
        for r in cur.execute(
            """SELECT DISTINCT sf.server_id FROM allocations a
            JOIN server_features sf ON sf.id = a.server_feature_id WHERE a.pool_id = ?""",
            [pool_id],
        ).fetchall()
    ]


def delete_pool(cur: duckdb.DuckDBPyConnection, pool_id: int) -> None:
    """Delete a pool and its portions; its failed allocations go (they reached no server), the
    others are marked removing for the reconciler to take off their servers."""
    cur.execute("""DELETE FROM allocations WHERE pool_id = ? AND state = 'failed'""", [pool_id])
    cur.execute(
        """UPDATE allocations SET state = 'removing', updated_at = current_timestamp
        WHERE pool_id = ?""",
        [pool_id],
    )
    cur.execute("""DELETE FROM pool_portions WHERE pool_id = ?""", [pool_id])
    cur.execute("""DELETE FROM pools WHERE id = ?""", [pool_id])


def pool_summaries(db: Database, scope: Scope, search: str | None = None) -> pd.DataFrame:
    """Pools in scope (name, VLM or manager containing search in any case, when given), with
    quantity, allocated, available, allocations, failed and over-commitment summed over
    features, by VLM and pool name."""
    where, params = scope
    if search:
        where += POOL_SEARCH
        params = [*params, *[f"%{search}%"] * 3]
    return db.query_df(POOL_SUMMARIES.format(scope=where), params)


def pool_feature_figures(db: Database, scope: Scope, pool_id: int | None = None) -> pd.DataFrame:
    """POOL_FEATURE_FIGURES rows in scope (scope's alias: f), of one pool when given."""
    where, params = scope
    if pool_id is not None:
        where += """ AND f.pool_id = ?"""
        params = [*params, pool_id]
    return db.query_df(POOL_FEATURES.format(scope=where), params)


def quantity_bounds(db: Database, vlm_id: int, pool_id: int | None) -> pd.DataFrame:
    """Per VLM feature: total, the pool's quantity, its minimum (allocated) and maximum
    (quantity plus the poolable room of server features that are not over-committed)."""
    pool = pool_id or -1
    return db.query_df(QUANTITY_BOUNDS, [pool, pool, vlm_id])


def pool_durations(cur: duckdb.DuckDBPyConnection, pool_id: int) -> tuple[int | None, int | None]:
    """The pool's default and maximum allocation duration in days (None: not set)."""
    rows = cur.execute(
        """SELECT default_duration_days, max_duration_days FROM pools WHERE id = ?""", [pool_id]
    ).fetchall()
    return (rows[0][0], rows[0][1]) if rows else (None, None)


def set_pool_durations(
    cur: duckdb.DuckDBPyConnection, pool_id: int, default_days: int | None, max_days: int | None
) -> None:
    cur.execute(
        """UPDATE pools SET default_duration_days = ?, max_duration_days = ? WHERE id = ?""",
        [default_days, max_days, pool_id],
    )
