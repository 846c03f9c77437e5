"""What a fresh read of a license server proves (vlm.sync.observed): a restart or replacement,
which allocations the server really holds, and a prefix already in use on the first read
(docs/architecture.md §6.4, §5.4 "Ownership is proven, never assumed")."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from tests.unit.sync.builders import ANN, BEN, CAD, VIZ, entry, group, host_group, reservation
from vlm.context import ServiceContext
from vlm.flexnet import HostId, ReservationGroup
from vlm.services import allocations, pools, vlms
from vlm.store.frames import frame
from vlm.store.reservations import OUTCOME_DTYPES, mark_applied, replace_mirror
from vlm.store.servers import record_server_success
from vlm.sync.mirror import mirror_rows, mirror_table
from vlm.sync.observed import (
    DISABLED_BY_SERVER,
    MISSING,
    Observation,
    batch_held_key,
    held_by_group,
    judge_held_allocations,
    record_observation,
    restart_reason,
)

PREFIX = "vlm-"
SERVER = 5
ANN_GROUP = "vlm-USER-ann"
BEN_GROUP = "vlm-USER-ben"
REENABLED = "the license server enabled the reservation entry again"


def rows_of(*groups: ReservationGroup, server_id: int = SERVER) -> list[tuple]:
    """Mirror rows of a read that returned these groups."""
    return mirror_rows(server_id, groups, PREFIX)


def held_of(*groups: ReservationGroup) -> dict:
    return held_by_group(rows_of(*groups))[0]


def alloc(alloc_id: int, count: int, state: str = "applied", key=CAD, host: HostId = ANN) -> tuple:
    """A held allocation row: (id, host_type, host_id, feature_name, feature_version, count,
    state)."""
    return (alloc_id, host.type, host.value, key[0], key[1], count, state)


def event(kind: str, count: int, detail: str, key=CAD, host: HostId = ANN) -> tuple:
    name = f"{PREFIX}{host.type}-{host.value}"
    return (SERVER, kind, name, host.type, host.value, key[0], key[1], count, detail)


def judge(*allocs: tuple, groups: tuple[ReservationGroup, ...] = ()) -> tuple[list, list]:
    return judge_held_allocations(SERVER, PREFIX, allocs, held_of(*groups))


# -- restart_reason -------------------------------------------------------------------------


def test_the_same_instance_and_group_ids_mean_no_restart():
    assert restart_reason("EMU1", "EMU1", [(7, ANN_GROUP)], {7: ANN_GROUP, 8: "team-x"}) is None


def test_a_changed_instance_id_means_a_restart():
    assert restart_reason("EMU1", "EMU2", [], {}) == "instance id changed from EMU1 to EMU2"


def test_an_instance_id_seen_for_the_first_time_is_no_restart():
    assert restart_reason(None, "EMU2", [], {}) is None


def test_a_read_without_an_instance_id_is_no_restart():
    assert restart_reason("EMU1", None, [], {}) is None


def test_a_stored_group_id_now_carrying_another_name_means_a_restart():
    reason = restart_reason("EMU1", "EMU1", [(7, ANN_GROUP)], {7: "team-x"})
    assert reason == "group id 7 was 'vlm-USER-ann' and is now 'team-x'"


def test_a_vlm_group_now_under_another_id_means_a_restart():
    reason = restart_reason(None, None, [(7, ANN_GROUP)], {9: ANN_GROUP})
    assert reason == "group 'vlm-USER-ann' had id 7 and now has id 9"


def test_a_vlm_group_gone_from_the_server_is_no_restart():
    assert restart_reason("EMU1", "EMU1", [(7, ANN_GROUP)], {8: "team-x"}) is None


def test_every_stored_group_is_checked_not_only_the_first():
    stored = [(7, ANN_GROUP), (8, BEN_GROUP)]
    reason = restart_reason("EMU1", "EMU1", stored, {7: ANN_GROUP, 8: "team-x"})
    assert reason == "group id 8 was 'vlm-USER-ben' and is now 'team-x'"


def test_a_changed_instance_id_is_named_before_any_group_id():
    reason = restart_reason("EMU1", "EMU2", [(7, ANN_GROUP)], {7: "team-x"})
    assert reason == "instance id changed from EMU1 to EMU2"


# -- held_by_group ---------------------------------------------------------------------------


def test_every_group_is_named_by_id_but_only_vlm_groups_are_held():
    held, names = held_by_group(
        rows_of(
            host_group("team-x", BEN, entry(CAD, 1, 2), group_id=8),
            host_group(ANN_GROUP, ANN, entry(CAD, 2, 1), group_id=7),
        )
    )
    assert names == {8: "team-x", 7: ANN_GROUP}
    assert list(held) == [ANN_GROUP]
    assert held[ANN_GROUP].host == ("USER", "ann")
    assert held[ANN_GROUP].reservations == 1
    assert dict(held[ANN_GROUP].active) == {CAD: 2}
    assert dict(held[ANN_GROUP].disabled) == {}


def test_a_vlm_group_without_reservations_is_named_but_holds_nothing():
    held, names = held_by_group(rows_of(group(ANN_GROUP, group_id=7)))
    assert (held, names) == ({}, {7: ANN_GROUP})


def test_a_group_without_an_id_is_not_named():
    held, names = held_by_group(rows_of(host_group(ANN_GROUP, ANN, group_id=None)))
    assert names == {}
    assert list(held) == [ANN_GROUP]


def test_entries_count_as_active_unless_the_server_says_otherwise():
    held = held_of(
        host_group(
            ANN_GROUP,
            ANN,
            entry(CAD, 2, 1, "ACTIVE"),
            entry(CAD, 1, 2, None),
            entry(VIZ, 1, 3, "active"),
            entry(VIZ, 3, 4, "DISABLED"),
            entry(("sim", "1.0"), 2, 5, "disabled"),
        )
    )[ANN_GROUP]
    assert dict(held.active) == {CAD: 3, VIZ: 1}
    assert dict(held.disabled) == {VIZ: 3, ("sim", "1.0"): 2}


def test_a_reservation_without_entries_is_counted_and_holds_nothing():
    held = held_of(host_group(ANN_GROUP, ANN))[ANN_GROUP]
    assert (held.reservations, dict(held.active), dict(held.disabled)) == (1, {}, {})


def test_every_reservation_of_a_vlm_group_is_counted_and_the_first_names_its_host():
    two = group(
        ANN_GROUP,
        reservation(HostId("user", "ann"), entry(CAD, 2, 1)),
        reservation(BEN, entry(CAD, 1, 2), reservation_id=2),
    )
    held = held_of(two)[ANN_GROUP]
    assert held.host == ("USER", "ann")
    assert held.reservations == 2
    assert dict(held.active) == {CAD: 3}


def test_reservations_without_ids_are_told_apart_by_their_host():
    two = group(
        ANN_GROUP,
        reservation(ANN, entry(CAD, 1), reservation_id=None),
        reservation(HostId("ETHERNET", "ann"), entry(CAD, 1), reservation_id=None),
    )
    assert held_of(two)[ANN_GROUP].reservations == 2


def test_a_reservation_without_a_host_type_is_still_a_reservation():
    two = group(ANN_GROUP, reservation(ANN), reservation(HostId("", "ann"), reservation_id=2))
    assert held_of(two)[ANN_GROUP].reservations == 2


# -- judge_held_allocations ------------------------------------------------------------------


def test_an_applied_allocation_covered_by_active_entries_stays_applied():
    assert judge(alloc(1, 3), groups=(host_group(ANN_GROUP, ANN, entry(CAD, 3, 1)),)) == ([], [])


def test_allocations_of_one_host_and_feature_are_covered_together():
    groups = (host_group(ANN_GROUP, ANN, entry(CAD, 3, 1)),)
    assert judge(alloc(1, 2), alloc(2, 1), groups=groups) == ([], [])


def test_active_entries_one_short_make_every_allocation_of_the_feature_missing():
    groups = (host_group(ANN_GROUP, ANN, entry(CAD, 2, 1)),)
    changes, events = judge(alloc(1, 2), alloc(2, 1), groups=groups)
    assert changes == [(1, 2, "applied", "pending", MISSING), (2, 1, "applied", "pending", MISSING)]
    assert events == [event("missing", 3, MISSING)]


def test_an_allocation_whose_group_is_gone_is_missing():
    changes, events = judge(alloc(1, 3))
    assert changes == [(1, 3, "applied", "pending", MISSING)]
    assert events == [event("missing", 3, MISSING)]


def test_an_allocation_whose_feature_is_gone_from_its_group_is_missing():
    groups = (host_group(ANN_GROUP, ANN, entry(VIZ, 1, 1)),)
    changes, events = judge(alloc(1, 1), groups=groups)
    assert changes == [(1, 1, "applied", "pending", MISSING)]
    assert events == [event("missing", 1, MISSING)]


def test_an_allocation_with_a_disabled_entry_is_disabled():
    groups = (host_group(ANN_GROUP, ANN, entry(CAD, 3, 1, "DISABLED")),)
    changes, events = judge(alloc(1, 3), groups=groups)
    assert changes == [(1, 3, "applied", "disabled", DISABLED_BY_SERVER)]
    assert events == [event("disabled", 3, DISABLED_BY_SERVER)]


def test_a_single_disabled_license_short_of_the_count_disables_the_allocation():
    groups = (host_group(ANN_GROUP, ANN, entry(CAD, 2, 1), entry(CAD, 1, 2, "DISABLED")),)
    changes, _ = judge(alloc(1, 3), groups=groups)
    assert changes == [(1, 3, "applied", "disabled", DISABLED_BY_SERVER)]


def test_a_disabled_allocation_whose_entry_is_active_again_is_re_enabled():
    groups = (host_group(ANN_GROUP, ANN, entry(CAD, 3, 1, "ACTIVE")),)
    changes, events = judge(alloc(1, 3, "disabled"), groups=groups)
    assert changes == [(1, 3, "disabled", "applied", None)]
    assert events == [event("re-enabled", 3, REENABLED)]


def test_a_disabled_allocation_still_disabled_does_not_move():
    groups = (host_group(ANN_GROUP, ANN, entry(CAD, 3, 1, "DISABLED")),)
    assert judge(alloc(1, 3, "disabled"), groups=groups) == ([], [])


def test_a_disabled_allocation_whose_entry_vanished_is_missing():
    changes, events = judge(alloc(1, 3, "disabled"))
    assert changes == [(1, 3, "disabled", "pending", MISSING)]
    assert events == [event("missing", 3, MISSING)]


def test_entries_of_a_vlm_group_with_two_reservations_prove_nothing():
    two = group(
        ANN_GROUP,
        reservation(ANN, entry(CAD, 1, 1), entry(VIZ, 1, 3, "DISABLED")),
        reservation(BEN, entry(CAD, 1, 2), reservation_id=2),
    )
    changes, events = judge(alloc(1, 1), alloc(2, 1, key=VIZ), groups=(two,))
    assert changes == [
        (1, 1, "applied", "pending", MISSING),
        (2, 1, "applied", "pending", MISSING),
    ]
    assert [e[1] for e in events] == ["missing", "missing"]


def test_entries_of_a_vlm_group_reserving_for_another_host_prove_nothing():
    groups = (host_group(ANN_GROUP, BEN, entry(CAD, 1, 1)),)
    changes, _ = judge(alloc(1, 1), groups=groups)
    assert changes == [(1, 1, "applied", "pending", MISSING)]


def test_each_host_and_feature_is_judged_against_its_own_group():
    groups = (
        host_group(ANN_GROUP, ANN, entry(CAD, 2, 1), entry(VIZ, 1, 2, "DISABLED")),
        host_group(BEN_GROUP, BEN, entry(CAD, 1, 3), group_id=8),
    )
    changes, events = judge(
        alloc(1, 2),
        alloc(2, 1, key=VIZ),
        alloc(3, 1, host=BEN),
        alloc(4, 2, key=VIZ, host=BEN),
        groups=groups,
    )
    assert changes == [
        (2, 1, "applied", "disabled", DISABLED_BY_SERVER),
        (4, 2, "applied", "pending", MISSING),
    ]
    assert events == [
        event("disabled", 1, DISABLED_BY_SERVER, key=VIZ),
        event("missing", 2, MISSING, key=VIZ, host=BEN),
    ]


# -- record_observation: in the write that stores a read ------------------------------------


@pytest.fixture
def estate(ctx: ServiceContext) -> tuple[ServiceContext, int, int]:
    """One never-read server with 10 CAD and 10 VIZ, MANAGER's pool of 6 each, and an
    allocation of 3 CAD to USER ann that the reconciler has applied."""
    add_people(ctx)
    server_id = add_server(ctx, "east", {CAD: 10, VIZ: 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "p", MANAGER.username, {CAD: 6, VIZ: 6})
    ann = allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "ann", 3)
    applied = frame([(ann, 3, "pending", None)], OUTCOME_DTYPES)
    assert ctx.db.write(lambda cur: mark_applied(cur, applied)) == 1
    return ctx, server_id, ann


def read(
    ctx: ServiceContext, server_id: int, *groups: ReservationGroup, instance: str | None = "EMU1"
) -> Observation:
    """Store a read of these groups as the inventory does: observe, then replace the mirror."""
    rows = rows_of(*groups, server_id=server_id)

    def store(cur) -> Observation:
        observation = record_observation(cur, server_id, PREFIX, rows, instance)
        replace_mirror(cur, server_id, mirror_table(rows))
        return observation

    return ctx.db.write(store)


def mark_read_before(ctx: ServiceContext, server_id: int) -> None:
    ctx.db.write(lambda cur: record_server_success(cur, server_id, 1.0))


def state_of(ctx: ServiceContext, alloc_id: int) -> tuple:
    return ctx.db.query("SELECT state, last_error FROM allocations WHERE id = ?", [alloc_id])[0]


def events_of(ctx: ServiceContext, server_id: int) -> list[tuple]:
    return ctx.db.query(
        "SELECT kind, group_name, host_type, host_id, feature_name, feature_version, count, "
        "detail FROM drift_events WHERE server_id = ? ORDER BY id",
        [server_id],
    )


def instance_of(ctx: ServiceContext, server_id: int) -> str | None:
    return ctx.db.scalar("SELECT instance_id FROM license_servers WHERE id = ?", [server_id])


def ann_holds(*entries) -> ReservationGroup:
    return host_group(ANN_GROUP, ANN, *entries)


def prefix_detail(names: list[str], listed: str) -> str:
    return (
        f"{len(names)} reservation group(s) already carry the prefix 'vlm-' on the first read "
        f"of this server ({listed}); VLM treats groups with its prefix as its own: choose "
        "another prefix if they belong to someone else"
    )


def test_a_first_read_names_the_groups_already_carrying_the_prefix(estate):
    ctx, server_id, ann = estate
    observation = read(
        ctx,
        server_id,
        host_group(BEN_GROUP, BEN, entry(VIZ, 1, 2), group_id=8),
        ann_holds(entry(CAD, 3, 1)),
        host_group("team-x", HostId("USER", "cy"), entry(CAD, 1, 3), group_id=9),
    )
    assert observation == Observation(prefix_in_use=(ANN_GROUP, BEN_GROUP))
    detail = prefix_detail([ANN_GROUP, BEN_GROUP], f"{ANN_GROUP}, {BEN_GROUP}")
    assert events_of(ctx, server_id) == [
        ("prefix in use", None, None, None, None, None, None, detail)
    ]
    assert state_of(ctx, ann) == ("applied", None)


@pytest.mark.parametrize("hosts, ellipsis", [(5, ""), (6, ", …")])
def test_the_prefix_warning_lists_five_groups_at_most(estate, hosts, ellipsis):
    ctx, server_id, _ = estate
    names = [f"vlm-USER-h{i}" for i in range(hosts)]
    groups = [
        host_group(name, HostId("USER", f"h{i}"), group_id=20 + i) for i, name in enumerate(names)
    ]
    observation = read(ctx, server_id, *groups)
    assert observation.prefix_in_use == tuple(names)
    detail = prefix_detail(names, ", ".join(names[:5]) + ellipsis)
    assert events_of(ctx, server_id)[0] == (
        "prefix in use",
        None,
        None,
        None,
        None,
        None,
        None,
        detail,
    )


def test_a_first_read_also_names_an_empty_group_already_carrying_the_prefix(estate):
    ctx, server_id, _ = estate
    observation = read(ctx, server_id, ann_holds(entry(CAD, 3, 1)), group(BEN_GROUP, group_id=8))
    assert observation.prefix_in_use == (ANN_GROUP, BEN_GROUP)


def test_a_first_read_with_only_foreign_groups_warns_of_nothing(estate):
    ctx, server_id, ann = estate
    observation = read(ctx, server_id, host_group("team-x", BEN, entry(CAD, 1, 3), group_id=9))
    assert observation.prefix_in_use == ()
    assert [e[0] for e in events_of(ctx, server_id)] == ["missing"]


def test_a_server_read_before_is_not_warned_about_its_prefix(estate):
    ctx, server_id, ann = estate
    mark_read_before(ctx, server_id)
    observation = read(ctx, server_id, ann_holds(entry(CAD, 3, 1)))
    assert observation == Observation()
    assert events_of(ctx, server_id) == []
    assert state_of(ctx, ann) == ("applied", None)


def test_a_read_stores_the_instance_id_and_a_read_without_one_keeps_it(estate):
    ctx, server_id, _ = estate
    mark_read_before(ctx, server_id)
    read(ctx, server_id, ann_holds(entry(CAD, 3, 1)), instance="EMU1")
    assert instance_of(ctx, server_id) == "EMU1"
    assert read(ctx, server_id, ann_holds(entry(CAD, 3, 1)), instance=None) == Observation()
    assert instance_of(ctx, server_id) == "EMU1"


def test_a_changed_instance_id_is_recorded_as_a_restart(estate):
    ctx, server_id, ann = estate
    mark_read_before(ctx, server_id)
    read(ctx, server_id, ann_holds(entry(CAD, 3, 1)), instance="EMU1")
    observation = read(ctx, server_id, ann_holds(entry(CAD, 3, 1)), instance="EMU2")
    reason = "instance id changed from EMU1 to EMU2"
    assert observation == Observation(restarted=reason)
    detail = f"license server restarted or replaced ({reason}); every stored id is stale"
    assert events_of(ctx, server_id) == [
        ("server restarted", None, None, None, None, None, None, detail)
    ]
    assert instance_of(ctx, server_id) == "EMU2"
    assert state_of(ctx, ann) == ("applied", None)


def test_a_stored_vlm_group_id_reused_by_a_foreign_group_is_a_restart(estate):
    ctx, server_id, ann = estate
    mark_read_before(ctx, server_id)
    read(ctx, server_id, ann_holds(entry(CAD, 3, 1)))
    observation = read(ctx, server_id, host_group("team-x", BEN, entry(CAD, 1, 1)))
    reason = "group id 7 was 'vlm-USER-ann' and is now 'team-x'"
    assert observation == Observation(restarted=reason, missing=1)
    assert [e[0] for e in events_of(ctx, server_id)] == ["server restarted", "missing"]
    assert state_of(ctx, ann) == ("pending", MISSING)


def test_an_applied_allocation_missing_from_the_read_goes_back_to_pending(estate):
    ctx, server_id, ann = estate
    mark_read_before(ctx, server_id)
    observation = read(ctx, server_id, ann_holds(entry(VIZ, 1, 2)))
    assert observation == Observation(missing=1)
    assert state_of(ctx, ann) == ("pending", MISSING)
    assert events_of(ctx, server_id) == [
        ("missing", ANN_GROUP, "USER", "ann", "cad", "1.0", 3, MISSING)
    ]


def test_an_entry_disabled_by_the_server_and_enabled_again_is_followed(estate):
    ctx, server_id, ann = estate
    mark_read_before(ctx, server_id)
    disabled = read(ctx, server_id, ann_holds(entry(CAD, 3, 1, "DISABLED")))
    assert disabled == Observation(disabled=1)
    assert state_of(ctx, ann) == ("disabled", DISABLED_BY_SERVER)
    enabled = read(ctx, server_id, ann_holds(entry(CAD, 3, 1, "ACTIVE")))
    assert enabled == Observation(reenabled=1)
    assert state_of(ctx, ann) == ("applied", None)
    assert events_of(ctx, server_id) == [
        ("disabled", ANN_GROUP, "USER", "ann", "cad", "1.0", 3, DISABLED_BY_SERVER),
        ("re-enabled", ANN_GROUP, "USER", "ann", "cad", "1.0", 3, REENABLED),
    ]


# -- hosts held in batch groups ---------------------------------------------------------------

BATCH = "vlm-~batch-0123456789abcdef0123"


def judge_with_batches(*allocs: tuple, groups: tuple[ReservationGroup, ...]) -> tuple[list, list]:
    held = held_by_group(rows_of(*groups), PREFIX)[0]
    return judge_held_allocations(SERVER, PREFIX, allocs, held)


def test_an_allocation_held_by_its_reservation_in_a_batch_group_stays_applied():
    batch = group(
        BATCH,
        reservation(ANN, entry(CAD, 3, 1), reservation_id=1),
        reservation(BEN, entry(VIZ, 1, 2), reservation_id=2),
    )
    assert judge_with_batches(alloc(1, 3), alloc(2, 1, key=VIZ, host=BEN), groups=(batch,)) == (
        [],
        [],
    )


def test_a_batch_reservation_of_another_host_does_not_hold_an_allocation():
    batch = group(BATCH, reservation(BEN, entry(CAD, 3, 1)))
    changes, events = judge_with_batches(alloc(1, 3), groups=(batch,))
    assert changes == [(1, 3, "applied", "pending", MISSING)]
    assert events == [event("missing", 3, MISSING)]


def test_a_host_held_by_two_batch_groups_is_held_by_neither():
    first = group(BATCH, reservation(ANN, entry(CAD, 3, 1)))
    second = group(BATCH[:-1] + "4", reservation(ANN, entry(CAD, 3, 2)), group_id=8)
    changes, _ = judge_with_batches(alloc(1, 3), groups=(first, second))
    assert changes == [(1, 3, "applied", "pending", MISSING)]


def test_batch_reservations_are_filed_by_host_only_when_the_prefix_is_given():
    batch = group(BATCH, reservation(ANN, entry(CAD, 3, 1)))
    assert set(held_by_group(rows_of(batch))[0]) == {BATCH}
    assert set(held_by_group(rows_of(batch), PREFIX)[0]) == {batch_held_key("user", "ann")}
