"""Demo seeding: synthetic utilization history, for the trend charts of a fresh demo database."""

from __future__ import annotations

import duckdb

SYNTHETIC_HISTORY = """
INSERT INTO utilization_snapshots (server_feature_id, taken_at, total, used, reserved)
SELECT sf.id, t.ts, sf.total,
    LEAST(sf.total, GREATEST(0, CAST(round(sf.total * (0.45
        + 0.3 * sin(2 * pi() * (hour(t.ts) - 8) / 24.0) * (dayofweek(t.ts) BETWEEN 1 AND 5)::INT
        + 0.1 * sin(sf.id + epoch(t.ts) / 86400.0))) AS INTEGER))),
    sf.reserved
FROM server_features sf
CROSS JOIN (
    SELECT unnest(generate_series(
        date_trunc('hour', now()::TIMESTAMP) - INTERVAL (?) DAY,
        date_trunc('hour', now()::TIMESTAMP) - INTERVAL 1 HOUR,
        INTERVAL 3 HOUR)) AS ts
) t
WHERE sf.present AND sf.total > 0
"""


def insert_synthetic_history(cur: duckdb.DuckDBPyConnection, days: int) -> None:
    """Working-hours usage every 3 hours of the last days for each present feature with licenses
    (busier on weekdays around 14:00), ending an hour before now."""
    cur.execute(SYNTHETIC_HISTORY, [days])
