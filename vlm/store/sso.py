"""Single sign-on tables: linked IdP identities, the local sign-in switch, per-provider settings
set on the Users page, and the break-glass flag of users."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from vlm.store.database import Database

POLICY_ID = 1


def identity_user(cur: duckdb.DuckDBPyConnection, provider: str, subject: str) -> str | None:
    """Inside a write: the VLM user an IdP subject is linked to, or None."""
    row = cur.execute(
        """SELECT username FROM user_identities WHERE provider = ? AND subject = ?""",
        [provider, subject],
    ).fetchone()
    return None if row is None else str(row[0])


def users_with_email(cur: duckdb.DuckDBPyConnection, email: str) -> list[str]:
    """Inside a write: the users whose stored e-mail is email (case-insensitive), by name."""
    rows = cur.execute(
        """SELECT username FROM users WHERE lower(email) = lower(?) AND email <> ''
        ORDER BY username""",
        [email],
    ).fetchall()
    return [str(r[0]) for r in rows]


def linked_subject(cur: duckdb.DuckDBPyConnection, provider: str, username: str) -> str | None:
    """Inside a write: the subject of provider already linked to a user, or None."""
    row = cur.execute(
        """SELECT subject FROM user_identities WHERE provider = ? AND username = ?""",
        [provider, username],
    ).fetchone()
    return None if row is None else str(row[0])


def link_identity(
    cur: duckdb.DuckDBPyConnection, provider: str, subject: str, username: str, email: str
) -> None:
    cur.execute(
        """INSERT INTO user_identities (provider, subject, username, email, last_sign_in_at)
        VALUES (?, ?, ?, ?, current_timestamp)""",
        [provider, subject, username, email],
    )


def touch_identity(cur: duckdb.DuckDBPyConnection, provider: str, subject: str, email: str) -> None:
    """Record a sign-in of a linked identity (and the e-mail the IdP gave this time)."""
    cur.execute(
        """UPDATE user_identities SET last_sign_in_at = current_timestamp, email = ?
        WHERE provider = ? AND subject = ?""",
        [email, provider, subject],
    )


def identities(db: Database) -> pd.DataFrame:
    """Every linked identity: provider, subject, username, email, linked_at, last_sign_in_at."""
    return db.query_df(
        """SELECT provider, subject, username, email, linked_at, last_sign_in_at
        FROM user_identities ORDER BY username, provider, subject"""
    )


def local_sign_in(db: Database) -> bool:
    """Whether password sign-in is on for every account (no row yet: on)."""
    value = db.scalar("""SELECT local_sign_in FROM sign_in_policy WHERE id = ?""", [POLICY_ID])
    return True if value is None else bool(value)


def local_sign_in_in(cur: duckdb.DuckDBPyConnection) -> bool:
    row = cur.execute(
        """SELECT local_sign_in FROM sign_in_policy WHERE id = ?""", [POLICY_ID]
    ).fetchone()
    return True if row is None else bool(row[0])


def set_local_sign_in(cur: duckdb.DuckDBPyConnection, enabled: bool, by: str) -> None:
    cur.execute(
        """INSERT INTO sign_in_policy (id, local_sign_in, updated_by, updated_at)
        VALUES (?, ?, ?, current_timestamp)
        ON CONFLICT (id) DO UPDATE SET local_sign_in = excluded.local_sign_in,
        updated_by = excluded.updated_by, updated_at = excluded.updated_at""",
        [POLICY_ID, enabled, by],
    )


def break_glass(db: Database, username: str) -> bool:
    return bool(
        db.scalar(
            """SELECT COALESCE(break_glass, FALSE) FROM users WHERE username = ?""", [username]
        )
    )


def break_glass_in(cur: duckdb.DuckDBPyConnection, username: str) -> bool:
    row = cur.execute(
        """SELECT COALESCE(break_glass, FALSE) FROM users WHERE username = ?""", [username]
    ).fetchone()
    return bool(row and row[0])


def set_break_glass(cur: duckdb.DuckDBPyConnection, username: str, flag: bool) -> None:
    cur.execute(
        """UPDATE users SET break_glass = ?, updated_at = current_timestamp WHERE username = ?""",
        [flag, username],
    )


def enabled_break_glass_admins(cur: duckdb.DuckDBPyConnection) -> list[str]:
    """Inside a write: the enabled admins marked break-glass, by name."""
    rows = cur.execute(
        """SELECT username FROM users WHERE role = 'admin' AND NOT disabled
        AND COALESCE(break_glass, FALSE) ORDER BY username"""
    ).fetchall()
    return [str(r[0]) for r in rows]


def provider_settings(db: Database) -> dict[str, dict[str, Any]]:
    """The per-provider settings an admin stored, by provider."""
    rows = db.query_dicts(
        """SELECT provider, auto_create, role_claim, role_map, updated_by, updated_at
        FROM sso_provider_settings ORDER BY provider"""
    )
    return {str(row["provider"]): row for row in rows}


def provider_setting_for_update(
    cur: duckdb.DuckDBPyConnection, provider: str
) -> dict[str, Any] | None:
    result = cur.execute(
        """SELECT provider, auto_create, role_claim, role_map FROM sso_provider_settings
        WHERE provider = ?""",
        [provider],
    )
    names = [d[0] for d in result.description]
    row = result.fetchone()
    return None if row is None else dict(zip(names, row, strict=True))


def store_provider_setting(
    cur: duckdb.DuckDBPyConnection,
    provider: str,
    *,
    auto_create: bool,
    role_claim: str,
    role_map: str,
    by: str,
) -> None:
    cur.execute(
        """INSERT INTO sso_provider_settings (provider, auto_create, role_claim, role_map,
        updated_by, updated_at) VALUES (?, ?, ?, ?, ?, current_timestamp)
        ON CONFLICT (provider) DO UPDATE SET auto_create = excluded.auto_create,
        role_claim = excluded.role_claim, role_map = excluded.role_map,
        updated_by = excluded.updated_by, updated_at = excluded.updated_at""",
        [provider, auto_create, role_claim, role_map, by],
    )


def delete_provider_setting(cur: duckdb.DuckDBPyConnection, provider: str) -> bool:
    found = provider_setting_for_update(cur, provider) is not None
    cur.execute("""DELETE FROM sso_provider_settings WHERE provider = ?""", [provider])
    return found
