"""The VLM tables an edit reads and writes: exposed features, servers, pools drawing on them."""

from __future__ import annotations

from collections.abc import Collection

import duckdb

POOLS_DRAWING_ON = """
SELECT u.server_feature_id, p.name FROM (
    SELECT pool_id, server_feature_id FROM pool_portions
    UNION SELECT pool_id, server_feature_id FROM allocations
) u JOIN pools p ON p.id = u.pool_id
"""


def _marks(ids: Collection[int]) -> str:
    return ", ".join("?" for _ in ids)


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


def vlm_row(cur: duckdb.DuckDBPyConnection, vlm_id: int) -> tuple[str, str | None] | None:
    """A VLM's stored name and description, or None."""
    return cur.execute("""SELECT name, description FROM vlms WHERE id = ?""", [vlm_id]).fetchone()


def exposed_features(cur: duckdb.DuckDBPyConnection, vlm_id: int) -> list[int]:
    """The server features a VLM exposes, by id."""
    return [
        r[0]
        for r in cur.execute(
            """SELECT server_feature_id FROM vlm_features WHERE vlm_id = ? ORDER BY 1""",
            [vlm_id],
        ).fetchall()
    ]


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
