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
(add_pull_to_hourly); a pull that changes a feature's kind rebuilds its server's sums; anything
that writes older history rebuilds both (rebuild_hourly).
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from vlm.store.features import STORED_FEATURE_COLUMNS
from vlm.store.figures import COUNTED, COUNTED_CONCURRENT, license_kind
from vlm.store.frames import NOW, frame, registered


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

# The features whose figures this pull changed (the same rule insert_changed_snapshots applies),
# with the figures they had before it.
PULL_CHANGES = """
SELECT sf.id, sf.total, sf.used, sf.reserved, sf.total - COALESCE(p.total, 0) AS total_change,
    sf.used - COALESCE(p.used, 0) AS used_change,
    sf.reserved - COALESCE(p.reserved, 0) AS reserved_change, p.id IS NULL AS is_new
FROM server_features sf LEFT JOIN hourly_previous p ON p.id = sf.id
WHERE sf.server_id = $sid
  AND (p.id IS NULL OR p.total <> sf.total OR p.used <> sf.used OR p.reserved <> sf.reserved)
"""

ADD_PULL_SQL = (
    f"""
    UPDATE utilization_hourly SET samples = samples + 1,
        total_change = utilization_hourly.total_change + c.total_change,
        used_change = utilization_hourly.used_change + c.used_change,
        reserved_change = utilization_hourly.reserved_change + c.reserved_change,
        total = c.total, used = c.used, reserved = c.reserved
    FROM ({PULL_CHANGES}) AS c
    WHERE utilization_hourly.server_feature_id = c.id
      AND utilization_hourly.hour_end = {CURRENT_HOUR}
    """,
    f"""
    INSERT INTO utilization_hourly ({HOURLY_COLUMNS})
    SELECT c.id, {CURRENT_HOUR}, 1, c.total, c.used, c.reserved, c.total_change, c.used_change,
        c.reserved_change, c.is_new
    FROM ({PULL_CHANGES}) AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM utilization_hourly h
        WHERE h.server_feature_id = c.id AND h.hour_end = {CURRENT_HOUR})
    """,
)

ADD_PULL_TO_COUNTED_SQL = f"""
INSERT INTO counted_utilization_hourly ({COUNTED_COLUMNS})
SELECT $sid, {CURRENT_HOUR}, SUM(c.total_change), SUM(c.used_change), SUM(c.reserved_change),
    COUNT(*) FILTER (WHERE c.is_new)
FROM ({PULL_CHANGES}) AS c JOIN server_features sf ON sf.id = c.id
WHERE {COUNTED_CONCURRENT}
HAVING COUNT(*) > 0
ON CONFLICT (server_id, hour_end) DO UPDATE SET
    total_change = counted_utilization_hourly.total_change + excluded.total_change,
    used_change = counted_utilization_hourly.used_change + excluded.used_change,
    reserved_change = counted_utilization_hourly.reserved_change + excluded.reserved_change,
    features_started = counted_utilization_hourly.features_started + excluded.features_started
"""

COUNTED_NOW_SQL = f"""SELECT id, {COUNTED_CONCURRENT} FROM server_features sf WHERE server_id = ?"""

STORED_NAMES = [name.strip() for name in STORED_FEATURE_COLUMNS.split(",")]
PREVIOUS_DTYPES = {"id": "int64", "total": "int64", "used": "int64", "reserved": "int64"}


def add_pull_to_hourly(
    cur: duckdb.DuckDBPyConnection, server_id: int, stored_rows: Sequence[tuple]
) -> None:
    """Add the snapshots a pull of one server just took (insert_changed_snapshots, in the same
    write) to the current hour of both summaries. `stored_rows` are the server's features as
    the pull read them before storing its own (features.stored_features)."""
    stored = [dict(zip(STORED_NAMES, row, strict=True)) for row in stored_rows]
    previous = frame([tuple(row[c] for c in PREVIOUS_DTYPES) for row in stored], PREVIOUS_DTYPES)
    with registered(cur, "hourly_previous", previous):
        for sql in ADD_PULL_SQL:
            cur.execute(sql, {"sid": server_id})
        if _kind_changed(cur, server_id, stored):
            for sql in REBUILD_SERVER_SQL:
                cur.execute(sql, {"sid": server_id})
        else:
            cur.execute(ADD_PULL_TO_COUNTED_SQL, {"sid": server_id})


def _kind_changed(
    cur: duckdb.DuckDBPyConnection, server_id: int, stored: Sequence[dict[str, object]]
) -> bool:
    """Whether any stored feature of the server is counted concurrent now and was not, or the
    other way round."""
    counted_now = dict(cur.execute(COUNTED_NOW_SQL, [server_id]).fetchall())
    for row in stored:
        flags = {flag: bool(row[flag]) for flag in ("concurrent", "uncounted", "metered")}
        if (license_kind(**flags) == COUNTED) != counted_now.get(row["id"]):
            return True
    return False


def rebuild_hourly(cur: duckdb.DuckDBPyConnection) -> None:
    """Summarise every snapshot again (after history was written out of time order)."""
    for sql in REBUILD_SQL:
        cur.execute(sql)
