"""Failed-login bookkeeping shared by every session, so a lockout survives new sessions."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

LOCKOUT_SECONDS = 15 * 60


class LoginThrottle:
    """Failed attempts per user name; they expire LOCKOUT_SECONDS after the last failure."""

    def __init__(
        self, lockout_seconds: float = LOCKOUT_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._lockout = lockout_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, tuple[int, float]] = {}

    def attempts(self, username: str) -> int:
        with self._lock:
            count, last = self._failures.get(username, (0, 0.0))
            if count and self._clock() - last > self._lockout:
                del self._failures[username]
                return 0
            return count

    def clear(self, username: str) -> None:
        """Forget a user's failures (after an admin reset their password)."""
        with self._lock:
            self._failures.pop(username, None)

    def seed(self, credentials: Mapping[str, Any]) -> dict[str, int]:
        """Write the remembered attempts into a freshly built credentials dict; return them."""
        seeded = {}
        for username, entry in credentials.get("usernames", {}).items():
            seeded[username] = entry["failed_login_attempts"] = self.attempts(username)
        return seeded

    def harvest(self, credentials: Mapping[str, Any], seeded: Mapping[str, int]) -> None:
        """Remember what the authenticator changed during this run (a failure or a reset)."""
        for username, entry in credentials.get("usernames", {}).items():
            now = int(entry.get("failed_login_attempts") or 0)
            before = seeded.get(username, 0)
            if now == before:
                continue
            with self._lock:
                if now == 0:
                    self._failures.pop(username, None)
                else:
                    stored = self._failures.get(username, (0, 0.0))[0]
                    self._failures[username] = (max(now, stored + now - before), self._clock())
