"""Report reads: dashboard figures and stacks, utilization and pool trends, export queries.

The figures themselves (what counts as pooled, poolable, over-committed) are defined once in
figures.py; this module sums them per view. Export queries come back as SQL and parameters so
that a page can count, preview or stream them to CSV without a DataFrame.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import duckdb
import pandas as pd

from vlm.store.access import Scope
from vlm.store.csv import Params
from vlm.store.database import Database
from vlm.store.figures import (
    COUNTED,
    LICENSE_KIND,
    POOL_FEATURE_FIGURES,
    SERVER_FEATURE_FIGURES,
    counted_server_features,
    license_kind_figures,
    vlm_feature_figures,
)
from vlm.store.scratch import scratch_duckdb

T = TypeVar("T")

POOL_TOTALS = f"""
SELECT COUNT(DISTINCT pool_id)::INTEGER, COALESCE(SUM(quantity), 0)::INTEGER,
    COALESCE(SUM(allocated), 0)::INTEGER, COALESCE(SUM(available), 0)::INTEGER,
    COALESCE(SUM(pending), 0)::INTEGER, COALESCE(SUM(failed), 0)::INTEGER,
    COUNT(*) FILTER (WHERE over_committed)::INTEGER
FROM ({POOL_FEATURE_FIGURES}) f WHERE {{scope}}
"""


def _counted_feature_totals(source: str) -> str:
    return f"""
SELECT COUNT(*) FILTER (WHERE present)::INTEGER,
    COALESCE(SUM(total), 0)::INTEGER, COALESCE(SUM(used), 0)::INTEGER,
    COALESCE(SUM(pooled), 0)::INTEGER, COALESCE(SUM(GREATEST(poolable, 0)), 0)::INTEGER,
    COUNT(*) FILTER (WHERE deficit > 0)::INTEGER
FROM ({counted_server_features(source)}) AS counted_features
"""


def _license_kind_totals(source: str) -> str:
    return f"""
SELECT license_kind, SUM(features)::INTEGER, SUM(total)::INTEGER, SUM(used)::INTEGER
FROM ({license_kind_figures(source)}) AS kinds GROUP BY license_kind ORDER BY license_kind
"""


def _server_stack(source: str) -> str:
    return f"""
SELECT server_name AS name,
    SUM(allocated)::INTEGER AS allocated,
    SUM(GREATEST(pooled - allocated, 0))::INTEGER AS pooled_unallocated,
    SUM(GREATEST(poolable, 0))::INTEGER AS poolable,
    SUM(reserved_by_others)::INTEGER AS reserved_outside,
    SUM(total)::INTEGER AS total, SUM(used)::INTEGER AS used,
    SUM(deficit)::INTEGER AS deficit
FROM ({counted_server_features(source)}) AS counted_features
GROUP BY server_name ORDER BY server_name
"""


def _vlm_stack(source: str) -> str:
    return f"""
SELECT vlm_name AS name, SUM(allocated)::INTEGER AS allocated,
    SUM(GREATEST(pooled - allocated, 0))::INTEGER AS pooled_unallocated,
    SUM(GREATEST(available, 0))::INTEGER AS poolable,
    SUM(reserved_by_others)::INTEGER AS reserved_outside,
    SUM(total)::INTEGER AS total, SUM(deficit)::INTEGER AS deficit
FROM ({vlm_feature_figures(source)}) AS vlm_feature_figures
WHERE license_kind = '{COUNTED}' GROUP BY vlm_name ORDER BY vlm_name
"""


def _over_committed(source: str) -> str:
    return f"""
SELECT server_name, feature_name, feature_version, total, reserved_by_others, pooled,
    allocated, deficit, vlm_name
FROM {source} AS server_feature_figures WHERE deficit > 0
ORDER BY deficit DESC, server_name, feature_name, feature_version, vlm_name
"""


# The server feature figures read once (ServerFigures), under this name in the scratch DuckDB.
FIGURES_TABLE = "server_feature_figures_read"
COUNTED_FEATURE_TOTALS = _counted_feature_totals(FIGURES_TABLE)
LICENSE_KIND_TOTALS = _license_kind_totals(FIGURES_TABLE)
SERVER_STACK = _server_stack(FIGURES_TABLE)
VLM_STACK = _vlm_stack(FIGURES_TABLE)
OVER_COMMITTED = _over_committed(FIGURES_TABLE)

SERVER_COUNTS = """
SELECT COUNT(*)::INTEGER, COUNT(*) FILTER (WHERE status = 'error')::INTEGER
FROM license_servers
"""

POOL_STACK = f"""
SELECT vlm_name || ' / ' || pool_name AS name, pool_id, SUM(allocated)::INTEGER AS allocated,
    SUM(available)::INTEGER AS available, SUM(quantity)::INTEGER AS quantity,
    BOOL_OR(over_committed) AS over_committed
FROM ({POOL_FEATURE_FIGURES}) f
WHERE {{scope}} GROUP BY 1, 2 ORDER BY 1
"""

# Over the per-server sums of the hourly summary (hourly.py): each hour's changes of a server's
# counted concurrent features add up to their move over a grid bucket, so the buckets' sums
# carried forward give, at every grid point, the sum of each such feature's last snapshot at or
# before it. Hours up to the grid's start fall in bucket 0. The grid starts on a whole hour and
# steps whole hours (counted_trend).
COUNTED_TREND_SQL = """
WITH per_bucket AS (
    SELECT CASE WHEN hour_end <= $start THEN 0
            ELSE CAST(CEIL(EXTRACT(EPOCH FROM (hour_end - $start)) / $step_s) AS BIGINT)
        END AS b,
        SUM(total_change) AS total, SUM(used_change) AS used,
        SUM(reserved_change) AS reserved, SUM(features_started) AS features
    FROM counted_utilization_hourly
    WHERE hour_end <= $last {servers}
    GROUP BY 1
), running AS (
    SELECT g.b, SUM(COALESCE(p.total, 0)) OVER c AS total,
        SUM(COALESCE(p.used, 0)) OVER c AS used,
        SUM(COALESCE(p.reserved, 0)) OVER c AS reserved,
        SUM(COALESCE(p.features, 0)) OVER c AS features
    FROM generate_series(0, $points - 1) AS g(b) LEFT JOIN per_bucket p ON p.b = g.b
    WINDOW c AS (ORDER BY g.b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT $start + b * $step_s * INTERVAL '1 second' AS taken_at, total::INTEGER AS total,
    used::INTEGER AS used, reserved::INTEGER AS reserved
FROM running WHERE features > 0 ORDER BY b
"""

POOL_NOW_SQL = """
SELECT p.created_at,
    (SELECT COALESCE(SUM(quantity), 0) FROM pool_portions WHERE pool_id = p.id)::INTEGER,
    (SELECT COALESCE(SUM(count), 0) FROM allocations
     WHERE pool_id = p.id AND state NOT IN ('removing', 'expiring', 'expired'))::INTEGER
FROM pools p WHERE p.id = ?
"""

POOL_QUANTITY_CHANGES_SQL = """
SELECT happened_at, before, after FROM audit_log
WHERE pool_id = ? AND target_type = 'pool' AND action IN ('pool.create', 'pool.update')
  AND happened_at > ?
"""

# The pool's changes of allocated licenses: the pool and the change of count each audit row
# stores (migrations 10 and 11), never its JSON.
POOL_ALLOCATED_CHANGES_SQL = """
SELECT happened_at, count_change AS delta FROM audit_log
WHERE pool_id = $pool_id AND happened_at > $since AND count_change <> 0
"""

UTILIZATION_HISTORY = f"""SELECT s.name AS server_name, sf.feature_name, sf.feature_version,
    {LICENSE_KIND} AS license_kind, u.taken_at, u.total, u.used, u.reserved
FROM utilization_snapshots u
JOIN server_features sf ON sf.id = u.server_feature_id
JOIN license_servers s ON s.id = sf.server_id
WHERE u.taken_at > ? ORDER BY u.taken_at, s.name, sf.feature_name"""

# How many snapshots the history since a whole hour holds, from the hourly summary: a snapshot
# after the whole hour H falls in an hour ending after H (hourly.py), so no snapshot is read.
HISTORY_ROWS = """SELECT COALESCE(SUM(samples), 0) FROM utilization_hourly WHERE hour_end > ?"""

_FINAL_ORDER_BY = re.compile(r"\s+ORDER\s+BY\s[^()]*$", re.IGNORECASE)


def pool_totals(db: Database, scope: Scope) -> tuple[int, int, int, int, int, int, int]:
    """Over the pool features in scope (alias f): pools, quantity, allocated, available,
    pending, failed and over-committed pool features."""
    where, params = scope
    return db.query(POOL_TOTALS.format(scope=where), params)[0]


def server_counts(db: Database) -> tuple[int, int]:
    """How many license servers there are, and how many are in error."""
    return db.query(SERVER_COUNTS)[0]


def pool_stack(db: Database, scope: Scope) -> pd.DataFrame:
    """Per pool in scope (alias f): allocated, available, quantity and over-commitment."""
    where, params = scope
    return db.query_df(POOL_STACK.format(scope=where), params)


class ServerFigures:
    """The server feature figures (figures.SERVER_FEATURE_FIGURES) read from the database once,
    and the Dashboard's sums over them, run in the scratch DuckDB: one read of the figures
    instead of one per sum (each aggregates every allocation again)."""

    def __init__(self, rows: pd.DataFrame) -> None:
        self._rows = rows

    def _query(self, sql: str, fetch: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        with scratch_duckdb().cursor() as cur:
            cur.register(FIGURES_TABLE, self._rows)
            return fetch(cur.execute(sql))

    def counted_totals(self) -> tuple[int, int, int, int, int, int]:
        """Over counted concurrent server features: present features, total, used, pooled,
        poolable (never below 0 per feature) and over-committed features."""
        return self._query(COUNTED_FEATURE_TOTALS, lambda r: r.fetchone())  # type: ignore[return-value]

    def kind_totals(self) -> list[tuple[str, int, int, int]]:
        """(license kind, present features, total, used) of each kind any server lists."""
        return self._query(LICENSE_KIND_TOTALS, lambda r: r.fetchall())

    def server_stack(self) -> pd.DataFrame:
        """Per server, over counted concurrent features: allocated, pooled unallocated,
        poolable, reserved outside VLM, total, used and deficit."""
        return self._query(SERVER_STACK, lambda r: r.df())

    def vlm_stack(self) -> pd.DataFrame:
        """Per VLM, over counted concurrent features: the same stack as server_stack."""
        return self._query(VLM_STACK, lambda r: r.df())

    def over_committed(self) -> pd.DataFrame:
        """Server features whose total fell below what is pooled, largest deficit first."""
        return self._query(OVER_COMMITTED, lambda r: r.df())


def read_server_figures(db: Database) -> ServerFigures:
    """Every server feature's figures, read once for the sums of ServerFigures."""
    return ServerFigures(db.query_df(SERVER_FEATURE_FIGURES))


HOUR = timedelta(hours=1)


def counted_trend(db: Database, server_id: int | None, grid: dict[str, Any]) -> pd.DataFrame:
    """Total, used and reserved of the counted concurrent features of one server (of every
    server when None) at each point of the grid (start, last, step_us, points) from the first
    point where any has a snapshot. The grid starts on a whole hour and steps whole hours: the
    summary knows no finer moments."""
    start, step = grid["start"], timedelta(microseconds=int(grid["step_us"]))
    if start != start.replace(minute=0, second=0, microsecond=0) or step % HOUR or not step:
        raise ValueError(f"a trend grid starts on a whole hour and steps whole hours: {grid}")
    params = {k: grid[k] for k in ("start", "last", "points")}
    params["step_s"] = int(step.total_seconds())
    if server_id is None:
        return db.query_df(COUNTED_TREND_SQL.format(servers=""), params)
    sql = COUNTED_TREND_SQL.format(servers="AND server_id = $server_id")
    return db.query_df(sql, {**params, "server_id": server_id})


def pool_now(db: Database, pool_id: int) -> tuple[datetime, int, int] | None:
    """A pool's creation time, quantity and allocated (live rows) now, or None."""
    found = db.query(POOL_NOW_SQL, [pool_id])
    return found[0] if found else None


def pool_quantity_changes(
    db: Database, pool_id: int, since: datetime
) -> list[tuple[datetime, str | None, str | None]]:
    """(when, before, after) of the pool's create and update audit rows after since."""
    return db.query(POOL_QUANTITY_CHANGES_SQL, [pool_id, since])


def pool_allocated_changes(db: Database, pool_id: int, since: datetime) -> pd.DataFrame:
    """When (happened_at) and by how much (delta) every audited change of an allocation of the
    pool after since changed its count."""
    return db.query_df(POOL_ALLOCATED_CHANGES_SQL, {"since": since, "pool_id": pool_id})


def utilization_history_sql(since: datetime) -> tuple[str, list[object]]:
    """The SQL and parameters of the snapshot rows taken after since, oldest first, with their
    server, feature and license kind."""
    return UTILIZATION_HISTORY, [since]


def utilization_history_rows(db: Database, since: datetime) -> int:
    """How many rows utilization_history_sql(since) returns, for a since on a whole hour."""
    if since != since.replace(minute=0, second=0, microsecond=0):
        raise ValueError(f"the history is counted from a whole hour, not {since}")
    return int(db.scalar(HISTORY_ROWS, [since]) or 0)


def without_final_order_by(sql: str) -> str:
    """The query without its final ORDER BY (when no LIMIT/OFFSET follows): DuckDB would
    otherwise sort every row just to count them (4 s for 21.6M history rows)."""
    match = _FINAL_ORDER_BY.search(sql)
    if match is None or re.search(r"\b(LIMIT|OFFSET)\b", match.group(0), re.IGNORECASE):
        return sql
    return sql[: match.start()]


def row_count(db: Database, sql: str, params: Params) -> int:
    """How many rows a query returns (without fetching or sorting them)."""
    counted = db.scalar(
        f"""SELECT COUNT(*) FROM ({without_final_order_by(sql)}) AS counted""", params
    )
    return int(counted or 0)


def first_rows(db: Database, sql: str, params: Params, limit: int) -> pd.DataFrame:
    """The query's first `limit` rows."""
    return db.query_df(f"""SELECT * FROM ({sql}) AS shown LIMIT {int(limit)}""", params)
