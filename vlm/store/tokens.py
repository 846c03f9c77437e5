"""The api_tokens and idempotency_keys tables: personal API tokens (hashes only) and the stored
responses that let a retried REST API write replay instead of running twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from vlm.store.database import Database

TOKEN_COLUMNS = """
t.id, t.username, t.name, t.hint, t.read_only, t.created_at, t.expires_at, t.last_used_at,
t.revoked_at, t.revoked_by
"""


def _dicts(result: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def insert_token(
    cur: duckdb.DuckDBPyConnection,
    username: str,
    name: str,
    token_hash: str,
    hint: str,
    *,
    read_only: bool,
    expires_at: datetime | None,
) -> int:
    """Store a new token's hash; returns its id."""
    return cur.execute(
        """INSERT INTO api_tokens (username, name, token_hash, hint, read_only, expires_at)
        VALUES (?, ?, ?, ?, ?, ?) RETURNING id""",
        [username, name, token_hash, hint, read_only, expires_at],
    ).fetchone()[0]


def token_holder(db: Database, token_hash: str) -> dict[str, Any] | None:
    """The token with this hash and its user as stored now (role, disabled), or None.

    A token whose user row is gone comes back with role and disabled None."""
    rows = db.query_dicts(
        f"""SELECT {TOKEN_COLUMNS}, u.role, u.disabled
        FROM api_tokens t LEFT JOIN users u ON u.username = t.username
        WHERE t.token_hash = ?""",
        [token_hash],
    )
    return rows[0] if rows else None


def tokens_of_user(db: Database, username: str) -> list[dict[str, Any]]:
    """A user's tokens, newest first, revoked ones included."""
    return db.query_dicts(
        f"""SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.username = ? ORDER BY t.id DESC""",
        [username],
    )


def all_tokens(db: Database) -> list[dict[str, Any]]:
    """Every user's tokens, newest first, revoked ones included."""
    return db.query_dicts(f"""SELECT {TOKEN_COLUMNS} FROM api_tokens t ORDER BY t.id DESC""")


def token_for_update(cur: duckdb.DuckDBPyConnection, token_id: int) -> dict[str, Any] | None:
    """Inside a write: one token row by id, or None."""
    rows = _dicts(
        cur.execute(f"""SELECT {TOKEN_COLUMNS} FROM api_tokens t WHERE t.id = ?""", [token_id])
    )
    return rows[0] if rows else None


def mark_revoked(cur: duckdb.DuckDBPyConnection, token_id: int, revoked_by: str) -> None:
    """Revoke a token now (a revoked token keeps its row, so its history stays readable)."""
    cur.execute(
        """UPDATE api_tokens SET revoked_at = current_timestamp, revoked_by = ?
        WHERE id = ? AND revoked_at IS NULL""",
        [revoked_by, token_id],
    )


def mark_used(cur: duckdb.DuckDBPyConnection, token_id: int, used_at: datetime) -> None:
    """Record when a token was last used."""
    cur.execute("""UPDATE api_tokens SET last_used_at = ? WHERE id = ?""", [used_at, token_id])


def claimed_request(
    cur: duckdb.DuckDBPyConnection, username: str, key: str
) -> dict[str, Any] | None:
    """Inside a write: the request a user sent earlier with this idempotency key, or None."""
    rows = _dicts(
        cur.execute(
            """SELECT request_hash, status, content_type, body, created_at FROM idempotency_keys
            WHERE username = ? AND idempotency_key = ?""",
            [username, key],
        )
    )
    return rows[0] if rows else None


def claim_request(
    cur: duckdb.DuckDBPyConnection, username: str, key: str, request_hash: str
) -> None:
    """Record that a request with this key has started (status NULL until it finishes)."""
    cur.execute(
        """INSERT INTO idempotency_keys (username, idempotency_key, request_hash)
        VALUES (?, ?, ?)""",
        [username, key, request_hash],
    )


def record_response(
    cur: duckdb.DuckDBPyConnection,
    username: str,
    key: str,
    status: int,
    content_type: str,
    body: str,
) -> None:
    """Store the response a claimed request produced, to replay it on a retry."""
    cur.execute(
        """UPDATE idempotency_keys SET status = ?, content_type = ?, body = ?
        WHERE username = ? AND idempotency_key = ?""",
        [status, content_type, body, username, key],
    )


def release_claim(cur: duckdb.DuckDBPyConnection, username: str, key: str) -> None:
    """Forget a claim whose request failed without a response worth replaying."""
    cur.execute(
        """DELETE FROM idempotency_keys WHERE username = ? AND idempotency_key = ?""",
        [username, key],
    )


def forget_requests_before(cur: duckdb.DuckDBPyConnection, cutoff: datetime) -> int:
    """Delete idempotency keys created before cutoff; returns how many went."""
    gone = cur.execute(
        """DELETE FROM idempotency_keys WHERE created_at < ? RETURNING 1""", [cutoff]
    ).fetchall()
    return len(gone)
