"""Personal API tokens: create (the token is shown once), list, revoke, and authenticate one.

A token is `vlm_` plus 32 random bytes (URL-safe base64). Only its SHA-256 hash is stored: a
random 32-byte secret needs no slow hash, and a lookup by hash leaks nothing through timing.
A token acts as its user with the user's role as stored at each request, so disabling the user
stops it at once and a demoted admin's tokens lose admin rights at once. A read-only token is
refused on every write (`require_writable`), whatever its user's role.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import (
    DAYS_MAX,
    Actor,
    Conflict,
    NotFound,
    PermissionDenied,
    Role,
    ValidationError,
    VlmError,
    record_id,
    validate_flag,
    validate_name,
)
from vlm.services import audit
from vlm.services.permissions import require_active_user_in, require_admin
from vlm.store import tokens as store

TOKEN_PREFIX = "vlm_"
TOKEN_BYTES = 32
TOKEN_MAX_LENGTH = 200
HINT_LENGTH = len(TOKEN_PREFIX) + 4
LAST_USED_RESOLUTION = timedelta(minutes=1)
TOKEN_COLUMNS = [
    "id",
    "username",
    "name",
    "hint",
    "read_only",
    "status",
    "created_at",
    "expires_at",
    "last_used_at",
    "revoked_at",
    "revoked_by",
]
ACTIVE, EXPIRED, REVOKED = "active", "expired", "revoked"


class InvalidToken(VlmError):
    """The bearer token is missing, unknown, revoked or expired, or its user may not act."""


@dataclass(frozen=True)
class TokenActor(Actor):
    """A user acting through an API token: their current role, and whether the token may write."""

    token_id: int = 0
    read_only: bool = False


@dataclass(frozen=True)
class NewToken:
    """A token just created: the only time its text exists outside the client."""

    id: int
    name: str
    token: str = field(repr=False)
    read_only: bool = False
    expires_at: datetime | None = None


def hash_token(token: str) -> str:
    """The SHA-256 hex digest stored for a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def _new_token_text() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def _expiry(value: object, now: datetime) -> datetime | None:
    """When a new token stops working (server-local time): None, a datetime, or a date (the
    token then works through that whole day)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        moment = value.astimezone().replace(tzinfo=None) if value.tzinfo else value
    elif isinstance(value, date):
        moment = datetime.combine(value + timedelta(days=1), time.min)
    else:
        raise ValidationError("expiry must be a date or a time", field="expires_at")
    if moment <= now:
        raise ValidationError("expiry must be in the future", field="expires_at")
    if moment > now + timedelta(days=DAYS_MAX):
        raise ValidationError(f"expiry must be within {DAYS_MAX:,} days", field="expires_at")
    return moment


def require_writable(actor: Actor) -> None:
    """Refuse a change made through a read-only token."""
    if getattr(actor, "read_only", False):
        raise PermissionDenied(
            "this API token is read-only; create a token without 'read-only' to make changes"
        )


def create_token(
    ctx: ServiceContext,
    actor: Actor,
    name: object,
    *,
    read_only: object = False,
    expires_at: object = None,
) -> NewToken:
    """Create a token for the acting user; its text is returned now and never again."""
    require_writable(actor)
    name = validate_name(name, "token name")
    read_only = validate_flag(read_only, "read_only")
    expires = _expiry(expires_at, datetime.now())
    token = _new_token_text()

    def write(cur) -> int:
        require_active_user_in(cur, actor)
        token_id = store.insert_token(
            cur,
            actor.username,
            name,
            hash_token(token),
            token[:HINT_LENGTH],
            read_only=read_only,
            expires_at=expires,
        )
        after = {
            "name": name,
            "user": actor.username,
            "read_only": read_only,
            "expires_at": expires,
        }
        audit.record(cur, actor, "token.create", "api_token", token_id, None, after)
        return token_id

    token_id = ctx.db.write(write)
    return NewToken(token_id, name, token, read_only, expires)


def _status(row: dict, now: datetime) -> str:
    if row["revoked_at"] is not None:
        return REVOKED
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return EXPIRED
    return ACTIVE


def _frame(rows: list[dict]) -> pd.DataFrame:
    now = datetime.now()
    return pd.DataFrame(
        [{**row, "status": _status(row, now)} for row in rows], columns=TOKEN_COLUMNS
    )


def list_own_tokens(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """The acting user's tokens, newest first, with their status (never their text or hash)."""
    return _frame(store.tokens_of_user(ctx.db, actor.username))


def list_all_tokens(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Every user's tokens, newest first (admins)."""
    require_admin(actor)
    return _frame(store.all_tokens(ctx.db))


def revoke_token(ctx: ServiceContext, actor: Actor, token_id: object) -> None:
    """Revoke one of one's own tokens; an admin may revoke anyone's."""
    require_writable(actor)
    token_id = record_id(token_id, "token")

    def write(cur) -> None:
        role = require_active_user_in(cur, actor)
        row = store.token_for_update(cur, token_id)
        if row is None or (row["username"] != actor.username and role is not Role.ADMIN):
            raise NotFound(f"token {token_id} does not exist", field="token")
        if row["revoked_at"] is not None:
            raise Conflict(f"token '{row['name']}' is revoked already", field="token")
        store.mark_revoked(cur, token_id, actor.username)
        before = {"name": row["name"], "user": row["username"], "read_only": row["read_only"]}
        audit.record(cur, actor, "token.revoke", "api_token", token_id, before, None)

    ctx.db.write(write)


def _holder(ctx: ServiceContext, token: object) -> dict:
    """The stored token and its user for a presented token text, or InvalidToken."""
    if (
        not isinstance(token, str)
        or not token.startswith(TOKEN_PREFIX)
        or len(token) > TOKEN_MAX_LENGTH
    ):
        raise InvalidToken("give a VLM API token: Authorization: Bearer vlm_…")
    row = store.token_holder(ctx.db, hash_token(token))
    if row is None:
        raise InvalidToken("the API token is not known")
    return row


def authenticate(ctx: ServiceContext, token: object) -> TokenActor:
    """The user a bearer token acts for, with their role as stored now; InvalidToken when the
    token is unknown, revoked or expired, or its user is disabled or gone."""
    row = _holder(ctx, token)
    now = datetime.now()
    status = _status(row, now)
    if status != ACTIVE:
        raise InvalidToken(f"the API token is {status}")
    if row["role"] is None or row["disabled"]:
        raise InvalidToken("the API token's user is disabled or no longer exists")
    last_used = row["last_used_at"]
    if last_used is None or now - last_used >= LAST_USED_RESOLUTION:
        ctx.db.write(lambda cur: store.mark_used(cur, row["id"], now))
    return TokenActor(
        row["username"], Role(row["role"]), token_id=row["id"], read_only=bool(row["read_only"])
    )
