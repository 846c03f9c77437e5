"""The audit_log queries on a real, migrated in-memory DuckDB."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from vlm.store import Database
from vlm.store import audit as store


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    yield database
    database.close()


def stored(db: Database) -> list[tuple]:
    return db.query(
        """SELECT actor, action, target_type, target_id, before, after, pool_id, count_change
        FROM audit_log ORDER BY id"""
    )


def test_one_row_and_many_rows_are_inserted_in_order(db):
    db.write(
        lambda cur: store.insert_audit_row(
            cur, ("ada", "user.add", "user", "bob", None, "{}", None, None)
        )
    )
    rows = [
        ("bob", "pool.create", "pool", "7", None, '{"name": "cad"}', 7, None),
        ("bob", "pool.delete", "pool", "7", '{"name": "cad"}', None, 7, None),
        ("bob", "allocation.add", "allocation", "9", None, '{"pool_id": 7}', 7, 2),
    ]
    db.write(lambda cur: store.insert_audit_rows(cur, rows))
    db.write(lambda cur: store.insert_audit_rows(cur, []))
    assert stored(db) == [("ada", "user.add", "user", "bob", None, "{}", None, None), *rows]


def test_a_failed_write_leaves_no_row(db):
    def write(cur):
        store.insert_audit_rows(cur, [("ada", "vlm.create", "vlm", "1", None, None, None, None)])
        raise RuntimeError("refused later in the same write")

    with pytest.raises(RuntimeError):
        db.write(write)
    assert stored(db) == []


@pytest.fixture
def logged(db: Database) -> Database:
    rows = [
        ("ada", "user.add", "user", "bob", None, None, None, None),
        ("bob", "pool.create", "pool", "7", None, None, 7, None),
        ("ada", "vlm.create", "vlm", "3", None, None, None, None),
        ("bob", "allocation.add", "allocation", "12", None, None, 7, 1),
    ]
    db.write(lambda cur: store.insert_audit_rows(cur, rows))
    return db


def actions(frame) -> list[str]:
    return frame["action"].tolist()


def test_rows_come_newest_first_filtered(logged):
    assert actions(store.audit_rows(logged)) == [
        "allocation.add",
        "vlm.create",
        "pool.create",
        "user.add",
    ]
    assert actions(store.audit_rows(logged, actor="ada")) == ["vlm.create", "user.add"]
    assert actions(store.audit_rows(logged, action="pool.create")) == ["pool.create"]
    assert actions(store.audit_rows(logged, target="POOL")) == ["pool.create"]
    assert actions(store.audit_rows(logged, target="1")) == ["allocation.add"]
    assert actions(store.audit_rows(logged, actor="bob", action="vlm.create")) == []
    assert actions(store.audit_rows(logged, limit=2)) == ["allocation.add", "vlm.create"]


def test_rows_are_filtered_by_time(logged):
    stamp = logged.scalar("""SELECT max(happened_at) FROM audit_log""")
    assert len(store.audit_rows(logged, since=stamp, until=stamp)) == 4
    assert store.audit_rows(logged, since=stamp + timedelta(seconds=1)).empty
    assert store.audit_rows(logged, until=stamp - timedelta(seconds=1)).empty
    assert store.audit_rows(logged, until=datetime(2000, 1, 1)).empty


def test_a_target_is_a_parameter_not_sql(logged):
    assert store.audit_rows(logged, target="' OR TRUE --").empty
    assert store.audit_rows(logged, actor="x' OR '1'='1").empty


def test_action_names_are_distinct_and_sorted(db, logged):
    assert store.audit_action_names(logged) == [
        "allocation.add",
        "pool.create",
        "user.add",
        "vlm.create",
    ]
    logged.write(
        lambda cur: store.insert_audit_row(
            cur, ("x", "user.add", "user", "y", None, None, None, None)
        )
    )
    assert store.audit_action_names(logged).count("user.add") == 1
