"""The pool queries and writes on a real, migrated in-memory DuckDB (estate: pool_estate.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.store.pool_estate import seed
from vlm.store import Database, access
from vlm.store import pools as store


@pytest.fixture
def db(fresh_db) -> Iterator[Database]:
    database = seed(fresh_db)
    yield database
    database.close()


def read(db: Database, fn, *args, **kwargs):
    """Run a cursor function inside a write, as the services do."""
    return db.write(lambda cur: fn(cur, *args, **kwargs))


def test_vlm_feature_rooms_gives_poolable_room_and_deficit(db: Database) -> None:
    rows = sorted(read(db, store.vlm_feature_rooms, 1))
    # cad on s1: 10 - (5 + 4) pooled; cad on s2: 6 - 3; cam on s1: 4 - 1 outside - 2
    assert rows == [
        (1, "s1", "cad", "1.0", 1, 0),
        (2, "s2", "cad", "1.0", 3, 0),
        (3, "s1", "cam", "2.0", 1, 0),
    ]
    assert read(db, store.vlm_feature_rooms, 2) == []


def test_vlm_feature_rooms_shows_an_over_committed_feature(db: Database) -> None:
    db.write(lambda cur: cur.execute("""UPDATE server_features SET total = 7 WHERE id = 1"""))
    rooms = {r[0]: r[4:] for r in read(db, store.vlm_feature_rooms, 1)}
    assert rooms[1] == (-2, 2)


def test_portions_and_allocated_per_server_feature_leave_removing_rows_out(db: Database) -> None:
    assert read(db, store.pool_portions, 1) == {1: 5, 2: 3, 3: 2}
    assert read(db, store.allocated_per_server_feature, 1) == {1: 2, 2: 1, 3: 2}
    assert read(db, store.pool_portions, 99) == {}
    assert read(db, store.allocated_per_server_feature, 99) == {}


def test_replace_portions_writes_exactly_the_given_portions(db: Database) -> None:
    read(db, store.replace_portions, 1, {2: 6, 3: 1})
    assert read(db, store.pool_portions, 1) == {2: 6, 3: 1}
    assert read(db, store.pool_portions, 2) == {1: 4}
    read(db, store.replace_portions, 1, {})
    assert read(db, store.pool_portions, 1) == {}


def test_feature_quantities_sum_over_servers_by_name_and_version(db: Database) -> None:
    assert read(db, store.feature_quantities, 1) == [("cad", "1.0", 8), ("cam", "2.0", 2)]
    assert read(db, store.feature_quantities, 99) == []


def test_vlm_exists_and_pool_name_taken(db: Database) -> None:
    assert read(db, store.vlm_exists, 1) is True
    assert read(db, store.vlm_exists, 2) is False
    assert read(db, store.pool_name_taken, 1, "p2") is True
    assert read(db, store.pool_name_taken, 1, "p3") is False
    assert read(db, store.pool_name_taken, 2, "p1") is False
    assert read(db, store.pool_name_taken, 1, "p2", other_than=2) is False
    assert read(db, store.pool_name_taken, 1, "p2", other_than=1) is True


def test_insert_update_and_read_a_pool_row(db: Database) -> None:
    pool_id = read(db, store.insert_pool, 1, "p3", "carol", "third", "alice")
    assert pool_id not in (1, 2)
    assert read(db, store.pool_row, pool_id) == (1, "p3", "carol", "third")
    assert read(db, store.pool_name, pool_id) == "p3"
    read(db, store.update_pool, pool_id, "p4", "bob", "")
    assert read(db, store.pool_row, pool_id) == (1, "p4", "bob", "")
    assert access.pool_manager(db, pool_id) == "bob"
    assert read(db, store.pool_row, 99) is None
    assert read(db, store.pool_name, 99) is None


def test_deletion_counts_live_rows_reservations_and_hosts(db: Database) -> None:
    # live: h1 cad, h2 failed, h1 cam; reservations: applied and pending; hosts: h1@s1, h2@s2
    assert store.deletion_counts(db, 1) == (3, 2, 2)
    assert store.deletion_counts(db, 99) == (0, 0, 0)


def test_live_count_and_servers_of_allocations(db: Database) -> None:
    assert read(db, store.live_allocation_count, 1) == 3
    assert read(db, store.live_allocation_count, 2) == 1
    assert sorted(read(db, store.servers_of_allocations, 1)) == [1, 2]
    assert read(db, store.servers_of_allocations, 2) == [1]


def test_delete_pool_drops_failed_rows_and_marks_the_rest_removing(db: Database) -> None:
    read(db, store.delete_pool, 1)
    states = db.query("""SELECT id, state FROM allocations WHERE pool_id = 1 ORDER BY id""")
    assert states == [(1, "removing"), (3, "removing"), (4, "removing")]
    assert read(db, store.pool_row, 1) is None
    assert read(db, store.pool_portions, 1) == {}
    assert read(db, store.pool_portions, 2) == {1: 4}
    assert db.query("""SELECT state FROM allocations WHERE pool_id = 2""") == [("applied",)]


def test_pool_summaries_in_scope_and_by_search(db: Database) -> None:
    every = store.pool_summaries(db, access.every_pool())
    assert every["name"].tolist() == ["p1", "p2"]
    first = every.iloc[0]
    assert (first["features"], first["quantity"], first["allocated"], first["available"]) == (
        2,
        10,
        5,
        5,
    )
    assert (first["allocations"], first["failed"], bool(first["over_committed"])) == (3, 1, False)
    assert store.pool_summaries(db, access.managed_by("p", "carol"))["name"].tolist() == ["p2"]
    assert store.pool_summaries(db, access.every_pool(), "CAROL")["name"].tolist() == ["p2"]
    assert store.pool_summaries(db, access.every_pool(), "V1")["name"].tolist() == ["p1", "p2"]
    assert store.pool_summaries(db, access.managed_by("p", "bob"), "p2").empty
    assert store.pool_summaries(db, access.every_pool(), "")["name"].tolist() == ["p1", "p2"]


def test_pool_summaries_list_a_pool_without_portions(db: Database) -> None:
    read(db, store.insert_pool, 1, "empty", "bob", "", "alice")
    row = store.pool_summaries(db, access.every_pool(), "empty").iloc[0]
    assert (row["features"], row["quantity"], bool(row["over_committed"])) == (0, 0, False)


def test_pool_feature_figures_per_pool_and_scope(db: Database) -> None:
    frame = store.pool_feature_figures(db, access.every_pool())
    assert frame[["pool_name", "feature_name", "quantity", "allocated"]].values.tolist() == [
        ["p1", "cad", 8, 3],
        ["p1", "cam", 2, 2],
        ["p2", "cad", 4, 3],
    ]
    assert store.pool_feature_figures(db, access.every_pool(), 2)["pool_name"].tolist() == ["p2"]
    assert store.pool_feature_figures(db, access.managed_by("f", "carol"), 1).empty
    mine = store.pool_feature_figures(db, access.managed_by("f", "bob"))
    assert set(mine["pool_id"]) == {1}
    cad = mine.iloc[0]
    assert (cad["pending"], cad["failed"], cad["allocations"]) == (0, 1, 2)


def test_quantity_bounds_of_an_existing_and_a_new_pool(db: Database) -> None:
    bounds = store.quantity_bounds(db, 1, 1)
    assert bounds[["feature_name", "total", "quantity", "minimum", "maximum"]].values.tolist() == [
        ["cad", 16, 8, 3, 8 + 1 + 3],
        ["cam", 4, 2, 2, 2 + 1],
    ]
    new = store.quantity_bounds(db, 1, None)
    assert new[["quantity", "minimum", "maximum"]].values.tolist() == [[0, 0, 4], [0, 0, 1]]


def test_quantity_bounds_leave_an_over_committed_server_feature_out_of_the_maximum(
    db: Database,
) -> None:
    db.write(lambda cur: cur.execute("""UPDATE server_features SET total = 7 WHERE id = 1"""))
    cad = store.quantity_bounds(db, 1, 1).iloc[0]
    assert (cad["maximum"], cad["deficit"]) == (8 + 3, 2)
