"""The reservation mirror (VLM's copy of each server's reservation groups), the reconciler's
plan rows and the allocation outcomes it records: marks, retries with backoff, removals.

Functions taking `cur` run inside a caller's `Database.write` transaction; functions taking `db`
are reads. Bulk rows travel as registered frames (see vlm.store.frames).
"""

from __future__ import annotations

from collections import Counter

import duckdb
import pandas as pd
import pyarrow as pa

from vlm.domain import BATCH_GROUP_MARK, GROUP_NAME_MAX_LENGTH, redact_userinfo
from vlm.store.database import Database
from vlm.store.frames import NOW, affected, registered

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
INSERT_MIRROR_SQL = f"""
INSERT INTO reservation_mirror ({", ".join(MIRROR_COLUMNS)})
SELECT {", ".join(MIRROR_COLUMNS)} FROM sync_mirror_in
"""
OUTCOME_DTYPES = {"id": "int64", "count": "int64", "state": "object", "message": "object"}


def replace_mirror(cur: duckdb.DuckDBPyConnection, server_id: int, rows: pa.Table) -> None:
    """Replace every mirrored reservation row of one server."""
    cur.execute("""DELETE FROM reservation_mirror WHERE server_id = ?""", [server_id])
    _insert_mirror(cur, rows)


def replace_mirror_groups(
    cur: duckdb.DuckDBPyConnection, server_id: int, group_names: list[str], rows: pa.Table
) -> None:
    """Replace the mirrored rows of the named groups of one server."""
    replace_mirror_parts(cur, server_id, group_names, [], rows)


def replace_mirror_parts(
    cur: duckdb.DuckDBPyConnection,
    server_id: int,
    group_names: list[str],
    reservations: list[tuple[str, str, str]],
    rows: pa.Table,
) -> None:
    """Replace the mirrored rows of whole groups (by name) and of single reservations
    ((group name, host type, host id), the type in any case) of one server with rows; nothing
    happens when neither is named."""
    if not group_names and not reservations:
        return
    if group_names:
        names = pd.DataFrame({"group_name": pd.Series(group_names, dtype="object")})
        with registered(cur, "sync_touched_groups", names):
            cur.execute(
                """
                DELETE FROM reservation_mirror WHERE server_id = ?
                AND group_name IN (SELECT group_name FROM sync_touched_groups)
                """,
                [server_id],
            )
    if reservations:
        names, types, hosts = zip(*reservations, strict=True)
        keys = pd.DataFrame(
            {
                "group_name": pd.Series(names, dtype="object"),
                "host_type": pd.Series([t.upper() for t in types], dtype="object"),
                "host_id": pd.Series(hosts, dtype="object"),
            }
        )
        with registered(cur, "sync_touched_reservations", keys):
            cur.execute(
                """
                DELETE FROM reservation_mirror WHERE server_id = ?
                AND (group_name, upper(host_type), host_id) IN
                    (SELECT group_name, host_type, host_id FROM sync_touched_reservations)
                """,
                [server_id],
            )
    _insert_mirror(cur, rows)


def _insert_mirror(cur: duckdb.DuckDBPyConnection, rows: pa.Table) -> None:
    if rows.num_rows == 0:
        return
    with registered(cur, "sync_mirror_in", rows):
        cur.execute(INSERT_MIRROR_SQL)


def stored_owned_group_ids(cur: duckdb.DuckDBPyConnection, server_id: int) -> list[tuple[int, str]]:
    """(group id, name) of every VLM group the mirror remembers on a server."""
    return cur.execute(
        """
        SELECT DISTINCT group_id, group_name FROM reservation_mirror
        WHERE server_id = ? AND owned AND group_id IS NOT NULL
        """,
        [server_id],
    ).fetchall()


MIRROR_DIGEST_SQL = f"""SELECT count(*), sum(hash({", ".join(MIRROR_COLUMNS)})::HUGEINT) FROM"""


def mirror_holds_exactly(
    cur: duckdb.DuckDBPyConnection, server_id: int, rows: list[tuple], table: pa.Table
) -> bool:
    """Whether the stored mirror of one server holds exactly these rows (MIRROR_COLUMNS order;
    `table` is the same rows as mirror_table makes them), each as many times.

    DuckDB compares a count and a sum of row hashes on both sides, in SQL; PostgreSQL reads the
    stored rows and compares them in Python."""
    if getattr(cur, "dialect", "duckdb") == "duckdb":
        stored = cur.execute(
            f"{MIRROR_DIGEST_SQL} reservation_mirror WHERE server_id = ?", [server_id]
        ).fetchall()
        with registered(cur, "sync_mirror_fresh", table):
            fresh = cur.execute(f"{MIRROR_DIGEST_SQL} sync_mirror_fresh").fetchall()
        return stored == fresh
    held = cur.execute(
        f"""SELECT {", ".join(MIRROR_COLUMNS)} FROM reservation_mirror WHERE server_id = ?""",
        [server_id],
    ).fetchall()
    return len(held) == len(rows) and Counter(held) == Counter(rows)


# The counts groups VLM does not own reserve per (feature name, version), the number of groups
# and of VLM's groups among them.
MirrorSummary = tuple[dict[tuple[str, str], int], int, int]


def mirror_summary(db: Database, server_id: int) -> MirrorSummary:
    """What the stored mirror of one server says: the counts groups VLM does not own reserve per
    (feature name, version), how many groups there are and how many of them are VLM's."""
    others = db.query(
        """
        SELECT feature_name, feature_version, SUM(count) FROM reservation_mirror
        WHERE server_id = ? AND NOT owned AND count <> 0 GROUP BY 1, 2
        """,
        [server_id],
    )
    groups, owned = db.query(
        """
        SELECT COUNT(*), COUNT(*) FILTER (WHERE owned) FROM (
            SELECT DISTINCT group_id, group_name, owned FROM reservation_mirror
            WHERE server_id = ?
        ) AS g
        """,
        [server_id],
    )[0]
    return {(name, version): int(total) for name, version, total in others}, int(groups), int(owned)


# The allocation states the reconciler plans from (plan_rows and its fingerprint alike).
_PLANNED_STATES = "('pending', 'applied', 'disabled', 'removing', 'expiring')"

PLAN_ROWS_SQL = f"""
WITH wanted AS (
    SELECT a.host_type, a.host_id, a.feature_name, a.feature_version, SUM(a.count) AS want,
           BOOL_AND(a.state = 'applied') AS settled
    FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
    WHERE sf.server_id = $sid
      AND a.state IN {_PLANNED_STATES}
    GROUP BY a.host_type, a.host_id, a.feature_name, a.feature_version),
hosts AS (
    SELECT host_type, host_id, BOOL_AND(settled) AS settled, COUNT(*) AS keys,
           $prefix || host_type || '-' || host_id AS group_name
    FROM wanted GROUP BY host_type, host_id
    HAVING (host_type || '-' || host_id) ~ '^[A-Za-z0-9_.\\-]+$'
       AND length($prefix || host_type || '-' || host_id) <= {GROUP_NAME_MAX_LENGTH}),
mirror AS (
    SELECT * FROM reservation_mirror WHERE server_id = $sid AND owned),
-- A host's facts and its group's shape meet in one GROUP BY, not in joins of aggregates:
-- PostgreSQL estimates such joins at one row and rescans them in nested loops (seconds).
facts AS (
    SELECT group_name, 'host' AS part, host_type, host_id, CAST(NULL AS BIGINT) AS reservation_id,
           '' AS feature_name, '' AS feature_version, settled, keys
    FROM hosts
    UNION ALL
    SELECT group_name, 'mirror', host_type, host_id, reservation_id, feature_name,
           feature_version, NULL, NULL
    FROM mirror
    UNION ALL
    SELECT m.group_name, 'match', '', '', NULL, '', '', NULL, NULL
    FROM wanted w JOIN mirror m
      ON m.group_name = $prefix || w.host_type || '-' || w.host_id
     AND m.feature_name = w.feature_name AND m.feature_version = w.feature_version
     AND m.count = w.want),
settled AS (
    SELECT group_name, MIN(host_type) FILTER (WHERE part = 'host') AS host_type,
           MIN(host_id) FILTER (WHERE part = 'host') AS host_id
    FROM facts GROUP BY group_name
    HAVING COUNT(*) FILTER (WHERE part = 'host') = 1
       AND BOOL_AND(settled) FILTER (WHERE part = 'host')
       AND COUNT(DISTINCT (reservation_id, host_type, host_id))
           FILTER (WHERE part = 'mirror' AND NOT (host_type = '' AND host_id = '')) = 1
       AND MIN(upper(host_type)) FILTER (WHERE part = 'mirror')
           = MAX(upper(host_type)) FILTER (WHERE part = 'mirror')
       AND MIN(upper(host_type)) FILTER (WHERE part = 'mirror')
           = MIN(upper(host_type)) FILTER (WHERE part = 'host')
       AND MIN(host_id) FILTER (WHERE part = 'mirror') = MAX(host_id) FILTER (WHERE part = 'mirror')
       AND MIN(host_id) FILTER (WHERE part = 'mirror') = MIN(host_id) FILTER (WHERE part = 'host')
       AND COUNT(*) FILTER (WHERE part = 'mirror' AND feature_name <> '') = MAX(keys)
       AND COUNT(DISTINCT (feature_name, feature_version))
           FILTER (WHERE part = 'mirror' AND feature_name <> '') = MAX(keys)
       AND COUNT(*) FILTER (WHERE part = 'match') = MAX(keys)),
-- Hosts held in batch groups (vlm.sync.batch), keyed by host: settled when all the host's
-- allocations are applied and exactly one owned reservation on the server holds it, in a batch
-- group, with one entry per feature carrying the applied sum.
batch_facts AS (
    SELECT upper(host_type) AS ht, host_id AS hid, 'host' AS part, '' AS group_name,
           CAST(NULL AS BIGINT) AS reservation_id, '' AS feature_name, '' AS feature_version,
           settled, keys
    FROM hosts
    UNION ALL
    SELECT upper(host_type), host_id, 'mirror', group_name, reservation_id, feature_name,
           feature_version, NULL, NULL
    FROM mirror WHERE NOT (host_type = '' AND host_id = '')
    UNION ALL
    SELECT upper(w.host_type), w.host_id, 'match', m.group_name, m.reservation_id, '', '',
           NULL, NULL
    FROM wanted w JOIN mirror m
      ON upper(m.host_type) = upper(w.host_type) AND m.host_id = w.host_id
     AND starts_with(m.group_name, $prefix || '{BATCH_GROUP_MARK}')
     AND m.feature_name = w.feature_name AND m.feature_version = w.feature_version
     AND m.count = w.want),
batch_settled AS (
    SELECT ht, hid FROM batch_facts GROUP BY ht, hid
    HAVING COUNT(*) FILTER (WHERE part = 'host') = 1
       AND BOOL_AND(settled) FILTER (WHERE part = 'host')
       AND COUNT(DISTINCT (group_name, reservation_id)) FILTER (WHERE part = 'mirror') = 1
       AND BOOL_AND(starts_with(group_name, $prefix || '{BATCH_GROUP_MARK}'))
           FILTER (WHERE part = 'mirror')
       AND COUNT(*) FILTER (WHERE part = 'mirror' AND feature_name <> '') = MAX(keys)
       AND COUNT(DISTINCT (feature_name, feature_version))
           FILTER (WHERE part = 'mirror' AND feature_name <> '') = MAX(keys)
       AND COUNT(*) FILTER (WHERE part = 'match') = MAX(keys))
SELECT 'allocation' AS kind, a.id, NULL::BIGINT, NULL::VARCHAR, NULL::BIGINT, a.host_type,
       a.host_id, NULL::BIGINT, a.feature_name, a.feature_version, a.count, a.state,
       (a.state <> 'pending' OR $force OR a.next_attempt_at IS NULL
        OR a.next_attempt_at <= {NOW}) AS due,
       a.host_type AS t1, a.host_id AS t2, a.feature_name AS t3, a.feature_version AS t4,
       NULL::BIGINT AS n1, a.id AS n2
FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
WHERE sf.server_id = $sid
  AND a.state IN {_PLANNED_STATES}
  AND NOT EXISTS (SELECT 1 FROM settled s
                  WHERE s.host_type = a.host_type AND s.host_id = a.host_id)
  AND NOT EXISTS (SELECT 1 FROM batch_settled b
                  WHERE b.ht = upper(a.host_type) AND b.hid = a.host_id)
UNION ALL
SELECT 'mirror', NULL, m.group_id, m.group_name, m.reservation_id, m.host_type, m.host_id,
       m.entry_id, m.feature_name, m.feature_version, m.count, m.entry_state, NULL,
       m.group_name, NULL, NULL, NULL, m.reservation_id, m.entry_id
FROM mirror m
WHERE m.group_name NOT IN (SELECT group_name FROM settled)
  AND NOT EXISTS (SELECT 1 FROM batch_settled b
                  WHERE b.ht = upper(m.host_type) AND b.hid = m.host_id)
UNION ALL
SELECT 'settled', (SELECT COUNT(*) FROM settled) + (SELECT COUNT(*) FROM batch_settled), NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
       NULL
ORDER BY kind, t1, t2, t3, t4, n1, n2
"""


# What plan_rows reads of a server, as a count and a sum of row hashes each: the allocations it
# plans from (with the server feature they are on) and the owned mirror rows. DuckDB only
# (PostgreSQL has no hash()). Equal fingerprints: plan_rows would read the same rows again.
_ALLOCATION_HASH = """sum(hash(a.id, a.server_feature_id, a.host_type, a.host_id, a.feature_name,
    a.feature_version, a.count, a.state))::HUGEINT"""
_MIRROR_HASH = f"sum(hash({', '.join(MIRROR_COLUMNS)}))::HUGEINT"

PLAN_INPUTS_SQL = f"""
WITH a AS (
    SELECT count(*) AS n, {_ALLOCATION_HASH} AS h
    FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
    WHERE sf.server_id = $sid AND a.state IN {_PLANNED_STATES}),
m AS (
    SELECT count(*) AS n, {_MIRROR_HASH} AS h
    FROM reservation_mirror WHERE server_id = $sid AND owned)
SELECT a.n, a.h, m.n, m.h FROM a, m
"""

# The same fingerprint of every server at once: one scan of each table, not one per server.
EVERY_PLAN_INPUTS_SQL = f"""
WITH a AS (
    SELECT sf.server_id, count(*) AS n, {_ALLOCATION_HASH} AS h
    FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
    WHERE a.state IN {_PLANNED_STATES} GROUP BY sf.server_id),
m AS (
    SELECT server_id, count(*) AS n, {_MIRROR_HASH} AS h
    FROM reservation_mirror WHERE owned GROUP BY server_id)
SELECT s.id, coalesce(a.n, 0), a.h, coalesce(m.n, 0), m.h FROM license_servers s
LEFT JOIN a ON a.server_id = s.id LEFT JOIN m ON m.server_id = s.id
"""


def plan_inputs(db: Database, server_id: int) -> tuple | None:
    """The fingerprint of what plan_rows reads of the server (PLAN_INPUTS_SQL); None where the
    engine cannot hash rows (PostgreSQL): plan_rows then always runs."""
    if db.dialect != "duckdb":
        return None
    return tuple(db.query(PLAN_INPUTS_SQL, {"sid": server_id})[0])


def every_plan_inputs(db: Database) -> dict[int, tuple] | None:
    """plan_inputs of every server by id, read at once; None on PostgreSQL."""
    if db.dialect != "duckdb":
        return None
    return {int(row[0]): tuple(row[1:]) for row in db.query(EVERY_PLAN_INPUTS_SQL)}


def plan_rows(
    db: Database, server_id: int, force: bool, prefix: str
) -> tuple[list[tuple], list[tuple], int]:
    """What the reconciler must look at on one server, read in one consistent query.

    Returns (allocation rows, owned mirror rows, settled hosts). A host is settled (and left
    out of both lists) when all its allocations are applied and its VLM group, under the
    plain name VLM gives it, holds exactly one reservation for that host with one entry per
    feature carrying the applied sum; or when exactly one owned reservation holds the host,
    in a batch group, with such entries: a reconcile pass could not change anything for it.
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
        return affected(
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
        return affected(
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
        return affected(
            cur.execute(
                f"""
                UPDATE allocations SET last_error = u.message,
                    attempts = allocations.attempts + 1,
                    next_attempt_at = {NOW} + INTERVAL '1 second' * least(
                        {MAX_BACKOFF_SECONDS}, pow(2, least(allocations.attempts, 16)))
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
    return affected(
        cur.execute(
            f"""
            UPDATE allocations SET last_error = ?, attempts = attempts + 1,
                next_attempt_at = {NOW} + INTERVAL '1 second' * least(
                    {MAX_BACKOFF_SECONDS}, pow(2, least(attempts, 16)))
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
    return affected(
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
        return affected(
            cur.execute(
                """
                DELETE FROM allocations WHERE state = 'removing'
                AND id IN (SELECT id FROM sync_removed)
                """
            )
        )


def seconds_until_next_retry(db: Database) -> float | None:
    """Seconds until the earliest backed-off pending allocation is due (None if there is none)."""
    value = db.scalar(
        f"""
        SELECT EXTRACT(EPOCH FROM (min(next_attempt_at) - {NOW})) FROM allocations
        WHERE state = 'pending' AND next_attempt_at IS NOT NULL
        """
    )
    return None if value is None else max(0.0, float(value))


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
