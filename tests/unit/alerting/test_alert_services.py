"""Who may do what with alerts: admins every kind, managers pool alerts of their own pools,
analysts read only; acknowledging is scoped like reading; every change is audited."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.alerting.conftest import CAD, SIM, Estate
from vlm.alerting.evaluate import evaluate_alerts
from vlm.context import ServiceContext
from vlm.domain import NotFound, PermissionDenied, ValidationError
from vlm.services import alerts, allocations, audit


def make(ctx: ServiceContext, actor, kind="pool_nearly_full", **extra) -> int:
    fields = {"name": "watch", "kind": kind, "threshold": 50, **extra}
    return alerts.create_rule(ctx, actor, **fields)


def both_pools_full(ctx: ServiceContext, estate: Estate) -> None:
    allocations.allocate(ctx, MANAGER, estate.design, CAD, "ETHERNET", "0050569A0001", 5)
    allocations.allocate(ctx, OTHER_MANAGER, estate.sim, SIM, "ETHERNET", "0050569A0002", 2)


def test_managers_subscribe_to_pool_alerts_of_their_own_pools_only(ctx, estate: Estate):
    assert make(ctx, MANAGER, pool_id=estate.design)
    with pytest.raises(NotFound) as other:
        make(ctx, MANAGER, pool_id=estate.sim)
    assert other.value.field == "pool"
    with pytest.raises(PermissionDenied) as estate_wide:
        make(ctx, MANAGER, kind="server_unreachable", threshold=15)
    assert estate_wide.value.field == "kind"
    with pytest.raises(PermissionDenied):
        make(ctx, ANALYST)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"kind": "nope"}, "kind"),
        ({"threshold": 0}, "threshold"),
        ({"threshold": 101}, "threshold"),
        ({"threshold": float("nan")}, "threshold"),
        ({"name": " "}, "name"),
        ({"kind": "drift", "pool_id": 1, "threshold": 1}, "pool"),
    ],
)
def test_bad_rules_are_refused_at_their_field_and_nothing_is_stored(
    ctx, estate: Estate, fields, field
) -> None:
    with pytest.raises(ValidationError) as refused:
        make(ctx, ADMIN, **fields)
    assert refused.value.field == field
    assert ctx.db.scalar("SELECT count(*) FROM alert_rules") == 0


def test_each_role_sees_and_acknowledges_the_alerts_it_may(ctx, estate: Estate) -> None:
    make(ctx, ADMIN)
    both_pools_full(ctx, estate)
    evaluate_alerts(ctx)
    every = alerts.list_alerts(ctx, ADMIN, open_only=True)
    design = int(every.loc[every["subject"] == f"pool:{estate.design}", "id"].item())
    sim = int(every.loc[every["subject"] == f"pool:{estate.sim}", "id"].item())

    assert len(alerts.list_alerts(ctx, ANALYST, open_only=True)) == 2
    assert alerts.list_alerts(ctx, MANAGER, open_only=True)["id"].tolist() == [design]
    assert alerts.open_alert_count(ctx, MANAGER) == 1
    with pytest.raises(NotFound):
        alerts.acknowledge(ctx, MANAGER, [design, sim])
    with pytest.raises(PermissionDenied):
        alerts.acknowledge(ctx, ANALYST, [design])
    assert alerts.open_alert_count(ctx, ADMIN) == 2, "a refused acknowledgement changed nothing"

    assert alerts.acknowledge(ctx, MANAGER, [design]) == 1
    assert alerts.acknowledge(ctx, MANAGER, [design]) == 0
    assert alerts.open_alert_count(ctx, MANAGER) == 0
    assert alerts.open_alert_count(ctx, ADMIN) == 1
    [acknowledged] = alerts.list_alerts(ctx, ADMIN, open_only=False).query(f"id == {design}")[
        "acknowledged_by"
    ]
    assert acknowledged == MANAGER.username
    rows = audit.audit_log(ctx, ADMIN, action="alert.acknowledge")
    assert rows["target_id"].tolist() == [str(design)] and rows["actor"].tolist() == ["bob"]


def test_a_manager_changes_only_their_own_rules_and_changes_are_audited(ctx, estate: Estate):
    admins = make(ctx, ADMIN)
    own = make(ctx, MANAGER)
    with pytest.raises(NotFound):
        alerts.delete_rule(ctx, MANAGER, admins)
    with pytest.raises(NotFound):
        alerts.set_rule_enabled(ctx, OTHER_MANAGER, own, False)
    assert alerts.list_rules(ctx, MANAGER)["id"].tolist() == [own]

    alerts.set_rule_enabled(ctx, MANAGER, own, False)
    alerts.delete_rule(ctx, MANAGER, own)

    actions = audit.audit_log(ctx, ADMIN)["action"].tolist()
    assert [a for a in actions if a.startswith("alert_rule.")] == [
        "alert_rule.delete",
        "alert_rule.update",
        "alert_rule.create",
        "alert_rule.create",
    ]


def test_deleting_a_rule_closes_its_alerts_and_gives_up_its_queued_messages(ctx, estate: Estate):
    rule_id = make(ctx, ADMIN, destinations="json://127.0.0.1:9/hook")
    both_pools_full(ctx, estate)
    evaluate_alerts(ctx)

    alerts.delete_rule(ctx, ADMIN, rule_id)

    assert alerts.list_alerts(ctx, ADMIN, open_only=True).empty
    assert len(alerts.list_alerts(ctx, ADMIN, open_only=False)) == 2
    kept = alerts.list_deliveries(ctx, ADMIN)
    assert len(kept) == 2 and kept["gave_up_at"].notna().all()
    assert set(kept["last_error"]) == {"rule deleted by alice"}
