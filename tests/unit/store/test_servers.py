"""License server rows: connections, sync status, identity, edits, removal and the server list."""

from __future__ import annotations

import pytest

from tests.unit.store.sync_estate import (
    add_features,
    add_server,
    entry,
    feature_row,
    store_mirror,
)
from vlm.store import Database
from vlm.store import servers as store


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    yield database
    database.close()


def test_load_server_reads_the_connection_and_status_columns_or_none(db: Database) -> None:
    server_id = add_server(db, "east")
    row = store.load_server(db, server_id)
    assert list(row) == [c.strip() for c in store.SERVER_COLUMNS.split(",")]
    assert (row["id"], row["name"], row["base_url"], row["instance"]) == (
        server_id,
        "east",
        "http://east",
        "~",
    )
    assert store.load_server(db, server_id + 1) is None


def test_load_servers_orders_by_name(db: Database) -> None:
    add_server(db, "west")
    add_server(db, "east")
    assert [s["name"] for s in store.load_servers(db)] == ["east", "west"]


def test_a_success_clears_the_error_and_an_error_keeps_the_last_latency(db: Database) -> None:
    server_id = add_server(db, "east")
    db.write(lambda cur: store.record_server_success(cur, server_id, 12.5))
    row = store.load_server(db, server_id)
    assert (row["status"], row["last_error"], row["last_latency_ms"]) == ("ok", None, 12.5)
    assert row["last_success_at"] is not None

    message = "refused by https://admin:secret@east:7070/api"
    db.write(lambda cur: store.record_server_error(cur, server_id, message, None))
    row = store.load_server(db, server_id)
    assert (row["status"], row["last_latency_ms"]) == ("error", 12.5)
    assert "secret" not in row["last_error"] and "east:7070/api" in row["last_error"]

    db.write(lambda cur: store.record_server_error(cur, server_id, "down", 99.0))
    assert store.load_server(db, server_id)["last_latency_ms"] == 99.0


def test_server_identity_says_whether_the_server_was_ever_read_and_its_instance(
    db: Database,
) -> None:
    server_id = add_server(db, "east")
    assert db.write(lambda cur: store.server_identity(cur, server_id)) == (None, False)
    assert db.write(lambda cur: store.server_identity(cur, server_id + 1)) == (None, False)
    db.write(lambda cur: store.record_server_success(cur, server_id, 1.0))
    db.write(lambda cur: store.set_instance_id(cur, server_id, "inst-1"))
    assert db.write(lambda cur: store.server_identity(cur, server_id)) == ("inst-1", True)


def test_insert_and_update_write_the_settings_and_refuse_other_columns(db: Database) -> None:
    values = {"name": "east", "base_url": "https://east", "verify_tls": False, "description": "x"}
    server_id = db.write(lambda cur: store.insert_server(cur, values))
    row = store.server_row(db, server_id)
    assert (row["name"], row["base_url"], row["verify_tls"], row["description"]) == (
        "east",
        "https://east",
        False,
        "x",
    )
    db.write(lambda cur: store.update_server(cur, server_id, {"name": "east-2", "ca_path": "/ca"}))
    row = store.server_row(db, server_id)
    assert (row["name"], row["ca_path"], row["base_url"]) == ("east-2", "/ca", "https://east")

    with pytest.raises(ValueError, match="status"):
        db.write(lambda cur: store.insert_server(cur, {"name": "w", "status": "ok"}))
    with pytest.raises(ValueError, match="id"):
        db.write(lambda cur: store.update_server(cur, server_id, {"id": 7}))
    assert [s["name"] for s in store.load_servers(db)] == ["east-2"]


def test_server_rows_inside_and_outside_a_write_and_its_name(db: Database) -> None:
    server_id = add_server(db, "east")
    inside = db.write(lambda cur: store.server_row_in(cur, server_id))
    assert inside == store.server_row(db, server_id)
    assert "password_encrypted" in inside and "instance_id" in inside
    assert db.write(lambda cur: store.server_row_in(cur, server_id + 1)) is None
    assert store.server_row(db, server_id + 1) is None
    assert db.write(lambda cur: store.server_name(cur, server_id)) == "east"
    assert db.write(lambda cur: store.server_name(cur, server_id + 1)) is None


def test_a_name_is_taken_by_another_server_only(db: Database) -> None:
    east = add_server(db, "east")
    west = add_server(db, "west")

    def taken(name: str, other_than: int | None = None) -> bool:
        return db.write(lambda cur: store.server_name_taken(cur, name, other_than))

    assert taken("east") and not taken("north")
    assert not taken("east", other_than=east)
    assert taken("east", other_than=west)


def test_vlms_using_a_server_by_feature_or_by_listing(db: Database) -> None:
    east = add_server(db, "east")
    west = add_server(db, "west")
    ids = add_features(db, east, feature_row("cad", 5))
    statements = [
        ("INSERT INTO vlms (id, name, created_by) VALUES (1, 'zeta', 'ada')", []),
        ("INSERT INTO vlms (id, name, created_by) VALUES (2, 'alpha', 'ada')", []),
        ("INSERT INTO vlms (id, name, created_by) VALUES (3, 'other', 'ada')", []),
        ("INSERT INTO vlm_features (vlm_id, server_feature_id) VALUES (1, ?)", [ids["cad"]]),
        ("INSERT INTO vlm_servers (vlm_id, server_id) VALUES (2, ?), (1, ?)", [east, east]),
        ("INSERT INTO vlm_servers (vlm_id, server_id) VALUES (3, ?)", [west]),
    ]
    for sql, params in statements:
        db.write(lambda cur, sql=sql, params=params: cur.execute(sql, params))
    assert db.write(lambda cur: store.vlms_using_server(cur, east)) == ["alpha", "zeta"]
    assert db.write(lambda cur: store.vlms_using_server(cur, west)) == ["other"]
    assert db.write(lambda cur: store.vlms_using_server(cur, west + 1)) == []


def test_delete_server_removes_its_rows_and_leaves_the_others(db: Database) -> None:
    east = add_server(db, "east")
    west = add_server(db, "west")
    east_cad = add_features(db, east, feature_row("cad", 5))["cad"]
    west_cad = add_features(db, west, feature_row("cad", 3))["cad"]
    for sf in (east_cad, west_cad):
        db.write(
            lambda cur, sf=sf: cur.execute(
                "INSERT INTO utilization_snapshots VALUES (?, current_timestamp, 1, 0, 0)", [sf]
            )
        )
    for server_id in (east, west):
        store_mirror(db, server_id, entry(server_id, 1, "vlm-USER-a", "a", "cad", 1))
        db.write(
            lambda cur, s=server_id: cur.execute(
                "INSERT INTO sync_conflicts (server_id, kind, detail) VALUES (?, 'extra', 'x')",
                [s],
            )
        )

    db.write(lambda cur: store.delete_server(cur, east))

    def count(table: str, where: str = "server_id") -> dict:
        return dict(db.query(f"SELECT {where}, COUNT(*) FROM {table} GROUP BY {where}"))

    assert [s["name"] for s in store.load_servers(db)] == ["west"]
    assert count("server_features") == {west: 1}
    assert count("utilization_snapshots", "server_feature_id") == {west_cad: 1}
    assert count("reservation_mirror") == {west: 1}
    assert count("sync_conflicts") == {west: 1}


def test_servers_with_figures_sum_counted_licenses_and_count_other_kinds_apart(
    db: Database,
) -> None:
    east = add_server(db, "east")
    add_server(db, "bare")
    add_features(
        db,
        east,
        feature_row("cad", 10, used=3),
        feature_row("sim", 4, used=4),
        feature_row("meter", 100, used=50, metered=True),
        feature_row("free", 0, uncounted=True),
    )
    frame = store.servers_with_figures(db)
    assert list(frame["name"]) == ["bare", "east"]
    row = frame.set_index("name").loc["east"]
    assert (row["features"], row["total"], row["used"], row["available"]) == (2, 14, 7, 7)
    assert (row["metered_features"], row["uncounted_features"], row["other_features"]) == (1, 1, 0)
    bare = frame.set_index("name").loc["bare"]
    assert (bare["features"], bare["total"], bare["metered_features"]) == (0, 0, 0)
