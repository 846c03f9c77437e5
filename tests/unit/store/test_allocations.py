"""The allocation queries and writes on a real, migrated in-memory DuckDB (pool_estate.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import pytest

from tests.unit.store.pool_estate import seed
from vlm.store import Database, access
from vlm.store import allocations as store


@pytest.fixture
def db(fresh_db) -> Iterator[Database]:
    database = seed(fresh_db)
    yield database
    database.close()


def in_write(db: Database, fn, *args, **kwargs):
    return db.write(lambda cur: fn(cur, *args, **kwargs))


def stored(db: Database, allocation_id: int) -> dict:
    return db.query_dicts(
        """SELECT count, description, state, attempts, next_attempt_at, last_error
        FROM allocations WHERE id = ?""",
        [allocation_id],
    )[0]


def new_row(host_id: str, count: int, server_feature_id: int = 2) -> dict:
    return {
        "id": -1,
        "server_feature_id": server_feature_id,
        "feature_name": "cad",
        "feature_version": "1.0",
        "host_type": "USER",
        "host_id": host_id,
        "count": count,
        "description": f"for {host_id}",
        "state": "pending",
        "created_by": "bob",
    }


def test_ledger_portions_give_every_pools_pooled_quantity_and_the_servers_figures(
    db: Database,
) -> None:
    rows = sorted(in_write(db, store.ledger_portions, 1))
    assert rows == [
        (1, 1, "s1", "cad", "1.0", 5, 9, 10, 0),
        (2, 2, "s2", "cad", "1.0", 3, 3, 6, 0),
        (3, 1, "s1", "cam", "2.0", 2, 2, 4, 1),
    ]
    assert in_write(db, store.ledger_portions, 99) == []


def test_live_allocations_leave_removing_rows_out(db: Database) -> None:
    rows = in_write(db, store.live_allocations, 1)
    assert [(r["id"], r["host_id"], r["count"], r["state"]) for r in rows] == [
        (1, "h1", 2, "applied"),
        (2, "h2", 1, "failed"),
        (4, "h1", 2, "pending"),
    ]
    assert set(rows[0]) == {
        "id",
        "server_feature_id",
        "feature_name",
        "feature_version",
        "host_type",
        "host_id",
        "count",
        "description",
        "state",
        "starts_on",
        "ends_on",
        "created_on",
    }


def test_insert_allocations_returns_new_ids_in_the_rows_order(db: Database) -> None:
    ids = in_write(db, store.insert_allocations, 1, [new_row("n1", 1), new_row("n2", 2, 1)])
    assert len(ids) == 2 and min(ids) > 5
    found = db.query(
        """SELECT id, pool_id, server_feature_id, host_id, count, description, state, created_by
        FROM allocations WHERE id IN (?, ?) ORDER BY id""",
        ids,
    )
    assert found == sorted(
        [
            (ids[0], 1, 2, "n1", 1, "for n1", "pending", "bob"),
            (ids[1], 1, 1, "n2", 2, "for n2", "pending", "bob"),
        ]
    )
    assert in_write(db, store.insert_allocations, 1, []) == []
    dated = {**new_row("n3", 1), "starts_on": date(2027, 1, 4), "ends_on": date(2027, 3, 31)}
    [dated_id] = in_write(db, store.insert_allocations, 1, [dated])
    days = db.query("SELECT starts_on, ends_on FROM allocations WHERE id = ?", [dated_id])
    assert days == [(date(2027, 1, 4), date(2027, 3, 31))]


def test_update_allocation_sets_columns_and_resets_retries_on_request(db: Database) -> None:
    db.write(
        lambda cur: cur.execute(
            """UPDATE allocations SET attempts = 3, next_attempt_at = current_timestamp,
            last_error = 'refused' WHERE id IN (1, 2)"""
        )
    )
    in_write(db, store.update_allocation, 1, {"description": "kept"})
    one = stored(db, 1)
    assert (one["description"], one["attempts"], one["last_error"]) == ("kept", 3, "refused")
    in_write(db, store.update_allocation, 2, {"count": 4, "state": "pending"}, reset_attempts=True)
    two = stored(db, 2)
    assert (two["count"], two["state"], two["attempts"]) == (4, "pending", 0)
    assert two["next_attempt_at"] is None and two["last_error"] is None


def test_update_allocation_refuses_a_column_it_does_not_set(db: Database) -> None:
    with pytest.raises(ValueError, match="pool_id"):
        in_write(db, store.update_allocation, 1, {"pool_id": 2})
    assert db.scalar("""SELECT pool_id FROM allocations WHERE id = 1""") == 1


def test_delete_and_mark_removing_touch_only_the_given_ids(db: Database) -> None:
    in_write(db, store.delete_allocations, {2})
    in_write(db, store.mark_removing, {1, 4})
    in_write(db, store.delete_allocations, set())
    in_write(db, store.mark_removing, [])
    states = db.query("""SELECT id, state FROM allocations ORDER BY id""")
    assert states == [(1, "removing"), (3, "removing"), (4, "removing"), (5, "applied")]


def test_pool_allocations_by_feature_and_with_removing_rows(db: Database) -> None:
    every = store.pool_allocations(db, 1)
    assert every["id"].tolist() == [1, 2, 4]
    assert every.loc[0, ["pool_name", "server_name", "host_id"]].tolist() == ["p1", "s1", "h1"]
    assert store.pool_allocations(db, 1, ("cad", "1.0"))["id"].tolist() == [1, 2]
    assert store.pool_allocations(db, 1, ("cad", "2.0")).empty
    assert store.pool_allocations(db, 1, include_removing=True)["id"].tolist() == [1, 2, 3, 4]
    with_removing = store.pool_allocations(db, 1, ("cad", "1.0"), include_removing=True)
    assert with_removing["id"].tolist() == [1, 2, 3]


def test_allocation_states_only_of_pools_in_scope(db: Database) -> None:
    frame = store.allocation_states(db, [5, 2, 3], access.every_pool())
    assert sorted(frame.itertuples(index=False, name=None)) == [
        (2, "failed", None),
        (3, "removing", None),
        (5, "applied", None),
    ]
    bobs = store.allocation_states(db, [5, 2], access.managed_by("p", "bob"))
    assert bobs["id"].tolist() == [2]
    assert store.allocation_states(db, [99], access.every_pool()).empty


def test_visible_allocations_sql_lists_live_rows_of_pools_in_scope(db: Database) -> None:
    frame = db.query_df(*store.visible_allocations_sql(access.every_pool()))
    assert frame["id"].tolist() == [1, 2, 4, 5]
    assert frame.columns[0] == "vlm_name" and set(frame["vlm_name"]) == {"v1"}
    carol = db.query_df(*store.visible_allocations_sql(access.managed_by("p", "carol")))
    assert carol["id"].tolist() == [5]
