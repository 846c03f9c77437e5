"""The idle-allocation report over the whole estate: 200,000 allocations, applied over the last
120 days, of which three in five had their host seen using the feature (one in five still using
it, the others stopped between 0 and 90 days ago), and a price for every tenth feature.

Timed: the admin's report (every idle allocation with its per-pool and per-manager sums and
costs) and the large pool manager's. The sightings are written once, untimed, as the pulls
would have recorded them."""

from __future__ import annotations

from bench.context import ADMIN, BenchContext
from bench.measure import Row, sample
from vlm.services import harvesting

LIMIT_S = 0.3
IDLE_DAYS = 30

SPREAD_APPLIED = """
UPDATE allocations SET applied_at = current_timestamp::TIMESTAMP - (id % 120) * INTERVAL '1 day'
WHERE state = 'applied'
"""
SIGHTINGS = """
INSERT INTO usage_sightings (server_id, host_type, host_id, feature_name, feature_version,
    seen_from, seen_until)
SELECT sf.server_id, upper(a.host_type), a.host_id, a.feature_name, a.feature_version,
       a.applied_at,
       CASE WHEN a.id % 5 = 0 THEN NULL
            ELSE current_timestamp::TIMESTAMP - (a.id % 90) * INTERVAL '1 day' END
FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
WHERE a.state = 'applied' AND a.id % 5 < 3
"""
PRICES = """
INSERT INTO feature_prices (feature_name, feature_version, seat_price, updated_by)
SELECT feature_name, feature_version, 100 + n, 'bench'
FROM (SELECT feature_name, feature_version,
             row_number() OVER (ORDER BY feature_name, feature_version) AS n
      FROM (SELECT DISTINCT feature_name, feature_version FROM server_features) AS f) AS g
WHERE n % 10 = 0
"""


def seed_usage(bench: BenchContext) -> int:
    """What the pulls would have recorded (once per database): the number of sightings."""
    if bench.ctx.db.scalar("SELECT count(*) FROM usage_sightings"):
        return int(bench.ctx.db.scalar("SELECT count(*) FROM usage_sightings"))

    def write(cur) -> None:
        cur.execute(SPREAD_APPLIED)
        cur.execute(SIGHTINGS)
        cur.execute(PRICES)

    bench.ctx.db.write(write)
    return int(bench.ctx.db.scalar("SELECT count(*) FROM usage_sightings"))


def run(bench: BenchContext) -> list[Row]:
    sightings = seed_usage(bench)
    _, manager = bench.big_pool()
    admin = harvesting.idle_report(bench.ctx, ADMIN, IDLE_DAYS)
    mine = harvesting.idle_report(bench.ctx, manager, IDLE_DAYS)
    return [
        Row(
            f"idle-allocation report, whole estate ({sightings:,} usage episodes)",
            sample(lambda: harvesting.idle_report(bench.ctx, ADMIN, IDLE_DAYS), bench.repeats),
            target=f"< {LIMIT_S * 1000:g} ms",
            limit=LIMIT_S,
            note=f"{len(admin.allocations):,} idle for {IDLE_DAYS} days, "
            f"{len(admin.per_pool):,} pools, {len(admin.per_manager):,} managers",
        ),
        Row(
            "  the same report for the manager of the large pool",
            sample(lambda: harvesting.idle_report(bench.ctx, manager, IDLE_DAYS), bench.repeats),
            target=f"< {LIMIT_S * 1000:g} ms",
            limit=LIMIT_S,
            note=f"{len(mine.allocations):,} idle allocations",
        ),
    ]
