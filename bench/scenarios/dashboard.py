"""Dashboard queries over the utilization history: one pool's trend, each server's history."""

from __future__ import annotations

from bench.context import ADMIN, BenchContext
from bench.measure import Row, sample, timed
from vlm.services import reports

LIMIT_S = 0.2


def run(bench: BenchContext) -> list[Row]:
    ctx = bench.ctx
    days = bench.size.history_days
    pool_id, manager = bench.big_pool()
    rows = bench.ctx.db.scalar("SELECT COUNT(*) FROM utilization_snapshots")
    servers = bench.server_ids()
    pool = sample(lambda: reports.pool_trend(ctx, manager, pool_id, days=days), bench.repeats)
    reports.server_trend(ctx, ADMIN, servers[0], days=days)
    per_server = tuple(
        timed(lambda s=server_id: reports.server_trend(ctx, ADMIN, s, days=days))
        for server_id in servers
    )
    everything = sample(lambda: reports.server_trend(ctx, ADMIN, None, days=days), 2)
    week = sample(lambda: reports.server_trend(ctx, ADMIN, None, days=7), 2)
    history = f"{rows:,}-row history"
    return [
        Row(
            f"trend of one pool, {days} days ({history})",
            pool,
            target=f"< {LIMIT_S * 1000:g} ms",
            limit=LIMIT_S,
        ),
        Row(
            f"{days}-day utilization of one server (each of {len(servers)} once)",
            per_server,
            target=f"< {LIMIT_S * 1000:g} ms",
            limit=LIMIT_S,
        ),
        Row(f"  {days}-day utilization, all servers together", everything, note="no target"),
        Row("  7-day utilization, all servers (dashboard default)", week, note="no target"),
    ]
