"""Endpoints for alerts and alert rules: read them as the UI shows them, acknowledge, subscribe."""

from __future__ import annotations

from vlm.api.framework import PAGE_PARAMS, Call, Operation, Param, Success, body_fields, paged_frame
from vlm.api.replies import Reply, first_record
from vlm.api.schemas import ID, ref
from vlm.domain import ValidationError
from vlm.services import alerts

ALERT_ID = Param("alert_id", "path", ID, "The alert's id.", required=True)
RULE_ID = Param("rule_id", "path", ID, "The alert rule's id.", required=True)
STATE = Param(
    "state",
    "query",
    {"type": "string", "enum": ["open", "all"], "default": "open"},
    "open: alerts whose condition still holds; all: every alert, cleared ones included.",
)
WHO_READS = "Every role; managers see the alerts about their own pools."
RULE_FIELDS = ("name", "kind", "threshold", "pool_id", "destinations", "enabled")


def _open_only(call: Call) -> bool:
    state = call.query_text("state") or "open"
    if state not in ("open", "all"):
        raise ValidationError("state must be open or all", field="state")
    return state == "open"


def list_alerts(call: Call) -> Reply:
    return paged_frame(call, alerts.list_alerts(call.ctx, call.actor, open_only=_open_only(call)))


def acknowledge(call: Call) -> Reply:
    alert_id = call.path_id("alert_id", "alert")
    alerts.acknowledge(call.ctx, call.actor, [alert_id])
    every = alerts.list_alerts(call.ctx, call.actor, open_only=False)
    return Reply(200, first_record(every, "alert", alert_id))


def list_rules(call: Call) -> Reply:
    return paged_frame(call, alerts.list_rules(call.ctx, call.actor))


def create_rule(call: Call) -> Reply:
    body = body_fields(call, RULE_FIELDS, required=("name", "kind"))
    rule_id = alerts.create_rule(call.ctx, call.actor, **body)
    row = first_record(alerts.list_rules(call.ctx, call.actor), "rule", rule_id)
    return Reply(201, row, headers={"Location": f"{call.url}/{rule_id}"})


def delete_rule(call: Call) -> Reply:
    alerts.delete_rule(call.ctx, call.actor, call.path_id("rule_id", "rule"))
    return Reply(204)


OPERATIONS = (
    Operation(
        "GET",
        "/alerts",
        "listAlerts",
        "Alerts: open ones, or every one",
        "alerts",
        list_alerts,
        Success(200, "A page of alerts, newest first.", ref("AlertPage")),
        description=WHO_READS,
        params=(STATE, *PAGE_PARAMS),
    ),
    Operation(
        "POST",
        "/alerts/{alert_id}/acknowledge",
        "acknowledgeAlert",
        "Acknowledge an alert",
        "alerts",
        acknowledge,
        Success(200, "The alert, acknowledged.", ref("Alert")),
        description="Admins any alert, managers those about their own pools; analysts are "
        "refused (403).",
        params=(ALERT_ID,),
        problems=(401, 403, 404, 422),
    ),
    Operation(
        "GET",
        "/alert-rules",
        "listAlertRules",
        "Alert rules (destinations masked)",
        "alerts",
        list_rules,
        Success(200, "A page of alert rules, newest first.", ref("AlertRulePage")),
        description="Admins and analysts see every rule, managers their own.",
        params=PAGE_PARAMS,
    ),
    Operation(
        "POST",
        "/alert-rules",
        "createAlertRule",
        "Create an alert rule",
        "alerts",
        create_rule,
        Success(201, "The rule.", ref("AlertRule")),
        description="Admins any kind; managers the pool kinds for their own pools.",
        body=ref("NewAlertRule"),
        problems=(400, 401, 403, 404, 422),
    ),
    Operation(
        "DELETE",
        "/alert-rules/{rule_id}",
        "deleteAlertRule",
        "Delete an alert rule (its alerts close, the history stays)",
        "alerts",
        delete_rule,
        Success(204, "Deleted."),
        description="Admins any rule, managers their own.",
        params=(RULE_ID,),
        problems=(401, 403, 404, 422),
    ),
)
