"""The hourly utilization summaries on both backends: real pulls over HTTP from the emulator keep
them equal to summing the snapshots directly (also when a feature changes kind); a rebuild after
back-dated history does too."""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

from tests.sync.conftest import add_server, control, feature
from tests.unit.store.hourly_reference import (
    counted_features,
    counted_of,
    stored_counted,
    stored_snapshots,
    stored_summary,
    summary_of,
)
from vlm.context import ServiceContext
from vlm.flexnet.emulator.server import start_emulator
from vlm.store.hourly import rebuild_hourly
from vlm.store.servers import delete_server
from vlm.sync import pull_inventory


def _checkout(name: str, host: str, count: int) -> dict:
    return {
        "hostid": {"type": "ETHERNET", "value": host},
        "featureName": name,
        "featureVersion": "1.0",
        "count": count,
    }


def _fixture(features: list[dict], checkouts: list[tuple[str, str, int]]) -> dict:
    return {"features": features, "checkouts": [_checkout(*c) for c in checkouts]}


def _assert_summary_matches_snapshots(ctx: ServiceContext) -> None:
    """Both summaries equal what pandas makes of the snapshot rows (by the features' kinds now)."""
    summary = summary_of(stored_snapshots(ctx.db))
    assert stored_summary(ctx.db) == summary
    assert stored_counted(ctx.db) == counted_of(summary, counted_features(ctx.db))


def _back_date_history(ctx: ServiceContext, hours: int) -> None:
    """Move every snapshot `hours` back and rebuild the summary (as the demo's seeding does)."""

    def write(cur) -> None:
        cur.execute(
            "UPDATE utilization_snapshots SET taken_at = taken_at - ? * INTERVAL '1 hour'",
            [hours],
        )
        rebuild_hourly(cur)

    ctx.db.write(write)


def test_pulls_keep_the_summary_equal_to_summing_the_snapshots(ctx: ServiceContext) -> None:
    first = [feature("cad", 50), feature("viz", 30), feature("sim", 20)]
    with start_emulator(_fixture(first, [("cad", "AAAAAAAAAAAA", 4)])) as emu:
        server_id = add_server(ctx, emu.url)
        assert pull_inventory(ctx, server_id).snapshots_added == 3
        _assert_summary_matches_snapshots(ctx)
        _back_date_history(ctx, 3)
        _assert_summary_matches_snapshots(ctx)
        steps = [
            (first, [("cad", "AAAAAAAAAAAA", 6), ("viz", "BBBBBBBBBBBB", 2)]),
            ([feature("cad", 40), *first[1:]], [("cad", "AAAAAAAAAAAA", 1)]),
            ([feature("cad", 40), feature("viz", 30), feature("cam", 9)], []),
            ([feature("cad", 40), feature("viz", 25), feature("cam", 9)], [("cam", "C" * 12, 3)]),
        ]
        for features, checkouts in steps:
            control(emu, "POST", "fixture", _fixture(features, checkouts))
            result = pull_inventory(ctx, server_id)
            assert result.ok and result.snapshots_added > 0
            _assert_summary_matches_snapshots(ctx)

    summary = pd.DataFrame(
        stored_summary(ctx.db),
        columns=["sf", "hour_end", "samples", "total", "used", "reserved", "dt", "du", "dr", "new"],
    )
    names = dict(ctx.db.query("SELECT id, feature_name FROM server_features"))
    latest = summary.sort_values("hour_end").groupby("sf").last()
    assert {names[sf]: (r.total, r.used) for sf, r in latest.iterrows()} == {
        "cad": (40, 0),
        "viz": (25, 0),
        "sim": (0, 0),
        "cam": (9, 3),
    }
    assert summary.groupby("sf")["new"].sum().tolist() == [1, 1, 1, 1]
    assert summary["samples"].sum() == len(stored_snapshots(ctx.db))


def test_a_rebuild_summarises_history_written_out_of_time_order(ctx: ServiceContext) -> None:
    with start_emulator(_fixture([feature("cad", 50)], [])) as emu:
        server_id = add_server(ctx, emu.url)
        pull_inventory(ctx, server_id)
    (sf,) = ctx.db.query("SELECT id FROM server_features")[0]
    hour = datetime.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=1)
    older = [
        (sf, hour, 50, 1, 0),
        (sf, hour + timedelta(minutes=20), 50, 7, 0),
        (sf, hour + timedelta(minutes=20), 50, 3, 0),
        (sf, hour + timedelta(hours=5, seconds=1), 45, 2, 1),
    ]

    def write(cur) -> None:
        cur.executemany("INSERT INTO utilization_snapshots VALUES (?, ?, ?, ?, ?)", older)
        rebuild_hourly(cur)

    ctx.db.write(write)
    summary = stored_summary(ctx.db)
    assert summary[:3] == [
        (sf, hour, 1, 50, 1, 0, 50, 1, 0, True),
        (sf, hour + timedelta(hours=1), 2, 50, 7, 0, 0, 6, 0, False),
        (sf, hour + timedelta(hours=6), 1, 45, 2, 1, -5, -5, 1, False),
    ]
    assert summary[3][2:] == (1, 50, 0, 0, 5, -2, -1, False)
    _assert_summary_matches_snapshots(ctx)


def _counted_history(ctx: ServiceContext) -> tuple[tuple, tuple]:
    """The counted sums of the oldest hour, and of every later hour added up."""
    oldest, *later = [row[2:] for row in stored_counted(ctx.db)]
    return oldest, tuple(sum(values) for values in zip(*later, strict=True)) or (0, 0, 0, 0)


def test_a_feature_changing_kind_moves_its_history_in_or_out_of_the_counted_sums(
    ctx: ServiceContext,
) -> None:
    features = [feature("cad", 50), feature("viz", 30)]
    with start_emulator(_fixture(features, [("viz", "AAAAAAAAAAAA", 2)])) as emu:
        server_id = add_server(ctx, emu.url)
        pull_inventory(ctx, server_id)
        _back_date_history(ctx, 2)
        control(emu, "POST", "fixture", _fixture(features, [("viz", "AAAAAAAAAAAA", 5)]))
        pull_inventory(ctx, server_id)
        assert _counted_history(ctx) == ((80, 2, 0, 2), (0, 3, 0, 0))

        metered = [feature("cad", 50), feature("viz", 30, metered=True)]
        control(emu, "POST", "fixture", _fixture(metered, [("viz", "AAAAAAAAAAAA", 5)]))
        assert pull_inventory(ctx, server_id).snapshots_added == 0
        assert _counted_history(ctx) == ((50, 0, 0, 1), (0, 0, 0, 0))
        _assert_summary_matches_snapshots(ctx)

        control(emu, "POST", "fixture", _fixture(features, [("viz", "AAAAAAAAAAAA", 1)]))
        assert pull_inventory(ctx, server_id).snapshots_added == 1
        assert _counted_history(ctx) == ((80, 2, 0, 2), (0, -1, 0, 0))
        _assert_summary_matches_snapshots(ctx)


def test_removing_a_server_removes_its_summaries(ctx: ServiceContext) -> None:
    with start_emulator(_fixture([feature("cad", 50)], [])) as emu:
        gone = add_server(ctx, emu.url, "gone")
        kept = add_server(ctx, emu.url, "kept")
        pull_inventory(ctx, gone)
        pull_inventory(ctx, kept)
    assert {row[0] for row in stored_counted(ctx.db)} == {gone, kept}
    ctx.db.write(lambda cur: delete_server(cur, gone))
    assert {row[0] for row in stored_counted(ctx.db)} == {kept}
    assert len(stored_summary(ctx.db)) == 1
    _assert_summary_matches_snapshots(ctx)
