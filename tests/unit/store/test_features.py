"""Server features and utilization snapshots as an inventory pull writes them."""

from __future__ import annotations

import pytest

from tests.unit.store.sync_estate import (
    add_features,
    add_portion,
    add_server,
    entry,
    feature_row,
    store_mirror,
)
from vlm.store import Database
from vlm.store import features as store
from vlm.store.frames import frame


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    yield database
    database.close()


def stored(db: Database, server_id: int) -> dict[str, tuple]:
    """feature name -> (total, used, reserved, reserved_by_others, present)."""
    rows = db.write(lambda cur: store.stored_features(cur, server_id))
    return {row[1]: (row[3], row[4], row[5], row[6], row[12]) for row in rows}


def snapshots(db: Database) -> list[tuple]:
    return db.query(
        "SELECT sf.feature_name, s.total, s.used, s.reserved FROM utilization_snapshots s "
        "JOIN server_features sf ON sf.id = s.server_feature_id ORDER BY 1, 2, 3, 4"
    )


def previous(db: Database, server_id: int):
    rows = db.write(lambda cur: store.stored_features(cur, server_id))
    dtypes = {"id": "int64", "total": "int64", "used": "int64", "reserved": "int64"}
    return frame([(r[0], r[3], r[4], r[5]) for r in rows], dtypes)


def test_stored_features_come_in_the_stored_feature_columns_order(db: Database) -> None:
    server_id = add_server(db, "east")
    add_features(db, server_id, feature_row("cad", 10, used=2, reserved=1, others=3))
    [row] = db.write(lambda cur: store.stored_features(cur, server_id))
    names = [c.strip() for c in store.STORED_FEATURE_COLUMNS.split(",")]
    as_dict = dict(zip(names, row, strict=True))
    assert {k: as_dict[k] for k in ("feature_name", "total", "used", "reserved")} == {
        "feature_name": "cad",
        "total": 10,
        "used": 2,
        "reserved": 1,
    }
    assert (as_dict["reserved_by_others"], as_dict["present"], as_dict["slices"]) == (3, True, 1)
    assert db.write(lambda cur: store.stored_features(cur, server_id + 1)) == []


def test_upsert_inserts_new_features_and_updates_known_ones_as_present(db: Database) -> None:
    server_id = add_server(db, "east")
    add_features(db, server_id, feature_row("cad", 10), feature_row("sim", 4))
    db.write(lambda cur: store.mark_absent_features(cur, server_id, [("sim", "1.0")]))
    assert stored(db, server_id)["sim"][4] is False

    add_features(db, server_id, feature_row("sim", 6, used=1), feature_row("viz", 2))
    assert stored(db, server_id) == {
        "cad": (10, 0, 0, 0, True),
        "sim": (6, 1, 0, 0, True),
        "viz": (2, 0, 0, 0, True),
    }
    empty = frame([], store.FEATURE_DTYPES)
    db.write(lambda cur: store.upsert_features(cur, server_id, empty))
    assert len(stored(db, server_id)) == 3


def test_absent_features_keep_their_row_with_zero_figures_and_foreign_reservations(
    db: Database,
) -> None:
    server_id = add_server(db, "east")
    add_features(db, server_id, feature_row("cad", 10, used=4, reserved=2), feature_row("sim", 3))
    store_mirror(
        db,
        server_id,
        entry(server_id, 1, "team-x", "a", "cad", 2),
        entry(server_id, 2, "vlm-USER-b", "b", "cad", 5),
    )
    db.write(lambda cur: store.mark_absent_features(cur, server_id, [("cad", "1.0")]))
    db.write(lambda cur: store.mark_absent_features(cur, server_id, []))
    assert stored(db, server_id) == {"cad": (0, 0, 0, 2, False), "sim": (3, 0, 0, 0, True)}


def test_snapshots_are_added_for_new_and_moved_features_only(db: Database) -> None:
    server_id = add_server(db, "east")
    before = previous(db, server_id)
    add_features(db, server_id, feature_row("cad", 10), feature_row("sim", 4))
    added = db.write(lambda cur: store.insert_changed_snapshots(cur, server_id, before))
    assert added == 2
    assert snapshots(db) == [("cad", 10, 0, 0), ("sim", 4, 0, 0)]

    before = previous(db, server_id)
    add_features(db, server_id, feature_row("cad", 10, used=3), feature_row("sim", 4))
    added = db.write(lambda cur: store.insert_changed_snapshots(cur, server_id, before))
    assert added == 1
    assert snapshots(db) == [("cad", 10, 0, 0), ("cad", 10, 3, 0), ("sim", 4, 0, 0)]

    before = previous(db, server_id)
    assert db.write(lambda cur: store.insert_changed_snapshots(cur, server_id, before)) == 0


def test_reserved_by_others_sums_the_foreign_groups_of_the_server(db: Database) -> None:
    east = add_server(db, "east")
    west = add_server(db, "west")
    add_features(db, east, feature_row("cad", 10, others=9), feature_row("sim", 4, others=1))
    add_features(db, west, feature_row("cad", 10, others=7))
    store_mirror(
        db,
        east,
        entry(east, 1, "team-x", "a", "cad", 2),
        entry(east, 2, "team-y", "b", "cad", 3),
        entry(east, 3, "vlm-USER-c", "c", "cad", 5),
    )
    db.write(lambda cur: store.update_reserved_by_others(cur, east))
    assert stored(db, east)["cad"][3] == 5
    assert stored(db, east)["sim"][3] == 0
    assert stored(db, west)["cad"][3] == 7


def test_server_feature_figures_of_one_server_or_all(db: Database) -> None:
    east = add_server(db, "east")
    west = add_server(db, "west")
    ids = add_features(db, west, feature_row("viz", 8, others=2), feature_row("cad", 5))
    add_features(db, east, feature_row("cad", 10))
    add_portion(db, 1, ids["viz"], 4)
    everything = store.server_feature_figures(db)
    assert list(zip(everything["server_name"], everything["feature_name"], strict=True)) == [
        ("east", "cad"),
        ("west", "cad"),
        ("west", "viz"),
    ]
    west_only = store.server_feature_figures(db, west)
    assert list(west_only["feature_name"]) == ["cad", "viz"]
    viz = west_only.set_index("feature_name").loc["viz"]
    assert (viz["pooled"], viz["poolable"], viz["deficit"]) == (4, 2, 0)
    assert store.server_feature_figures(db, west + 1).empty
