"""The alert pass: each kind of rule fires when its condition starts, once, and clears when it
stops; a message is queued per destination for each fire and clear; managers' rules watch only
the pools they manage; a rule switched off clears its alerts without a message."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from tests.conftest import ADMIN, MANAGER, OTHER_MANAGER
from tests.unit.alerting.conftest import CAD, SIM, Estate
from vlm.alerting.evaluate import evaluate_alerts, expiry_date
from vlm.context import ServiceContext
from vlm.services import alerts, allocations, pools

HOOK = "json://127.0.0.1:9/hook"


def rule(ctx: ServiceContext, kind: str, threshold: float, actor=ADMIN, **extra) -> int:
    fields = {"name": f"{kind} rule", "kind": kind, "threshold": threshold, "destinations": HOOK}
    return alerts.create_rule(ctx, actor, **{**fields, **extra})


def open_titles(ctx: ServiceContext, rule_id: int) -> list[str]:
    rows = ctx.db.query(
        "SELECT title FROM alerts WHERE rule_id = ? AND cleared_at IS NULL", [rule_id]
    )
    return sorted(str(r[0]) for r in rows)


def episodes(ctx: ServiceContext, rule_id: int) -> list[tuple[str, bool]]:
    rows = ctx.db.query(
        "SELECT subject, cleared_at IS NOT NULL FROM alerts WHERE rule_id = ?", [rule_id]
    )
    return sorted((str(s), bool(c)) for s, c in rows)


def messages(ctx: ServiceContext, rule_id: int) -> list[str]:
    rows = ctx.db.query(
        "SELECT event FROM alert_deliveries WHERE rule_id = ? ORDER BY id", [rule_id]
    )
    return [str(r[0]) for r in rows]


def fill(ctx: ServiceContext, pool_id: int, feature, count: int, actor=MANAGER) -> int:
    return allocations.allocate(ctx, actor, pool_id, feature, "ETHERNET", "0050569A0001", count)


def test_a_pool_alert_fires_once_while_full_and_clears_once_when_it_empties(ctx, estate: Estate):
    rule_id = rule(ctx, "pool_nearly_full", 80)
    evaluate_alerts(ctx)
    assert open_titles(ctx, rule_id) == []

    allocation = fill(ctx, estate.design, CAD, 4)
    first = evaluate_alerts(ctx)
    second = evaluate_alerts(ctx)

    assert (first.fired, second.fired, second.cleared) == (1, 0, 0)
    assert open_titles(ctx, rule_id) == ["Pool Engineering / Design is 80% allocated"]
    assert messages(ctx, rule_id) == ["fired"]

    allocations.remove_allocation(ctx, MANAGER, estate.design, allocation)
    cleared = evaluate_alerts(ctx)
    evaluate_alerts(ctx)

    assert (cleared.fired, cleared.cleared, cleared.open) == (0, 1, 0)
    assert episodes(ctx, rule_id) == [(f"pool:{estate.design}", True)]
    assert messages(ctx, rule_id) == ["fired", "cleared"]


def _in_days(days: int) -> date:
    return date.today() + timedelta(days=days)


def _minutes_ago(minutes: int) -> datetime:
    return datetime.now() - timedelta(minutes=minutes)


def _failing(ctx: ServiceContext, estate: Estate) -> None:
    allocation = fill(ctx, estate.design, CAD, 1)
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET state = 'failed', last_error = 'not enough licenses', "
            "updated_at = ? WHERE id = ?",
            [_minutes_ago(20), allocation],
        )
    )


def _sql(statement: str, *params: object) -> Callable[[ServiceContext, Estate], None]:
    return lambda ctx, estate: ctx.db.write(lambda cur: cur.execute(statement, list(params)))


CONDITIONS = {
    "feature_nearly_exhausted": (
        95,
        _sql("UPDATE server_features SET used = 17, reserved = 2 WHERE feature_name = 'cad'"),
        "east: cad 1.0 is 95% in use or reserved",
    ),
    "server_unreachable": (
        15,
        _sql(
            "UPDATE license_servers SET last_error = 'connection refused', last_success_at = ?",
            _minutes_ago(20),
        ),
        "License server east has been failing for over 15 minute(s)",
    ),
    "feature_expiring": (
        30,
        _sql(
            "UPDATE server_features SET expiry = ? WHERE feature_name = 'sim'",
            (date.today() + timedelta(days=10)).isoformat(),
        ),
        f"east: sim 1.0 expires in 10 day(s), on {date.today() + timedelta(days=10):%Y-%m-%d}",
    ),
    "over_committed": (
        1,
        _sql("UPDATE server_features SET total = 3 WHERE feature_name = 'cad'"),
        "east: cad 1.0 is over-committed by 2",
    ),
    "drift": (
        1,
        lambda ctx, estate: ctx.db.write(
            lambda cur: cur.execute(
                "INSERT INTO sync_conflicts (server_id, kind, host_type, host_id, feature_name, "
                "feature_version, detail) VALUES (?, 'missing', 'ETHERNET', 'AB', 'cad', '1.0', "
                "'1 reserved in VLM, not held on the server')",
                [estate.server],
            )
        ),
        "east: 1 drift finding(s)",
    ),
    "allocation_ending": (
        7,
        lambda ctx, estate: allocations.allocate(
            ctx, MANAGER, estate.design, CAD, "USER", "contractor", 1, ends_on=_in_days(5)
        ),
        f"Pool Engineering / Design ending on {_in_days(5)}: 1 allocation(s)",
    ),
    "allocations_failing": (
        10,
        _failing,
        "Engineering / Design: 1 allocation(s) refused for over 10 minute(s)",
    ),
    "allocations_idle": (
        30,
        lambda ctx, estate: _idle(ctx, estate),
        "Engineering / Design: 1 allocation(s) not used for 30 day(s)",
    ),
}


def _idle(ctx: ServiceContext, estate: Estate) -> None:
    """An allocation the server has held for 40 days without its host using it."""
    allocation = fill(ctx, estate.design, CAD, 1)
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET state = 'applied', applied_at = ? WHERE id = ?",
            [datetime.now() - timedelta(days=40), allocation],
        )
    )


@pytest.mark.parametrize("kind", CONDITIONS)
def test_each_kind_fires_when_its_condition_starts(ctx, estate: Estate, kind: str) -> None:
    threshold, start, title = CONDITIONS[kind]
    rule_id = rule(ctx, kind, threshold)
    evaluate_alerts(ctx)
    assert open_titles(ctx, rule_id) == []

    start(ctx, estate)
    evaluate_alerts(ctx)
    evaluate_alerts(ctx)

    assert open_titles(ctx, rule_id) == [title]
    assert messages(ctx, rule_id) == ["fired"]


def test_a_server_recently_failing_is_not_yet_unreachable(ctx, estate: Estate) -> None:
    rule_id = rule(ctx, "server_unreachable", 15)
    _sql("UPDATE license_servers SET last_error = 'timeout', last_success_at = ?", _minutes_ago(5))(
        ctx, estate
    )
    evaluate_alerts(ctx)
    assert open_titles(ctx, rule_id) == []


def test_a_managers_rule_watches_only_the_pools_they_manage(ctx, estate: Estate) -> None:
    rule_id = rule(ctx, "pool_nearly_full", 50, MANAGER)
    fill(ctx, estate.sim, SIM, 2, OTHER_MANAGER)
    evaluate_alerts(ctx)
    assert open_titles(ctx, rule_id) == [], "carol's full pool is not bob's business"

    fill(ctx, estate.design, CAD, 3)
    evaluate_alerts(ctx)
    assert open_titles(ctx, rule_id) == ["Pool Engineering / Design is 60% allocated"]

    pools.update_pool(ctx, ADMIN, estate.design, manager=OTHER_MANAGER.username)
    evaluate_alerts(ctx)
    assert open_titles(ctx, rule_id) == [], "a pool handed over leaves bob's subscription"


def test_a_rule_switched_off_clears_its_alerts_without_a_message(ctx, estate: Estate) -> None:
    rule_id = rule(ctx, "pool_nearly_full", 50)
    fill(ctx, estate.design, CAD, 5)
    evaluate_alerts(ctx)
    alerts.set_rule_enabled(ctx, ADMIN, rule_id, False)

    result = evaluate_alerts(ctx)

    assert (result.cleared, result.open) == (1, 0)
    assert messages(ctx, rule_id) == ["fired"]


@pytest.mark.parametrize(
    ("text", "day"),
    [
        ("2027-03-31", date(2027, 3, 31)),
        ("2027-03-31T00:00:00", date(2027, 3, 31)),
        ("31-mar-2027", date(2027, 3, 31)),
        ("permanent", None),
        ("0", None),
        ("", None),
        (None, None),
        ("2027-13-45", None),
    ],
)
def test_expiry_dates_are_read_and_permanent_features_never_expire(text, day) -> None:
    assert expiry_date(text) == day


def test_a_pass_that_fires_and_clears_nothing_writes_nothing(ctx, estate: Estate) -> None:
    rule(ctx, "pool_nearly_full", 50)
    fill(ctx, estate.design, CAD, 5)
    assert evaluate_alerts(ctx).fired == 1
    generation = ctx.db.generation

    again = evaluate_alerts(ctx)

    assert (again.fired, again.cleared, again.open) == (0, 0, 1)
    assert ctx.db.generation == generation, "an idle pass must not move the pages' caches on"


def test_allocations_ending_fire_per_pool_and_day_and_clear_when_extended(ctx, estate: Estate):
    rule_id = rule(ctx, "allocation_ending", 7, MANAGER, pool_id=estate.design)
    near = allocations.allocate(
        ctx, MANAGER, estate.design, CAD, "USER", "near", 1, ends_on=_in_days(3)
    )
    allocations.allocate(ctx, MANAGER, estate.design, CAD, "USER", "far", 1, ends_on=_in_days(30))
    allocations.allocate(
        ctx, OTHER_MANAGER, estate.sim, SIM, "USER", "carol's", 1, ends_on=_in_days(1)
    )
    evaluate_alerts(ctx)
    assert episodes(ctx, rule_id) == [(f"ending:{estate.design}:{_in_days(3)}", False)]

    allocations.extend_allocations(ctx, MANAGER, estate.design, [near], _in_days(20))
    evaluate_alerts(ctx)
    assert episodes(ctx, rule_id) == [(f"ending:{estate.design}:{_in_days(3)}", True)]
    assert messages(ctx, rule_id) == ["fired", "cleared"]

    evaluate_alerts(ctx, datetime.now() + timedelta(days=14))
    assert open_titles(ctx, rule_id) == [
        f"Pool Engineering / Design ending on {_in_days(20)}: 1 allocation(s)"
    ]
