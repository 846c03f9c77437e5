"""Messages to a user's own destinations go through the alert delivery queue: a decision on a
quantity request reaches the requester's mailbox, a new request reaches admins who set
destinations; a failing destination is retried like an alert message; a user without
destinations, or a disabled one, gets nothing queued."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from tests.conftest import ADMIN, MANAGER, OTHER_MANAGER
from tests.unit.alerting.conftest import CAD, Estate
from tests.unit.alerting.endpoints import free_port
from vlm.alerting.delivery import deliver_due, retry_wait
from vlm.alerting.notify import notify_user
from vlm.context import ServiceContext
from vlm.domain import ValidationError
from vlm.services import notifications, requests, users


def mail_to(port: int, to: str) -> str:
    return f"mailto://127.0.0.1:{port}?from=vlm@example.com&to={to}&mode=insecure"


def queued(ctx: ServiceContext) -> list[tuple]:
    return ctx.db.query(
        "SELECT rule_id, username, event, destination_label, delivered_at IS NOT NULL "
        "FROM alert_deliveries ORDER BY id"
    )


def test_a_decision_reaches_the_requesters_mailbox_through_the_queue(
    ctx, estate: Estate, smtp
) -> None:
    port, mailbox = smtp
    notifications.set_own_destinations(ctx, MANAGER, mail_to(port, "bob@example.com"))
    request_id = requests.create_request(ctx, MANAGER, estate.design, CAD, 3, "new hires")
    assert queued(ctx) == [], "no admin has a destination: nothing is queued for the request"

    requests.decide(ctx, ADMIN, request_id, "partial", granted=2, reason="2 for now")

    [(rule_id, username, event, _label, delivered)] = queued(ctx)
    assert (rule_id, username, event, delivered) == (None, "bob", "notice", False)
    sent = deliver_due(ctx)
    assert (sent.delivered, sent.failed) == (1, 0)
    assert len(mailbox.messages) == 1
    assert "your request for 3 cad 1.0 was partly approved" in mailbox.messages[0]
    assert "alice granted 2 of 3 for pool Engineering / Design." in mailbox.messages[0]
    assert "Reason: 2 for now" in mailbox.messages[0]
    assert deliver_due(ctx).delivered == 0, "each message is sent once"


def test_a_new_request_reaches_admins_with_destinations(ctx, estate: Estate, webhook) -> None:
    port, calls = webhook
    notifications.set_own_destinations(ctx, ADMIN, f"json://127.0.0.1:{port}/admin")

    requests.create_request(ctx, OTHER_MANAGER, estate.sim, ("sim", "1.0"), 1, "a new solver")
    deliver_due(ctx)

    assert [c["title"] for c in calls] == ["VLM: carol requests 1 more sim for pool Sim"]
    assert "Reason: a new solver" in calls[0]["message"]


def test_a_failing_user_destination_is_retried_like_an_alert_message(ctx, estate: Estate) -> None:
    notifications.set_own_destinations(ctx, MANAGER, f"json://127.0.0.1:{free_port()}/down")
    request_id = requests.create_request(ctx, MANAGER, estate.design, CAD, 1, "one more")
    requests.decide(ctx, ADMIN, request_id, "approve")
    now = datetime.now() + timedelta(seconds=1)

    first = deliver_due(ctx, now)

    assert (first.delivered, first.failed, first.gave_up) == (0, 1, 0)
    row = ctx.db.query("SELECT attempts, next_attempt_at, last_error FROM alert_deliveries")[0]
    assert row[0] == 1 and row[1] == now + retry_wait(1) and row[2]
    assert deliver_due(ctx, now + timedelta(seconds=5)).failed == 0, "not due yet"
    assert deliver_due(ctx, now + retry_wait(1)).failed == 1


def test_nothing_is_queued_for_a_user_without_destinations_or_disabled(ctx, estate: Estate) -> None:
    assert ctx.db.write(lambda cur: notify_user(cur, "bob", "t", "b")) == []
    notifications.set_own_destinations(ctx, MANAGER, "json://127.0.0.1:9/hook")
    users.set_disabled(ctx, ADMIN, MANAGER.username, True)
    assert ctx.db.write(lambda cur: notify_user(cur, "bob", "t", "b")) == []
    assert ctx.db.write(lambda cur: notify_user(cur, "nobody", "t", "b")) == []
    assert queued(ctx) == []


def test_a_test_message_reaches_the_users_own_webhook_at_once(ctx, estate: Estate, webhook) -> None:
    port, calls = webhook
    with pytest.raises(ValidationError) as refused:
        notifications.send_own_test(ctx, MANAGER)
    assert refused.value.field == "destinations"
    notifications.set_own_destinations(
        ctx, MANAGER, f"json://127.0.0.1:{port}/me\njson://127.0.0.1:{free_port()}/down"
    )

    sent = notifications.send_own_test(ctx, MANAGER)

    assert (sent.delivered, sent.failed, sent.gave_up) == (1, 1, 1), "a failed test is not retried"
    assert [c["title"] for c in calls] == ["VLM test message"]
    assert queued(ctx)[0][:3] == (None, "bob", "test")
