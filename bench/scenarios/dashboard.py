"""Dashboard queries over the utilization history: one pool's trend, each server's history.

Server trends read the hourly sums per server (counted_utilization_hourly, kept up by the
inventory pull), not the snapshots; a pool's trend walks its audit rows back. The trend cache is
cleared before every timed call: these rows time the queries themselves (page renders in the
pages scenario do profit from it).
"""

from __future__ import annotations

from functools import partial

from bench.context import ADMIN, BenchContext
from bench.measure import Row, sample, timed
from vlm.services import reports

LIMIT_S = 0.2


def run(bench: BenchContext) -> list[Row]:
    ctx = bench.ctx
    days = bench.size.history_days
    pool_id, manager = bench.big_pool()
    rows = bench.ctx.db.scalar("SELECT COUNT(*) FROM utilization_snapshots")
    sums = bench.ctx.db.scalar("SELECT COUNT(*) FROM counted_utilization_hourly")
    servers = bench.server_ids()
    clear = partial(reports.clear_caches, ctx)
    pool = sample(
        lambda: reports.pool_trend(ctx, manager, pool_id, days=days), bench.repeats, before=clear
    )
    reports.server_trend(ctx, ADMIN, servers[0], days=days)
    per_server = []
    for server_id in servers:
        clear()
        per_server.append(timed(lambda s=server_id: reports.server_trend(ctx, ADMIN, s, days=days)))
    everything = sample(lambda: reports.server_trend(ctx, ADMIN, None, days=days), 2, before=clear)
    week = sample(lambda: reports.server_trend(ctx, ADMIN, None, days=7), 2, before=clear)
    history = f"{rows:,}-row history"
    summed = f"{sums:,} hourly sums of the {history}"
    return [
        Row(
            f"trend of one pool, {days} days ({history})",
            pool,
            target=f"< {LIMIT_S * 1000:g} ms",
            limit=LIMIT_S,
        ),
        Row(
            f"{days}-day utilization of one server (each of {len(servers)} once; {summed})",
            per_server,
            target=f"< {LIMIT_S * 1000:g} ms",
            limit=LIMIT_S,
        ),
        Row(f"  {days}-day utilization, all servers together", everything, note="no target"),
        Row("  7-day utilization, all servers (dashboard default)", week, note="no target"),
    ]
