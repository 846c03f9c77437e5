"""Figures for dashboards: KPIs, per-server / VLM / pool stacks, over-commitment, trends."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import Actor, Role, record_id, validate_days
from vlm.services import harvesting
from vlm.services.permissions import pool_scope_sql, require_pool_read
from vlm.services.servers import require_can_read_estate
from vlm.store import Database
from vlm.store import reports as store
from vlm.store.figures import COUNTED as COUNTED  # the UI reads the license kinds here
from vlm.store.figures import LICENSE_KIND_LABELS, METERED, OTHER, UNCOUNTED

T = TypeVar("T")


def kpis(ctx: ServiceContext, actor: Actor) -> dict[str, int]:
    """Headline numbers scoped to what the actor may see. License figures (total, used,
    pooled, poolable) count concurrent counted licenses only; admins and analysts also get the
    metered, uncounted and other features apart (`<kind>_features`, `<kind>_total`,
    `<kind>_used`)."""
    pool_row = store.pool_totals(ctx.db, pool_scope_sql(actor, alias="f"))
    figures = {
        "pools": pool_row[0],
        "pool_quantity": pool_row[1],
        "allocated": pool_row[2],
        "pool_available": pool_row[3],
        "pending": pool_row[4],
        "failed": pool_row[5],
        "over_committed_pool_features": pool_row[6],
    }
    figures["idle_days"] = harvesting.idle_days_shown(ctx)
    figures["idle_seats"] = harvesting.idle_seats(ctx, actor, figures["idle_days"])
    if actor.role is not Role.MANAGER:
        figures.update(_estate_figures(ctx))
        figures.update(_apart_from_counted(ctx))
    return figures


def _estate_figures(ctx: ServiceContext) -> dict[str, int]:
    """Servers connected (and in error) and the counted concurrent license figures."""
    servers, in_error = store.server_counts(ctx.db)
    row = _server_figures(ctx).counted_totals()
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
    rows = _server_figures(ctx).kind_totals()
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
    return _server_figures(ctx).server_stack().fillna(0)


def vlm_stack(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Per VLM: the same stack as server_stack (over its counted concurrent features)."""
    require_can_read_estate(actor)
    return _server_figures(ctx).vlm_stack()


def pool_stack(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Per pool the actor may see: allocated and available of its quantity."""
    return store.pool_stack(ctx.db, pool_scope_sql(actor, alias="f"))


def over_committed(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Server features whose total fell below what is pooled, with the deficit."""
    require_can_read_estate(actor)
    return _server_figures(ctx).over_committed()


def _copied(value: Any) -> Any:
    return value.copy()


def _kept(value: Any) -> Any:
    return value


class TrendCache:
    """Trend frames (and the server feature figures) by key, valid while the database has seen
    no write since (one per context).

    Trends over a long history are costly and a dashboard re-draws them every few seconds;
    any committed write (Database.generation moves) invalidates every entry.
    """

    def __init__(self, size: int = 32) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._entries: dict[tuple, tuple[int, Any]] = {}

    def get_or_compute(
        self, db: Database, key: tuple, compute: Callable[[], T], copy: Callable[[T], T] = _copied
    ) -> T:
        """compute()'s answer under key until the next write, as copy() of the kept one (a
        frame by default: the caller may change what it gets)."""
        generation = db.generation
        with self._lock:
            found = self._entries.get(key)
        if found is not None and found[0] == generation:
            return copy(found[1])
        value = compute()
        with self._lock:
            entries = {k: v for k, v in self._entries.items() if v[0] == generation}
            if len(entries) >= self._size:
                entries.pop(next(iter(entries)))
            entries[key] = (generation, value)
            self._entries = entries
        return copy(value)

    def clear(self) -> None:
        with self._lock:
            self._entries = {}


def _server_figures(ctx: ServiceContext) -> store.ServerFigures:
    """The server feature figures, read once per database generation for every sum the
    Dashboard shows (they never change what they were read with: kept, not copied)."""
    return ctx.owned(TrendCache).get_or_compute(
        ctx.db, ("server feature figures",), lambda: store.read_server_figures(ctx.db), _kept
    )


def clear_caches(ctx: ServiceContext) -> None:
    """Forget the context's cached trends and figures (benchmarks and tests measure the
    queries themselves)."""
    ctx.owned(TrendCache).clear()


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


def _whole_hour_at_or_after(moment: datetime) -> datetime:
    """The first whole hour at or after moment: utilization trends are drawn on whole hours (the
    hourly summary they read knows no finer moments), the last one covering now."""
    hour = moment.replace(minute=0, second=0, microsecond=0)
    return hour if hour == moment else hour + timedelta(hours=1)


def _trend(
    ctx: ServiceContext,
    server_id: int | None,
    days: int,
    step: timedelta,
    end: datetime | None = None,
) -> pd.DataFrame:
    """Sum over the counted concurrent features of one server (every server when None) of each
    one's last snapshot at or before every grid point from start to end (one row per grid point
    once any feature has a snapshot); the grid's points are whole hours, the last one the first
    at or after end.

    Read from the hourly sums per server: their changes are summed per grid bucket and
    accumulated over the grid.
    """
    window = trend_window(days, step, _whole_hour_at_or_after(end or datetime.now()))
    key = ("server_trend", server_id, window["start"], window["step_us"])
    return ctx.owned(TrendCache).get_or_compute(
        ctx.db, key, lambda: store.counted_trend(ctx.db, server_id, window)
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
    return _trend(ctx, server_id, days, _step(days))


POOL_TREND_COLUMNS = ["taken_at", "quantity", "allocated"]


def _quantity_of(audited: str | None) -> int:
    """The pool quantity (summed over features) in a pool audit row's before/after."""
    if not audited:
        return 0
    quantities = json.loads(audited).get("quantities") or {}
    return sum(int(q) for q in quantities.values())


def _changes_after(grid: np.ndarray, times: np.ndarray, deltas: np.ndarray) -> np.ndarray:
    """For every grid point, the sum of the changes (deltas at times) made after it."""
    if not len(times):
        return np.zeros(len(grid), dtype=np.int64)
    order = np.argsort(times, kind="stable")
    from_here_on = np.append(np.cumsum(deltas[order][::-1])[::-1], 0)
    return from_here_on[np.searchsorted(times[order], grid, side="right")]


def _pool_trend_frame(db: Database, pool_id: int, window: dict[str, object]) -> pd.DataFrame:
    """The pool's figures now, walked back over the audited changes to every grid point."""
    found = store.pool_now(db, pool_id)
    if found is None:
        return pd.DataFrame(columns=POOL_TREND_COLUMNS)
    created_at, quantity, allocated = found
    start = window["start"]
    step = np.timedelta64(window["step_us"], "us")
    grid = np.datetime64(start, "us") + step * np.arange(window["points"])
    quantity_changes = [
        (at, _quantity_of(after) - _quantity_of(before))
        for at, before, after in store.pool_quantity_changes(db, pool_id, start)
    ]
    quantity_times = np.array([at for at, _ in quantity_changes], dtype="datetime64[us]")
    quantity_deltas = np.array([delta for _, delta in quantity_changes], dtype=np.int64)
    allocated_changes = store.pool_allocated_changes(db, pool_id, start)
    allocated_times = allocated_changes["happened_at"].to_numpy(dtype="datetime64[us]")
    allocated_deltas = allocated_changes["delta"].to_numpy(dtype=np.int64)
    frame = pd.DataFrame(
        {
            "taken_at": grid,
            "quantity": quantity - _changes_after(grid, quantity_times, quantity_deltas),
            "allocated": allocated - _changes_after(grid, allocated_times, allocated_deltas),
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
    return ctx.owned(TrendCache).get_or_compute(
        ctx.db, key, lambda: _pool_trend_frame(ctx.db, pool_id, window)
    )


def _history_since(actor: Actor, days: int) -> datetime:
    """The whole hour the history of the last days starts after (the hourly summary counts it)."""
    require_can_read_estate(actor)
    days = validate_days(days)
    return (datetime.now() - timedelta(days=days)).replace(minute=0, second=0, microsecond=0)


def utilization_history_query(actor: Actor, days: int = 90) -> tuple[str, list[object]]:
    """The SQL and parameters of utilization_history (also streamed to CSV by exports)."""
    return store.utilization_history_sql(_history_since(actor, days))


def utilization_history_count(ctx: ServiceContext, actor: Actor, days: int = 90) -> int:
    """How many rows utilization_history has, from the hourly summary (no snapshot is read)."""
    return store.utilization_history_rows(ctx.db, _history_since(actor, days))


def utilization_history(ctx: ServiceContext, actor: Actor, days: int = 90) -> pd.DataFrame:
    """Raw change-only snapshot rows of the last days, for export (admins and analysts)."""
    return ctx.db.query_df(*utilization_history_query(actor, days))
