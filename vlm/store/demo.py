"""Demo seeding: synthetic utilization history, for the trend charts of a fresh demo database."""

from __future__ import annotations

import duckdb

SYNTHETIC_HISTORY = """
INSERT INTO utilization_snapshots (server_feature_id, taken_at, total, used, reserved)
SELECT sf.id, t.ts, sf.total,
    LEAST(sf.total, GREATEST(0, CAST(round(sf.total * (0.45
        + 0.3 * sin(2 * pi() * (EXTRACT(HOUR FROM t.ts) - 8) / 24.0)
            * CAST(EXTRACT(DOW FROM t.ts) BETWEEN 1 AND 5 AS INTEGER)
        + 0.1 * sin(sf.id + EXTRACT(EPOCH FROM t.ts) / 86400.0))) AS INTEGER))),
    sf.reserved
FROM server_features sf
CROSS JOIN generate_series(
    date_trunc('hour', now()::TIMESTAMP) - ? * INTERVAL '1 day',
    date_trunc('hour', now()::TIMESTAMP) - INTERVAL '1 hour',
    INTERVAL '3 hours') AS t(ts)
WHERE sf.present AND sf.total > 0
"""


def backdate_allocations(cur: duckdb.DuckDBPyConnection, host_id: str, days: int) -> None:
    """Demo only: the host's allocations were made and applied `days` ago (an idle seat)."""
    cur.execute(
        "UPDATE allocations SET created_at = created_at - ? * INTERVAL '1 day', "
        "applied_at = coalesce(applied_at, current_timestamp::TIMESTAMP) - ? * INTERVAL '1 day' "
        "WHERE host_id = ?",
        [days, days, host_id],
    )


def backdate_failures(cur: duckdb.DuckDBPyConnection, host_id: str, minutes: int) -> None:
    """Demo only: the server has been refusing the host's allocations for `minutes`."""
    cur.execute(
        "UPDATE allocations SET updated_at = updated_at - ? * INTERVAL '1 minute' "
        "WHERE host_id = ? AND state = 'failed'",
        [minutes, host_id],
    )


def backdate_server(cur: duckdb.DuckDBPyConnection, name: str, days: int) -> None:
    """Demo only: the server was connected `days` ago."""
    cur.execute(
        "UPDATE license_servers SET created_at = created_at - ? * INTERVAL '1 day' WHERE name = ?",
        [days, name],
    )


def insert_synthetic_history(cur: duckdb.DuckDBPyConnection, days: int) -> None:
    """Working-hours usage every 3 hours of the last days for each present feature with licenses
    (busier on weekdays around 14:00), ending an hour before now."""
    cur.execute(SYNTHETIC_HISTORY, [days])
