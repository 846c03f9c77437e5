"""The VLM queries (vlm/store/catalog.py) on a real, migrated in-memory DuckDB."""

from __future__ import annotations

import pytest

from vlm.store import Database
from vlm.store import catalog as store

# Servers s1 and s2. Features: 1 cad 1.0 on s1 (10, 1 reserved outside VLM), 2 cam 2.0 on s1
# (4), 3 cad 1.0 on s2 (6), 4 viz 3.0 on s2 (metered), 5 old 1.0 on s2 (gone), 6 sim 4.0 on s2
# (free). VLM 1 'eng' exposes 1 and 2 (server s1), VLM 2 'other' exposes 3 (server s2). Pool
# 'zeta' has 4 of feature 1 and an allocation of 3 on it; pool 'alpha' an allocation on 2.
SEED = """
INSERT INTO license_servers (id, name, base_url) VALUES (1, 's1', 'http://s1'), (2, 's2', 'http://s2');
INSERT INTO server_features (id, server_id, feature_name, feature_version, total,
    reserved_by_others, metered, present) VALUES
    (1, 1, 'cad', '1.0', 10, 1, FALSE, TRUE), (2, 1, 'cam', '2.0', 4, 0, FALSE, TRUE),
    (3, 2, 'cad', '1.0', 6, 0, FALSE, TRUE), (4, 2, 'viz', '3.0', 9, 0, TRUE, TRUE),
    (5, 2, 'old', '1.0', 2, 0, FALSE, FALSE), (6, 2, 'sim', '4.0', 3, 0, FALSE, TRUE);
INSERT INTO vlms (id, name, description, created_by) VALUES
    (1, 'eng', 'engineering', 'ada'), (2, 'other', '', 'ada');
INSERT INTO vlm_features VALUES (1, 1), (1, 2), (2, 3);
INSERT INTO vlm_servers VALUES (1, 1), (2, 2);
INSERT INTO pools (id, vlm_id, name, manager, created_by) VALUES
    (1, 1, 'zeta', 'bob', 'ada'), (2, 1, 'alpha', 'cy', 'ada');
INSERT INTO pool_portions VALUES (1, 1, 4);
INSERT INTO allocations (pool_id, server_feature_id, feature_name, feature_version,
    host_type, host_id, count, created_by) VALUES
    (2, 2, 'cam', '2.0', 'USER', 'h1', 1, 'cy'), (1, 1, 'cad', '1.0', 'USER', 'h2', 3, 'bob');
SELECT nextval('seq_vlm') FROM generate_series(1, 2);
"""


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    database.write(lambda cur: cur.execute(SEED))
    yield database
    database.close()


def test_vlm_names_taken(db):
    def taken(cur):
        return (
            store.vlm_name_taken(cur, "eng"),
            store.vlm_name_taken(cur, "ENG"),
            store.vlm_name_taken(cur, "eng", other_than=1),
            store.vlm_name_taken(cur, "eng", other_than=2),
            store.vlm_name_taken(cur, "new"),
        )

    assert db.write(taken) == (True, False, False, True, False)


def test_vlm_row_and_its_pools(db):
    def read(cur):
        return store.vlm_row(cur, 1), store.vlm_row(cur, 9), store.pool_names_of_vlm(cur, 1)

    assert db.write(read) == (("eng", "engineering"), None, ["alpha", "zeta"])
    assert db.write(lambda cur: store.pool_names_of_vlm(cur, 2)) == []


def test_feature_owners_servers_and_labels(db):
    def read(cur):
        return (
            sorted(store.feature_owners(cur, [1, 3, 4, 99])),
            store.servers_of_features(cur, [3, 2, 1]),
            store.feature_labels(cur, [1, 3]),
            store.feature_owners(cur, []),
            store.servers_of_features(cur, []),
            store.feature_labels(cur, []),
        )

    owners, servers, labels, *empty = db.write(read)
    assert owners == [
        (1, "cad", "1.0", "s1", True, 1, "eng"),
        (3, "cad", "1.0", "s2", True, 2, "other"),
        (4, "viz", "3.0", "s2", False, None, None),
    ]
    assert servers == [1, 2]
    assert labels == {1: "cad 1.0 on s1", 3: "cad 1.0 on s2"}
    assert empty == [[], [], {}]


def test_pools_drawing_on_counts_portions_and_allocations(db):
    drawing = db.write(lambda cur: store.pools_drawing_on(cur, [1, 2, 3]))
    assert drawing == {1: ["zeta"], 2: ["alpha"]}
    assert db.write(lambda cur: store.pools_drawing_on(cur, [])) == {}


def test_exposed_features_inside_and_outside_a_write(db):
    assert db.write(lambda cur: store.exposed_features(cur, 1)) == [1, 2]
    assert store.exposed_feature_ids(db, 1) == [1, 2]
    assert store.exposed_feature_ids(db, 2) == [3]
    assert store.exposed_feature_ids(db, 9) == []


def test_a_new_vlm_with_its_features_and_servers(db):
    def create(cur) -> int:
        vlm_id = store.insert_vlm(cur, "sim", "FlexNet Embedded", "simulation", "ada")
        store.add_exposed_features(cur, vlm_id, [6])
        store.add_vlm_servers(cur, vlm_id, [2])
        return vlm_id

    vlm_id = db.write(create)
    assert vlm_id == 3
    assert db.query(
        """SELECT name, vlm_type, description, created_by FROM vlms WHERE id = 3"""
    ) == [("sim", "FlexNet Embedded", "simulation", "ada")]
    assert store.exposed_feature_ids(db, 3) == [6]
    assert db.query("""SELECT server_id FROM vlm_servers WHERE vlm_id = 3""") == [(2,)]


def test_an_edit_replaces_features_and_servers(db):
    def edit(cur):
        store.update_vlm_row(cur, 1, "engineering", "")
        store.replace_features(cur, 1, [2], [6])
        store.set_servers(cur, 1, {2})

    db.write(edit)
    assert db.write(lambda cur: store.vlm_row(cur, 1)) == ("engineering", "")
    assert store.exposed_feature_ids(db, 1) == [1, 6]
    assert db.query("""SELECT vlm_id, server_id FROM vlm_servers ORDER BY 1, 2""") == [
        (1, 2),
        (2, 2),
    ]


def test_deleting_a_vlm_deletes_its_rows_only(db):
    db.write(lambda cur: store.delete_vlm_rows(cur, 2))
    assert db.query("""SELECT id FROM vlms""") == [(1,)]
    assert db.query("""SELECT vlm_id, server_feature_id FROM vlm_features ORDER BY 2""") == [
        (1, 1),
        (1, 2),
    ]
    assert db.query("""SELECT vlm_id FROM vlm_servers""") == [(1,)]


def test_the_vlm_list_with_figures(db):
    frame = store.vlm_list(db).set_index("name")
    assert frame.index.tolist() == ["eng", "other"]
    eng, other = frame.loc["eng"], frame.loc["other"]
    assert (eng["servers"], eng["pools"], eng["features"]) == ("s1", 2, 2)
    assert (eng["total"], eng["pooled"], eng["allocated"], eng["available"]) == (14, 4, 4, 9)
    assert (other["servers"], other["pools"], other["features"], other["total"]) == ("s2", 0, 1, 6)


def test_vlm_feature_figures_of_one_or_every_vlm(db):
    one = store.vlm_feature_figures(db, 1)
    assert one[["feature_name", "total", "pooled", "available"]].values.tolist() == [
        ["cad", 10, 4, 5],
        ["cam", 4, 0, 4],
    ]
    every = store.vlm_feature_figures(db)
    assert every[["vlm_name", "feature_name"]].values.tolist() == [
        ["eng", "cad"],
        ["eng", "cam"],
        ["other", "cad"],
    ]


def test_feature_choices_are_the_vlms_own_and_the_free_poolable(db):
    frame = store.feature_choices(db, 1)
    rows = frame[["server_feature_id", "exposed", "pools"]].values.tolist()
    # 3 belongs to VLM 'other', 4 is metered, 5 is gone: none is a choice
    assert rows == [[1, True, "zeta"], [2, True, "alpha"], [6, False, ""]]
