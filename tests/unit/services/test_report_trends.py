"""Utilization trends read the hourly summary and give exactly what carrying each feature's last
snapshot forward to every grid point gives (a pandas reference over the snapshot rows), on both
backends; pool trends walk the audit log back."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta

import pandas as pd
import pytest

from tests.conftest import ADMIN, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.services import allocations, pools, reports, vlms
from vlm.store.hourly import rebuild_hourly

SNAPSHOT_COLUMNS = ["server_feature_id", "taken_at", "total", "used", "reserved"]


def _seed(ctx, seed: int) -> pd.DataFrame:
    """Two servers, six counted features and a metered one (7, on server 2), change-only rows at
    random moments; some start mid-window. Returns the snapshot rows written."""
    rng = random.Random(seed)
    now = datetime.now()
    rows = []
    for feature_id in range(1, 8):
        first = rng.choice([40, 40, 3, 0.5])
        moment = now - timedelta(days=first, minutes=rng.randrange(600))
        while moment < now + timedelta(minutes=5):
            rows.append(
                (feature_id, moment, rng.randrange(50), rng.randrange(50), rng.randrange(9))
            )
            moment += timedelta(minutes=rng.choice([1, 7, 59, 60, 61, 360, 1440, 4000]))
    frame = pd.DataFrame(rows, columns=SNAPSHOT_COLUMNS)
    features = ", ".join(f"({i}, {1 + i % 2}, 'f{i}', '1', {i == 7})" for i in range(1, 8))

    def write(cur) -> None:
        cur.execute(
            "INSERT INTO license_servers (name, base_url) VALUES ('a', 'http://a'), ('b', 'http://b')"
        )
        cur.execute(
            "INSERT INTO server_features (id, server_id, feature_name, feature_version, metered) "
            f"VALUES {features}"
        )
        cur.executemany(
            "INSERT INTO utilization_snapshots VALUES (?, ?, ?, ?, ?)",
            list(frame.itertuples(index=False, name=None)),
        )
        rebuild_hourly(cur)
        cur.execute("INSERT INTO vlms (id, name, created_by) VALUES (1, 'v', 'x')")
        cur.execute(
            "INSERT INTO pools (id, vlm_id, name, manager, created_by) VALUES (1, 1, 'p', 'm', 'x')"
        )
        cur.execute("INSERT INTO pool_portions VALUES (1, 2, 5), (1, 5, 5)")

    ctx.db.write(write)
    return frame


def _carried_forward(snapshots: pd.DataFrame, features: list[int], window: dict) -> pd.DataFrame:
    """At every grid point, the sum over the features of each one's last snapshot at or before
    it; only points where at least one feature has one."""
    grid = pd.DataFrame(
        {
            "taken_at": [
                window["start"] + i * timedelta(microseconds=window["step_us"])
                for i in range(window["points"])
            ]
        }
    )
    rows = snapshots[snapshots["server_feature_id"].isin(features)].sort_values("taken_at")
    per_feature = [
        pd.merge_asof(grid, rows[rows["server_feature_id"] == f], on="taken_at").dropna()
        for f in features
    ]
    found = pd.concat(per_feature)
    summed = found.groupby("taken_at")[["total", "used", "reserved"]].sum().astype(int)
    return summed.reset_index()


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("days", [1, 7, 30])
def test_trend_matches_carrying_each_counted_features_last_snapshot_forward(
    ctx, seed: int, days: int
) -> None:
    snapshots = _seed(ctx, seed)
    step = reports._step(days)
    end = datetime.now().replace(second=0, microsecond=0)
    last = reports._whole_hour_at_or_after(end)
    window = reports.trend_window(days, step, last)
    for server_id, features in ((None, [1, 2, 3, 4, 5, 6]), (2, [1, 3, 5])):
        got = reports._trend(ctx, server_id, days, step, end)
        want = _carried_forward(snapshots, features, window)
        assert len(want) > 0 and got["taken_at"].iloc[-1] == last
        pd.testing.assert_frame_equal(got.reset_index(drop=True), want, check_dtype=False)


def test_utilization_trends_fall_on_whole_hours_up_to_the_one_after_now() -> None:
    moment = datetime(2024, 5, 6, 10, 17, 3)
    assert reports._whole_hour_at_or_after(moment) == datetime(2024, 5, 6, 11)
    assert reports._whole_hour_at_or_after(datetime(2024, 5, 6, 11)) == datetime(2024, 5, 6, 11)
    assert reports._whole_hour_at_or_after(datetime(2024, 5, 6, 23, 0, 0, 1)) == datetime(
        2024, 5, 7
    )


def test_public_trends_have_the_chart_columns(ctx) -> None:
    _seed(ctx, 4)
    server = reports.server_trend(ctx, ADMIN, 1, days=7)
    assert list(server.columns) == ["taken_at", "total", "used", "reserved"]
    assert server["taken_at"].is_monotonic_increasing and len(server) > 1
    assert set(server["taken_at"].dt.minute) == {0}
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
        (after,) = cur.execute(
            "SELECT after FROM audit_log WHERE target_id = ? AND action = 'allocation.add'",
            [str(first)],
        ).fetchone()
        unnamed = {k: v for k, v in json.loads(after).items() if k != "pool_id"}
        cur.execute(
            "UPDATE audit_log SET after = ? WHERE target_id = ? AND action = 'allocation.add'",
            [json.dumps(unnamed), str(first)],
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


def test_trends_are_cached_until_the_next_write(ctx, frame_reads) -> None:
    _seed(ctx, 5)
    calls = frame_reads
    first = reports.server_trend(ctx, ADMIN, None, days=1)
    first.loc[0, "total"] = -1
    again = reports.server_trend(ctx, ADMIN, None, days=1)
    assert len(calls) == 1 and again.loc[0, "total"] != -1

    def write(cur) -> None:
        cur.execute("INSERT INTO utilization_snapshots VALUES (1, ?, 1000, 0, 0)", [datetime.now()])
        rebuild_hourly(cur)

    ctx.db.write(write)
    after = reports.server_trend(ctx, ADMIN, None, days=1)
    assert len(calls) == 2 and after["total"].iloc[-1] > again["total"].iloc[-1]
