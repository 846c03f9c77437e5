"""Time-boxed allocations in the services: dates, the pool's default and maximum duration,
extend, what counts against the pool, audit. Runs on every backend."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.context import ServiceContext
from vlm.domain import PermissionDenied, ValidationError
from vlm.services import allocations, pools, vlms
from vlm.services.allocations import AllocationChange

TODAY = date(2026, 12, 2)
CAD = ("cad", "1.0")


@pytest.fixture
def pool(ctx: ServiceContext) -> int:
    ctx.today = lambda: TODAY
    add_people(ctx)
    add_server(ctx, "east", {CAD: 20})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "Engineering", feature_ids(ctx))
    return pools.create_pool(ctx, ADMIN, vlm_id, "Design", MANAGER.username, {CAD: 5})


def _add(ctx, pool, host, count=1, **days) -> int:
    return allocations.allocate(ctx, MANAGER, pool, CAD, "USER", host, count, **days)


def _row(ctx, alloc_id) -> tuple:
    return ctx.db.query(
        "SELECT state, starts_on, ends_on FROM allocations WHERE id = ?", [alloc_id]
    )[0]


def _audit(ctx, action: str) -> list[tuple]:
    return ctx.db.query(
        "SELECT actor, target_id, before, after FROM audit_log WHERE action = ? ORDER BY id",
        [action],
    )


def test_dates_are_stored_and_a_future_start_is_scheduled(ctx, pool):
    now = _add(ctx, pool, "now", ends_on="2026-12-31")
    later = _add(ctx, pool, "later", starts_on=TODAY + timedelta(days=7), ends_on="2027-01-31")
    past_start = _add(ctx, pool, "past", starts_on="2026-11-01")
    assert _row(ctx, now) == ("pending", None, date(2026, 12, 31))
    assert _row(ctx, later) == ("scheduled", date(2026, 12, 9), date(2027, 1, 31))
    assert _row(ctx, past_start) == ("pending", date(2026, 11, 1), None)
    frame = allocations.list_allocations(ctx, MANAGER, pool).set_index("id")
    assert frame.loc[later, "phase"] == "scheduled"
    assert frame.loc[now, "phase"] == "active"


@pytest.mark.parametrize(
    ("days", "message"),
    [
        ({"starts_on": "2026-12-10", "ends_on": "2026-12-09"}, "before the start date"),
        ({"ends_on": "2026-12-01"}, "has already passed"),
        ({"ends_on": "31/12/2026"}, "must be a date as YYYY-MM-DD"),
        ({"starts_on": "2026-02-30"}, "must be a date as YYYY-MM-DD"),
        ({"starts_on": "9999-12-31"}, "must be between 2000-01-01 and 2999-12-31"),
    ],
)
def test_bad_dates_are_refused_with_the_field_and_nothing_is_written(ctx, pool, days, message):
    with pytest.raises(ValidationError, match=message) as caught:
        _add(ctx, pool, "host", **days)
    assert caught.value.field in {"starts_on", "ends_on"}
    assert ctx.db.scalar("SELECT COUNT(*) FROM allocations") == 0


def test_the_end_day_is_the_last_day_and_the_maximum_counts_days_held(ctx, pool):
    pools.set_pool_durations(ctx, ADMIN, pool, max_days=30)
    # 2 Dec through 31 Dec is 30 days: allowed; one more is not
    ok = _add(ctx, pool, "a", ends_on="2026-12-31")
    assert _row(ctx, ok)[2] == date(2026, 12, 31)
    with pytest.raises(ValidationError, match="at most 30 day.*2026-12-31 at the latest"):
        _add(ctx, pool, "b", ends_on="2027-01-01")
    with pytest.raises(ValidationError, match="2027-01-09 at the latest"):
        _add(ctx, pool, "c", starts_on="2026-12-11", ends_on="2027-01-10")


def test_the_default_fills_a_missing_end_else_the_maximum_does(ctx, pool):
    pools.set_pool_durations(ctx, ADMIN, pool, default_days=7, max_days=30)
    filled = _add(ctx, pool, "a")
    scheduled = _add(ctx, pool, "b", starts_on="2026-12-10")
    given = _add(ctx, pool, "c", ends_on="2026-12-20")
    assert _row(ctx, filled)[2] == date(2026, 12, 8)
    assert _row(ctx, scheduled)[2] == date(2026, 12, 16)
    assert _row(ctx, given)[2] == date(2026, 12, 20)
    pools.set_pool_durations(ctx, ADMIN, pool, default_days=None, max_days=10)
    assert _row(ctx, _add(ctx, pool, "d"))[2] == date(2026, 12, 11)


def test_a_default_longer_than_the_maximum_is_refused(ctx, pool):
    with pytest.raises(ValidationError, match="longer than the maximum") as caught:
        pools.set_pool_durations(ctx, ADMIN, pool, default_days=40, max_days=30)
    assert caught.value.field == "default_duration_days"
    with pytest.raises(ValidationError):
        pools.set_pool_durations(ctx, ADMIN, pool, max_days=0)


def test_durations_are_audited_and_admin_only(ctx, pool):
    pools.set_pool_durations(ctx, ADMIN, pool, default_days=7, max_days=30)
    rows = _audit(ctx, "pool.durations")
    assert [(r[0], r[1]) for r in rows] == [("alice", str(pool))]
    assert '"max_duration_days": 30' in rows[0][3]
    for actor in (MANAGER, ANALYST):
        with pytest.raises(PermissionDenied):
            pools.set_pool_durations(ctx, actor, pool, max_days=90)
    assert pools.list_pools(ctx, ADMIN).set_index("id").loc[pool, "max_duration_days"] == 30


def test_extend_within_the_maximum_is_audited_and_beyond_is_refused_per_row(ctx, pool):
    pools.set_pool_durations(ctx, ADMIN, pool, max_days=60)
    # a starts on the test's TODAY: without a start its first day would be the real day the
    # database stamped it, and the latest end would move with the calendar
    a = _add(ctx, pool, "a", starts_on=TODAY, ends_on="2026-12-10")
    b = _add(ctx, pool, "b", starts_on="2026-12-20", ends_on="2026-12-25")
    results = allocations.extend_allocations(ctx, MANAGER, pool, [a, b], "2027-01-30")
    assert [r.ok for r in results] == [True, True]
    assert _row(ctx, a)[2] == _row(ctx, b)[2] == date(2027, 1, 30)
    assert [r[0] for r in _audit(ctx, "allocation.extend")] == ["bob", "bob"]

    results = allocations.extend_allocations(ctx, MANAGER, pool, [a, b], "2027-02-15")
    # a: 2 Dec + 60 days ends 30 Jan at the latest; b: from 20 Dec, 17 Feb
    assert [r.ok for r in results] == [False, True]
    assert results[0].field == "ends_on" and "2027-01-30 at the latest" in results[0].message
    assert _row(ctx, a)[2] == date(2027, 1, 30)
    assert _row(ctx, b)[2] == date(2027, 2, 15)


def test_extend_refuses_other_managers_and_analysts(ctx, pool):
    a = _add(ctx, pool, "a", ends_on="2026-12-10")
    for actor in (OTHER_MANAGER, ANALYST):
        with pytest.raises(PermissionDenied):
            allocations.extend_allocations(ctx, actor, pool, [a], "2026-12-20")
    assert _row(ctx, a)[2] == date(2026, 12, 10)
    assert _audit(ctx, "allocation.extend") == []


def test_scheduled_allocations_count_against_the_pool(ctx, pool):
    _add(ctx, pool, "later", 4, starts_on="2027-01-01")
    with pytest.raises(ValidationError, match="only 1 of cad 1.0 left"):
        _add(ctx, pool, "now", 2)


def test_expired_allocations_free_their_seats_and_cannot_be_changed(ctx, pool):
    gone = _add(ctx, pool, "gone", 4, ends_on="2026-12-03")
    ctx.db.write(
        lambda cur: cur.execute("UPDATE allocations SET state = 'expired' WHERE id = ?", [gone])
    )
    again = _add(ctx, pool, "gone", 5)  # the same host, all five seats
    assert _row(ctx, again)[0] == "pending"
    results = allocations.extend_allocations(ctx, MANAGER, pool, [gone], "2026-12-20")
    assert not results[0].ok and "has expired" in results[0].message
    change = AllocationChange("delete", allocation_id=gone)
    results = allocations.apply_allocation_changes(ctx, MANAGER, pool, [change])
    assert not results[0].ok
    assert _row(ctx, gone)[0] == "expired"


def test_a_scheduled_row_keeps_waiting_when_its_count_changes_and_is_deleted_outright(ctx, pool):
    later = _add(ctx, pool, "later", 1, starts_on="2027-01-01")
    allocations.update_allocation(ctx, MANAGER, pool, later, count=2)
    assert _row(ctx, later)[0] == "scheduled"
    allocations.remove_allocation(ctx, MANAGER, pool, later)
    assert ctx.db.query("SELECT id FROM allocations WHERE id = ?", [later]) == []


def test_the_grid_edit_changes_the_end_but_not_the_start(ctx, pool):
    a = _add(ctx, pool, "a", starts_on="2026-12-05", ends_on="2026-12-10")
    edit = AllocationChange("edit", 0, a, ends_on=date(2026, 12, 12), starts_on="2026-12-05")
    moved = AllocationChange("edit", 1, a, starts_on="2026-12-06")
    results = allocations.apply_allocation_changes(ctx, MANAGER, pool, [edit, moved])
    assert [r.ok for r in results] == [True, False]
    assert results[1].field == "starts_on"
    assert _row(ctx, a) == ("scheduled", date(2026, 12, 5), date(2026, 12, 12))


def test_a_pool_with_expired_history_is_deleted_with_the_count_it_shows(ctx, pool):
    gone = _add(ctx, pool, "gone", 1, ends_on="2026-12-03")
    _add(ctx, pool, "kept", 1)
    ctx.db.write(
        lambda cur: cur.execute("UPDATE allocations SET state = 'expired' WHERE id = ?", [gone])
    )
    shown = int(pools.list_pools(ctx, ADMIN).set_index("id").loc[pool, "allocations"])
    assert shown == pools.deletion_impact(ctx, ADMIN, pool)["allocations"] == 1
    pools.delete_pool(ctx, ADMIN, pool, confirmed_allocations=shown)
    assert ctx.db.scalar("SELECT COUNT(*) FROM pools WHERE id = ?", [pool]) == 0
