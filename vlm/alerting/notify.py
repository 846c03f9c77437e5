"""Messages to one user's own destinations (set on their Profile page), queued with the alert
messages: deliver_due sends them and retries them the same way."""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from vlm.store import alerts as deliveries
from vlm.store import users as store

NOTICE_EVENT = "notice"


def notify_user(
    cur: duckdb.DuckDBPyConnection,
    username: str,
    title: str,
    body: str,
    *,
    event: str = NOTICE_EVENT,
) -> list[int]:
    """Inside the write that caused it: queue one message to each of an enabled user's own
    destinations; their delivery ids (none when the user has no destination)."""
    labels = store.notification_target(cur, username)
    if not labels:
        return []
    rows = [(label, title, body) for label in labels]
    return deliveries.insert_user_deliveries(cur, username, event, rows)


def notify_users(
    cur: duckdb.DuckDBPyConnection, usernames: Sequence[str], title: str, body: str
) -> list[int]:
    """notify_user for each of several users."""
    return [i for name in usernames for i in notify_user(cur, name, title, body)]
