"""Failed-login bookkeeping around streamlit-authenticator, stored through vlm.services.logins."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from vlm.services import logins
from vlm.services.context import ServiceContext


class LoginThrottle:
    """Seeds the authenticator's credentials with the stored failures and stores what it changed."""

    def __init__(
        self,
        ctx: ServiceContext,
        lockout_seconds: float = logins.LOCKOUT_SECONDS,
        clock: logins.Clock = time.time,
    ) -> None:
        self._ctx = ctx
        self._lockout = lockout_seconds
        self._clock = clock

    def attempts(self, username: str) -> int:
        return self._stored([username])[username]

    def _stored(self, usernames: list[str]) -> dict[str, int]:
        return logins.failed_attempts(
            self._ctx, usernames, lockout_seconds=self._lockout, clock=self._clock
        )

    def seed(self, credentials: Mapping[str, Any]) -> dict[str, int]:
        """Write the stored attempts into a freshly built credentials dict; return them."""
        entries = credentials.get("usernames", {})
        seeded = self._stored(list(entries))
        for username, entry in entries.items():
            entry["failed_login_attempts"] = seeded[username]
        return seeded

    def harvest(self, credentials: Mapping[str, Any], seeded: Mapping[str, int]) -> None:
        """Store what the authenticator changed during this run (a failure or a reset)."""
        for username, entry in credentials.get("usernames", {}).items():
            now = int(entry.get("failed_login_attempts") or 0)
            before = seeded.get(username, 0)
            if now == before:
                continue
            if now == 0:
                logins.clear_failed_attempts(self._ctx, username)
            else:
                logins.add_failed_attempts(
                    self._ctx,
                    username,
                    now - before,
                    at_least=now,
                    lockout_seconds=self._lockout,
                    clock=self._clock,
                )
