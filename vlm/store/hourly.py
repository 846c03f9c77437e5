"""The hourly utilization summaries the trends read, kept in step with the snapshots.

`utilization_hourly` has one row per server feature and hour in which it has snapshots.
`hour_end` is a whole hour; the row sums up the feature's snapshots taken in
(hour_end - 1 hour, hour_end]: how many (samples), the figures of the last one (total, used,
reserved) and how far they moved since the feature's last snapshot of an earlier hour
(total_change, used_change, reserved_change; a feature's first hour counts from 0 and has
first_hour set).

`counted_utilization_hourly` adds those rows up per server and hour over the server's counted
concurrent features (the kind they have now): a server's 500 features become one row an hour.
Because changes add up, a trend sums them over the hours of each grid bucket and carries the
sums forward (reports.COUNTED_TREND_SQL).

The inventory pull adds its snapshots to the current hour of both in the same write
(add_pull_to_hourly; add_moves_to_hourly when it updated known features by id and holds their
moves); a pull that changes a feature's kind rebuilds its server's sums; anything that writes
older history rebuilds both (rebuild_hourly).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb
import pyarrow as pa

from vlm.store.features import STORED_FEATURE_COLUMNS
from vlm.store.figures import COUNTED, COUNTED_CONCURRENT, license_kind
from vlm.store.frames import FEW_ROWS, NOW, affected, arrow_table, registered


def hour_end_of(moment: str) -> str:
    """SQL (both engines) of the whole hour that closes the hour a TIMESTAMP expression is in."""
    return f"date_trunc('hour', {moment} - INTERVAL '1 microsecond') + INTERVAL '1 hour'"


HOURLY_COLUMNS = (
    "server_feature_id, hour_end, samples, total, used, reserved, total_change, used_change, "
    "reserved_change, first_hour"
)
COUNTED_COLUMNS = (
    "server_id, hour_end, total_change, used_change, reserved_change, features_started"
)

# The snapshots in time order (ties broken by the figures, the same way both ways), each with
# its change since the feature's previous snapshot and its place in its hour from the end.
SUMMARY_OF_SNAPSHOTS = f"""
SELECT server_feature_id, hour_end, COUNT(*)::INTEGER AS samples,
    MAX(CASE WHEN from_last = 1 THEN total END) AS total,
    MAX(CASE WHEN from_last = 1 THEN used END) AS used,
    MAX(CASE WHEN from_last = 1 THEN reserved END) AS reserved,
    SUM(total_change)::INTEGER AS total_change, SUM(used_change)::INTEGER AS used_change,
    SUM(reserved_change)::INTEGER AS reserved_change, BOOL_OR(from_first = 1) AS first_hour
FROM (
    SELECT server_feature_id, hour_end, total, used, reserved,
        total - COALESCE(LAG(total) OVER w, 0) AS total_change,
        used - COALESCE(LAG(used) OVER w, 0) AS used_change,
        reserved - COALESCE(LAG(reserved) OVER w, 0) AS reserved_change,
        row_number() OVER w AS from_first,
        row_number() OVER (PARTITION BY server_feature_id, hour_end
            ORDER BY taken_at DESC, total DESC, used DESC, reserved DESC) AS from_last
    FROM (
        SELECT server_feature_id, taken_at, total, used, reserved,
            {hour_end_of("taken_at")} AS hour_end
        FROM utilization_snapshots
    ) AS snapshots
    WINDOW w AS (PARTITION BY server_feature_id ORDER BY taken_at, total, used, reserved)
) AS ordered
GROUP BY server_feature_id, hour_end
"""

COUNTED_OF_FEATURES = f"""
SELECT sf.server_id, h.hour_end, SUM(h.total_change), SUM(h.used_change),
    SUM(h.reserved_change), COUNT(*) FILTER (WHERE h.first_hour)
FROM utilization_hourly h JOIN server_features sf ON sf.id = h.server_feature_id
WHERE {COUNTED_CONCURRENT} {{servers}}
GROUP BY sf.server_id, h.hour_end
"""

REBUILD_SQL = (
    """DELETE FROM utilization_hourly""",
    f"""INSERT INTO utilization_hourly ({HOURLY_COLUMNS})
    {SUMMARY_OF_SNAPSHOTS} ORDER BY hour_end, server_feature_id""",
    """DELETE FROM counted_utilization_hourly""",
    f"""INSERT INTO counted_utilization_hourly ({COUNTED_COLUMNS})
    {COUNTED_OF_FEATURES.format(servers="")} ORDER BY 2, 1""",
)

REBUILD_SERVER_SQL = (
    """DELETE FROM counted_utilization_hourly WHERE server_id = $sid""",
    f"""INSERT INTO counted_utilization_hourly ({COUNTED_COLUMNS})
    {COUNTED_OF_FEATURES.format(servers="AND sf.server_id = $sid")} ORDER BY 2""",
)

CURRENT_HOUR = hour_end_of(NOW)

FIGURES_NOW_SQL = f"""
SELECT id, total, used, reserved, {COUNTED_CONCURRENT} AS counted
FROM server_features sf WHERE server_id = ?
"""

ADD_TO_CURRENT_HOUR_SQL = f"""
UPDATE utilization_hourly SET samples = samples + 1,
    total_change = utilization_hourly.total_change + c.total_change,
    used_change = utilization_hourly.used_change + c.used_change,
    reserved_change = utilization_hourly.reserved_change + c.reserved_change,
    total = c.total, used = c.used, reserved = c.reserved
FROM hourly_changes c
WHERE utilization_hourly.server_feature_id = c.id AND utilization_hourly.hour_end = {CURRENT_HOUR}
"""

START_CURRENT_HOUR_SQL = f"""
INSERT INTO utilization_hourly ({HOURLY_COLUMNS})
SELECT c.id, {CURRENT_HOUR}, 1, c.total, c.used, c.reserved, c.total_change, c.used_change,
    c.reserved_change, c.is_new
FROM hourly_changes c {{unless_started}}
"""

NOT_STARTED = f"""WHERE NOT EXISTS (
    SELECT 1 FROM utilization_hourly h
    WHERE h.server_feature_id = c.id AND h.hour_end = {CURRENT_HOUR})"""

ADD_TO_COUNTED_SQL = f"""
UPDATE counted_utilization_hourly SET total_change = total_change + ?,
    used_change = used_change + ?, reserved_change = reserved_change + ?,
    features_started = features_started + ?
WHERE server_id = ? AND hour_end = {CURRENT_HOUR}
"""

START_COUNTED_SQL = f"""
INSERT INTO counted_utilization_hourly ({COUNTED_COLUMNS}) VALUES (?, {CURRENT_HOUR}, ?, ?, ?, ?)
"""

ADD_ONE_TO_CURRENT_HOUR_SQL = f"""
UPDATE utilization_hourly SET samples = samples + 1, total_change = total_change + ?,
    used_change = used_change + ?, reserved_change = reserved_change + ?,
    total = ?, used = ?, reserved = ?
WHERE server_feature_id = ? AND hour_end = {CURRENT_HOUR}
"""

START_ONE_CURRENT_HOUR_SQL = f"""
INSERT INTO utilization_hourly ({HOURLY_COLUMNS})
VALUES (?, {CURRENT_HOUR}, 1, ?, ?, ?, ?, ?, ?, ?)
"""

STORED_NAMES = [name.strip() for name in STORED_FEATURE_COLUMNS.split(",")]
CHANGE_TYPES = {
    "id": pa.int64(),
    "total": pa.int64(),
    "used": pa.int64(),
    "reserved": pa.int64(),
    "total_change": pa.int64(),
    "used_change": pa.int64(),
    "reserved_change": pa.int64(),
    "is_new": pa.bool_(),
}


def add_pull_to_hourly(
    cur: duckdb.DuckDBPyConnection, server_id: int, stored_rows: Sequence[tuple]
) -> None:
    """Add the snapshots a pull of one server just took (insert_changed_snapshots, in the same
    write: a row for every feature whose figures moved, or that is new) to the current hour of
    both summaries. `stored_rows` are the server's features as the pull read them before
    storing its own (features.stored_features)."""
    before = {row[0]: dict(zip(STORED_NAMES, row, strict=True)) for row in stored_rows}
    now = cur.execute(FIGURES_NOW_SQL, [server_id]).fetchall()
    changes = [change for row in now if (change := _change(before.get(row[0]), row)) is not None]
    _add_changes(cur, changes)
    counted_now = {row[0]: bool(row[4]) for row in now}
    if any(_counted(old) != counted_now.get(key) for key, old in before.items()):
        for sql in REBUILD_SERVER_SQL:
            cur.execute(sql, {"sid": server_id})
        return
    _add_to_counted(cur, server_id, [change for change in changes if counted_now[change[0]]])


def add_moves_to_hourly(
    cur: duckdb.DuckDBPyConnection,
    server_id: int,
    moves: Sequence[tuple],
    counted: Sequence[tuple],
) -> None:
    """Add the snapshots a pull took of features it updated by id (none new, none of another
    kind now) to the current hour of both summaries, without reading the features again:
    `moves` (CHANGE_TYPES order) are the figures stored and their move since the stored ones,
    `counted` those of them that are counted concurrent features."""
    _add_changes(cur, moves)
    _add_to_counted(cur, server_id, counted)


def _add_changes(cur: duckdb.DuckDBPyConnection, changes: Sequence[tuple]) -> None:
    """Add the changes (CHANGE_TYPES order) to the features' rows of the current hour: one
    statement per row for a few, else registered once for all."""
    if len(changes) <= FEW_ROWS:
        for change in changes:
            _add_one_to_current_hour(cur, change)
        return
    with registered(cur, "hourly_changes", arrow_table(list(changes), CHANGE_TYPES)):
        _add_to_current_hour(cur, len(changes))


def _add_one_to_current_hour(cur: duckdb.DuckDBPyConnection, change: tuple) -> None:
    """Add one change to its feature's row of the current hour, or start that row."""
    feature_id, total, used, reserved, total_change, used_change, reserved_change, new = change
    moves = [total_change, used_change, reserved_change]
    if not affected(
        cur.execute(ADD_ONE_TO_CURRENT_HOUR_SQL, [*moves, total, used, reserved, feature_id])
    ):
        cur.execute(START_ONE_CURRENT_HOUR_SQL, [feature_id, total, used, reserved, *moves, new])


def _add_to_current_hour(cur: duckdb.DuckDBPyConnection, changed: int) -> None:
    """Add the registered hourly_changes to the features' rows of the current hour, starting
    the rows not there yet (the first pull of an hour starts them all)."""
    added = affected(cur.execute(ADD_TO_CURRENT_HOUR_SQL))
    if added < changed:
        unless_started = NOT_STARTED if added else ""
        cur.execute(START_CURRENT_HOUR_SQL.format(unless_started=unless_started))


def _add_to_counted(
    cur: duckdb.DuckDBPyConnection, server_id: int, counted: Sequence[tuple]
) -> None:
    """Add the changes of counted concurrent features to the server's row of the current hour
    (started when not there yet)."""
    if not counted:
        return
    moves = [sum(column) for column in zip(*(change[4:7] for change in counted), strict=True)]
    sums = [*moves, sum(1 for change in counted if change[7])]
    if not affected(cur.execute(ADD_TO_COUNTED_SQL, [*sums, server_id])):
        cur.execute(START_COUNTED_SQL, [server_id, *sums])


def _change(old: dict[str, object] | None, now: tuple) -> tuple | None:
    """A feature's figures now with their move since before the pull (a new feature moves from
    0), or None when they did not move (CHANGE_TYPES order)."""
    figures = now[1:4]
    if old is None:
        return (now[0], *figures, *figures, True)
    previous = (old["total"], old["used"], old["reserved"])
    if figures == previous:
        return None
    return (now[0], *figures, *(a - b for a, b in zip(figures, previous, strict=True)), False)


def _counted(row: dict[str, object]) -> bool:
    """Whether a stored feature row is of the counted concurrent kind."""
    flags = {flag: bool(row[flag]) for flag in ("concurrent", "uncounted", "metered")}
    return license_kind(**flags) == COUNTED


def rebuild_hourly(cur: duckdb.DuckDBPyConnection) -> None:
    """Summarise every snapshot again (after history was written out of time order)."""
    for sql in REBUILD_SQL:
        cur.execute(sql)
