"""Failed sign-ins per user name, kept in the database so that a lockout survives a restart and
holds for every app process; failures expire LOCKOUT_SECONDS after the last one."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from vlm.services.context import ServiceContext

LOCKOUT_SECONDS = 15 * 60
Clock = Callable[[], float]


def _live(attempts: int, last_failed_at: float, now: float, lockout_seconds: float) -> int:
    return attempts if now - last_failed_at <= lockout_seconds else 0


def failed_attempts(
    ctx: ServiceContext,
    usernames: Iterable[str],
    *,
    lockout_seconds: float = LOCKOUT_SECONDS,
    clock: Clock = time.time,
) -> dict[str, int]:
    """Unexpired failed attempts of each user name (0 when none)."""
    counts = dict.fromkeys(usernames, 0)
    now = clock()
    rows = ctx.db.query("SELECT username, attempts, last_failed_at FROM login_failures")
    for username, attempts, last_failed_at in rows:  # one row per user who failed: a small table
        if username in counts:
            counts[username] = _live(int(attempts), float(last_failed_at), now, lockout_seconds)
    return counts


def add_failed_attempts(
    ctx: ServiceContext,
    username: str,
    added: int,
    *,
    at_least: int = 0,
    lockout_seconds: float = LOCKOUT_SECONDS,
    clock: Clock = time.time,
) -> int:
    """Count `added` more failures (never fewer than at_least in all); returns the new count."""
    now = clock()

    def write(cur) -> int:
        found = cur.execute(
            "SELECT attempts, last_failed_at FROM login_failures WHERE username = ?", [username]
        ).fetchall()
        stored = _live(int(found[0][0]), float(found[0][1]), now, lockout_seconds) if found else 0
        count = max(at_least, stored + added)
        cur.execute(
            "INSERT INTO login_failures (username, attempts, last_failed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (username) DO UPDATE SET attempts = excluded.attempts, "
            "last_failed_at = excluded.last_failed_at",
            [username, count, now],
        )
        return count

    return ctx.db.write(write)


def clear_failed_attempts(ctx: ServiceContext, username: str) -> None:
    """Forget a user's failures (after a successful sign-in or a password reset)."""
    ctx.db.write(
        lambda cur: cur.execute("DELETE FROM login_failures WHERE username = ?", [username])
    )
