"""The reservation mirror, the reconciler's plan rows and the allocation outcomes it records."""

from __future__ import annotations

import pytest

from tests.unit.store.sync_estate import (
    PREFIX,
    add_allocation,
    add_features,
    add_server,
    allocation,
    entry,
    mirror,
    mirror_of,
    store_mirror,
)
from tests.unit.store.sync_estate import feature_row as row
from vlm.store import Database
from vlm.store import reservations as store
from vlm.store.frames import frame


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    yield database
    database.close()


@pytest.fixture
def east(db: Database) -> tuple[int, dict[str, int]]:
    """A server with features cad and sim; returns its id and the feature ids."""
    server_id = add_server(db, "east")
    return server_id, add_features(db, server_id, row("cad", 10), row("sim", 10))


def outcomes(*rows: tuple) -> object:
    return frame(list(rows), store.OUTCOME_DTYPES)


# -- the mirror --------------------------------------------------------------------------------


def test_replace_mirror_replaces_one_servers_rows_only(db: Database) -> None:
    east, west = add_server(db, "east"), add_server(db, "west")
    store_mirror(db, west, entry(west, 1, "vlm-USER-w", "w", "cad", 1))
    store_mirror(db, east, entry(east, 1, "vlm-USER-a", "a", "cad", 2))
    store_mirror(db, east, entry(east, 2, "team-x", "b", "sim", 3))
    assert mirror_of(db, east) == [("team-x", "b", "sim", 3)]
    store_mirror(db, east)
    assert mirror_of(db, east) == []
    assert mirror_of(db, west) == [("vlm-USER-w", "w", "cad", 1)]


def test_replace_mirror_groups_replaces_the_named_groups_only(db: Database) -> None:
    east = add_server(db, "east")
    store_mirror(
        db,
        east,
        entry(east, 1, "vlm-USER-a", "a", "cad", 2),
        entry(east, 2, "vlm-USER-b", "b", "cad", 1),
        entry(east, 3, "team-x", "c", "cad", 4),
    )
    fresh = mirror([entry(east, 1, "vlm-USER-a", "a", "cad", 5)])
    db.write(
        lambda cur: store.replace_mirror_groups(cur, east, ["vlm-USER-a", "vlm-USER-b"], fresh)
    )
    assert mirror_of(db, east) == [("team-x", "c", "cad", 4), ("vlm-USER-a", "a", "cad", 5)]
    db.write(lambda cur: store.replace_mirror_groups(cur, east, [], fresh))
    assert len(mirror_of(db, east)) == 2


def test_replace_mirror_parts_replaces_one_reservation_of_a_batch_and_keeps_the_others(
    db: Database,
) -> None:
    east = add_server(db, "east")
    batch = "vlm-~batch-0123456789abcdef0123"
    store_mirror(
        db,
        east,
        entry(east, 1, batch, "a", "cad", 2),
        entry(east, 1, batch, "b", "cad", 1),
        entry(east, 2, "vlm-USER-c", "c", "cad", 4),
    )
    fresh = mirror([entry(east, 1, batch, "a", "cad", 5)])
    db.write(lambda cur: store.replace_mirror_parts(cur, east, [], [(batch, "user", "a")], fresh))
    assert sorted(mirror_of(db, east)) == [
        ("vlm-USER-c", "c", "cad", 4),
        (batch, "a", "cad", 5),
        (batch, "b", "cad", 1),
    ]
    db.write(
        lambda cur: store.replace_mirror_parts(
            cur, east, ["vlm-USER-c"], [(batch, "USER", "b")], mirror([])
        )
    )
    assert mirror_of(db, east) == [(batch, "a", "cad", 5)]
    db.write(lambda cur: store.replace_mirror_parts(cur, east, [], [], fresh))
    assert mirror_of(db, east) == [(batch, "a", "cad", 5)]


def test_stored_owned_group_ids_are_the_vlm_groups_with_an_id(db: Database) -> None:
    east = add_server(db, "east")
    store_mirror(
        db,
        east,
        entry(east, 1, "vlm-USER-a", "a", "cad", 2),
        entry(east, 1, "vlm-USER-a", "a", "sim", 1),
        entry(east, None, "vlm-USER-b", "b", "cad", 1),
        entry(east, 3, "team-x", "c", "cad", 4),
    )
    assert db.write(lambda cur: store.stored_owned_group_ids(cur, east)) == [(1, "vlm-USER-a")]


# -- plan rows ---------------------------------------------------------------------------------


def test_plan_rows_leave_out_settled_hosts_and_return_the_rest(db: Database, east) -> None:
    server_id, sf = east
    settled = add_allocation(db, sf["cad"], "a", 2, "applied")
    pending = add_allocation(db, sf["cad"], "b", 1)
    changed = add_allocation(db, sf["sim"], "c", 3, "applied")
    store_mirror(
        db,
        server_id,
        entry(server_id, 1, "vlm-USER-a", "a", "cad", 2, entry_id=10),
        entry(server_id, 2, "vlm-USER-c", "c", "sim", 1, entry_id=20),
        entry(server_id, 3, "vlm-USER-gone", "gone", "cad", 1, entry_id=30),
        entry(server_id, 4, "team-x", "d", "cad", 4, entry_id=40),
    )
    allocations, owned, settled_hosts = store.plan_rows(db, server_id, False, PREFIX)
    assert settled_hosts == 1
    assert allocations == [
        (pending, "USER", "b", "cad", "1.0", 1, "pending", True),
        (changed, "USER", "c", "sim", "1.0", 3, "applied", True),
    ]
    assert [(m[2], m[7], m[10]) for m in owned] == [("vlm-USER-c", 20, 1), ("vlm-USER-gone", 30, 1)]
    assert all(len(m) == len(store.MIRROR_COLUMNS) and m[3] is True for m in owned)
    assert settled not in [a[0] for a in allocations]


def test_a_backed_off_row_is_due_only_when_the_pass_is_forced(db: Database, east) -> None:
    server_id, sf = east
    waiting = add_allocation(db, sf["cad"], "a", 1, backed_off=True)
    [(aid, *_, due)], _, _ = store.plan_rows(db, server_id, False, PREFIX)
    assert (aid, due) == (waiting, False)
    [(_, *_, due)], _, _ = store.plan_rows(db, server_id, True, PREFIX)
    assert due is True


# -- outcomes ----------------------------------------------------------------------------------


def test_marks_change_only_rows_whose_count_and_state_are_as_seen(db: Database, east) -> None:
    _, sf = east
    a = add_allocation(db, sf["cad"], "a", 2)
    b = add_allocation(db, sf["cad"], "b", 2)
    c = add_allocation(db, sf["cad"], "c", 2)
    applied = outcomes((a, 2, "pending", None), (b, 3, "pending", None))
    assert db.write(lambda cur: store.mark_applied(cur, applied)) == 1
    assert (allocation(db, a)["state"], allocation(db, a)["stamped"]) == ("applied", True)
    assert allocation(db, b)["state"] == "pending"

    failed = outcomes((b, 2, "pending", "refused: no licenses"), (c, 2, "applied", "x"))
    assert db.write(lambda cur: store.mark_failed(cur, failed)) == 1
    assert allocation(db, b)["state"] == "failed"
    assert allocation(db, b)["last_error"] == "refused: no licenses"
    assert allocation(db, c)["state"] == "pending"
    empty = outcomes()
    assert db.write(lambda cur: store.mark_applied(cur, empty)) == 0
    assert db.write(lambda cur: store.mark_failed(cur, empty)) == 0
    assert db.write(lambda cur: store.mark_retry(cur, empty)) == 0


def test_a_retry_counts_the_attempt_and_backs_off_pending_rows_only(db: Database, east) -> None:
    _, sf = east
    a = add_allocation(db, sf["cad"], "a", 2)
    b = add_allocation(db, sf["cad"], "b", 2, "applied")
    retry = outcomes((a, 2, "pending", "timeout"), (b, 2, "applied", "timeout"))
    assert db.write(lambda cur: store.mark_retry(cur, retry)) == 1
    assert allocation(db, a) | {"stamped": None} == {
        "state": "pending",
        "last_error": "timeout",
        "attempts": 1,
        "backed_off": True,
        "stamped": None,
    }
    assert allocation(db, b)["attempts"] == 0


def test_an_unreachable_server_backs_off_its_due_pending_rows(db: Database, east) -> None:
    server_id, sf = east
    west = add_server(db, "west")
    west_cad = add_features(db, west, row("cad", 1))["cad"]
    due = add_allocation(db, sf["cad"], "a", 1)
    waiting = add_allocation(db, sf["sim"], "b", 1, backed_off=True)
    applied = add_allocation(db, sf["cad"], "c", 1, "applied")
    other = add_allocation(db, west_cad, "d", 1)
    message = "unreachable https://u:pw@east/api"
    assert db.write(lambda cur: store.retry_pending_of_server(cur, server_id, message)) == 1
    assert allocation(db, due)["attempts"] == 1
    assert "pw" not in allocation(db, due)["last_error"]
    assert [allocation(db, i)["attempts"] for i in (waiting, applied, other)] == [0, 0, 0]
    forced = db.write(lambda cur: store.retry_pending_of_server(cur, server_id, "x", True))
    assert forced == 2
    assert allocation(db, waiting)["attempts"] == 1


def test_requeue_failed_gives_a_servers_failed_rows_another_try(db: Database, east) -> None:
    server_id, sf = east
    west = add_server(db, "west")
    west_cad = add_features(db, west, row("cad", 1))["cad"]
    failed = add_allocation(db, sf["cad"], "a", 1, "failed", last_error="held elsewhere")
    other = add_allocation(db, west_cad, "b", 1, "failed")
    assert db.write(lambda cur: store.requeue_failed(cur, server_id)) == 1
    assert allocation(db, failed) | {"stamped": None} == {
        "state": "pending",
        "last_error": "held elsewhere",
        "attempts": 0,
        "backed_off": False,
        "stamped": None,
    }
    assert allocation(db, other)["state"] == "failed"


def test_delete_removed_deletes_removing_rows_only(db: Database, east) -> None:
    _, sf = east
    removing = add_allocation(db, sf["cad"], "a", 1, "removing")
    applied = add_allocation(db, sf["cad"], "b", 1, "applied")
    assert db.write(lambda cur: store.delete_removed(cur, [removing, applied])) == 1
    assert allocation(db, removing) == {}
    assert allocation(db, applied)["state"] == "applied"
    assert db.write(lambda cur: store.delete_removed(cur, [])) == 0


# -- scheduling --------------------------------------------------------------------------------


def test_the_next_retry_and_the_servers_with_due_retries(db: Database, east) -> None:
    server_id, sf = east
    west = add_server(db, "west")
    west_cad = add_features(db, west, row("cad", 1))["cad"]
    assert store.seconds_until_next_retry(db) is None
    assert store.servers_with_due_retries(db) == []

    add_allocation(db, sf["cad"], "a", 1, backed_off=True)
    assert 3000 < store.seconds_until_next_retry(db) <= 3600
    assert store.servers_with_due_retries(db) == []

    due = add_allocation(db, west_cad, "b", 1)
    db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET next_attempt_at = TIMESTAMP '2000-01-01' WHERE id = ?", [due]
        )
    )
    assert store.seconds_until_next_retry(db) == 0.0
    assert store.servers_with_due_retries(db) == [west]
    assert server_id not in store.servers_with_due_retries(db)
