"""Idle-reservation harvesting (vlm.services.harvesting) on every backend: the idle report with
seat costs, a manager's release, prices, and the policy that warns and then releases.

The estate: server east (cad 20, sim 10), bob's pool Design (cad 6) and carol's pool Sim (sim 4).
Allocations are applied and then dated in the past; sightings are what pulls would record."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.conftest import ADMIN, ANALYST, BACKENDS, MANAGER, OTHER_MANAGER, both_backends
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.context import ServiceContext
from vlm.domain import NotFound, PermissionDenied, ValidationError
from vlm.services import allocations, harvesting, pools, vlms
from vlm.store.frames import frame
from vlm.store.reservations import OUTCOME_DTYPES, mark_applied
from vlm.store.servers import record_server_error, record_server_success
from vlm.store.usage import record_sightings

backend = pytest.fixture(params=BACKENDS)(both_backends)
CAD, SIM = ("cad", "1.0"), ("sim", "1.0")
NOW = datetime.now()


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


class Estate:
    def __init__(self, ctx: ServiceContext) -> None:
        add_people(ctx)
        self.ctx = ctx
        self.server = add_server(ctx, "east", {CAD: 20, SIM: 10})
        vlm_id = vlms.create_vlm(ctx, ADMIN, "Engineering", feature_ids(ctx))
        self.design = pools.create_pool(ctx, ADMIN, vlm_id, "Design", MANAGER.username, {CAD: 6})
        self.sim = pools.create_pool(ctx, ADMIN, vlm_id, "Sim", OTHER_MANAGER.username, {SIM: 4})
        ctx.db.write(lambda cur: record_server_success(cur, self.server, 1.0))

    def held(self, pool_id: int, feature, host: str, count: int = 1, applied_days_ago=60) -> int:
        """An allocation the server holds since applied_days_ago."""
        manager = MANAGER if pool_id == self.design else OTHER_MANAGER
        alloc = allocations.allocate(self.ctx, manager, pool_id, feature, "ETHERNET", host, count)
        applied = frame([(alloc, count, "pending", None)], OUTCOME_DTYPES)
        self.ctx.db.write(lambda cur: mark_applied(cur, applied))
        when = days_ago(applied_days_ago)
        self.ctx.db.write(
            lambda cur: cur.execute(
                "UPDATE allocations SET applied_at = ?, created_at = ? WHERE id = ?",
                [when, when, alloc],
            )
        )
        return alloc

    def seen(self, host: str, feature, start_days_ago: float, end_days_ago: float | None) -> None:
        """The pulls saw host using feature from start until end (None: still using it)."""
        pair = {("ETHERNET", host, *feature)}
        server = self.server
        self.ctx.db.write(lambda cur: record_sightings(cur, server, pair, days_ago(start_days_ago)))
        if end_days_ago is not None:
            at = days_ago(end_days_ago)
            self.ctx.db.write(lambda cur: record_sightings(cur, server, set(), at))

    def state(self, alloc: int) -> str:
        return str(self.ctx.db.scalar("SELECT state FROM allocations WHERE id = ?", [alloc]))


@pytest.fixture
def estate(ctx: ServiceContext) -> Estate:
    return Estate(ctx)


def idle_ids(estate: Estate, actor=ADMIN, days: int = 30) -> list[int]:
    report = harvesting.idle_report(estate.ctx, actor, days, now=NOW)
    return sorted(int(i) for i in report.allocations["id"])


# -- the report --------------------------------------------------------------------------------


def test_a_seat_never_used_since_it_was_applied_is_idle_from_then(estate) -> None:
    never = estate.held(estate.design, CAD, "AAAAAAAAAAA1", applied_days_ago=40)
    assert idle_ids(estate, days=30) == [never]
    assert idle_ids(estate, days=45) == []


def test_a_seat_used_recently_is_not_idle_and_one_used_long_ago_is(estate) -> None:
    recent = estate.held(estate.design, CAD, "AAAAAAAAAAA1")
    old = estate.held(estate.design, CAD, "AAAAAAAAAAA2")
    estate.seen("AAAAAAAAAAA1", CAD, 20, 10)
    estate.seen("AAAAAAAAAAA2", CAD, 50, 35)

    assert idle_ids(estate, days=30) == [old]
    assert idle_ids(estate, days=5) == sorted([old, recent])
    report = harvesting.idle_report(estate.ctx, ADMIN, 30, now=NOW)
    row = report.allocations.iloc[0]
    assert abs(row["last_seen"] - days_ago(35)) < timedelta(seconds=1)


def test_a_seat_in_use_now_is_never_idle(estate) -> None:
    using = estate.held(estate.design, CAD, "AAAAAAAAAAA1", applied_days_ago=300)
    estate.seen("AAAAAAAAAAA1", CAD, 200, None)
    assert using not in idle_ids(estate, days=1)


def test_usage_of_another_feature_or_on_another_host_does_not_count(estate) -> None:
    alloc = estate.held(estate.design, CAD, "AAAAAAAAAAA1")
    estate.seen("AAAAAAAAAAA1", SIM, 3, None)
    estate.seen("AAAAAAAAAAA9", CAD, 3, None)
    assert idle_ids(estate) == [alloc]


def test_allocations_not_held_on_the_server_are_not_in_the_report(estate) -> None:
    allocations.allocate(estate.ctx, MANAGER, estate.design, CAD, "ETHERNET", "AAAAAAAAAAA3", 1)
    assert idle_ids(estate, days=1) == []


def test_the_report_sums_per_pool_and_per_manager_with_seat_costs(estate) -> None:
    estate.held(estate.design, CAD, "AAAAAAAAAAA1", 2)
    estate.held(estate.design, CAD, "AAAAAAAAAAA2", 1)
    estate.held(estate.sim, SIM, "AAAAAAAAAAA3", 3)
    harvesting.set_price(estate.ctx, ADMIN, CAD, 1200)

    report = harvesting.idle_report(estate.ctx, ADMIN, 30, now=NOW)

    per_pool = report.per_pool.set_index("pool")
    assert per_pool.loc["Design", "idle_seats"] == 3
    assert per_pool.loc["Design", "seat_cost"] == 3600
    assert per_pool.loc["Sim", "idle_seats"] == 3
    assert per_pool.loc["Sim", "idle_allocations"] == 1
    per_manager = report.per_manager.set_index("manager")
    assert per_manager.loc[MANAGER.username, "idle_allocations"] == 2
    assert report.idle_seats == 6 and report.seat_cost == 3600


def test_a_manager_sees_only_their_pools_and_an_analyst_sees_all(estate) -> None:
    mine = estate.held(estate.design, CAD, "AAAAAAAAAAA1")
    theirs = estate.held(estate.sim, SIM, "AAAAAAAAAAA2")
    assert idle_ids(estate, MANAGER) == [mine]
    assert idle_ids(estate, OTHER_MANAGER) == [theirs]
    assert idle_ids(estate, ANALYST) == [mine, theirs]
    assert harvesting.idle_seats(estate.ctx, MANAGER, 30) == 1


@pytest.mark.parametrize("days", [0, -1, "x", 3651, 2.5])
def test_the_report_refuses_a_bad_number_of_days(estate, days) -> None:
    with pytest.raises(ValidationError) as refused:
        harvesting.idle_report(estate.ctx, ADMIN, days)
    assert refused.value.field == "days"


# -- release -----------------------------------------------------------------------------------


def test_a_manager_releases_idle_allocations_and_a_used_one_is_refused(estate) -> None:
    idle = estate.held(estate.design, CAD, "AAAAAAAAAAA1")
    used = estate.held(estate.design, CAD, "AAAAAAAAAAA2")
    estate.seen("AAAAAAAAAAA2", CAD, 5, None)

    results = harvesting.release_idle(estate.ctx, MANAGER, estate.design, [idle, used], 30)

    assert [r.ok for r in results] == [True, False]
    assert "not idle for 30 days" in results[1].message
    assert estate.state(idle) == "removing"
    assert estate.state(used) == "applied"
    audit = estate.ctx.db.query(
        "SELECT actor, target_id FROM audit_log WHERE action = 'pool.release_idle'"
    )
    assert audit == [(MANAGER.username, str(estate.design))]


def test_an_allocation_of_another_pool_is_refused_by_the_release(estate) -> None:
    other = estate.held(estate.sim, SIM, "AAAAAAAAAAA1")
    results = harvesting.release_idle(estate.ctx, MANAGER, estate.design, [other], 30)
    assert not results[0].ok and estate.state(other) == "applied"


@pytest.mark.parametrize("actor", [OTHER_MANAGER, ANALYST])
def test_only_the_pool_manager_or_an_admin_releases(estate, actor) -> None:
    idle = estate.held(estate.design, CAD, "AAAAAAAAAAA1")
    with pytest.raises((PermissionDenied, NotFound)):
        harvesting.release_idle(estate.ctx, actor, estate.design, [idle], 30)
    assert estate.state(idle) == "applied"
    harvesting.release_idle(estate.ctx, ADMIN, estate.design, [idle], 30)
    assert estate.state(idle) == "removing"


def test_a_release_of_nothing_is_refused(estate) -> None:
    with pytest.raises(ValidationError):
        harvesting.release_idle(estate.ctx, MANAGER, estate.design, [], 30)


# -- prices ------------------------------------------------------------------------------------


def test_an_admin_sets_and_removes_a_seat_price(estate) -> None:
    harvesting.set_price(estate.ctx, ADMIN, CAD, "99.5")
    assert harvesting.list_prices(estate.ctx, ANALYST)["seat_price"].tolist() == [99.5]
    harvesting.set_price(estate.ctx, ADMIN, CAD, None)
    assert harvesting.list_prices(estate.ctx, ADMIN).empty
    actions = estate.ctx.db.query("SELECT action FROM audit_log WHERE target_type = 'feature'")
    assert actions == [("feature_price.set",), ("feature_price.set",)]


@pytest.mark.parametrize(
    ("feature", "price", "field"),
    [(CAD, -1, "price"), (CAD, "lots", "price"), (("nope", "1.0"), 5, "feature")],
)
def test_a_bad_price_is_refused_naming_its_field(estate, feature, price, field) -> None:
    with pytest.raises(ValidationError) as refused:
        harvesting.set_price(estate.ctx, ADMIN, feature, price)
    assert refused.value.field == field
    assert harvesting.list_prices(estate.ctx, ADMIN).empty


@pytest.mark.parametrize("actor", [MANAGER, ANALYST])
def test_only_admins_set_prices(estate, actor) -> None:
    with pytest.raises(PermissionDenied):
        harvesting.set_price(estate.ctx, actor, CAD, 5)


# -- policy ------------------------------------------------------------------------------------


def set_policy(estate: Estate, warn: int = 30, release: int = 45, enabled: bool = True) -> None:
    harvesting.set_harvest_policy(
        estate.ctx, ADMIN, enabled=enabled, warn_after_days=warn, release_after_days=release
    )


def test_the_policy_needs_release_after_warn(estate) -> None:
    with pytest.raises(ValidationError) as refused:
        set_policy(estate, warn=30, release=30)
    assert refused.value.field == "release_after_days"
    assert harvesting.harvest_policy(estate.ctx, ADMIN) is None


@pytest.mark.parametrize("actor", [MANAGER, ANALYST])
def test_only_admins_set_the_policy(estate, actor) -> None:
    with pytest.raises(PermissionDenied):
        harvesting.set_harvest_policy(
            estate.ctx, actor, enabled=True, warn_after_days=1, release_after_days=2
        )


def test_the_policy_warns_first_and_releases_only_after_the_warning_period(estate) -> None:
    idle = estate.held(estate.design, CAD, "AAAAAAAAAAA1", applied_days_ago=60)
    set_policy(estate, warn=30, release=45)

    first = harvesting.apply_harvest_policy(estate.ctx, now=NOW)
    assert first.warned == {MANAGER.username: [idle]} and first.released == []
    assert estate.state(idle) == "applied", "idle 60 days, but warned only now"

    again = harvesting.apply_harvest_policy(estate.ctx, now=NOW + timedelta(days=1))
    assert again.warned == {} and again.released == [], "warned once per idle spell"

    later = harvesting.apply_harvest_policy(estate.ctx, now=NOW + timedelta(days=16))
    assert later.released == [idle]
    assert estate.state(idle) == "removing"
    after = estate.ctx.db.query(
        "SELECT actor, action FROM audit_log WHERE action IN "
        "('allocation.idle_warning', 'pool.release_idle', 'allocation.remove') ORDER BY id"
    )
    assert after == [
        ("system", "allocation.idle_warning"),
        ("system", "allocation.remove"),
        ("system", "pool.release_idle"),
    ]


def test_a_seat_used_after_its_warning_is_not_released(estate) -> None:
    alloc = estate.held(estate.design, CAD, "AAAAAAAAAAA1", applied_days_ago=60)
    set_policy(estate, warn=30, release=45)
    harvesting.apply_harvest_policy(estate.ctx, now=NOW)
    estate.seen("AAAAAAAAAAA1", CAD, 0.5, None)

    later = harvesting.apply_harvest_policy(estate.ctx, now=NOW + timedelta(days=16))

    assert later.released == [] and estate.state(alloc) == "applied"


def test_the_policy_leaves_a_server_whose_last_read_failed_alone(estate) -> None:
    alloc = estate.held(estate.design, CAD, "AAAAAAAAAAA1", applied_days_ago=90)
    set_policy(estate, warn=30, release=45)
    estate.ctx.db.write(lambda cur: record_server_error(cur, estate.server, "timed out", None))

    done = harvesting.apply_harvest_policy(estate.ctx, now=NOW + timedelta(days=20))

    assert done.warned == {} and done.released == [] and estate.state(alloc) == "applied"


def test_a_disabled_policy_or_nothing_due_writes_nothing(estate) -> None:
    estate.held(estate.design, CAD, "AAAAAAAAAAA1", applied_days_ago=90)
    set_policy(estate, enabled=False)
    generation = estate.ctx.db.generation
    assert harvesting.apply_harvest_policy(estate.ctx, now=NOW).warned_count == 0
    set_policy(estate, warn=100, release=200)
    generation = estate.ctx.db.generation
    done = harvesting.apply_harvest_policy(estate.ctx, now=NOW)
    assert done.warned_count == 0 and done.released == []
    assert estate.ctx.db.generation == generation
