"""License servers: connection rows, sync status, instance identity and the server list.

Functions taking `cur` run inside a caller's `Database.write` transaction; functions taking `db`
are reads.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import duckdb
import pandas as pd

from vlm.domain import redact_userinfo
from vlm.store.database import Database
from vlm.store.figures import COUNTED, LICENSE_KIND_FIGURES, METERED, OTHER, UNCOUNTED
from vlm.store.frames import NOW

SERVER_COLUMNS = (
    "id, name, base_url, instance, username, password_encrypted, verify_tls, ca_path, "
    "timeout_seconds, status, last_sync_at, last_success_at, last_error, last_latency_ms"
)
SETTINGS_COLUMNS = frozenset(
    {
        "name",
        "base_url",
        "instance",
        "username",
        "password_encrypted",
        "verify_tls",
        "ca_path",
        "timeout_seconds",
        "description",
    }
)
LOAD_SERVER_SQL = f"""SELECT {SERVER_COLUMNS} FROM license_servers WHERE id = ?"""
LOAD_SERVERS_SQL = f"""SELECT {SERVER_COLUMNS} FROM license_servers ORDER BY name, id"""
SERVER_NAMES_SQL = "SELECT id, name FROM license_servers ORDER BY name, id"


# -- the rows the sync reads and writes --------------------------------------------------------


def load_server(db: Database, server_id: int) -> dict[str, Any] | None:
    """One server's connection and sync-status row (SERVER_COLUMNS), None when it is gone."""
    rows = db.query_dicts(LOAD_SERVER_SQL, [server_id])
    return rows[0] if rows else None


def load_servers(db: Database) -> list[dict[str, Any]]:
    """Every server's connection and sync-status row (SERVER_COLUMNS), by name."""
    return db.query_dicts(LOAD_SERVERS_SQL)


def server_names(db: Database) -> dict[int, str]:
    """Every server's name by id, in name order."""
    return {int(server_id): str(name) for server_id, name in db.query(SERVER_NAMES_SQL)}


def record_server_success(
    cur: duckdb.DuckDBPyConnection,
    server_id: int,
    latency_ms: float,
    mirror_digest: tuple[str | None, str] | None = None,
) -> None:
    """status 'ok' after a read; with mirror_digest (digest, prefix) also what set_mirror_digest
    stores, in the same statement."""
    digest_columns, params = "", [latency_ms]
    if mirror_digest is not None:
        digest, prefix = mirror_digest
        digest_columns = ", mirror_digest = ?, mirror_prefix = ?"
        params += [digest, prefix if digest is not None else None]
    cur.execute(
        f"""
        UPDATE license_servers SET status = 'ok', last_sync_at = {NOW},
            last_success_at = {NOW}, last_error = NULL, last_latency_ms = ?{digest_columns}
        WHERE id = ?
        """,
        [*params, server_id],
    )


def record_server_error(
    cur: duckdb.DuckDBPyConnection, server_id: int, message: str, latency_ms: float | None
) -> None:
    """status 'error' with the message (credentials in URLs redacted)."""
    cur.execute(
        f"""
        UPDATE license_servers SET status = 'error', last_sync_at = {NOW}, last_error = ?,
            last_latency_ms = coalesce(?, last_latency_ms) WHERE id = ?
        """,
        [redact_userinfo(message), latency_ms, server_id],
    )


SERVER_IDENTITY_SQL = (
    """SELECT instance_id, last_success_at IS NOT NULL FROM license_servers WHERE id = ?"""
)


def server_identity(cur: duckdb.DuckDBPyConnection, server_id: int) -> tuple[str | None, bool]:
    """The instance id stored for a server and whether it was ever read successfully."""
    row = cur.execute(SERVER_IDENTITY_SQL, [server_id]).fetchone()
    return (None, False) if row is None else (row[0], bool(row[1]))


def read_server_identity(db: Database, server_id: int) -> tuple[str | None, bool]:
    """server_identity, read outside a write."""
    rows = db.query(SERVER_IDENTITY_SQL, [server_id])
    return (None, False) if not rows else (rows[0][0], bool(rows[0][1]))


def set_instance_id(cur: duckdb.DuckDBPyConnection, server_id: int, instance_id: str) -> None:
    cur.execute(
        """UPDATE license_servers SET instance_id = ? WHERE id = ?""", [instance_id, server_id]
    )


def set_mirror_digest(
    cur: duckdb.DuckDBPyConnection, server_id: int, digest: str | None, prefix: str | None
) -> None:
    """Remember the digest of the groups answer the server's whole mirror was just stored from
    (None: the mirror no longer matches one answer, as after the reconciler's writes)."""
    cur.execute(
        """UPDATE license_servers SET mirror_digest = ?, mirror_prefix = ? WHERE id = ?""",
        [digest, prefix if digest is not None else None, server_id],
    )


def kept_mirror_digest(db: Database, server_id: int) -> tuple[str, str, str | None] | None:
    """(digest, prefix, instance id) the server's stored mirror came from, None when unknown."""
    row = db.query(
        """
        SELECT mirror_digest, mirror_prefix, instance_id FROM license_servers
        WHERE id = ? AND mirror_digest IS NOT NULL
        """,
        [server_id],
    )
    return (row[0][0], row[0][1], row[0][2]) if row else None


# -- the rows admins edit ----------------------------------------------------------------------


def _named(result: duckdb.DuckDBPyConnection) -> dict[str, Any] | None:
    names = [d[0] for d in result.description]
    row = result.fetchone()
    return None if row is None else dict(zip(names, row, strict=True))


def server_row(db: Database, server_id: int) -> dict[str, Any] | None:
    """Every column of one server's row (the encrypted password too), None when it is gone."""
    rows = db.query_dicts("""SELECT * FROM license_servers WHERE id = ?""", [server_id])
    return rows[0] if rows else None


def server_row_in(cur: duckdb.DuckDBPyConnection, server_id: int) -> dict[str, Any] | None:
    """server_row inside a write."""
    return _named(cur.execute("""SELECT * FROM license_servers WHERE id = ?""", [server_id]))


def server_name(cur: duckdb.DuckDBPyConnection, server_id: int) -> str | None:
    row = cur.execute("""SELECT name FROM license_servers WHERE id = ?""", [server_id]).fetchone()
    return None if row is None else row[0]


def server_name_taken(
    cur: duckdb.DuckDBPyConnection, name: str, other_than: int | None = None
) -> bool:
    """Whether a server (other than the one with id other_than) carries this name."""
    row = cur.execute(
        """SELECT 1 FROM license_servers WHERE name = ? AND id IS DISTINCT FROM ?""",
        [name, other_than],
    ).fetchone()
    return row is not None


def _settings_columns(values: Mapping[str, Any]) -> list[str]:
    """The column names of values, refused unless each is a connection setting."""
    unknown = set(values) - SETTINGS_COLUMNS
    if unknown:
        raise ValueError(f"not license server settings: {sorted(unknown)}")
    return list(values)


def insert_server(cur: duckdb.DuckDBPyConnection, values: Mapping[str, Any]) -> int:
    """A new server row from its settings (SETTINGS_COLUMNS); returns its id."""
    columns = _settings_columns(values)
    names = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    sql = f"""INSERT INTO license_servers ({names}) VALUES ({marks}) RETURNING id"""
    return int(cur.execute(sql, list(values.values())).fetchone()[0])


def update_server(
    cur: duckdb.DuckDBPyConnection, server_id: int, values: Mapping[str, Any]
) -> None:
    """Overwrite the given settings (SETTINGS_COLUMNS) of one server."""
    sets = ", ".join(f"{column} = ?" for column in _settings_columns(values))
    sql = f"""UPDATE license_servers SET {sets} WHERE id = ?"""
    cur.execute(sql, [*values.values(), server_id])


def vlms_using_server(cur: duckdb.DuckDBPyConnection, server_id: int) -> list[str]:
    """Names of the VLMs that expose a feature of the server or list the server, sorted."""
    rows = cur.execute(
        """
        SELECT DISTINCT v.name FROM vlm_features vf JOIN vlms v ON v.id = vf.vlm_id
        JOIN server_features sf ON sf.id = vf.server_feature_id WHERE sf.server_id = ?
        UNION SELECT v.name FROM vlm_servers vs JOIN vlms v ON v.id = vs.vlm_id
        WHERE vs.server_id = ? ORDER BY 1
        """,
        [server_id, server_id],
    ).fetchall()
    return [row[0] for row in rows]


DELETE_SERVER_SQL = (
    """
    DELETE FROM utilization_snapshots
    WHERE server_feature_id IN (SELECT id FROM server_features WHERE server_id = $sid)
    """,
    """
    DELETE FROM utilization_hourly
    WHERE server_feature_id IN (SELECT id FROM server_features WHERE server_id = $sid)
    """,
    """DELETE FROM counted_utilization_hourly WHERE server_id = $sid""",
    """DELETE FROM server_features WHERE server_id = $sid""",
    """DELETE FROM reservation_mirror WHERE server_id = $sid""",
    """DELETE FROM sync_conflicts WHERE server_id = $sid""",
    """DELETE FROM license_servers WHERE id = $sid""",
)


def delete_server(cur: duckdb.DuckDBPyConnection, server_id: int) -> None:
    """Delete a server with its features, their snapshots, its mirror and its conflicts."""
    for sql in DELETE_SERVER_SQL:
        cur.execute(sql, {"sid": server_id})


# -- the server list ---------------------------------------------------------------------------


def _sum_of_kind(kind: str, expression: str, name: str) -> str:
    """SQL: the sum of an expression over one license kind's rows of LICENSE_KIND_FIGURES."""
    rows = f"FILTER (WHERE k.license_kind = '{kind}')"
    return f"COALESCE(SUM({expression}) {rows}, 0)::INTEGER AS {name}"


SERVER_LIST_COLUMNS = """s.id, s.name, s.base_url, s.instance, s.username, s.verify_tls,
    s.description, s.status, s.last_sync_at, s.last_success_at, s.last_error, s.last_latency_ms"""

SERVERS_WITH_FIGURES_SQL = f"""
SELECT {SERVER_LIST_COLUMNS},
    {_sum_of_kind(COUNTED, "k.features", "features")},
    {_sum_of_kind(COUNTED, "k.total", "total")},
    {_sum_of_kind(COUNTED, "k.used", "used")},
    {_sum_of_kind(COUNTED, "k.total - k.used", "available")},
    {_sum_of_kind(METERED, "k.features", "metered_features")},
    {_sum_of_kind(UNCOUNTED, "k.features", "uncounted_features")},
    {_sum_of_kind(OTHER, "k.features", "other_features")}
FROM license_servers s LEFT JOIN ({LICENSE_KIND_FIGURES}) AS k ON k.server_id = s.id
GROUP BY {SERVER_LIST_COLUMNS} ORDER BY s.name
"""


def servers_with_figures(db: Database) -> pd.DataFrame:
    """Each server with its status, last sync and error, and its license figures: features,
    total, used and available of concurrent counted licenses; metered, uncounted and other
    features counted apart."""
    return db.query_df(SERVERS_WITH_FIGURES_SQL)
