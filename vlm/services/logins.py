"""The sign-in decision and the lockout.

Every attempt is counted, and checked against the limit, in one database write BEFORE any
password is compared, so parallel guesses cannot get past the limit; a successful sign-in clears
the count, and counts expire LOCKOUT_SECONDS after the last attempt. The count lives in the
database so that a lockout survives a restart and holds for every app process. Unknown users cost
the same bcrypt comparison as known ones, and a disabled account is only named as such once its
password was right."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache

import bcrypt

from vlm.context import ServiceContext
from vlm.domain import VlmError
from vlm.services import users
from vlm.store import users as store

LOCKOUT_SECONDS = 15 * 60
Clock = Callable[[], float]


class SignInOutcome(StrEnum):
    SIGNED_IN = "signed in"
    WRONG = "wrong user name or password"
    LOCKED = "too many attempts"
    DISABLED = "account disabled"


@dataclass(frozen=True)
class SignInResult:
    """What a sign-in attempt came to, for the user name as VLM stores it (lower case)."""

    outcome: SignInOutcome
    username: str

    @property
    def ok(self) -> bool:
        return self.outcome is SignInOutcome.SIGNED_IN


@cache
def _dummy_hash(rounds: int) -> str:
    """A hash of a random password, made once per cost, that unknown users are checked against."""
    return bcrypt.hashpw(secrets.token_bytes(24), bcrypt.gensalt(rounds)).decode()


def dummy_password_hash() -> str:
    """The dummy hash at the cost new passwords are hashed with."""
    return _dummy_hash(users.BCRYPT_ROUNDS)


def register_login_attempt(
    ctx: ServiceContext,
    username: str,
    *,
    lockout_seconds: float = LOCKOUT_SECONDS,
    clock: Clock = time.time,
) -> bool:
    """Count one attempt for username and say whether it is within max_login_attempts; both in
    one write. An attempt past the limit is refused without being counted (nor extending it)."""
    limit = ctx.settings.max_login_attempts
    now = clock()

    def write(cur) -> bool:
        store.forget_failures_before(cur, now - lockout_seconds)
        used = store.failed_attempt_count(cur, username)
        if used >= limit:
            return False
        store.store_failed_attempts(cur, username, used + 1, now)
        return True

    return ctx.db.write(write)


def failed_attempts(
    ctx: ServiceContext,
    usernames: Iterable[str],
    *,
    lockout_seconds: float = LOCKOUT_SECONDS,
    clock: Clock = time.time,
) -> dict[str, int]:
    """Unexpired attempts counted for each user name since its last successful sign-in."""
    counts = dict.fromkeys(usernames, 0)
    since = clock() - lockout_seconds
    # one row per user name tried lately: a small table
    for username, attempts in store.failures_since(ctx.db, since):
        if username in counts:
            counts[username] = int(attempts)
    return counts


def clear_failed_attempts(ctx: ServiceContext, username: str) -> None:
    """Forget a user's attempts (after a successful sign-in or a password reset)."""
    ctx.db.write(lambda cur: store.clear_failures(cur, username))


def _possible_username(name: str) -> bool:
    try:
        return users.validate_username(name) == name
    except VlmError:
        return False


def sign_in(
    ctx: ServiceContext,
    username: str,
    password: str,
    *,
    lockout_seconds: float = LOCKOUT_SECONDS,
    clock: Clock = time.time,
) -> SignInResult:
    """The whole sign-in decision: count the attempt, compare the password (against a dummy hash
    for an unknown user), and only then look at the disabled flag. Like the form, it trims."""
    name = str(username or "").strip().lower()
    given = str(password or "").strip()
    if not _possible_username(name):  # no such account can exist: nothing to count
        users.check_password(given, dummy_password_hash())
        return SignInResult(SignInOutcome.WRONG, name)
    if not register_login_attempt(ctx, name, lockout_seconds=lockout_seconds, clock=clock):
        return SignInResult(SignInOutcome.LOCKED, name)
    account = store.stored_account(ctx.db, name)
    matches = users.check_password(given, account[0] if account else dummy_password_hash())
    if account is None or not matches:
        return SignInResult(SignInOutcome.WRONG, name)
    if account[1]:
        return SignInResult(SignInOutcome.DISABLED, name)
    clear_failed_attempts(ctx, name)
    return SignInResult(SignInOutcome.SIGNED_IN, name)
