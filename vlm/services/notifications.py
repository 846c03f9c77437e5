"""A user's own notification destinations (apprise URLs, set on the Profile page): where VLM
tells them about things that concern them personally, such as a decision on their quantity
request. Stored encrypted like alert-rule destinations and only ever shown masked."""

from __future__ import annotations

from datetime import datetime

from vlm.alerting import delivery
from vlm.alerting.delivery import TEST_EVENT, DeliveryPass, Sender
from vlm.alerting.notify import notify_user
from vlm.context import ServiceContext
from vlm.domain import Actor, ValidationError
from vlm.services import audit
from vlm.services.permissions import require_active_user_in
from vlm.services.tokens import require_writable
from vlm.store import users as store


def set_own_destinations(ctx: ServiceContext, actor: Actor, destinations: object) -> list[str]:
    """Replace the actor's own destinations (one apprise URL per line; empty: none); returns
    their masked labels."""
    require_writable(actor)
    urls, labels = delivery.parse_destinations(destinations)
    sealed = delivery.seal_destinations(ctx.secrets, urls)

    def write(cur) -> list[str]:
        require_active_user_in(cur, actor)
        before = store.notification_target(cur, actor.username) or []
        store.set_notification_destinations(cur, actor.username, sealed, "\n".join(labels))
        audit.record(
            cur,
            actor,
            "user.notifications",
            "user",
            actor.username,
            {"destinations": before},
            {"destinations": labels},
        )
        return labels

    return ctx.db.write(write)


def own_destinations(ctx: ServiceContext, actor: Actor) -> list[str]:
    """The actor's own destinations, masked."""
    return store.notification_labels(ctx.db, actor.username)


def send_own_test(
    ctx: ServiceContext,
    actor: Actor,
    *,
    now: datetime | None = None,
    send: Sender = delivery.send_with_apprise,
) -> DeliveryPass:
    """Send a test message to each of the actor's own destinations now; each outcome is
    recorded with the other messages (a failed test is not retried)."""
    require_writable(actor)

    def write(cur) -> list[int]:
        require_active_user_in(cur, actor)
        ids = notify_user(
            cur,
            actor.username,
            "VLM test message",
            f"Messages for {actor.username} (a decision on a request, for example) reach this "
            "destination.",
            event=TEST_EVENT,
        )
        if not ids:
            raise ValidationError("you have no destination to send to", field="destinations")
        audit.record(cur, actor, "user.notifications_test", "user", actor.username)
        return ids

    ids = ctx.db.write(write)
    return delivery.deliver_due(ctx, now, send=send, ids=ids)
