"""Inventory pull against the emulator: figures, mirror, snapshots, errors, speed."""

from __future__ import annotations

import time

from tests.sync.conftest import (
    add_pool,
    add_server,
    allocate,
    control,
    feature,
    feature_id,
    fixture_group,
    set_feature_count,
)
from vlm.context import ServiceContext
from vlm.flexnet import FlexNetClient, HostId, Reservation, ReservationEntry, ReservationGroup
from vlm.flexnet.emulator.server import start_emulator
from vlm.store.servers import load_server
from vlm.sync import pull_inventory, read_reservations
from vlm.sync.inventory import StoredInventories, forget_stored_inventory


def _features(ctx, server_id: int) -> dict[str, dict]:
    rows = ctx.db.query_dicts(
        "SELECT * FROM server_features WHERE server_id = ? ORDER BY feature_name", [server_id]
    )
    return {r["feature_name"]: r for r in rows}


def _snapshot_count(ctx) -> int:
    return ctx.db.scalar("SELECT count(*) FROM utilization_snapshots")


def test_pull_sums_slices_and_splits_reservations_by_owner(ctx) -> None:
    fixture = {
        "features": [
            feature("cad", 10, expiry="+30d"),
            feature("cad", 5, expiry="permanent"),
            feature("meter", 100, metered=True),
            feature("view", 0, uncounted=True),
        ],
        "reservationGroups": [
            fixture_group("ops-team", "AAAAAAAAAAAA", {"cad": 3}),
            fixture_group("vlm-ETHERNET-BBBBBBBBBBBB", "BBBBBBBBBBBB", {"cad": 2}),
        ],
        "checkouts": [
            {
                "hostid": {"type": "ETHERNET", "value": "CCCCCCCCCCCC"},
                "featureName": "cad",
                "featureVersion": "1.0",
                "count": 4,
            }
        ],
    }
    with start_emulator(fixture) as emu:
        server_id = add_server(ctx, emu.url)
        result = pull_inventory(ctx, server_id)

    assert result.ok and result.features == 3 and result.groups == 2 and result.owned_groups == 1
    features = _features(ctx, server_id)
    cad = features["cad"]
    assert (cad["total"], cad["used"], cad["reserved"], cad["slices"]) == (15, 4, 5, 2)
    assert cad["reserved_by_others"] == 3
    assert cad["present"] and cad["concurrent"] and not cad["uncounted"]
    assert features["meter"]["metered"] and features["view"]["uncounted"]
    mirror = ctx.db.query(
        "SELECT group_name, owned, host_id, feature_name, count FROM reservation_mirror "
        "ORDER BY group_name"
    )
    assert mirror == [
        ("ops-team", False, "AAAAAAAAAAAA", "cad", 3),
        ("vlm-ETHERNET-BBBBBBBBBBBB", True, "BBBBBBBBBBBB", "cad", 2),
    ]
    server = load_server(ctx.db, server_id)
    assert server["status"] == "ok" and server["last_error"] is None
    assert server["last_success_at"] is not None and server["last_latency_ms"] > 0


def test_snapshots_are_change_only(ctx, emulator) -> None:
    server_id = add_server(ctx, emulator.url)
    assert pull_inventory(ctx, server_id).snapshots_added == 3
    assert _snapshot_count(ctx) == 3

    second = pull_inventory(ctx, server_id)
    assert second.ok and second.snapshots_added == 0
    assert _snapshot_count(ctx) == 3

    set_feature_count(emulator, "viz", 12)
    third = pull_inventory(ctx, server_id)
    assert third.snapshots_added == 1
    rows = ctx.db.query(
        "SELECT sf.feature_name, s.total FROM utilization_snapshots s "
        "JOIN server_features sf ON sf.id = s.server_feature_id "
        "WHERE sf.feature_name = 'viz' ORDER BY s.taken_at"
    )
    assert rows == [("viz", 30), ("viz", 12)]
    assert pull_inventory(ctx, server_id).snapshots_added == 0


def test_feature_that_disappears_is_kept_with_zero_total(ctx, emulator) -> None:
    server_id = add_server(ctx, emulator.url)
    pull_inventory(ctx, server_id)
    sim = feature_id(ctx, server_id, "sim")
    pool = add_pool(ctx, {sim: 5})
    alloc = allocate(ctx, pool, sim, "0050569A1B2C", 2)

    control(emulator, "POST", "fixture", {"features": [feature("cad", 50), feature("viz", 30)]})
    assert pull_inventory(ctx, server_id).ok

    features = _features(ctx, server_id)
    assert not features["sim"]["present"] and features["sim"]["total"] == 0
    assert features["sim"]["id"] == sim
    assert features["cad"]["present"] and features["cad"]["total"] == 50
    assert ctx.db.scalar("SELECT quantity FROM pool_portions WHERE server_feature_id = ?", [sim])
    assert ctx.db.scalar("SELECT count(*) FROM allocations WHERE id = ?", [alloc]) == 1

    control(emulator, "POST", "fixture", {"features": [feature("sim", 7)]})
    pull_inventory(ctx, server_id)
    features = _features(ctx, server_id)
    assert features["sim"]["present"] and features["sim"]["total"] == 7
    assert features["sim"]["id"] == sim


def test_unreachable_server_records_error_and_keeps_data(ctx) -> None:
    emu = start_emulator({"features": [feature("cad", 9)]})
    server_id = add_server(ctx, emu.url, timeout=1.0)
    assert pull_inventory(ctx, server_id).ok
    before = ctx.db.query("SELECT * FROM server_features ORDER BY id")
    emu.stop()

    result = pull_inventory(ctx, server_id)

    assert not result.ok and result.error
    server = load_server(ctx.db, server_id)
    assert server["status"] == "error"
    assert server["last_error"] == result.error
    assert server["last_success_at"] is not None
    assert ctx.db.query("SELECT * FROM server_features ORDER BY id") == before


def test_bad_credentials_are_recorded(ctx, emulator) -> None:
    server_id = add_server(ctx, emulator.url, password="wrong")
    result = pull_inventory(ctx, server_id)
    assert not result.ok
    server = load_server(ctx.db, server_id)
    assert server["status"] == "error" and "Bad credentials" in server["last_error"]
    assert ctx.db.scalar("SELECT count(*) FROM server_features") == 0


def test_large_server_is_stored_in_full(ctx) -> None:
    features = [feature(f"feat{i:03d}", 1000) for i in range(500)]
    groups = [
        fixture_group(
            f"{'vlm-' if i % 2 else 'team-'}g{i}",
            f"{i:012X}",
            {f"feat{i % 500:03d}": 1, f"feat{(i + 1) % 500:03d}": 1},
        )
        for i in range(3000)
    ]
    with start_emulator({"features": features, "reservationGroups": groups}) as emu:
        server_id = add_server(ctx, emu.url)
        pull_inventory(ctx, server_id)
        set_feature_count(emu, "feat000", 999)
        with FlexNetClient(emu.url, username="admin", password="admin") as client:
            result = pull_inventory(ctx, server_id, client)

    assert result.ok and result.features == 500 and result.groups == 3000
    assert result.snapshots_added == 1
    assert ctx.db.scalar("SELECT count(*) FROM reservation_mirror") == 6000
    assert ctx.db.scalar("SELECT sum(reserved_by_others) FROM server_features") == 3000
    assert ctx.db.scalar("SELECT total FROM server_features WHERE feature_name = 'feat000'") == 999
    assert (
        ctx.db.scalar("SELECT count(DISTINCT group_name) FROM reservation_mirror WHERE owned")
        == 1500
    )


def test_mirror_rows_from_json_match_those_from_parsed_groups() -> None:
    """The inventory reads groups as flat JSON rows; they must equal the model classes' view."""
    from vlm.flexnet import ReservationGroup
    from vlm.sync.mirror import mirror_rows, raw_mirror_rows

    raw = [
        {
            "id": 1,
            "name": "vlm-ETHERNET-0050569A0001",
            "reservations": [
                {
                    "id": "7",
                    "hostId": {"type": "ETHERNET", "value": "0050569A0001"},
                    "reservationEntries": [
                        {
                            "id": 3,
                            "featureName": "cad",
                            "featureVersion": "1.0",
                            "featureCount": "2",
                        },
                        {
                            "id": 4,
                            "featureName": "sim",
                            "featureVersion": "2",
                            "featureCount": 1.0,
                            "state": "ACTIVE",
                        },
                        {
                            "id": 5,
                            "featureName": "odd",
                            "featureVersion": "1",
                            "featureCount": "n/a",
                        },
                    ],
                },
                {"id": 8, "hostid": {"hostidType": "USER", "hostidValue": "jo"}},
            ],
        },
        {"id": 2, "name": "someone-else"},
    ]
    parsed = [ReservationGroup.from_json(g) for g in raw]
    rows = raw_mirror_rows(9, raw, "vlm-")
    assert rows == mirror_rows(9, parsed, "vlm-")
    assert [r[3] for r in rows] == [True, True, True, True, False]
    assert [(r[8], r[10]) for r in rows] == [("cad", 2), ("sim", 1), ("odd", 0), ("", 0), ("", 0)]


def test_groups_answer_unchanged_keeps_mirror_and_a_changed_one_rebuilds_it(ctx, emulator) -> None:
    server_id = add_server(ctx, emulator.url)
    first = pull_inventory(ctx, server_id)
    mirror_sql = (
        "SELECT group_name, host_id, feature_name, count FROM reservation_mirror "
        "ORDER BY 1, 2, 3, 4"
    )
    before = ctx.db.query(mirror_sql)
    again = pull_inventory(ctx, server_id)
    assert (again.groups, again.owned_groups) == (first.groups, first.owned_groups)
    assert ctx.db.query(mirror_sql) == before

    entry = ReservationEntry("viz", "1.0", 2)
    group = ReservationGroup(None, "team-manual", (Reservation(HostId("USER", "zoe"), (entry,)),))
    with FlexNetClient(emulator.url, username="admin", password="admin") as client:
        client.create_reservation_group(group)
    changed = pull_inventory(ctx, server_id)
    assert changed.groups == first.groups + 1 and changed.owned_groups == first.owned_groups
    assert ("team-manual", "zoe", "viz", 2) in ctx.db.query(mirror_sql)
    others = "SELECT reserved_by_others FROM server_features WHERE feature_name = 'viz'"
    assert ctx.db.scalar(others) == 2
    pull_inventory(ctx, server_id)
    assert ctx.db.scalar(others) == 2


def test_only_changed_features_are_rewritten(ctx, emulator) -> None:
    server_id = add_server(ctx, emulator.url)
    pull_inventory(ctx, server_id)
    stamps_sql = "SELECT feature_name, updated_at FROM server_features ORDER BY 1"
    before = dict(ctx.db.query(stamps_sql))

    time.sleep(0.01)
    unchanged = pull_inventory(ctx, server_id)
    assert unchanged.ok and unchanged.features == 3 and unchanged.snapshots_added == 0
    assert dict(ctx.db.query(stamps_sql)) == before

    set_feature_count(emulator, "viz", 12)
    changed = pull_inventory(ctx, server_id)
    assert changed.snapshots_added == 1 and changed.features == 3
    after = dict(ctx.db.query(stamps_sql))
    assert after["viz"] > before["viz"]
    assert {k: v for k, v in after.items() if k != "viz"} == {
        k: v for k, v in before.items() if k != "viz"
    }
    assert _features(ctx, server_id)["viz"]["total"] == 12


def test_each_context_remembers_its_own_last_pull_until_told_to_forget(ctx, emulator) -> None:
    server_id = add_server(ctx, emulator.url)
    pull_inventory(ctx, server_id)
    stored = ctx.owned(StoredInventories)
    last = stored.last(server_id)
    assert last is not None and last.features_fingerprint and len(last.totals) == 3
    assert (
        ServiceContext(ctx.db, ctx.settings, ctx.secrets).owned(StoredInventories).last(server_id)
        is None
    )

    viz_total = "SELECT total FROM server_features WHERE feature_name = 'viz'"
    ctx.db.write(lambda cur: cur.execute("UPDATE server_features SET total = 1 WHERE total = 30"))
    pull_inventory(ctx, server_id)  # the same answers: neither parsed nor compared
    assert ctx.db.scalar(viz_total) == 1
    forget_stored_inventory(ctx, server_id)
    assert stored.last(server_id) is None
    pull_inventory(ctx, server_id)
    assert ctx.db.scalar(viz_total) == 30
    assert stored.last(server_id) is not None


def test_a_read_of_the_groups_becomes_the_last_pulls_groups(ctx, emulator) -> None:
    """What the reconciler's read stored is remembered: the next read of an unchanged answer is
    not parsed again, and a later pull whose features moved writes the new foreign count."""
    server_id = add_server(ctx, emulator.url)
    pull_inventory(ctx, server_id)
    others = "SELECT reserved_by_others FROM server_features WHERE feature_name = 'viz'"
    assert ctx.db.scalar(others) == 0
    entry = ReservationEntry("viz", "1.0", 2)
    group = ReservationGroup(None, "team-manual", (Reservation(HostId("USER", "zoe"), (entry,)),))
    with FlexNetClient(emulator.url, username="admin", password="admin") as client:
        client.create_reservation_group(group)
        assert read_reservations(ctx, server_id, client) is not None
        assert read_reservations(ctx, server_id, client) is None
    last = ctx.owned(StoredInventories).last(server_id)
    assert last is not None and last.others == {("viz", "1.0"): 2} and last.groups == 1
    assert ctx.db.scalar(others) == 2

    set_feature_count(emulator, "viz", 12)
    moved = pull_inventory(ctx, server_id)
    assert moved.snapshots_added == 1 and moved.groups == 1
    assert ctx.db.scalar(others) == 2
    assert _features(ctx, server_id)["viz"]["total"] == 12


def test_a_read_of_the_groups_before_any_pull_remembers_only_the_groups(ctx, emulator) -> None:
    """Before any pull the read remembers the groups (an unchanged answer is not parsed again)
    and no features: the next pull reads and stores every feature."""
    server_id = add_server(ctx, emulator.url)
    with FlexNetClient(emulator.url, username="admin", password="admin") as client:
        assert read_reservations(ctx, server_id, client) is not None
        assert read_reservations(ctx, server_id, client) is None
    last = ctx.owned(StoredInventories).last(server_id)
    assert last is not None and last.totals == [] and last.groups_fingerprint
    pulled = pull_inventory(ctx, server_id)
    assert pulled.ok and pulled.features == 3 and pulled.snapshots_added == 3
    assert set(_features(ctx, server_id)) == {"cad", "sim", "viz"}
    assert ctx.owned(StoredInventories).last(server_id).totals


def test_feature_changes_finds_new_changed_and_gone_rows() -> None:
    from vlm.sync.inventory import feature_changes

    def stored(i: int, name: str, total: int, present: bool = True) -> tuple:
        return (i, name, "1.0", total, int(present), 0, 0, True, False, False, None, 1, present)

    def row(name: str, total: int, used: int = 1) -> tuple:  # as listed by the server
        return (name, "1.0", total, used, 0, 0, True, False, False, None, 1)

    changes = feature_changes(
        [stored(1, "same", 5), stored(2, "moved", 5), stored(3, "gone", 5),
         stored(4, "back", 0, present=False), stored(5, "long-gone", 0, present=False)],
        [row("same", 5), row("moved", 5, used=2), row("back", 0), row("new", 9)],
    )  # fmt: skip
    assert sorted(changes.changed_frame()["feature_name"]) == ["back", "moved", "new"]
    assert changes.absent == [("gone", "1.0")]
    assert sorted(changes.previous()["id"]) == [1, 2, 3, 4, 5]
    assert changes.by_id is None
    assert feature_changes([stored(1, "same", 5)], [row("same", 5)]).empty


def test_replace_mirror_writes_the_differences_and_ends_equal_to_the_answer(ctx) -> None:
    from vlm.store.reservations import MIRROR_COLUMNS, replace_mirror
    from vlm.sync.mirror import mirror_table

    def row(group: int | None, host: str, feature: str, count: int, entry: int | None) -> tuple:
        return (
            7,
            group,
            f"g{group}",
            False,
            None,
            "USER",
            host,
            entry,
            feature,
            "1.0",
            count,
            None,
        )

    def stored() -> list[tuple]:
        columns = ", ".join(MIRROR_COLUMNS)
        return sorted(
            ctx.db.query(f"SELECT {columns} FROM reservation_mirror WHERE server_id = 7"),
            key=repr,
        )

    first = [row(1, "ann", "cad", 2, 10), row(1, "ann", "sim", 1, 11), row(2, "bo", "cad", 1, None)]
    second = [
        row(1, "ann", "cad", 2, 10),  # kept
        row(2, "bo", "cad", 1, None),  # kept, listed twice now (no ids to tell them apart)
        row(2, "bo", "cad", 1, None),
        row(3, "cy", "viz", 4, 12),  # new; ann's sim entry is gone
    ]
    for rows in (first, second, first, []):
        ctx.db.write(lambda cur, rows=rows: replace_mirror(cur, 7, mirror_table(rows)))
        assert stored() == sorted(rows, key=repr)
