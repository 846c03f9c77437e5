"""The set-based trend query gives exactly what a per-grid-point ASOF join gives."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pandas as pd
import pytest

from tests.conftest import ADMIN, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.services import allocations, pools, reports, vlms

REFERENCE_SQL = """
WITH grid AS (
    SELECT unnest(generate_series($start::TIMESTAMP, $last::TIMESTAMP,
        to_microseconds($step_us))) AS t
), keys AS (
    SELECT id AS server_feature_id FROM server_features WHERE {key_filter}
), frame AS (
    SELECT k.server_feature_id, g.t FROM keys k CROSS JOIN grid g
)
SELECT f.t AS taken_at, SUM(s.total)::INTEGER AS total, SUM(s.used)::INTEGER AS used,
    SUM(s.reserved)::INTEGER AS reserved
FROM frame f ASOF JOIN utilization_snapshots s
    ON s.server_feature_id = f.server_feature_id AND s.taken_at <= f.t
GROUP BY f.t ORDER BY f.t
"""


def _seed(ctx, seed: int) -> None:
    """Two servers, six features, change-only rows at random moments; some start mid-window."""
    rng = random.Random(seed)
    now = datetime.now()
    rows = []
    for feature_id in range(1, 7):
        first = rng.choice([40, 40, 3, 0.5])
        moment = now - timedelta(days=first, minutes=rng.randrange(600))
        while moment < now + timedelta(minutes=5):
            rows.append(
                (feature_id, moment, rng.randrange(50), rng.randrange(50), rng.randrange(9))
            )
            moment += timedelta(minutes=rng.choice([1, 7, 59, 60, 61, 360, 1440, 4000]))
    frame = pd.DataFrame(rows, columns=["sf", "taken_at", "total", "used", "reserved"])

    def write(cur) -> None:
        cur.execute(
            "INSERT INTO license_servers (name, base_url) VALUES ('a', 'http://a'), ('b', 'http://b')"
        )
        cur.execute(
            "INSERT INTO server_features (id, server_id, feature_name, feature_version) "
            "SELECT i, 1 + i % 2, 'f' || i, '1' FROM range(1, 7) r(i)"
        )
        cur.register("seed_rows", frame)
        cur.execute("INSERT INTO utilization_snapshots SELECT * FROM seed_rows")
        cur.execute("INSERT INTO vlms (id, name, created_by) VALUES (1, 'v', 'x')")
        cur.execute(
            "INSERT INTO pools (id, vlm_id, name, manager, created_by) VALUES (1, 1, 'p', 'm', 'x')"
        )
        cur.execute("INSERT INTO pool_portions VALUES (1, 2, 5), (1, 5, 5)")

    ctx.db.write(write)


def _reference(ctx, key_filter: str, params: dict, window: dict) -> pd.DataFrame:
    bound = {k: window[k] for k in ("start", "last", "step_us")}
    return ctx.db.query_df(REFERENCE_SQL.format(key_filter=key_filter), {**bound, **params})


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("days", [1, 7, 30])
def test_trend_matches_asof_reference(ctx, seed: int, days: int) -> None:
    _seed(ctx, seed)
    step = reports._step(days)
    end = datetime.now().replace(second=0, microsecond=0)
    window = reports.trend_window(days, step, end)
    cases = [("TRUE", {}), ("server_id = $server_id", {"server_id": 2})]
    for key_filter, params in cases:
        got = reports._trend(ctx, key_filter, params, days, step, end)
        want = _reference(ctx, key_filter, params, window)
        assert len(want) > 0
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)


def test_public_trends_have_the_chart_columns(ctx) -> None:
    _seed(ctx, 4)
    server = reports.server_trend(ctx, ADMIN, 1, days=7)
    assert list(server.columns) == ["taken_at", "total", "used", "reserved"]
    assert server["taken_at"].is_monotonic_increasing and len(server) > 1
    pool = reports.pool_trend(ctx, ADMIN, 1, days=30)
    assert list(pool.columns) == ["taken_at", "quantity", "allocated"]


CAD = ("cad", "1.0")


def _pool_with_history(ctx) -> tuple[int, dict[str, datetime]]:
    """A pool of 20 then 27 cad with three allocation changes over six days, next to another
    manager's pool on the same server feature whose changes must not show; audit rows are
    back-dated to the moments returned."""
    add_people(ctx)
    server = add_server(ctx, "s1", {CAD: 65})
    vlm = vlms.create_vlm(ctx, ADMIN, "v", feature_ids(ctx, server))
    pool = pools.create_pool(ctx, ADMIN, vlm, "mine", MANAGER.username, {CAD: 20})
    other = pools.create_pool(ctx, ADMIN, vlm, "theirs", OTHER_MANAGER.username, {CAD: 30})
    first = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "u1", 5)
    second = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "u2", 3)
    allocations.allocate(ctx, OTHER_MANAGER, other, CAD, "USER", "x1", 11)
    pools.update_pool(ctx, ADMIN, pool, quantities={CAD: 27})
    allocations.update_allocation(ctx, MANAGER, pool, first, count=7)
    allocations.remove_allocation(ctx, MANAGER, pool, second)
    now = datetime.now()
    moments = {
        "pool.create": now - timedelta(days=6, minutes=-30),
        "allocation.add u1": now - timedelta(days=5),
        "allocation.add u2": now - timedelta(days=4),
        "allocation.add x1": now - timedelta(days=3, hours=12),
        "pool.update": now - timedelta(days=3),
        "allocation.edit": now - timedelta(days=2),
        "allocation.remove": now - timedelta(days=1),
    }

    def backdate(cur) -> None:
        rows = cur.execute(
            "SELECT id, action, after FROM audit_log WHERE target_type IN ('pool', 'allocation') "
            "AND NOT (target_type = 'pool' AND target_id <> ?) ORDER BY id",
            [str(pool)],
        ).fetchall()
        for audit_id, action, after in rows:
            host = f" {json.loads(after)['host_id']}" if action == "allocation.add" else ""
            cur.execute(
                "UPDATE audit_log SET happened_at = ? WHERE id = ?",
                [moments[action + host], audit_id],
            )
        # an audit row written before allocations named their pool: its allocation row tells
        cur.execute(
            "UPDATE audit_log SET after = json_remove(after, '$.pool_id') WHERE target_id = ? "
            "AND action = 'allocation.add'",
            [str(first)],
        )
        cur.execute("UPDATE pools SET created_at = ? WHERE id = ?", [moments["pool.create"], pool])

    ctx.db.write(backdate)
    return pool, moments


def test_pool_trend_shows_the_pools_own_quantity_and_allocated_over_time(ctx) -> None:
    pool, at = _pool_with_history(ctx)
    end = datetime.now().replace(second=0, microsecond=0) + timedelta(minutes=1)
    trend = reports.pool_trend(ctx, MANAGER, pool, days=7, end=end)

    def expected(t: datetime) -> tuple[int, int]:
        quantity = 27 if t >= at["pool.update"] else 20
        allocated = 0
        if t >= at["allocation.add u1"]:
            allocated = 5
        if t >= at["allocation.add u2"]:
            allocated = 8
        if t >= at["allocation.edit"]:
            allocated = 10
        if t >= at["allocation.remove"]:
            allocated = 7
        return quantity, allocated

    assert trend["taken_at"].iloc[0] >= at["pool.create"]
    assert trend["taken_at"].iloc[0] - at["pool.create"] < timedelta(hours=1)
    assert trend["taken_at"].iloc[-1] == end
    got = list(zip(trend["quantity"], trend["allocated"], strict=True))
    assert got == [expected(t) for t in trend["taken_at"]]
    assert got[-1] == (27, 7)
    assert {q for q, _ in got} == {20, 27}
    assert {a for _, a in got} == {0, 5, 8, 10, 7}


def test_trends_are_cached_until_the_next_write(ctx) -> None:
    _seed(ctx, 5)
    calls: list[str] = []
    original = ctx.db.query_df

    def counting(sql, params=()):
        calls.append(sql)
        return original(sql, params)

    ctx.db.query_df = counting
    first = reports.server_trend(ctx, ADMIN, None, days=1)
    first.loc[0, "total"] = -1
    again = reports.server_trend(ctx, ADMIN, None, days=1)
    assert len(calls) == 1 and again.loc[0, "total"] != -1
    ctx.db.write(
        lambda cur: cur.execute(
            "INSERT INTO utilization_snapshots VALUES (1, now()::TIMESTAMP, 1000, 0, 0)"
        )
    )
    after = reports.server_trend(ctx, ADMIN, None, days=1)
    assert len(calls) == 2 and after["total"].iloc[-1] > again["total"].iloc[-1]
