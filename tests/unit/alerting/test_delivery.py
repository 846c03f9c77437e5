"""Delivery through apprise to real local endpoints: a mail reaches an SMTP sink (aiosmtpd), a
webhook reaches a local HTTP server; a destination that fails is retried with a growing wait and
kept with its error, given up only after MAX_ATTEMPTS; destinations are stored encrypted."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from http.server import HTTPServer

import pytest

from tests.conftest import ADMIN, MANAGER
from tests.unit.alerting.conftest import CAD, Estate
from tests.unit.alerting.endpoints import Hook, free_port
from vlm.alerting.delivery import MAX_ATTEMPTS, deliver_due, retry_wait
from vlm.alerting.evaluate import evaluate_alerts
from vlm.context import ServiceContext
from vlm.domain import ValidationError
from vlm.services import alerts, allocations


def full_pool_rule(ctx: ServiceContext, destinations: str) -> int:
    return alerts.create_rule(
        ctx,
        ADMIN,
        name="Design full",
        kind="pool_nearly_full",
        threshold=80,
        destinations=destinations,
    )


def fill_design(ctx: ServiceContext, estate: Estate) -> int:
    return allocations.allocate(ctx, MANAGER, estate.design, CAD, "ETHERNET", "0050569A0001", 5)


def test_a_fired_and_a_cleared_alert_reach_a_mailbox_and_a_webhook(
    ctx, estate: Estate, smtp, webhook
) -> None:
    smtp_port, mailbox = smtp
    hook_port, hook_calls = webhook
    mail = f"mailto://127.0.0.1:{smtp_port}?from=vlm@example.com&to=ops@example.com&mode=insecure"
    full_pool_rule(ctx, f"{mail}\njson://127.0.0.1:{hook_port}/vlm-alerts")
    allocation = fill_design(ctx, estate)
    evaluate_alerts(ctx)

    sent = deliver_due(ctx)

    assert (sent.delivered, sent.failed) == (2, 0)
    assert len(mailbox.messages) == 1
    assert "Subject: Pool Engineering / Design is 100% allocated" in mailbox.messages[0]
    assert [(c["title"], c["message"]) for c in hook_calls] == [
        ("Pool Engineering / Design is 100% allocated", "5 of 5 allocated")
    ]

    allocations.remove_allocation(ctx, MANAGER, estate.design, allocation)
    evaluate_alerts(ctx)
    deliver_due(ctx)

    assert "Subject: Cleared: Pool Engineering / Design" in mailbox.messages[1]
    assert hook_calls[1]["title"] == "Cleared: Pool Engineering / Design is 100% allocated"
    assert deliver_due(ctx).delivered == 0, "each message is sent once"


def deliveries(ctx: ServiceContext) -> list[tuple]:
    return ctx.db.query(
        "SELECT attempts, next_attempt_at, delivered_at, gave_up_at, last_error "
        "FROM alert_deliveries ORDER BY id"
    )


def test_a_failing_destination_is_retried_later_and_delivered_when_it_answers(
    ctx, estate: Estate
) -> None:
    port = free_port()
    full_pool_rule(ctx, f"json://127.0.0.1:{port}/hook")
    fill_design(ctx, estate)
    evaluate_alerts(ctx)
    now = datetime.now()

    first = deliver_due(ctx, now)

    [(attempts, retry_at, delivered, gave_up, error)] = deliveries(ctx)
    assert (first.failed, first.gave_up, attempts, delivered, gave_up) == (1, 0, 1, None, None)
    assert "Connection error" in error
    assert retry_at == now + retry_wait(1)
    assert deliver_due(ctx, now + timedelta(seconds=1)).failed == 0, "not before its retry"

    server = HTTPServer(("127.0.0.1", port), type("Received", (Hook,), {"received": []}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        later = deliver_due(ctx, retry_at)
    finally:
        server.shutdown()
        server.server_close()

    [(attempts, _, delivered, gave_up, error)] = deliveries(ctx)
    assert (later.delivered, attempts, error, gave_up) == (1, 2, None, None)
    assert delivered == retry_at


def test_the_wait_between_attempts_doubles_up_to_an_hour() -> None:
    waits = [retry_wait(n) for n in range(1, 10)]
    assert waits[:4] == [timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert waits[-1] == timedelta(hours=1)


def test_a_destination_that_keeps_failing_is_given_up_and_kept_with_its_error(
    ctx, estate: Estate
) -> None:
    full_pool_rule(ctx, f"json://127.0.0.1:{free_port()}/hook")
    fill_design(ctx, estate)
    evaluate_alerts(ctx)
    now = datetime.now()
    for _ in range(MAX_ATTEMPTS):
        now += timedelta(hours=2)
        deliver_due(ctx, now)

    [(attempts, _, delivered, gave_up, error)] = deliveries(ctx)
    assert (attempts, delivered, gave_up) == (MAX_ATTEMPTS, None, now)
    assert "Connection error" in error
    shown = alerts.list_deliveries(ctx, ADMIN)
    assert shown["gave_up_at"].notna().all() and shown["last_error"].str.len().gt(0).all()


def test_destinations_are_stored_encrypted_and_shown_masked(ctx, estate: Estate) -> None:
    secret = "xoxb-very-secret-token"
    url = f"json://user:{secret}@hooks.example.com/alerts"
    rule_id = full_pool_rule(ctx, url)

    stored = ctx.db.query("SELECT * FROM alert_rules WHERE id = ?", [rule_id])
    assert secret not in repr(stored)
    [label] = alerts.list_rules(ctx, ADMIN)["destination_labels"]
    assert secret not in label and "hooks.example.com" in label
    assert secret not in repr(ctx.db.query("SELECT * FROM audit_log"))


def test_a_destination_apprise_cannot_use_is_refused_naming_its_line(ctx, estate: Estate):
    with pytest.raises(ValidationError) as refused:
        full_pool_rule(ctx, "json://hooks.example.com/a\nnot a url at all")
    assert refused.value.field == "destinations"
    assert str(refused.value).startswith("destination 2 is not a URL apprise can send to")


def test_send_test_reaches_the_webhook_and_a_failure_is_recorded_not_retried(
    ctx, estate: Estate, webhook
) -> None:
    hook_port, hook_calls = webhook
    dead = free_port()
    rule_id = full_pool_rule(ctx, f"json://127.0.0.1:{hook_port}/ok\njson://127.0.0.1:{dead}/down")

    result = alerts.send_test(ctx, ADMIN, rule_id)

    assert (result.delivered, result.failed, result.gave_up) == (1, 1, 1)
    assert hook_calls[0]["title"] == "VLM test message for alert rule 'Design full'"
    assert result.errors[0].startswith(f"json://127.0.0.1:{dead}/down")
