"""The VLM tables: VLMs, the server features each exposes, their servers, and their figures."""

from __future__ import annotations

from collections.abc import Collection

import duckdb
import pandas as pd

from vlm.store.database import Database
from vlm.store.figures import COUNTED, SERVER_FEATURE_FIGURES, VLM_FEATURE_FIGURES

POOLS_DRAWING_ON = """
SELECT u.server_feature_id, p.name FROM (
    SELECT pool_id, server_feature_id FROM pool_portions
    UNION SELECT pool_id, server_feature_id FROM allocations
) u JOIN pools p ON p.id = u.pool_id
"""

EXPOSED_FEATURES = """SELECT server_feature_id FROM vlm_features WHERE vlm_id = ? ORDER BY 1"""

VLM_LIST = f"""
WITH f AS ({VLM_FEATURE_FIGURES})
SELECT v.id, v.name, v.vlm_type, v.description, v.created_at, v.created_by,
    (SELECT string_agg(s.name, ', ' ORDER BY s.name) FROM vlm_servers vs
     JOIN license_servers s ON s.id = vs.server_id WHERE vs.vlm_id = v.id) AS servers,
    (SELECT COUNT(*) FROM pools p WHERE p.vlm_id = v.id)::INTEGER AS pools,
    COUNT(f.feature_name)::INTEGER AS features,
    COALESCE(SUM(f.total), 0)::INTEGER AS total,
    COALESCE(SUM(f.pooled), 0)::INTEGER AS pooled,
    COALESCE(SUM(f.allocated), 0)::INTEGER AS allocated,
    COALESCE(SUM(f.available), 0)::INTEGER AS available,
    COALESCE(SUM(f.deficit), 0)::INTEGER AS deficit
FROM vlms v LEFT JOIN f ON f.vlm_id = v.id AND f.license_kind = '{COUNTED}'
GROUP BY v.id, v.name, v.vlm_type, v.description, v.created_at, v.created_by
ORDER BY v.name
"""

FEATURE_CHOICES = f"""
WITH f AS ({SERVER_FEATURE_FIGURES}), u AS ({POOLS_DRAWING_ON})
SELECT f.server_feature_id, f.server_id, f.server_name, f.feature_name,
    f.feature_version, f.total, f.used, f.reserved_by_others, f.pooled, f.poolable,
    f.can_pool, f.present, COALESCE(f.vlm_id = ?, FALSE) AS exposed,
    COALESCE((SELECT string_agg(u.name, ', ' ORDER BY u.name) FROM u
        WHERE u.server_feature_id = f.server_feature_id), '') AS pools
FROM f
WHERE f.vlm_id = ? OR (f.vlm_id IS NULL AND f.can_pool AND f.present)
ORDER BY f.server_name, f.feature_name, f.feature_version
"""


def _marks(ids: Collection[int]) -> str:
    return ", ".join("?" for _ in ids)


def vlm_name_taken(
    cur: duckdb.DuckDBPyConnection, name: str, other_than: int | None = None
) -> bool:
    """Whether a VLM (other than the one with id other_than) has this name."""
    if other_than is None:
        row = cur.execute("""SELECT 1 FROM vlms WHERE name = ?""", [name]).fetchone()
    else:
        row = cur.execute(
            """SELECT 1 FROM vlms WHERE name = ? AND id <> ?""", [name, other_than]
        ).fetchone()
    return row is not None


def vlm_row(cur: duckdb.DuckDBPyConnection, vlm_id: int) -> tuple[str, str | None] | None:
    """A VLM's stored name and description, or None."""
    return cur.execute("""SELECT name, description FROM vlms WHERE id = ?""", [vlm_id]).fetchone()


def pool_names_of_vlm(cur: duckdb.DuckDBPyConnection, vlm_id: int) -> list[str]:
    """The names of a VLM's pools, sorted."""
    rows = cur.execute(
        """SELECT name FROM pools WHERE vlm_id = ? ORDER BY name""", [vlm_id]
    ).fetchall()
    return [r[0] for r in rows]


def feature_owners(
    cur: duckdb.DuckDBPyConnection, ids: Collection[int]
) -> list[tuple[int, str, str, str, bool, int | None, str | None]]:
    """(server feature id, feature name, version, server name, can pool, owning VLM id, owning
    VLM name) of each of these server features that exists."""
    if not ids:
        return []
    return cur.execute(
        f"""SELECT server_feature_id, feature_name, feature_version, server_name, can_pool,
        vlm_id, vlm_name FROM ({SERVER_FEATURE_FIGURES}) AS server_feature_figures
        WHERE server_feature_id IN ({_marks(ids)})""",
        list(ids),
    ).fetchall()


def servers_of_features(cur: duckdb.DuckDBPyConnection, ids: Collection[int]) -> list[int]:
    """The servers these server features are on, sorted."""
    if not ids:
        return []
    rows = cur.execute(
        f"""SELECT DISTINCT server_id FROM server_features WHERE id IN ({_marks(ids)})
        ORDER BY 1""",
        list(ids),
    ).fetchall()
    return [r[0] for r in rows]


def feature_labels(cur: duckdb.DuckDBPyConnection, ids: Collection[int]) -> dict[int, str]:
    """'name version on server' for each server feature id."""
    if not ids:
        return {}
    rows = cur.execute(
        f"""SELECT sf.id, sf.feature_name || ' ' || sf.feature_version || ' on ' || s.name
        FROM server_features sf JOIN license_servers s ON s.id = sf.server_id
        WHERE sf.id IN ({_marks(ids)})""",
        list(ids),
    ).fetchall()
    return dict(rows)


def pools_drawing_on(cur: duckdb.DuckDBPyConnection, ids: Collection[int]) -> dict[int, list[str]]:
    """Names of the pools with a portion of, or an allocation on, each server feature."""
    if not ids:
        return {}
    pools: dict[int, list[str]] = {}
    for sf_id, pool in cur.execute(
        f"{POOLS_DRAWING_ON} WHERE u.server_feature_id IN ({_marks(ids)}) ORDER BY 2", list(ids)
    ).fetchall():
        pools.setdefault(sf_id, []).append(pool)
    return pools


def exposed_features(cur: duckdb.DuckDBPyConnection, vlm_id: int) -> list[int]:
    """Inside a write: the server features a VLM exposes, by id."""
    return [r[0] for r in cur.execute(EXPOSED_FEATURES, [vlm_id]).fetchall()]


def exposed_feature_ids(db: Database, vlm_id: int) -> list[int]:
    """The server features a VLM exposes, by id."""
    return [r[0] for r in db.query(EXPOSED_FEATURES, [vlm_id])]


def insert_vlm(
    cur: duckdb.DuckDBPyConnection, name: str, vlm_type: str, description: str, created_by: str
) -> int:
    """Store a new VLM and return its id."""
    return cur.execute(
        """INSERT INTO vlms (name, vlm_type, description, created_by) VALUES (?, ?, ?, ?)
        RETURNING id""",
        [name, vlm_type, description, created_by],
    ).fetchone()[0]


def add_exposed_features(
    cur: duckdb.DuckDBPyConnection, vlm_id: int, server_feature_ids: Collection[int]
) -> None:
    """Make a new VLM expose these server features."""
    cur.executemany(
        """INSERT INTO vlm_features (vlm_id, server_feature_id) VALUES (?, ?)""",
        [[vlm_id, i] for i in server_feature_ids],
    )


def add_vlm_servers(
    cur: duckdb.DuckDBPyConnection, vlm_id: int, server_ids: Collection[int]
) -> None:
    """Give a new VLM these servers."""
    cur.executemany(
        """INSERT INTO vlm_servers (vlm_id, server_id) VALUES (?, ?)""",
        [[vlm_id, s] for s in server_ids],
    )


def update_vlm_row(
    cur: duckdb.DuckDBPyConnection, vlm_id: int, name: str, description: str
) -> None:
    cur.execute(
        """UPDATE vlms SET name = ?, description = ? WHERE id = ?""", [name, description, vlm_id]
    )


def replace_features(
    cur: duckdb.DuckDBPyConnection, vlm_id: int, dropped: list[int], added: list[int]
) -> None:
    """Remove and add exposed features."""
    for sf_id in dropped:
        cur.execute("""DELETE FROM vlm_features WHERE server_feature_id = ?""", [sf_id])
    for sf_id in added:
        cur.execute(
            """INSERT INTO vlm_features (vlm_id, server_feature_id) VALUES (?, ?)""",
            [vlm_id, sf_id],
        )


def set_servers(cur: duckdb.DuckDBPyConnection, vlm_id: int, wanted: set[int]) -> None:
    """Make the VLM's server list exactly `wanted`, touching only the rows that change."""
    have = {
        r[0]
        for r in cur.execute(
            """SELECT server_id FROM vlm_servers WHERE vlm_id = ?""", [vlm_id]
        ).fetchall()
    }
    for server_id in sorted(have - wanted):
        cur.execute(
            """DELETE FROM vlm_servers WHERE vlm_id = ? AND server_id = ?""", [vlm_id, server_id]
        )
    for server_id in sorted(wanted - have):
        cur.execute(
            """INSERT INTO vlm_servers (vlm_id, server_id) VALUES (?, ?)""", [vlm_id, server_id]
        )


def delete_vlm_rows(cur: duckdb.DuckDBPyConnection, vlm_id: int) -> None:
    """Delete a VLM with its exposed features and its server list."""
    cur.execute("""DELETE FROM vlm_features WHERE vlm_id = ?""", [vlm_id])
    cur.execute("""DELETE FROM vlm_servers WHERE vlm_id = ?""", [vlm_id])
    cur.execute("""DELETE FROM vlms WHERE id = ?""", [vlm_id])


def vlm_list(db: Database) -> pd.DataFrame:
    """Every VLM with its servers, pool count and concurrent counted figures, by name."""
    return db.query_df(VLM_LIST)


def vlm_feature_figures(db: Database, vlm_id: int | None = None) -> pd.DataFrame:
    """VLM_FEATURE_FIGURES of one VLM (every VLM when None), by VLM, feature and version."""
    where, params = ("WHERE vlm_id = ?", [vlm_id]) if vlm_id is not None else ("", [])
    return db.query_df(
        f"""SELECT * FROM ({VLM_FEATURE_FIGURES}) AS vlm_feature_figures {where}
        ORDER BY vlm_name, feature_name, feature_version""",
        params,
    )


def feature_choices(db: Database, vlm_id: int) -> pd.DataFrame:
    """A VLM's features and every free, present, poolable one, with figures and the pools that
    draw on each, by server, feature and version."""
    return db.query_df(FEATURE_CHOICES, [vlm_id, vlm_id])
