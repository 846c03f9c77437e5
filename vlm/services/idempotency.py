"""Idempotency keys for REST API writes: a retried request replays its first response.

A write that carries an `Idempotency-Key` first claims the key for its user (in its own short
transaction, under the one write lock, so two concurrent retries cannot both claim it). The
request then runs; its response is stored under the key. A later request with the same key
and user gets that stored response back and runs nothing: a retried POST never allocates twice.
The same key with another request (method, path, query or body) is refused, and so is a retry
that arrives while the first request is still running. A request that failed with a server
error releases its claim, so it can be retried with the same key. Keys are kept for a day.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from vlm.context import ServiceContext
from vlm.domain import Actor, Conflict, ValidationError
from vlm.store import tokens as store

KEY_MAX_LENGTH = 255
KEY_FIELD = "Idempotency-Key"
KEPT_FOR = timedelta(days=1)
_KEY_TEXT = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class StoredResponse:
    """A response kept for replay."""

    status: int
    content_type: str
    body: str


def validate_key(value: object) -> str:
    """An idempotency key: 1 to 255 printable ASCII characters without spaces."""
    if not isinstance(value, str) or not value or len(value) > KEY_MAX_LENGTH:
        raise ValidationError(
            f"{KEY_FIELD} must be 1 to {KEY_MAX_LENGTH} characters", field=KEY_FIELD
        )
    if not _KEY_TEXT.match(value):
        raise ValidationError(
            f"{KEY_FIELD} may hold printable ASCII characters only, without spaces",
            field=KEY_FIELD,
        )
    return value


def request_fingerprint(*parts: bytes | str) -> str:
    """A digest of what makes two requests the same (method, path, query, canonical body)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def begin(
    ctx: ServiceContext, actor: Actor, key: object, fingerprint: str
) -> StoredResponse | None:
    """Claim a key for a request: None when this request should run now, or the stored
    response of the same earlier request to replay."""
    key = validate_key(key)
    now = datetime.now()

    def write(cur) -> StoredResponse | None:
        store.forget_requests_before(cur, now - KEPT_FOR)
        earlier = store.claimed_request(cur, actor.username, key)
        if earlier is None:
            store.claim_request(cur, actor.username, key, fingerprint)
            return None
        if earlier["request_hash"] != fingerprint:
            raise ValidationError(
                f"this {KEY_FIELD} was used for another request; use a new key for a new request",
                field=KEY_FIELD,
            )
        if earlier["status"] is None:
            raise Conflict(
                f"a request with this {KEY_FIELD} is still running; retry in a moment",
                field=KEY_FIELD,
            )
        return StoredResponse(earlier["status"], earlier["content_type"], earlier["body"])

    return ctx.db.write(write)


def finish(ctx: ServiceContext, actor: Actor, key: str, response: StoredResponse) -> None:
    """Keep the response of a claimed request for replay."""
    ctx.db.write(
        lambda cur: store.record_response(
            cur, actor.username, key, response.status, response.content_type, response.body
        )
    )


def abandon(ctx: ServiceContext, actor: Actor, key: str) -> None:
    """Release the claim of a request that failed without a response worth replaying."""
    ctx.db.write(lambda cur: store.release_claim(cur, actor.username, key))
