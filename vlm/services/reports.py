"""Figures for dashboards: KPIs, per-server / VLM / pool stacks, over-commitment, trends."""

from __future__ import annotations

import json
import threading
import weakref
from collections.abc import Callable
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import Actor, Role, record_id, validate_days
from vlm.services.permissions import pool_scope_sql, require_pool_read
from vlm.services.servers import require_can_read_estate
from vlm.store import Database
from vlm.store.figures import (
    COUNTED,
    COUNTED_CONCURRENT,
    COUNTED_SERVER_FEATURES,
    LICENSE_KIND,
    LICENSE_KIND_FIGURES,
    LICENSE_KIND_LABELS,
    METERED,
    OTHER,
    POOL_FEATURE_FIGURES,
    SERVER_FEATURE_FIGURES,
    UNCOUNTED,
    VLM_FEATURE_FIGURES,
)


def kpis(ctx: ServiceContext, actor: Actor) -> dict[str, int]:
    """Headline numbers scoped to what the actor may see. License figures (total, used,
    pooled, poolable) count concurrent counted licenses only; admins and analysts also get the
    metered, uncounted and other features apart (`<kind>_features`, `<kind>_total`,
    `<kind>_used`)."""
    scope, params = pool_scope_sql(actor, alias="f")
    pool_row = ctx.db.query(
        f"SELECT COUNT(DISTINCT pool_id)::INTEGER, COALESCE(SUM(quantity), 0)::INTEGER, "
        f"COALESCE(SUM(allocated), 0)::INTEGER, COALESCE(SUM(available), 0)::INTEGER, "
        f"COALESCE(SUM(pending), 0)::INTEGER, COALESCE(SUM(failed), 0)::INTEGER, "
        f"COUNT(*) FILTER (WHERE over_committed)::INTEGER "
        f"FROM ({POOL_FEATURE_FIGURES}) f WHERE {scope}",
        params,
    )[0]
    figures = {
        "pools": pool_row[0],
        "pool_quantity": pool_row[1],
        "allocated": pool_row[2],
        "pool_available": pool_row[3],
        "pending": pool_row[4],
        "failed": pool_row[5],
        "over_committed_pool_features": pool_row[6],
    }
    if actor.role is not Role.MANAGER:
        figures.update(_estate_figures(ctx))
        figures.update(_apart_from_counted(ctx))
    return figures


def _estate_figures(ctx: ServiceContext) -> dict[str, int]:
    """Servers connected (and in error) and the counted concurrent license figures."""
    servers, in_error = ctx.db.query(
        "SELECT COUNT(*)::INTEGER, COUNT(*) FILTER (WHERE status = 'error')::INTEGER "
        "FROM license_servers"
    )[0]
    row = ctx.db.query(
        f"SELECT COUNT(*) FILTER (WHERE present)::INTEGER, "
        f"COALESCE(SUM(total), 0)::INTEGER, COALESCE(SUM(used), 0)::INTEGER, "
        f"COALESCE(SUM(pooled), 0)::INTEGER, COALESCE(SUM(GREATEST(poolable, 0)), 0)::INTEGER, "
        f"COUNT(*) FILTER (WHERE deficit > 0)::INTEGER "
        f"FROM ({COUNTED_SERVER_FEATURES}) AS counted_features",
    )[0]
    return {
        "servers": servers,
        "server_features": row[0],
        "total": row[1],
        "used": row[2],
        "pooled": row[3],
        "poolable": row[4],
        "over_committed": row[5],
        "servers_in_error": in_error,
    }


def _apart_from_counted(ctx: ServiceContext) -> dict[str, int]:
    """Features, total and used of each kind that the counted figures leave out."""
    kinds = _kind_totals(ctx)
    return {
        f"{kind}_{figure}": int(kinds.get(kind, {}).get(figure, 0))
        for kind in (METERED, UNCOUNTED, OTHER)
        for figure in ("features", "total", "used")
    }


def _kind_totals(ctx: ServiceContext) -> dict[str, dict[str, int]]:
    rows = ctx.db.query(
        f"SELECT license_kind, SUM(features)::INTEGER, SUM(total)::INTEGER, SUM(used)::INTEGER "
        f"FROM ({LICENSE_KIND_FIGURES}) AS kinds GROUP BY license_kind"
    )
    return {kind: {"features": f, "total": t, "used": u} for kind, f, t, u in rows}


def license_kinds(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """One row per license kind (counted concurrent, metered, uncounted, other) over every
    server: its label, how many features the servers list, their total and used. The counted
    row is what every license total shows; the others are reported apart (admins, analysts)."""
    require_can_read_estate(actor)
    kinds = _kind_totals(ctx)
    return pd.DataFrame(
        [
            {
                "license_kind": kind,
                "label": label,
                "features": int(kinds.get(kind, {}).get("features", 0)),
                "total": int(kinds.get(kind, {}).get("total", 0)),
                "used": int(kinds.get(kind, {}).get("used", 0)),
            }
            for kind, label in LICENSE_KIND_LABELS.items()
        ]
    )


def server_stack(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Per server, over concurrent counted features: allocated / pooled unallocated / poolable /
    reserved outside VLM / total (metered and uncounted licenses are not poolable)."""
    require_can_read_estate(actor)
    return ctx.db.query_df(
        f"""
        SELECT server_name AS name,
            SUM(allocated)::INTEGER AS allocated,
            SUM(GREATEST(pooled - allocated, 0))::INTEGER AS pooled_unallocated,
            SUM(GREATEST(poolable, 0))::INTEGER AS poolable,
            SUM(reserved_by_others)::INTEGER AS reserved_outside,
            SUM(total)::INTEGER AS total, SUM(used)::INTEGER AS used,
            SUM(deficit)::INTEGER AS deficit
        FROM ({COUNTED_SERVER_FEATURES}) AS counted_features
        GROUP BY server_name ORDER BY server_name
        """
    ).fillna(0)


def vlm_stack(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Per VLM: the same stack as server_stack (over its counted concurrent features)."""
    require_can_read_estate(actor)
    return ctx.db.query_df(
        f"""
        SELECT vlm_name AS name, SUM(allocated)::INTEGER AS allocated,
            SUM(GREATEST(pooled - allocated, 0))::INTEGER AS pooled_unallocated,
            SUM(GREATEST(available, 0))::INTEGER AS poolable,
            SUM(reserved_by_others)::INTEGER AS reserved_outside,
            SUM(total)::INTEGER AS total, SUM(deficit)::INTEGER AS deficit
        FROM ({VLM_FEATURE_FIGURES}) AS vlm_feature_figures
        WHERE license_kind = '{COUNTED}' GROUP BY vlm_name ORDER BY vlm_name
        """
    )


def pool_stack(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Per pool the actor may see: allocated and available of its quantity."""
    scope, params = pool_scope_sql(actor, alias="f")
    return ctx.db.query_df(
        f"SELECT vlm_name || ' / ' || pool_name AS name, pool_id, SUM(allocated)::INTEGER "
        f"AS allocated, SUM(available)::INTEGER AS available, SUM(quantity)::INTEGER AS quantity, "
        f"BOOL_OR(over_committed) AS over_committed FROM ({POOL_FEATURE_FIGURES}) f "
        f"WHERE {scope} GROUP BY 1, 2 ORDER BY 1",
        params,
    )


def over_committed(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Server features whose total fell below what is pooled, with the deficit."""
    require_can_read_estate(actor)
    return ctx.db.query_df(
        f"SELECT server_name, feature_name, feature_version, total, reserved_by_others, pooled, "
        f"allocated, deficit, vlm_name FROM ({SERVER_FEATURE_FIGURES}) WHERE deficit > 0 "
        "ORDER BY deficit DESC, server_name"
    )


TREND_SQL = """
WITH keys AS (
    SELECT id AS server_feature_id FROM server_features sf WHERE {key_filter}
), selected AS (
    SELECT server_feature_id, taken_at, total, used, reserved FROM utilization_snapshots
    WHERE server_feature_id IN (SELECT server_feature_id FROM keys) AND taken_at <= $last
), last_in_bucket AS (
    SELECT server_feature_id, 0 AS b, arg_max(total, taken_at) AS total,
        arg_max(used, taken_at) AS used, arg_max(reserved, taken_at) AS reserved
    FROM selected WHERE taken_at <= $start GROUP BY server_feature_id
    UNION ALL
    SELECT server_feature_id, (epoch_us(taken_at) - $start_us + $step_us - 1) // $step_us AS b,
        arg_max(total, taken_at), arg_max(used, taken_at), arg_max(reserved, taken_at)
    FROM selected WHERE taken_at > $start GROUP BY ALL
), deltas AS (
    SELECT b, total - lag(total, 1, 0) OVER w AS total, used - lag(used, 1, 0) OVER w AS used,
        reserved - lag(reserved, 1, 0) OVER w AS reserved,
        CASE WHEN row_number() OVER w = 1 THEN 1 ELSE 0 END AS features
    FROM last_in_bucket WINDOW w AS (PARTITION BY server_feature_id ORDER BY b)
), per_bucket AS (
    SELECT b, SUM(total) AS total, SUM(used) AS used, SUM(reserved) AS reserved,
        SUM(features) AS features
    FROM deltas GROUP BY b
), running AS (
    SELECT g.b, SUM(COALESCE(p.total, 0)) OVER c AS total,
        SUM(COALESCE(p.used, 0)) OVER c AS used,
        SUM(COALESCE(p.reserved, 0)) OVER c AS reserved,
        SUM(COALESCE(p.features, 0)) OVER c AS features
    FROM range($points) g(b) LEFT JOIN per_bucket p ON p.b = g.b
    WINDOW c AS (ORDER BY g.b ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
)
SELECT $start + to_microseconds(b * $step_us) AS taken_at, total::INTEGER AS total,
    used::INTEGER AS used, reserved::INTEGER AS reserved
FROM running WHERE features > 0 ORDER BY b
"""


class _WriteInvalidatedCache:
    """Frames per database and key, valid while the database has seen no write since.

    Trends over a long history are costly and a dashboard re-draws them every few seconds;
    any committed write (Database.generation moves) invalidates every entry of that database.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: weakref.WeakKeyDictionary[Database, dict[tuple, tuple[int, pd.DataFrame]]]
        self._entries = weakref.WeakKeyDictionary()

    def get_or_compute(
        self, db: Database, key: tuple, compute: Callable[[], pd.DataFrame]
    ) -> pd.DataFrame:
        generation = db.generation
        with self._lock:
            found = self._entries.get(db, {}).get(key)
        if found is not None and found[0] == generation:
            return found[1].copy()
        frame = compute()
        with self._lock:
            entries = self._entries.setdefault(db, {})
            entries = {k: v for k, v in entries.items() if v[0] == generation}
            if len(entries) >= self._size:
                entries.pop(next(iter(entries)))
            entries[key] = (generation, frame)
            self._entries[db] = entries
        return frame.copy()

    def clear(self) -> None:
        with self._lock:
            self._entries = weakref.WeakKeyDictionary()


_TREND_CACHE = _WriteInvalidatedCache(size=32)


def clear_caches() -> None:
    """Forget cached trends (benchmarks and tests measure the queries themselves)."""
    _TREND_CACHE.clear()


_EPOCH = datetime(1970, 1, 1)
_MICROSECOND = timedelta(microseconds=1)


def trend_window(days: int, step: timedelta, end: datetime | None = None) -> dict[str, object]:
    """The grid of a trend: its first and last point (the last is `end`, by default the next
    minute), the step in microseconds and the number of points."""
    if end is None:
        end = datetime.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(days=days)
    points = int((end - start) / step) + 1
    return {
        "start": start,
        "start_us": int((start - _EPOCH) / _MICROSECOND),
        "last": start + (points - 1) * step,
        "step_us": int(step / _MICROSECOND),
        "points": points,
    }


def _trend(
    ctx: ServiceContext,
    key_filter: str,
    params: dict[str, object],
    days: int,
    step: timedelta,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Sum over the selected server features of each one's last snapshot at or before every
    grid point from start to end (one row per grid point once any feature has a snapshot).

    Set-based: only the selected features' rows are read; each feature's last row at the
    start and in every later grid bucket is kept, and the buckets' changes are summed and
    accumulated over the grid.
    """
    window = trend_window(days, step, end)
    key = (key_filter, tuple(sorted(params.items())), window["start"], window["step_us"])
    return _TREND_CACHE.get_or_compute(
        ctx.db,
        key,
        lambda: ctx.db.query_df(TREND_SQL.format(key_filter=key_filter), {**window, **params}),
    )


def _step(days: int) -> timedelta:
    hours = 1 if days <= 14 else 6 if days <= 120 else 24
    return timedelta(hours=hours)


def server_trend(
    ctx: ServiceContext, actor: Actor, server_id: int | None = None, days: int = 30
) -> pd.DataFrame:
    """Total / used / reserved of concurrent counted features over time for one server (or all),
    last value carried forward."""
    require_can_read_estate(actor)
    days = validate_days(days)
    server_id = None if server_id is None else record_id(server_id, "server")
    if server_id is None:
        return _trend(ctx, COUNTED_CONCURRENT, {}, days, _step(days))
    return _trend(
        ctx,
        f"sf.server_id = $server_id AND {COUNTED_CONCURRENT}",
        {"server_id": server_id},
        days,
        _step(days),
    )


POOL_NOW_SQL = """
SELECT p.created_at,
    (SELECT COALESCE(SUM(quantity), 0) FROM pool_portions WHERE pool_id = p.id)::INTEGER,
    (SELECT COALESCE(SUM(count), 0) FROM allocations
     WHERE pool_id = p.id AND state <> 'removing')::INTEGER
FROM pools p WHERE p.id = ?
"""

POOL_QUANTITY_CHANGES_SQL = """
SELECT happened_at, before, after FROM audit_log
WHERE target_type = 'pool' AND target_id = ? AND action IN ('pool.create', 'pool.update')
  AND happened_at > ?
"""

# An allocation's audit rows name its pool (older rows do not: their allocation row tells).
POOL_ALLOCATED_CHANGES_SQL = """
WITH changes AS (
    SELECT happened_at, TRY_CAST(target_id AS BIGINT) AS allocation_id,
        TRY_CAST(json_extract_string(COALESCE(after, before), '$.pool_id') AS BIGINT) AS pool_id,
        COALESCE(TRY_CAST(json_extract_string(after, '$.count') AS INTEGER), 0)
        - COALESCE(TRY_CAST(json_extract_string(before, '$.count') AS INTEGER), 0) AS delta
    FROM audit_log
    WHERE target_type = 'allocation' AND happened_at > ?
      AND action IN ('allocation.add', 'allocation.edit', 'allocation.remove')
)
SELECT c.happened_at, c.delta FROM changes c LEFT JOIN allocations a ON a.id = c.allocation_id
WHERE c.delta <> 0 AND COALESCE(c.pool_id, a.pool_id) = ?
"""

POOL_TREND_COLUMNS = ["taken_at", "quantity", "allocated"]


def _quantity_of(audited: str | None) -> int:
    """The pool quantity (summed over features) in a pool audit row's before/after."""
    if not audited:
        return 0
    quantities = json.loads(audited).get("quantities") or {}
    return sum(int(q) for q in quantities.values())


def _changes_after(grid: np.ndarray, changes: list[tuple[datetime, int]]) -> np.ndarray:
    """For every grid point, the sum of the changes made after it."""
    if not changes:
        return np.zeros(len(grid), dtype=np.int64)
    changes = sorted(changes)
    times = np.array([c[0] for c in changes], dtype="datetime64[us]")
    deltas = np.array([c[1] for c in changes], dtype=np.int64)
    from_here_on = np.append(np.cumsum(deltas[::-1])[::-1], 0)
    return from_here_on[np.searchsorted(times, grid, side="right")]


def _pool_trend_frame(db: Database, pool_id: int, window: dict[str, object]) -> pd.DataFrame:
    """The pool's figures now, walked back over the audited changes to every grid point."""
    found = db.query(POOL_NOW_SQL, [pool_id])
    if not found:
        return pd.DataFrame(columns=POOL_TREND_COLUMNS)
    created_at, quantity, allocated = found[0]
    start = window["start"]
    step = np.timedelta64(window["step_us"], "us")
    grid = np.datetime64(start, "us") + step * np.arange(window["points"])
    quantity_changes = [
        (at, _quantity_of(after) - _quantity_of(before))
        for at, before, after in db.query(POOL_QUANTITY_CHANGES_SQL, [str(pool_id), start])
    ]
    allocated_changes = db.query(POOL_ALLOCATED_CHANGES_SQL, [start, pool_id])
    frame = pd.DataFrame(
        {
            "taken_at": grid,
            "quantity": quantity - _changes_after(grid, quantity_changes),
            "allocated": allocated - _changes_after(grid, allocated_changes),
        }
    )
    existed = grid >= np.datetime64(created_at, "us")
    return frame[existed].reset_index(drop=True)


def pool_trend(
    ctx: ServiceContext, actor: Actor, pool_id: int, days: int = 30, end: datetime | None = None
) -> pd.DataFrame:
    """One pool's own quantity and allocated (sum of its allocation counts) over time.

    Only the pool's figures: never the server's total or usage, which other teams share. The
    inventory records no usage per host id, so there is no "in use" series; quantity and
    allocated come from the audit log (walked back from the current figures).
    """
    pool_id, days = record_id(pool_id, "pool"), validate_days(days)
    require_pool_read(ctx.db, actor, pool_id)
    window = trend_window(days, _step(days), end)
    key = ("pool_trend", pool_id, window["start"], window["step_us"])
    return _TREND_CACHE.get_or_compute(
        ctx.db, key, lambda: _pool_trend_frame(ctx.db, pool_id, window)
    )


def utilization_history_query(actor: Actor, days: int = 90) -> tuple[str, list[object]]:
    """The SQL and parameters of utilization_history (also streamed to CSV by exports)."""
    require_can_read_estate(actor)
    days = validate_days(days)
    sql = (
        "SELECT s.name AS server_name, sf.feature_name, sf.feature_version, "
        f"{LICENSE_KIND} AS license_kind, u.taken_at, "
        "u.total, u.used, u.reserved FROM utilization_snapshots u "
        "JOIN server_features sf ON sf.id = u.server_feature_id "
        "JOIN license_servers s ON s.id = sf.server_id "
        "WHERE u.taken_at >= ? ORDER BY u.taken_at, s.name, sf.feature_name"
    )
    return sql, [datetime.now() - timedelta(days=days)]


def utilization_history(ctx: ServiceContext, actor: Actor, days: int = 90) -> pd.DataFrame:
    """Raw change-only snapshot rows of the last days, for export (admins and analysts)."""
    return ctx.db.query_df(*utilization_history_query(actor, days))
