"""The lockout holds under parallel guesses: an attempt is counted and checked in one write
before any password is compared (#7.6); success clears it, an admin reset lifts it, it expires
and survives a restart."""

from __future__ import annotations

import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.conftest import database_setting
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR, Role
from vlm.secret_box import SecretBox
from vlm.services import logins, users
from vlm.services.logins import LOCKOUT_SECONDS, SignInOutcome

PASSWORD = "mias-real-password"
GUESSES = 30


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def comparisons(monkeypatch) -> Counter:
    """Counts every bcrypt comparison made through users.check_password, from any thread."""
    counted: Counter = Counter()
    lock = threading.Lock()
    real = users.check_password

    def counting(password: str, password_hash: str) -> bool:
        with lock:
            counted["bcrypt"] += 1
        return real(password, password_hash)

    monkeypatch.setattr(users, "check_password", counting)
    return counted


@pytest.fixture
def mia(ctx) -> str:
    users.add_user(ctx, SYSTEM_ACTOR, "mia", Role.MANAGER, password=PASSWORD)
    return "mia"


def parallel_wrong_guesses(ctx: ServiceContext, username: str) -> Counter:
    """GUESSES sign-ins with wrong passwords, released at the same moment from as many threads."""
    start = threading.Barrier(GUESSES)

    def guess(i: int) -> SignInOutcome:
        start.wait()
        return logins.sign_in(ctx, username, f"wrong-password-{i}").outcome

    with ThreadPoolExecutor(GUESSES) as pool:
        return Counter(pool.map(guess, range(GUESSES)))


def test_thirty_parallel_wrong_guesses_compare_only_up_to_the_limit(ctx, mia, comparisons):
    limit = ctx.settings.max_login_attempts
    outcomes = parallel_wrong_guesses(ctx, mia)
    assert comparisons["bcrypt"] == limit
    assert outcomes == {SignInOutcome.WRONG: limit, SignInOutcome.LOCKED: GUESSES - limit}
    assert logins.sign_in(ctx, mia, PASSWORD).outcome is SignInOutcome.LOCKED
    assert comparisons["bcrypt"] == limit  # a locked account compares nothing, not even right


def test_an_unknown_user_is_locked_out_the_same_way(ctx, comparisons):
    limit = ctx.settings.max_login_attempts
    outcomes = parallel_wrong_guesses(ctx, "nobody")
    assert comparisons["bcrypt"] == limit
    assert outcomes == {SignInOutcome.WRONG: limit, SignInOutcome.LOCKED: GUESSES - limit}


def test_success_clears_the_count_and_the_lockout_expires(ctx, mia):
    clock = Clock()
    limit = ctx.settings.max_login_attempts

    def attempt(password: str) -> SignInOutcome:
        return logins.sign_in(ctx, mia, password, clock=clock).outcome

    for _ in range(limit - 1):
        assert attempt("wrong-password") is SignInOutcome.WRONG
    assert attempt(PASSWORD) is SignInOutcome.SIGNED_IN
    assert logins.failed_attempts(ctx, [mia], clock=clock) == {mia: 0}
    for _ in range(limit):
        assert attempt("wrong-password") is SignInOutcome.WRONG
    assert attempt(PASSWORD) is SignInOutcome.LOCKED
    clock.now += LOCKOUT_SECONDS - 1  # refused attempts do not extend the lockout
    assert attempt(PASSWORD) is SignInOutcome.LOCKED
    clock.now += 2
    assert attempt(PASSWORD) is SignInOutcome.SIGNED_IN


def test_an_admin_password_reset_lifts_the_lockout(ctx, mia):
    for _ in range(ctx.settings.max_login_attempts):
        logins.sign_in(ctx, mia, "wrong-password")
    assert logins.sign_in(ctx, mia, PASSWORD).outcome is SignInOutcome.LOCKED
    one_time = users.reset_password(ctx, SYSTEM_ACTOR, mia)
    assert logins.sign_in(ctx, mia, one_time).outcome is SignInOutcome.SIGNED_IN


def test_a_lockout_survives_a_restart(db_target):
    settings = Settings(**database_setting(db_target), secret_key=SecretBox.generate_key())
    first = ServiceContext.open(settings)
    users.add_user(first, SYSTEM_ACTOR, "mia", Role.MANAGER, password=PASSWORD)
    for _ in range(settings.max_login_attempts):
        logins.sign_in(first, "mia", "wrong-password")
    first.db.close()
    reopened = ServiceContext.open(settings)
    try:
        assert logins.sign_in(reopened, "mia", PASSWORD).outcome is SignInOutcome.LOCKED
        assert logins.failed_attempts(reopened, ["mia", "max"]) == {
            "mia": settings.max_login_attempts,
            "max": 0,
        }
    finally:
        reopened.db.close()


@pytest.mark.parametrize("name", ["", "   ", "a", "\ud800", "x" * 5000, "bob; DROP TABLE users"])
def test_impossible_user_names_are_refused_without_counting(ctx, comparisons, name):
    assert logins.sign_in(ctx, name, "wrong-password").outcome is SignInOutcome.WRONG
    assert ctx.db.scalar("SELECT COUNT(*) FROM login_failures") == 0
    assert comparisons["bcrypt"] == 1  # the dummy hash: no shortcut for odd names either
