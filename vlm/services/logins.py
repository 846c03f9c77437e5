"""The sign-in decision and the lockout.

Every attempt is counted, and checked against the limit, in one database write BEFORE any
password is compared, so parallel guesses cannot get past the limit; a successful sign-in clears
the count, and counts expire LOCKOUT_SECONDS after the last attempt. The count lives in the
database so that a lockout survives a restart and holds for every app process. Unknown users cost
the same bcrypt comparison as known ones, and a disabled account is only named as such once its
password was right."""

from __future__ import annotations

import re
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any

import bcrypt

from vlm.context import ServiceContext
from vlm.domain import Actor, Role, VlmError
from vlm.services import audit, sso, users
from vlm.sso_config import audiences, mapped_role
from vlm.store import sso as sso_store
from vlm.store import users as store

LOCKOUT_SECONDS = 15 * 60
Clock = Callable[[], float]


class SignInOutcome(StrEnum):
    SIGNED_IN = "signed in"
    WRONG = "wrong user name or password"
    LOCKED = "too many attempts"
    DISABLED = "account disabled"
    LOCAL_OFF = "password sign-in is off for this account"


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


PASSWORD_METHOD = "password"


def local_sign_in_allowed(ctx: ServiceContext, username: str) -> bool:
    """Whether a user may be signed in by password now: local sign-in is on, or they are marked
    break-glass (asked again on every run of a password session)."""
    return sso.local_sign_in_enabled(ctx) or sso_store.break_glass(ctx.db, username)


def sign_in(
    ctx: ServiceContext,
    username: str,
    password: str,
    *,
    lockout_seconds: float = LOCKOUT_SECONDS,
    clock: Clock = time.time,
) -> SignInResult:
    """The whole sign-in decision: count the attempt, compare the password (against a dummy hash
    for an unknown user), and only then look at the disabled flag and whether password sign-in
    is open to this account. Like the form, it trims. A sign-in is audited (user.sign_in, method
    password)."""
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
    if not local_sign_in_allowed(ctx, name):
        return SignInResult(SignInOutcome.LOCAL_OFF, name)

    def write(cur) -> None:
        store.clear_failures(cur, name)
        role = store.user_for_update(cur, name)["role"]
        audit.record(
            cur,
            Actor(name, Role(role)),
            "user.sign_in",
            "user",
            name,
            None,
            {"method": PASSWORD_METHOD},
        )

    ctx.db.write(write)
    return SignInResult(SignInOutcome.SIGNED_IN, name)


# ---- OpenID Connect -------------------------------------------------------------------------


class OidcOutcome(StrEnum):
    SIGNED_IN = "signed in"
    UNKNOWN_PROVIDER = "provider not configured"
    WRONG_AUDIENCE = "token not issued for VLM"
    NO_SUBJECT = "no subject claim"
    STALE = "identity too old"
    UNKNOWN_USER = "no such VLM user"
    NO_ROLE = "no mapped role"
    DISABLED = "account disabled"
    CONFLICT = "cannot be matched or changed"


@dataclass(frozen=True)
class OidcSignIn:
    """What an OIDC sign-in came to: the VLM user and role, or why it was refused."""

    outcome: OidcOutcome
    provider: str
    username: str | None = None
    role: Role | None = None
    reason: str = ""
    created: bool = False

    @property
    def ok(self) -> bool:
        return self.outcome is OidcOutcome.SIGNED_IN

    @property
    def actor(self) -> Actor:
        if not self.ok or self.username is None or self.role is None:
            raise VlmError(f"sign-in refused: {self.reason or self.outcome.value}")
        return Actor(self.username, self.role)


MAX_SUBJECT_LENGTH = 255
_NOT_IN_NAME = re.compile(r"[^a-z0-9_.\-]+")


def oidc_method(provider: str) -> str:
    return f"oidc:{provider}"


def _claim_text(claims: Mapping[str, Any], name: str, max_len: int = 320) -> str:
    value = claims.get(name)
    return value.strip()[:max_len] if isinstance(value, str) else ""


def _usable_email(claims: Mapping[str, Any]) -> str:
    """The e-mail claim, unless the IdP says it is not verified."""
    email = _claim_text(claims, "email")
    return "" if claims.get("email_verified") is False or "@" not in email else email


def _new_username(cur, claims: Mapping[str, Any], subject: str) -> str:
    """A free VLM user name from preferred_username, else the e-mail's local part, else the
    subject: lower case, characters a user name may hold, a number added when taken."""
    seed = (
        (_claim_text(claims, "preferred_username") or _claim_text(claims, "email") or subject)
        .lower()
        .split("@")[0]
    )
    base = _NOT_IN_NAME.sub("-", seed).strip("-._")[:28] or "user"
    if not base[0].isalnum():
        base = f"u{base}"
    if len(base) < 2:
        base = f"{base}-user"
    name, number = base, 1
    while store.user_exists(cur, name):
        number += 1
        name = f"{base}-{number}"
    return users.validate_username(name)


def _refuse(
    cur, outcome: OidcOutcome, provider: str, who: str, reason: str, method: str
) -> OidcSignIn:
    """Audit a refused OIDC sign-in (as the user it names, else as provider:subject)."""
    audit.record(
        cur,
        Actor(who[:64], Role.ANALYST),
        "user.sign_in_refused",
        "user",
        who[:64],
        None,
        {"method": method, "outcome": outcome.value, "reason": reason},
    )
    return OidcSignIn(outcome, provider, reason=reason)


def _role_change_problem(cur, user: dict, role: Role) -> str | None:
    """Why the mapped role cannot replace the stored one (the rules users.change_role keeps)."""
    username = user["username"]
    if user["role"] == "admin" and store.active_admin_count(cur) <= 1:
        return f"{username} is the last active admin and the IdP no longer makes them one"
    pools = store.managed_pool_count(cur, username)
    if user["role"] == "manager" and pools:
        return f"{username} manages {pools} pool(s); an admin must hand them over first"
    if user["role"] == "admin":
        try:
            sso.keeps_break_glass_admin(cur, username, "the IdP's role change")
        except VlmError as exc:
            return exc.message
    return None


def sign_in_oidc(
    ctx: ServiceContext,
    provider: str,
    claims: Mapping[str, Any],
    *,
    clock: Clock = time.time,
) -> OidcSignIn:
    """Sign in the identity an IdP vouched for (the ID token's claims, already checked by
    Authlib: signature, issuer, audience, expiry, nonce). The VLM user is the one this subject
    is linked to, else (when the provider allows) the one user with the verified e-mail, else a
    new one when the provider creates users. The role mapping is applied again (no mapped role:
    refused; a mapping that is empty leaves roles to VLM's admins); a disabled account is
    refused, and so is a token whose aud does not name this client (Authlib accepts one whose
    azp does). Every outcome is audited with method oidc:<provider>."""
    view = sso.effective_provider(ctx, provider)
    if view is None:
        return OidcSignIn(OidcOutcome.UNKNOWN_PROVIDER, provider, reason="not configured")
    config = view.provider
    method = oidc_method(config.name)
    subject = _claim_text(claims, "sub", MAX_SUBJECT_LENGTH + 1)
    email = _usable_email(claims)
    issued = claims.get("iat")
    stale = (
        isinstance(issued, int | float)
        and not isinstance(issued, bool)
        and clock() - float(issued) > config.max_age_hours * 3600
    )
    mapped = mapped_role(claims, config.role_claim, config.role_map)
    role = Role(mapped) if mapped else None

    def write(cur) -> OidcSignIn:
        who = f"{config.name}:{subject or '?'}"
        if config.client_id and config.client_id not in audiences(claims):
            reason = f"the ID token's audience does not name client {config.client_id}"
            return _refuse(cur, OidcOutcome.WRONG_AUDIENCE, config.name, who, reason, method)
        if not subject or len(subject) > MAX_SUBJECT_LENGTH:
            return _refuse(cur, OidcOutcome.NO_SUBJECT, config.name, who, "no usable sub", method)
        if stale:
            reason = f"the IdP sign-in is older than {config.max_age_hours:g} hours"
            return _refuse(cur, OidcOutcome.STALE, config.name, who, reason, method)
        username = sso_store.identity_user(cur, config.name, subject)
        linked = username is not None
        if username is None and config.match_email and email:
            matches = sso_store.users_with_email(cur, email)
            if len(matches) > 1:
                reason = f"{len(matches)} VLM users have the e-mail {email}"
                return _refuse(cur, OidcOutcome.CONFLICT, config.name, who, reason, method)
            if matches:
                username = matches[0]
                other = sso_store.linked_subject(cur, config.name, username)
                if other is not None:
                    reason = f"{username} is linked to another {config.name} identity"
                    return _refuse(cur, OidcOutcome.CONFLICT, config.name, username, reason, method)
        created = False
        if username is None:
            if not config.auto_create:
                reason = f"no VLM user for {email or subject}"
                return _refuse(cur, OidcOutcome.UNKNOWN_USER, config.name, who, reason, method)
            if role is None:
                reason = f"no role mapped from the {config.role_claim} claim"
                return _refuse(cur, OidcOutcome.NO_ROLE, config.name, who, reason, method)
            username = _new_username(cur, claims, subject)
            display = _claim_text(claims, "name", 120) or username
            store.insert_user(
                cur,
                username,
                display_name=display,
                email=email,
                role=role.value,
                password_hash=users.hash_password(users.one_time_password()),
                must_change_password=False,
            )  # a password no one knows: an admin's reset opens local sign-in
            audit.record(
                cur,
                Actor(username, role),
                "user.add",
                "user",
                username,
                None,
                {"role": role.value, "display_name": display, "by": method},
            )
            created = True
        user = store.user_for_update(cur, username)
        if user["disabled"]:
            return _refuse(
                cur, OidcOutcome.DISABLED, config.name, username, "account disabled", method
            )
        if config.role_map and role is None:
            reason = f"no role mapped from the {config.role_claim} claim"
            return _refuse(cur, OidcOutcome.NO_ROLE, config.name, username, reason, method)
        granted = role or Role(user["role"])
        if granted.value != user["role"]:
            problem = _role_change_problem(cur, user, granted)
            if problem:
                return _refuse(cur, OidcOutcome.CONFLICT, config.name, username, problem, method)
            store.set_role(cur, username, granted.value)
            audit.record(
                cur,
                Actor(username, granted),
                "user.role",
                "user",
                username,
                {"role": user["role"]},
                {"role": granted.value, "by": method},
            )
        if linked:
            sso_store.touch_identity(cur, config.name, subject, email)
        else:
            sso_store.link_identity(cur, config.name, subject, username, email)
        audit.record(
            cur,
            Actor(username, granted),
            "user.sign_in",
            "user",
            username,
            None,
            {"method": method, "subject": subject, "role": granted.value},
        )
        return OidcSignIn(OidcOutcome.SIGNED_IN, config.name, username, granted, created=created)

    return ctx.db.write(write)
