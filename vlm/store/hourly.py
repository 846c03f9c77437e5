"""The hourly utilization summary: one row per server feature and hour in which it has snapshots.

`utilization_hourly.hour_end` is a whole hour; the row sums up the feature's snapshots taken in
(hour_end - 1 hour, hour_end]: how many (samples), the figures of the last one (total, used,
reserved) and how far they moved since the last snapshot of an earlier hour (total_change,
used_change, reserved_change; a feature's first hour counts from 0 and has first_hour set).

Because the changes add up, a trend sums them over the hours of each grid bucket and carries the
sums forward, without looking for each feature's last row (reports.TREND_SQL). Rows are kept in
step with the snapshots: the inventory pull adds its snapshots to the current hour in the same
write (add_pull_to_hourly); anything that writes older history rebuilds the summary.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from vlm.store.frames import NOW, registered


def hour_end_of(moment: str) -> str:
    """SQL (both engines) of the whole hour that closes the hour a TIMESTAMP expression is in."""
    return f"date_trunc('hour', {moment} - INTERVAL '1 microsecond') + INTERVAL '1 hour'"


HOURLY_COLUMNS = (
    "server_feature_id, hour_end, samples, total, used, reserved, total_change, used_change, "
    "reserved_change, first_hour"
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

REBUILD_SQL = (
    """DELETE FROM utilization_hourly""",
    f"""INSERT INTO utilization_hourly ({HOURLY_COLUMNS})
    {SUMMARY_OF_SNAPSHOTS} ORDER BY hour_end, server_feature_id""",
)

CURRENT_HOUR = hour_end_of(NOW)

# The features whose figures this pull changed (the same rule insert_changed_snapshots applies),
# with the figures they had before it.
PULL_CHANGES = """
SELECT sf.id, sf.total, sf.used, sf.reserved, COALESCE(p.total, 0) AS total_before,
    COALESCE(p.used, 0) AS used_before, COALESCE(p.reserved, 0) AS reserved_before,
    p.id IS NULL AS is_new
FROM server_features sf LEFT JOIN hourly_previous p ON p.id = sf.id
WHERE sf.server_id = $sid
  AND (p.id IS NULL OR p.total <> sf.total OR p.used <> sf.used OR p.reserved <> sf.reserved)
"""

ADD_PULL_SQL = (
    f"""
    UPDATE utilization_hourly SET samples = samples + 1,
        total_change = total_change + c.total - utilization_hourly.total,
        used_change = used_change + c.used - utilization_hourly.used,
        reserved_change = reserved_change + c.reserved - utilization_hourly.reserved,
        total = c.total, used = c.used, reserved = c.reserved
    FROM ({PULL_CHANGES}) AS c
    WHERE utilization_hourly.server_feature_id = c.id
      AND utilization_hourly.hour_end = {CURRENT_HOUR}
    """,
    f"""
    INSERT INTO utilization_hourly ({HOURLY_COLUMNS})
    SELECT c.id, {CURRENT_HOUR}, 1, c.total, c.used, c.reserved, c.total - c.total_before,
        c.used - c.used_before, c.reserved - c.reserved_before, c.is_new
    FROM ({PULL_CHANGES}) AS c
    WHERE NOT EXISTS (
        SELECT 1 FROM utilization_hourly h
        WHERE h.server_feature_id = c.id AND h.hour_end = {CURRENT_HOUR})
    """,
)


def add_pull_to_hourly(
    cur: duckdb.DuckDBPyConnection, server_id: int, previous: pd.DataFrame
) -> None:
    """Add the snapshots a pull of one server just took (insert_changed_snapshots, same write and
    the same `previous` figures) to the current hour of the summary."""
    with registered(cur, "hourly_previous", previous):
        for sql in ADD_PULL_SQL:
            cur.execute(sql, {"sid": server_id})


def rebuild_hourly(cur: duckdb.DuckDBPyConnection) -> None:
    """Summarise every snapshot again (after history was written out of time order)."""
    for sql in REBUILD_SQL:
        cur.execute(sql)
