"""Alert rules, the alert centre and the sidebar's count, with the acting user's rights.

Admins make rules of every kind for the whole estate (a pool kind optionally for one pool).
Managers subscribe to the pool kinds for their own pools only, and see and acknowledge the
alerts about those pools. Analysts read every alert and change nothing. Destinations (apprise
URLs, which carry passwords and webhook tokens) are stored encrypted and only ever shown masked.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from vlm.alerting import delivery
from vlm.alerting.delivery import TEST_EVENT, DeliveryPass, Sender
from vlm.alerting.kinds import KINDS
from vlm.context import ServiceContext
from vlm.domain import (
    Actor,
    NotFound,
    PermissionDenied,
    Role,
    ValidationError,
    bounded_float,
    record_id,
    record_ids,
    validate_flag,
    validate_name,
)
from vlm.services import audit
from vlm.services.permissions import require_active_user_in, require_can_write
from vlm.services.tokens import require_writable
from vlm.store import access
from vlm.store import alerts as store


def _visible_pools(ctx: ServiceContext, actor: Actor) -> list[int] | None:
    """The pools whose alerts a manager sees (None: every alert, for admins and analysts)."""
    return store.pools_of(ctx.db, actor.username) if actor.role is Role.MANAGER else None


def _kind(value: object) -> str:
    if not isinstance(value, str) or value not in KINDS:
        choices = ", ".join(KINDS)
        raise ValidationError(f"kind must be one of {choices}", field="kind")
    return value


def _rule_row(ctx: ServiceContext, actor: Actor, fields: dict[str, object]) -> dict:
    kind = KINDS[_kind(fields.get("kind"))]
    if actor.role is not Role.ADMIN and not kind.pool_scoped:
        raise PermissionDenied(
            f"'{kind.label}' alerts are for admins; managers subscribe to pool alerts",
            field="kind",
        )
    threshold = bounded_float(
        fields.get("threshold", kind.default),
        "threshold",
        minimum=kind.low,
        maximum=kind.high,
        label=f"threshold ({kind.unit})",
    )
    pool_id = fields.get("pool_id")
    if pool_id is not None:
        if not kind.pool_scoped:
            raise ValidationError(f"'{kind.label}' alerts are not about one pool", field="pool")
        pool_id = record_id(pool_id, "pool")
    urls, labels = delivery.parse_destinations(fields.get("destinations"))
    return {
        "name": validate_name(fields.get("name"), "rule name"),
        "kind": kind.key,
        "threshold": threshold,
        "pool_id": pool_id,
        "owner": actor.username,
        "destinations_encrypted": delivery.seal_destinations(ctx.secrets, urls),
        "destination_labels": "\n".join(labels),
        "enabled": validate_flag(fields.get("enabled", True), "enabled"),
    }


def _require_rule_owner(cur, actor: Actor, role: Role, rule_id: int) -> dict:
    """The rule, when the actor (as stored now) may change it: an admin any, a manager theirs."""
    if role is Role.ANALYST:
        raise PermissionDenied(f"{actor.username} is an analyst and may not change anything")
    rule = store.rule_in(cur, rule_id)
    if rule is None or (role is not Role.ADMIN and rule["owner"] != actor.username):
        raise NotFound(f"alert rule {rule_id} does not exist", field="rule")
    return rule


def _audited(rule: dict) -> dict:
    keys = ("name", "kind", "threshold", "pool_id", "owner", "enabled", "destination_labels")
    return {k: rule[k] for k in keys}


def create_rule(ctx: ServiceContext, actor: Actor, **fields: object) -> int:
    """A new rule (name, kind, threshold, destinations: one apprise URL per line, pool_id)."""
    require_writable(actor)
    require_can_write(actor)
    row = _rule_row(ctx, actor, fields)

    def write(cur) -> int:
        role = require_active_user_in(cur, actor)
        if role is Role.ANALYST:
            raise PermissionDenied(f"{actor.username} is an analyst and may not change anything")
        if row["pool_id"] is not None:
            manager = access.pool_manager_in(cur, row["pool_id"])
            if manager is None or (role is Role.MANAGER and manager != actor.username):
                raise NotFound(f"pool {row['pool_id']} does not exist", field="pool")
        rule_id = store.insert_rule(cur, row)
        audit.record(cur, actor, "alert_rule.create", "alert_rule", rule_id, None, _audited(row))
        return rule_id

    return ctx.db.write(write)


def set_rule_enabled(ctx: ServiceContext, actor: Actor, rule_id: object, enabled: object) -> None:
    """Switch a rule on or off (off: its open alerts clear at the next pass, without a message)."""
    require_writable(actor)
    rule_id = record_id(rule_id, "rule")
    enabled = validate_flag(enabled, "enabled")

    def write(cur) -> None:
        role = require_active_user_in(cur, actor)
        rule = _require_rule_owner(cur, actor, role, rule_id)
        store.set_rule_enabled(cur, rule_id, enabled)
        after = {**_audited(rule), "enabled": enabled}
        audit.record(cur, actor, "alert_rule.update", "alert_rule", rule_id, _audited(rule), after)

    ctx.db.write(write)


def delete_rule(ctx: ServiceContext, actor: Actor, rule_id: object) -> None:
    """Delete a rule: its open alerts close, its undelivered messages are given up (kept)."""
    require_writable(actor)
    rule_id = record_id(rule_id, "rule")

    def write(cur) -> None:
        role = require_active_user_in(cur, actor)
        rule = _require_rule_owner(cur, actor, role, rule_id)
        store.delete_rule(cur, rule_id, f"rule deleted by {actor.username}")
        audit.record(cur, actor, "alert_rule.delete", "alert_rule", rule_id, _audited(rule), None)

    ctx.db.write(write)


def list_rules(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Admins and analysts see every rule, managers their own."""
    owner = actor.username if actor.role is Role.MANAGER else None
    return store.rules_frame(ctx.db, owner)


def list_alerts(ctx: ServiceContext, actor: Actor, *, open_only: bool) -> pd.DataFrame:
    """Open alerts (or all, past ones included) the actor may see, newest first."""
    return store.alerts_frame(ctx.db, open_only=open_only, pools=_visible_pools(ctx, actor))


def open_alert_count(ctx: ServiceContext, actor: Actor) -> int:
    """Open alerts nobody acknowledged yet, of those the actor sees (the sidebar's badge)."""
    return store.unacknowledged_open_count(ctx.db, _visible_pools(ctx, actor))


def acknowledge(ctx: ServiceContext, actor: Actor, alert_ids: object) -> int:
    """Mark alerts as seen by the actor; returns how many were not acknowledged before."""
    require_writable(actor)
    require_can_write(actor)
    ids = sorted(set(record_ids(alert_ids, "alerts")))
    if not ids:
        raise ValidationError("choose at least one alert", field="alerts")

    def write(cur) -> int:
        role = require_active_user_in(cur, actor)
        if role is Role.ANALYST:
            raise PermissionDenied(f"{actor.username} is an analyst and may not change anything")
        found = {int(a["id"]): a for a in store.alerts_in(cur, ids)}
        own = set(store.pools_of(ctx.db, actor.username)) if role is Role.MANAGER else None
        for alert_id in ids:
            alert = found.get(alert_id)
            if alert is None or (own is not None and alert["pool_id"] not in own):
                raise NotFound(f"alert {alert_id} does not exist", field="alerts")
        fresh = [i for i in ids if found[i]["acknowledged_at"] is None]
        if fresh:
            store.acknowledge(cur, fresh, actor.username)
            audit.record_many(
                cur, actor, [("alert.acknowledge", "alert", i, None, None) for i in fresh]
            )
        return len(fresh)

    return ctx.db.write(write)


def list_deliveries(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """The latest messages sent or queued (every rule's, or a manager's own rules')."""
    owner = actor.username if actor.role is Role.MANAGER else None
    return store.deliveries_frame(ctx.db, owner)


def send_test(
    ctx: ServiceContext,
    actor: Actor,
    rule_id: object,
    *,
    now: datetime | None = None,
    send: Sender = delivery.send_with_apprise,
) -> DeliveryPass:
    """Send a test message to every destination of a rule now; each outcome is recorded."""
    require_writable(actor)
    rule_id = record_id(rule_id, "rule")
    now = now or datetime.now()

    def write(cur) -> list[int]:
        role = require_active_user_in(cur, actor)
        rule = _require_rule_owner(cur, actor, role, rule_id)
        labels = [x for x in str(rule["destination_labels"] or "").split("\n") if x]
        if not labels:
            raise ValidationError("this rule has no destination to send to", field="destinations")
        title = f"VLM test message for alert rule '{rule['name']}'"
        body = f"Sent by {actor.username}: alerts of this rule will reach this destination."
        rows = [
            (rule_id, None, TEST_EVENT, i, label, title, body) for i, label in enumerate(labels)
        ]
        audit.record(cur, actor, "alert_rule.test", "alert_rule", rule_id, None, {"to": labels})
        return store.insert_deliveries(cur, rows)

    ids = ctx.db.write(write)
    return delivery.deliver_due(ctx, now, send=send, ids=ids)
