"""The api_tokens and idempotency_keys queries on a real, migrated in-memory DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest

from vlm.store import Database, users
from vlm.store import tokens as store


@pytest.fixture
def db(fresh_db) -> Iterator[Database]:
    database = fresh_db
    yield database
    database.close()


def _user(db: Database, username: str, role: str = "manager") -> None:
    db.write(
        lambda cur: users.insert_user(
            cur,
            username,
            display_name=username,
            email="",
            role=role,
            password_hash="x",
            must_change_password=False,
        )
    )


def _token(db: Database, username: str, name: str, **kw: object) -> int:
    options = {"read_only": False, "expires_at": None, **kw}
    return db.write(
        lambda cur: store.insert_token(
            cur, username, name, f"hash-{name}", f"vlm_{name[:4]}", **options
        )
    )


def test_a_token_is_found_by_its_hash_with_its_users_current_role(db: Database) -> None:
    _user(db, "mia")
    expiry = datetime(2030, 1, 2, 3, 4, 5)
    token_id = _token(db, "mia", "ci", read_only=True, expires_at=expiry)

    held = store.token_holder(db, "hash-ci")

    assert held is not None
    assert (held["id"], held["username"], held["name"], held["hint"]) == (
        token_id,
        "mia",
        "ci",
        "vlm_ci",
    )
    assert (held["read_only"], held["expires_at"], held["role"], held["disabled"]) == (
        True,
        expiry,
        "manager",
        False,
    )
    assert held["last_used_at"] is None and held["revoked_at"] is None
    assert "token_hash" not in held
    assert store.token_holder(db, "hash-other") is None


def test_a_token_of_a_user_who_is_gone_has_no_role(db: Database) -> None:
    _token(db, "ghost", "orphan")
    held = store.token_holder(db, "hash-orphan")
    assert held is not None and held["role"] is None and held["disabled"] is None


def test_tokens_are_listed_per_user_and_for_everyone_newest_first(db: Database) -> None:
    _user(db, "mia")
    _user(db, "max")
    first = _token(db, "mia", "one")
    other = _token(db, "max", "two")
    second = _token(db, "mia", "three")

    assert [t["id"] for t in store.tokens_of_user(db, "mia")] == [second, first]
    assert [t["id"] for t in store.all_tokens(db)] == [second, other, first]
    assert store.tokens_of_user(db, "nobody") == []


def test_revoking_records_who_and_only_once(db: Database) -> None:
    _user(db, "mia")
    token_id = _token(db, "mia", "gone")

    db.write(lambda cur: store.mark_revoked(cur, token_id, "admin"))
    revoked = db.write(lambda cur: store.token_for_update(cur, token_id))
    db.write(lambda cur: store.mark_revoked(cur, token_id, "someone-else"))

    again = db.write(lambda cur: store.token_for_update(cur, token_id))
    assert revoked is not None and revoked["revoked_at"] is not None
    assert again == revoked and again["revoked_by"] == "admin"
    assert db.write(lambda cur: store.token_for_update(cur, 999)) is None


def test_use_is_recorded(db: Database) -> None:
    _user(db, "mia")
    token_id = _token(db, "mia", "used")
    moment = datetime(2026, 5, 6, 7, 8, 9)

    db.write(lambda cur: store.mark_used(cur, token_id, moment))

    assert store.token_holder(db, "hash-used")["last_used_at"] == moment


def test_a_claimed_request_is_answered_then_replayed(db: Database) -> None:
    assert db.write(lambda cur: store.claimed_request(cur, "mia", "k1")) is None

    db.write(lambda cur: store.claim_request(cur, "mia", "k1", "fingerprint"))
    claimed = db.write(lambda cur: store.claimed_request(cur, "mia", "k1"))
    db.write(lambda cur: store.record_response(cur, "mia", "k1", 201, "application/json", "{}"))
    answered = db.write(lambda cur: store.claimed_request(cur, "mia", "k1"))

    assert claimed is not None and claimed["status"] is None
    assert claimed["request_hash"] == "fingerprint"
    assert (answered["status"], answered["content_type"], answered["body"]) == (
        201,
        "application/json",
        "{}",
    )
    assert db.write(lambda cur: store.claimed_request(cur, "max", "k1")) is None


def test_a_released_claim_can_be_claimed_again(db: Database) -> None:
    db.write(lambda cur: store.claim_request(cur, "mia", "k2", "first"))
    db.write(lambda cur: store.release_claim(cur, "mia", "k2"))
    db.write(lambda cur: store.claim_request(cur, "mia", "k2", "second"))
    assert db.write(lambda cur: store.claimed_request(cur, "mia", "k2"))["request_hash"] == "second"


def test_old_keys_are_forgotten_and_a_key_can_be_reused_in_the_same_write(db: Database) -> None:
    db.write(lambda cur: store.claim_request(cur, "mia", "old", "a"))
    db.write(lambda cur: store.claim_request(cur, "mia", "new", "b"))
    cutoff = datetime.now() + timedelta(seconds=1)
    db.write(
        lambda cur: cur.execute(
            """UPDATE idempotency_keys SET created_at = ? WHERE idempotency_key = 'old'""",
            [cutoff - timedelta(days=2)],
        )
    )

    def forget_and_reclaim(cur) -> int:
        gone = store.forget_requests_before(cur, cutoff - timedelta(days=1))
        store.claim_request(cur, "mia", "old", "c")
        return gone

    assert db.write(forget_and_reclaim) == 1
    assert db.write(lambda cur: store.claimed_request(cur, "mia", "old"))["request_hash"] == "c"
    assert db.write(lambda cur: store.claimed_request(cur, "mia", "new")) is not None
