"""The users and login_failures tables: accounts, roles, password hashes and the lockout count."""

from __future__ import annotations

from typing import Any

import duckdb
import pandas as pd

from vlm.store.database import Database

USER_PROFILE = """
SELECT username, display_name, email, role, disabled, must_change_password
FROM users WHERE username = ?
"""


def user_for_update(cur: duckdb.DuckDBPyConnection, username: str) -> dict[str, Any] | None:
    """Inside a write: a user's stored profile (no hash), or None."""
    result = cur.execute(USER_PROFILE, [username])
    names = [d[0] for d in result.description]
    row = result.fetchone()
    return None if row is None else dict(zip(names, row, strict=True))


def user_profile(db: Database, username: str) -> dict[str, Any] | None:
    """A user's stored profile (no hash), or None."""
    rows = db.query_dicts(USER_PROFILE, [username])
    return rows[0] if rows else None


def user_exists(cur: duckdb.DuckDBPyConnection, username: str) -> bool:
    return (
        cur.execute("""SELECT 1 FROM users WHERE username = ?""", [username]).fetchone() is not None
    )


def active_admin_count(cur: duckdb.DuckDBPyConnection) -> int:
    """How many enabled admins there are."""
    return cur.execute(
        """SELECT COUNT(*) FROM users WHERE role = 'admin' AND NOT disabled"""
    ).fetchone()[0]


def managed_pool_count(cur: duckdb.DuckDBPyConnection, username: str) -> int:
    """How many pools a user manages."""
    return cur.execute("""SELECT COUNT(*) FROM pools WHERE manager = ?""", [username]).fetchone()[0]


def insert_user(
    cur: duckdb.DuckDBPyConnection,
    username: str,
    *,
    display_name: str,
    email: str,
    role: str,
    password_hash: str,
    must_change_password: bool,
) -> None:
    cur.execute(
        """INSERT INTO users (username, display_name, email, role, password_hash,
        must_change_password) VALUES (?, ?, ?, ?, ?, ?)""",
        [username, display_name, email, role, password_hash, must_change_password],
    )


def set_role(cur: duckdb.DuckDBPyConnection, username: str, role: str) -> None:
    cur.execute(
        """UPDATE users SET role = ?, updated_at = current_timestamp WHERE username = ?""",
        [role, username],
    )


def set_disabled(cur: duckdb.DuckDBPyConnection, username: str, disabled: bool) -> None:
    cur.execute(
        """UPDATE users SET disabled = ?, updated_at = current_timestamp WHERE username = ?""",
        [disabled, username],
    )


def set_password_hash(
    cur: duckdb.DuckDBPyConnection, username: str, password_hash: str, *, must_change: bool
) -> None:
    """Store a new password hash, and whether it must be changed at the next sign-in."""
    cur.execute(
        """UPDATE users SET password_hash = ?, must_change_password = ?,
        updated_at = current_timestamp WHERE username = ?""",
        [password_hash, must_change, username],
    )


def enabled_password_hash(db: Database, username: str) -> str | None:
    """The password hash of an enabled user, or None (unknown or disabled)."""
    return db.scalar(
        """SELECT password_hash FROM users WHERE username = ? AND NOT disabled""", [username]
    )


def stored_account(db: Database, username: str) -> tuple[str, bool] | None:
    """(password hash, disabled) of a user, or None when there is no such user."""
    rows = db.query("""SELECT password_hash, disabled FROM users WHERE username = ?""", [username])
    return (str(rows[0][0]), bool(rows[0][1])) if rows else None


def users_with_pool_counts(db: Database) -> pd.DataFrame:
    """Every user (no hash) with how many pools each manages, by user name."""
    return db.query_df(
        """
        SELECT u.username, u.display_name, u.email, u.role, u.disabled, u.must_change_password,
            COALESCE(u.break_glass, FALSE) AS break_glass,
            (SELECT COUNT(*) FROM pools p WHERE p.manager = u.username)::INTEGER AS pools,
            u.created_at, u.updated_at
        FROM users u ORDER BY u.username
        """
    )


def enabled_managers(db: Database) -> list[str]:
    """User names of the enabled managers, sorted."""
    rows = db.query(
        """SELECT username FROM users WHERE role = 'manager' AND NOT disabled ORDER BY 1"""
    )
    return [r[0] for r in rows]


def enabled_credentials(db: Database) -> list[tuple[str, str, str, str, str]]:
    """(username, display name, e-mail, role, password hash) of every enabled user."""
    return db.query(
        """SELECT username, display_name, email, role, password_hash FROM users
        WHERE NOT disabled"""
    )


def user_count(db: Database) -> int:
    return int(db.scalar("""SELECT COUNT(*) FROM users"""))


def forget_failures_before(cur: duckdb.DuckDBPyConnection, cutoff: float) -> None:
    """Drop the failed-attempt counts whose last attempt is older than cutoff (epoch seconds)."""
    cur.execute("""DELETE FROM login_failures WHERE last_failed_at < ?""", [cutoff])


def failed_attempt_count(cur: duckdb.DuckDBPyConnection, username: str) -> int:
    """The attempts counted for a user name (0 when none are)."""
    row = cur.execute(
        """SELECT attempts FROM login_failures WHERE username = ?""", [username]
    ).fetchone()
    return int(row[0]) if row else 0


def store_failed_attempts(
    cur: duckdb.DuckDBPyConnection, username: str, attempts: int, at: float
) -> None:
    """Set a user name's attempt count and the time of its last attempt."""
    cur.execute(
        """INSERT INTO login_failures (username, attempts, last_failed_at) VALUES (?, ?, ?)
        ON CONFLICT (username) DO UPDATE SET attempts = excluded.attempts,
        last_failed_at = excluded.last_failed_at""",
        [username, attempts, at],
    )


def failures_since(db: Database, since: float) -> list[tuple[str, int]]:
    """(username, attempts) of every user name whose last attempt is at or after since."""
    return db.query(
        """SELECT username, attempts FROM login_failures WHERE last_failed_at >= ?""", [since]
    )


def clear_failures(cur: duckdb.DuckDBPyConnection, username: str) -> None:
    cur.execute("""DELETE FROM login_failures WHERE username = ?""", [username])


def notification_labels(db: Database, username: str) -> list[str]:
    """A user's own notification destinations, masked (none when there is no such user)."""
    found = db.scalar("SELECT notify_destination_labels FROM users WHERE username = ?", [username])
    return [label for label in str(found or "").split("\n") if label]


def set_notification_destinations(
    cur: duckdb.DuckDBPyConnection, username: str, sealed: str | None, labels: str
) -> None:
    cur.execute(
        """UPDATE users SET notify_destinations_encrypted = ?, notify_destination_labels = ?
        WHERE username = ?""",
        [sealed, labels, username],
    )


def notification_target(cur: duckdb.DuckDBPyConnection, username: str) -> list[str] | None:
    """Inside a write: an enabled user's masked destination labels (None: no such enabled
    user)."""
    row = cur.execute(
        "SELECT notify_destination_labels FROM users WHERE username = ? AND NOT disabled",
        [username],
    ).fetchone()
    if row is None:
        return None
    return [label for label in str(row[0] or "").split("\n") if label]
