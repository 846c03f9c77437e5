"""The users and login_failures queries on a real, migrated in-memory DuckDB."""

from __future__ import annotations

import pytest

from vlm.store import Database
from vlm.store import users as store


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    yield database
    database.close()


def add(db: Database, username: str, role: str, *, disabled: bool = False) -> None:
    def write(cur):
        store.insert_user(
            cur,
            username,
            display_name=username.title(),
            email=f"{username}@example.com",
            role=role,
            password_hash=f"hash-{username}",
            must_change_password=role == "manager",
        )
        if disabled:
            store.set_disabled(cur, username, True)

    db.write(write)


@pytest.fixture
def people(db: Database) -> Database:
    """ada (admin), bob and cy (managers, cy disabled), dot (analyst); bob manages two pools."""
    add(db, "ada", "admin")
    add(db, "bob", "manager")
    add(db, "cy", "manager", disabled=True)
    add(db, "dot", "analyst")
    db.write(
        lambda cur: cur.execute(
            """INSERT INTO pools (vlm_id, name, manager, created_by)
            VALUES (1, 'p1', 'bob', 'ada'), (1, 'p2', 'bob', 'ada')"""
        )
    )
    return db


def test_a_profile_is_read_alike_inside_and_outside_a_write(people):
    expected = {
        "username": "bob",
        "display_name": "Bob",
        "email": "bob@example.com",
        "role": "manager",
        "disabled": False,
        "must_change_password": True,
    }
    assert store.user_profile(people, "bob") == expected
    assert people.write(lambda cur: store.user_for_update(cur, "bob")) == expected
    assert store.user_profile(people, "nobody") is None
    assert people.write(lambda cur: store.user_for_update(cur, "nobody")) is None


def test_existence_admin_count_and_managed_pools(people):
    def read(cur):
        return (
            store.user_exists(cur, "dot"),
            store.user_exists(cur, "eve"),
            store.active_admin_count(cur),
            store.managed_pool_count(cur, "bob"),
            store.managed_pool_count(cur, "cy"),
        )

    assert people.write(read) == (True, False, 1, 2, 0)
    add(people, "eve", "admin")
    add(people, "fay", "admin", disabled=True)
    assert people.write(store.active_admin_count) == 2


def test_role_disabled_and_password_changes_are_stored(people):
    def change(cur):
        store.set_role(cur, "dot", "manager")
        store.set_disabled(cur, "bob", True)
        store.set_password_hash(cur, "ada", "new-hash", must_change=True)
        store.set_password_hash(cur, "bob", "bob-new", must_change=False)

    people.write(change)
    rows = people.query(
        """SELECT username, role, disabled, password_hash, must_change_password
        FROM users ORDER BY username"""
    )
    assert rows == [
        ("ada", "admin", False, "new-hash", True),
        ("bob", "manager", True, "bob-new", False),
        ("cy", "manager", True, "hash-cy", True),
        ("dot", "manager", False, "hash-dot", False),
    ]


def test_password_hashes_and_accounts(people):
    assert store.enabled_password_hash(people, "bob") == "hash-bob"
    assert store.enabled_password_hash(people, "cy") is None
    assert store.enabled_password_hash(people, "nobody") is None
    assert store.stored_account(people, "cy") == ("hash-cy", True)
    assert store.stored_account(people, "dot") == ("hash-dot", False)
    assert store.stored_account(people, "nobody") is None


def test_lists_of_users(people):
    frame = store.users_with_pool_counts(people)
    assert frame["username"].tolist() == ["ada", "bob", "cy", "dot"]
    assert frame["pools"].tolist() == [0, 2, 0, 0]
    assert "password_hash" not in frame.columns
    assert store.enabled_managers(people) == ["bob"]
    assert store.enabled_credentials(people) == [
        ("ada", "Ada", "ada@example.com", "admin", "hash-ada"),
        ("bob", "Bob", "bob@example.com", "manager", "hash-bob"),
        ("dot", "Dot", "dot@example.com", "analyst", "hash-dot"),
    ]
    assert store.user_count(people) == 4


def test_no_users_counts_zero(db):
    assert store.user_count(db) == 0
    assert store.enabled_managers(db) == []


def test_failed_attempts_are_counted_expired_and_cleared(db):
    def count(cur):
        return store.failed_attempt_count(cur, "bob")

    assert db.write(count) == 0
    db.write(lambda cur: store.store_failed_attempts(cur, "bob", 1, 100.0))
    db.write(lambda cur: store.store_failed_attempts(cur, "bob", 2, 160.0))
    db.write(lambda cur: store.store_failed_attempts(cur, "eve", 1, 50.0))
    assert db.write(count) == 2
    assert sorted(store.failures_since(db, 100.0)) == [("bob", 2)]
    assert sorted(store.failures_since(db, 0.0)) == [("bob", 2), ("eve", 1)]
    db.write(lambda cur: store.forget_failures_before(cur, 160.0))
    assert store.failures_since(db, 0.0) == [("bob", 2)]
    db.write(lambda cur: store.clear_failures(cur, "bob"))
    assert store.failures_since(db, 0.0) == []
