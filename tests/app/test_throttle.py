"""Failed sign-ins are remembered across sessions and expire."""

from __future__ import annotations

from vlm.ui.throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def credentials(**attempts: int) -> dict:
    return {"usernames": {u: {"failed_login_attempts": n} for u, n in attempts.items()}}


def test_failures_accumulate_across_fresh_credentials_and_expire():
    clock = Clock()
    throttle = LoginThrottle(lockout_seconds=60, clock=clock)
    for expected in (1, 2, 3):
        creds = credentials(mia=0, max=0)
        seeded = throttle.seed(creds)
        assert creds["usernames"]["mia"]["failed_login_attempts"] == expected - 1
        creds["usernames"]["mia"]["failed_login_attempts"] += 1  # what the authenticator does
        throttle.harvest(creds, seeded)
    assert throttle.attempts("mia") == 3 and throttle.attempts("max") == 0
    clock.now += 61
    assert throttle.attempts("mia") == 0


def test_success_resets_and_admin_clear_forgets():
    throttle = LoginThrottle()
    creds = credentials(mia=0)
    seeded = throttle.seed(creds)
    creds["usernames"]["mia"]["failed_login_attempts"] = 2
    throttle.harvest(creds, seeded)
    creds = credentials(mia=0)
    seeded = throttle.seed(creds)
    assert seeded == {"mia": 2}
    creds["usernames"]["mia"]["failed_login_attempts"] = 0  # successful sign-in
    throttle.harvest(creds, seeded)
    assert throttle.attempts("mia") == 0
    creds = credentials(mia=0)
    seeded = throttle.seed(creds)
    creds["usernames"]["mia"]["failed_login_attempts"] = 1
    throttle.harvest(creds, seeded)
    throttle.clear("mia")
    assert throttle.attempts("mia") == 0


def test_a_stale_session_does_not_lower_the_count():
    throttle = LoginThrottle()
    stale = credentials(mia=0)
    stale_seed = throttle.seed(stale)
    fresh = credentials(mia=0)
    fresh_seed = throttle.seed(fresh)
    fresh["usernames"]["mia"]["failed_login_attempts"] = 1
    throttle.harvest(fresh, fresh_seed)
    throttle.harvest(stale, stale_seed)  # unchanged in the stale run: ignored
    assert throttle.attempts("mia") == 1
