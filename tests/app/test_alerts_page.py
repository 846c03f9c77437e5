"""The Alerts page: an admin creates a rule in the form (a bad destination is refused under its
field), the alert it raises is listed, counted in the sidebar and acknowledged by the pool's
manager; an analyst reads it all and is offered no change."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, service_context
from vlm.alerting.evaluate import evaluate_alerts
from vlm.domain import SYSTEM_ACTOR
from vlm.services import alerts
from vlm.ui.alert_center import acknowledge_labels

HOOK = "json://127.0.0.1:9/vlm-alerts"


def create_rule_in_form(at: AppTest, destinations: str) -> AppTest:
    at.selectbox(key="new_rule_kind").set_value(
        next(o for o in at.selectbox(key="new_rule_kind").options if "Pool nearly full" in o)
    )
    at.run()
    form_inputs = [n for n in at.number_input if n.label.startswith("Threshold")]
    form_inputs[0].set_value(10.0)
    next(t for t in at.text_area if t.label == "Send to").input(destinations)
    next(b for b in at.button if b.label == "Create rule").click()
    return at.run()


def test_an_admin_creates_a_rule_and_a_bad_destination_is_refused_under_its_field(app):
    at = open_page(app("admin"), "alerts")
    before = alerts.list_rules(service_context(), SYSTEM_ACTOR)

    create_rule_in_form(at, "not a destination")
    assert any(e.value.startswith("destination 1 is not a URL apprise") for e in at.error)
    assert len(alerts.list_rules(service_context(), SYSTEM_ACTOR)) == len(before)

    create_rule_in_form(at, HOOK)
    assert not at.exception and not at.error, [e.value for e in at.error]
    after = alerts.list_rules(service_context(), SYSTEM_ACTOR)
    rule = after.iloc[0]
    assert len(after) == len(before) + 1
    assert (rule["kind"], rule["threshold"], rule["destination_labels"]) == (
        "pool_nearly_full",
        10.0,
        "json://127.0.0.1:9/vlm-alerts",
    )


def raised_alerts() -> int:
    ctx = service_context()
    admin = alerts_actor("admin")
    alerts.create_rule(
        ctx, admin, name="any pool", kind="pool_nearly_full", threshold=1, destinations=HOOK
    )
    return evaluate_alerts(ctx).fired


def test_a_manager_sees_the_count_and_acknowledges_their_pools_alerts(app):
    assert raised_alerts() >= 1
    ctx = service_context()
    mine = alerts.list_alerts(ctx, alerts_actor("mia"), open_only=True)
    assert not mine.empty
    at = open_page(app("mia"), "alerts")

    [badge] = [link for link in at.get("page_link") if "open alert" in link.proto.label]
    assert badge.proto.label == f"{len(mine)} open alert(s)"
    chooser = at.multiselect(key="alerts_to_acknowledge")
    assert sorted(chooser.options) == sorted(acknowledge_labels(mine))
    chooser.set_value([int(i) for i in mine["id"]])
    at.run()
    at.button(key="acknowledge_alerts").click()
    at.run()

    assert not at.error, [e.value for e in at.error]
    assert alerts.open_alert_count(ctx, alerts_actor("mia")) == 0
    acknowledged = alerts.list_alerts(ctx, SYSTEM_ACTOR, open_only=True)
    assert set(acknowledged.loc[acknowledged["id"].isin(mine["id"]), "acknowledged_by"]) == {"mia"}
    assert not [link for link in at.get("page_link") if "open alert" in link.proto.label]


def test_an_analyst_reads_alerts_and_rules_but_is_offered_no_change(app):
    raised_alerts()
    at = open_page(app("ana"), "alerts")
    titles = [d.value for d in at.dataframe]
    assert any("title" in frame.columns and len(frame) for frame in titles)
    assert not [b for b in at.button if b.label in ("Acknowledge", "Create rule", "Send test")]
    assert not [m for m in at.multiselect if m.key == "alerts_to_acknowledge"]


def alerts_actor(username: str):
    from vlm.services.users import actor_for

    return actor_for(service_context(), username)
