"""The look-ups behind permission checks on a real, migrated in-memory DuckDB."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.store.pool_estate import seed
from vlm.store import Database, access


@pytest.fixture
def db(fresh_db) -> Iterator[Database]:
    database = seed(fresh_db)
    yield database
    database.close()


def test_role_and_disabled_reads_the_stored_user(db: Database) -> None:
    assert db.write(lambda cur: access.role_and_disabled(cur, "bob")) == ("manager", False)
    assert db.write(lambda cur: access.role_and_disabled(cur, "erin")) == ("manager", True)
    assert db.write(lambda cur: access.role_and_disabled(cur, "dave")) == ("analyst", False)
    assert db.write(lambda cur: access.role_and_disabled(cur, "nobody")) is None


def test_role_and_disabled_sees_a_change_made_earlier_in_the_same_write(db: Database) -> None:
    def demote_then_read(cur):
        cur.execute("""UPDATE users SET role = 'analyst', disabled = TRUE WHERE username = 'bob'""")
        return access.role_and_disabled(cur, "bob")

    assert db.write(demote_then_read) == ("analyst", True)


def test_pool_manager_names_the_manager_or_none(db: Database) -> None:
    assert access.pool_manager(db, 1) == "bob"
    assert access.pool_manager(db, 2) == "carol"
    assert access.pool_manager(db, 99) is None


def test_pool_manager_in_reads_inside_the_write(db: Database) -> None:
    def hand_over_then_read(cur):
        before = access.pool_manager_in(cur, 1)
        cur.execute("""UPDATE pools SET manager = 'carol' WHERE id = 1""")
        return before, access.pool_manager_in(cur, 1), access.pool_manager_in(cur, 99)

    assert db.write(hand_over_then_read) == ("bob", "carol", None)


def test_scopes_select_the_managers_pools_or_every_pool(db: Database) -> None:
    def pool_ids(scope: access.Scope) -> list[int]:
        where, params = scope
        return [
            r[0] for r in db.query(f"SELECT q.id FROM pools q WHERE {where} ORDER BY 1", params)
        ]

    assert access.managed_by("q", "bob") == ("q.manager = ?", ["bob"])
    assert pool_ids(access.managed_by("q", "bob")) == [1]
    assert pool_ids(access.managed_by("q", "carol")) == [2]
    assert pool_ids(access.managed_by("q", "dave")) == []
    assert pool_ids(access.every_pool()) == [1, 2]


def test_every_pool_hands_out_a_fresh_parameter_list() -> None:
    where, params = access.every_pool()
    params.append("x")
    assert access.every_pool() == ("TRUE", [])
