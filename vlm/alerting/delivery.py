"""Messages to a rule's destinations, or to a user's own, through apprise (e-mail, Slack, Teams,
webhooks…): each is tried when due and retried with a growing wait until delivered; one that
keeps failing is given up after MAX_ATTEMPTS and stays listed with its last error."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import apprise

from vlm.context import ServiceContext
from vlm.domain import ValidationError
from vlm.secret_box import SecretBox
from vlm.store import alerts as store

MAX_ATTEMPTS = 10
FIRST_RETRY = timedelta(seconds=30)
LONGEST_WAIT = timedelta(hours=1)
MAX_DESTINATIONS = 20
TEST_EVENT = "test"

# (destination URL, title, body) → None when delivered, else why not
Sender = Callable[[str, str, str], str | None]


def retry_wait(attempts: int) -> timedelta:
    """How long after its attempts-th failure a message is tried again: 30 s, doubling, at most
    an hour."""
    return min(FIRST_RETRY * 2 ** max(attempts - 1, 0), LONGEST_WAIT)


def send_with_apprise(url: str, title: str, body: str) -> str | None:
    """One message to one apprise URL; None when the service accepted it, else the reason."""
    notifier = apprise.Apprise()
    if not notifier.add(url):
        return "apprise does not understand this destination URL"
    with apprise.LogCapture(level=logging.WARNING) as captured:
        delivered = bool(notifier.notify(title=title, body=body))
    if delivered:
        return None
    lines = [line.split(" - ", 2)[-1] for line in captured.getvalue().splitlines() if line]
    return lines[-1] if lines else "the destination did not accept the message"


def destination_label(url: str) -> str:
    """The destination as people may read it: apprise's URL with its secrets masked."""
    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        raise ValueError("not a destination apprise understands")
    return str(plugin.url(privacy=True)).split("?", 1)[0]


def parse_destinations(text: object) -> tuple[list[str], list[str]]:
    """Destination URLs, one per line, and their masked labels; a line apprise cannot use is
    refused naming its line."""
    if text is None:
        return [], []
    if not isinstance(text, str):
        raise ValidationError("destinations must be text, one URL per line", field="destinations")
    urls = [line.strip() for line in text.splitlines() if line.strip()]
    if len(urls) > MAX_DESTINATIONS:
        raise ValidationError(
            f"at most {MAX_DESTINATIONS} destinations per rule", field="destinations"
        )
    labels = []
    for number, url in enumerate(urls, start=1):
        try:
            labels.append(destination_label(url))
        except ValueError:
            raise ValidationError(
                f"destination {number} is not a URL apprise can send to (for example "
                "mailtos://user:password@smtp.example.com?to=ops@example.com, "
                "slack://…, msteams://…, json://host/path)",
                field="destinations",
            ) from None
    return urls, labels


def seal_destinations(secrets: SecretBox, urls: Sequence[str]) -> str | None:
    """The URLs encrypted like server passwords (they hold passwords and webhook tokens)."""
    return secrets.encrypt(json.dumps(list(urls))) if urls else None


def open_destinations(secrets: SecretBox, sealed: str | None) -> list[str]:
    plain = secrets.decrypt(sealed) if sealed else None
    return list(json.loads(plain)) if plain else []


@dataclass(frozen=True)
class DeliveryPass:
    delivered: int = 0
    failed: int = 0
    gave_up: int = 0
    errors: tuple[str, ...] = ()


def deliver_due(
    ctx: ServiceContext,
    now: datetime | None = None,
    *,
    send: Sender = send_with_apprise,
    ids: Sequence[int] | None = None,
) -> DeliveryPass:
    """Try every message that is due (or exactly `ids`), recording each outcome."""
    now = now or datetime.now()
    delivered = failed = gave_up = 0
    errors: list[str] = []
    opened: dict[tuple[object, object], list[str]] = {}
    for row in store.due_deliveries(ctx.db, now, ids):
        target = (row["rule_id"], row["username"])
        if target not in opened:
            opened[target] = open_destinations(ctx.secrets, row["destinations_encrypted"])
        urls = opened[target]
        index = int(row["destination"])
        if index < len(urls):
            error = send(urls[index], str(row["title"]), str(row["body"]))
        else:
            owner = "the rule" if row["rule_id"] is not None else f"user {row['username']}"
            error = f"{owner} no longer has this destination"
        attempts = int(row["attempts"]) + 1
        if error is None:
            ctx.db.write(lambda cur, d=row["id"]: store.mark_delivered(cur, d, now))
            delivered += 1
            continue
        final = index >= len(urls) or attempts >= MAX_ATTEMPTS or row["event"] == TEST_EVENT
        retry_at, given_up = now + retry_wait(attempts), now if final else None
        ctx.db.write(
            lambda cur, d=row["id"], e=error, r=retry_at, g=given_up: store.mark_failed(
                cur, d, e, r, g
            )
        )
        errors.append(f"{row['destination_label']}: {error}")
        failed += 1
        gave_up += int(final)
    return DeliveryPass(delivered, failed, gave_up, tuple(errors))
