"""Failed sign-ins are remembered across sessions and restarts, and expire."""

from __future__ import annotations

from vlm.config import Settings
from vlm.secret_box import SecretBox
from vlm.services import users
from vlm.services.context import ServiceContext
from vlm.ui.throttle import LoginThrottle

from ..conftest import ADMIN


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def credentials(**attempts: int) -> dict:
    return {"usernames": {u: {"failed_login_attempts": n} for u, n in attempts.items()}}


def test_failures_accumulate_across_fresh_credentials_and_expire(ctx):
    clock = Clock()
    throttle = LoginThrottle(ctx, lockout_seconds=60, clock=clock)
    for expected in (1, 2, 3):
        creds = credentials(mia=0, max=0)
        seeded = throttle.seed(creds)
        assert creds["usernames"]["mia"]["failed_login_attempts"] == expected - 1
        creds["usernames"]["mia"]["failed_login_attempts"] += 1  # what the authenticator does
        throttle.harvest(creds, seeded)
    assert throttle.attempts("mia") == 3 and throttle.attempts("max") == 0
    clock.now += 61
    assert throttle.attempts("mia") == 0


def test_success_resets_and_admin_reset_forgets(ctx):
    throttle = LoginThrottle(ctx)
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
    users.add_user(ctx, ADMIN, "mia", "manager")
    assert throttle.attempts("mia") == 1
    users.reset_password(ctx, ADMIN, "mia")
    assert throttle.attempts("mia") == 0


def test_a_stale_session_does_not_lower_the_count(ctx):
    throttle = LoginThrottle(ctx)
    stale = credentials(mia=0)
    stale_seed = throttle.seed(stale)
    fresh = credentials(mia=0)
    fresh_seed = throttle.seed(fresh)
    fresh["usernames"]["mia"]["failed_login_attempts"] = 1
    throttle.harvest(fresh, fresh_seed)
    throttle.harvest(stale, stale_seed)  # unchanged in the stale run: ignored
    assert throttle.attempts("mia") == 1


def test_a_lockout_survives_a_restart(tmp_path):
    settings = Settings(db_path=str(tmp_path / "vlm.duckdb"), secret_key=SecretBox.generate_key())
    first = ServiceContext.open(settings)
    throttle = LoginThrottle(first)
    creds = credentials(mia=0)
    seeded = throttle.seed(creds)
    creds["usernames"]["mia"]["failed_login_attempts"] = 5
    throttle.harvest(creds, seeded)
    first.db.close()

    reopened = ServiceContext.open(settings)
    try:
        assert LoginThrottle(reopened).seed(credentials(mia=0, max=0)) == {"mia": 5, "max": 0}
    finally:
        reopened.db.close()
