"""The drift report, stored conflicts, observed allocation states, drift events and repairs."""

from __future__ import annotations

import pytest

from tests.unit.store.sync_estate import (
    add_allocation,
    add_features,
    add_portion,
    add_server,
    allocation,
    entry,
    feature_row,
    store_mirror,
)
from vlm.store import Database
from vlm.store import drift as store
from vlm.store.frames import frame
from vlm.store.reservations import OUTCOME_DTYPES

MISSING = "missing on the license server"


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    yield database
    database.close()


@pytest.fixture
def drifted(db: Database) -> int:
    """A server with one finding of every kind (see the test below)."""
    server_id = add_server(db, "east")
    sf = add_features(db, server_id, feature_row("cad", 10), feature_row("sim", 4))
    add_allocation(db, sf["cad"], "a", 2)
    add_allocation(db, sf["cad"], "b", 3, "applied")
    add_allocation(db, sf["sim"], "d", 1, "applied")
    add_allocation(db, sf["sim"], "e", 1)
    add_portion(db, 1, sf["sim"], 5)
    store_mirror(
        db,
        server_id,
        entry(server_id, 1, "vlm-USER-b", "b", "cad", 1),
        entry(server_id, 2, "vlm-USER-c", "c", "cad", 2),
        entry(server_id, 3, "vlm-USER-d", "d", "sim", 1, state="DISABLED"),
        entry(server_id, 4, "team-x", "e", "sim", 0),
    )
    return server_id


def test_the_drift_report_finds_every_kind_with_its_figures_and_detail(
    db: Database, drifted: int
) -> None:
    report = store.drift_report(db, drifted)
    assert list(report.columns) == store.REPORT_COLUMNS
    figures = [
        (r.kind, r.host_id, r.feature_name, r.expected, r.actual, r.deficit)
        for r in report.astype(object).where(report.notna(), None).itertuples()
    ]
    assert figures == [
        ("changed", "b", "cad", 3, 1, None),
        ("disabled_by_server", "d", "sim", None, 1, None),
        ("extra", "c", "cad", None, 2, None),
        ("host_held_elsewhere", "e", None, None, None, None),
        ("missing", "a", "cad", 2, None, None),
        ("missing", "e", "sim", 1, None, None),
        ("over_committed", None, "sim", 5, 4, 1),
    ]
    details = dict(
        zip(report["kind"] + report["host_id"].fillna(""), report["detail"], strict=True)
    )
    assert details["missinga"] == "2 reserved for USER:a in VLM, not held on the server"
    assert details["extrac"] == "2 reserved for USER:c on the server, not allocated in VLM"
    assert details["changedb"] == "USER:b holds 1 on the server, VLM allocates 3"
    assert details["host_held_elsewheree"] == (
        "USER:e is held by reservation group 'team-x' not managed by VLM"
    )
    assert details["over_committed"] == (
        "pooled 5 exceeds total 4 minus 0 reserved by others: deficit 1"
    )


def test_the_drift_report_of_one_server_or_all(db: Database, drifted: int) -> None:
    quiet = add_server(db, "quiet")
    assert store.drift_report(db, quiet).empty
    assert len(store.drift_report(db)) == len(store.drift_report(db, drifted)) == 7


def conflicts(db: Database, server_id: int) -> list[tuple]:
    return db.query(
        "SELECT kind, host_id, found_at < TIMESTAMP '2001-01-01' AS old FROM sync_conflicts "
        "WHERE server_id = ? ORDER BY 1, 2, 3",
        [server_id],
    )


def test_stored_conflicts_keep_the_first_time_they_were_found(db: Database, drifted: int) -> None:
    report = store.drift_report(db, drifted)
    db.write(lambda cur: store.replace_conflicts(cur, drifted, report))
    assert len(conflicts(db, drifted)) == 7
    db.write(
        lambda cur: cur.execute(
            "UPDATE sync_conflicts SET found_at = TIMESTAMP '2000-01-01' WHERE kind = 'extra'"
        )
    )
    db.write(lambda cur: store.replace_conflicts(cur, drifted, report.iloc[1:]))
    stored = conflicts(db, drifted)
    assert ("changed", "b", False) not in stored and len(stored) == 6
    assert ("extra", "c", True) in stored
    assert ("missing", "a", False) in stored

    db.write(lambda cur: store.replace_conflicts(cur, drifted, report.iloc[0:0]))
    assert conflicts(db, drifted) == []
    db.write(lambda cur: store.replace_conflicts(cur, drifted, report.iloc[0:0]))
    assert conflicts(db, drifted) == []


def test_held_allocation_rows_are_the_applied_and_disabled_ones_of_the_server(
    db: Database,
) -> None:
    east, west = add_server(db, "east"), add_server(db, "west")
    cad = add_features(db, east, feature_row("cad", 10))["cad"]
    west_cad = add_features(db, west, feature_row("cad", 10))["cad"]
    applied = add_allocation(db, cad, "a", 2, "applied")
    disabled = add_allocation(db, cad, "b", 1, "disabled")
    for state in ("pending", "failed", "removing"):
        add_allocation(db, cad, state, 1, state)
    add_allocation(db, west_cad, "w", 1, "applied")
    rows = db.write(lambda cur: store.held_allocation_rows(cur, east))
    assert sorted(rows) == [
        (applied, "USER", "a", "cad", "1.0", 2, "applied"),
        (disabled, "USER", "b", "cad", "1.0", 1, "disabled"),
    ]


def test_observed_states_move_only_rows_still_as_seen(db: Database) -> None:
    east = add_server(db, "east")
    cad = add_features(db, east, feature_row("cad", 10))["cad"]
    lost = add_allocation(db, cad, "a", 2, "applied")
    changed = add_allocation(db, cad, "b", 1, "applied")
    rows = frame(
        [(lost, 2, "applied", "pending", MISSING), (changed, 5, "applied", "pending", MISSING)],
        store.OBSERVED_DTYPES,
    )
    assert db.write(lambda cur: store.set_observed_states(cur, rows)) == 1
    assert allocation(db, lost) | {"stamped": None} == {
        "state": "pending",
        "last_error": MISSING,
        "attempts": 0,
        "backed_off": False,
        "stamped": None,
    }
    assert allocation(db, changed)["state"] == "applied"
    empty = frame([], store.OBSERVED_DTYPES)
    assert db.write(lambda cur: store.set_observed_states(cur, empty)) == 0


def events(db: Database) -> list[tuple]:
    return db.query(
        "SELECT server_id, kind, group_name, host_id, feature_name, count, detail "
        "FROM drift_events ORDER BY id"
    )


def test_drift_events_are_appended_in_their_column_order(db: Database) -> None:
    rows = [
        (1, "missing", "vlm-USER-a", "USER", "a", "cad", "1.0", 2, "gone"),
        (2, "server restarted", None, None, None, None, None, None, "new instance"),
    ]
    assert db.write(lambda cur: store.insert_drift_events(cur, rows)) == 2
    assert db.write(lambda cur: store.insert_drift_events(cur, [])) == 0
    assert events(db) == [
        (1, "missing", "vlm-USER-a", "a", "cad", 2, "gone"),
        (2, "server restarted", None, None, None, None, "new instance"),
    ]


def test_a_repair_is_recorded_for_pending_rows_that_had_gone_missing(db: Database) -> None:
    east = add_server(db, "east")
    cad = add_features(db, east, feature_row("cad", 10))["cad"]
    lost = add_allocation(db, cad, "a", 2, last_error=MISSING)
    new = add_allocation(db, cad, "b", 1)
    stale = add_allocation(db, cad, "c", 1, last_error=MISSING)
    rows = frame(
        [(lost, 2, "pending", None), (new, 1, "pending", None), (stale, 9, "pending", None)],
        OUTCOME_DTYPES,
    )
    assert db.write(lambda cur: store.record_repairs(cur, rows, MISSING)) == 1
    assert events(db) == [
        (east, "repaired", None, "a", "cad", 2, "reservation re-created on the license server")
    ]
    assert db.write(lambda cur: store.record_repairs(cur, rows.iloc[0:0], MISSING)) == 0


# One change to each thing the drift report reads, and nothing else.
INPUT_CHANGES = {
    "an allocation's state": "UPDATE allocations SET state = 'failed' WHERE host_id = 'a'",
    "an allocation's count": "UPDATE allocations SET count = 5 WHERE host_id = 'a'",
    "an allocation's host": "UPDATE allocations SET host_id = 'z' WHERE host_id = 'a'",
    "an allocation removed": "DELETE FROM allocations WHERE host_id = 'e'",
    "a mirror entry's count": "UPDATE reservation_mirror SET count = 2 WHERE host_id = 'b'",
    "a mirror entry's state": "UPDATE reservation_mirror SET entry_state = 'x' WHERE host_id = 'd'",
    "a mirror entry's group": "UPDATE reservation_mirror SET group_name = 'y' WHERE host_id = 'e'",
    "a mirror entry removed": "DELETE FROM reservation_mirror WHERE host_id = 'c'",
    "a feature's total": "UPDATE server_features SET total = 3 WHERE feature_name = 'sim'",
    "reserved by others": "UPDATE server_features SET reserved_by_others = 2 WHERE total = 4",
    "a portion's quantity": "UPDATE pool_portions SET quantity = 6",
}


def _inputs(db: Database, server_id: int) -> str:
    return db.write(lambda cur: store.drift_inputs(cur, server_id))


@pytest.mark.parametrize("sql", INPUT_CHANGES.values(), ids=INPUT_CHANGES.keys())
def test_any_change_to_what_the_report_reads_changes_its_inputs(
    db: Database, drifted: int, sql: str
) -> None:
    before = _inputs(db, drifted)
    assert _inputs(db, drifted) == before
    db.write(lambda cur: cur.execute(sql))
    assert _inputs(db, drifted) != before


def test_another_servers_rows_leave_the_inputs_alone(db: Database, drifted: int) -> None:
    before = _inputs(db, drifted)
    west = add_server(db, "west")
    sf = add_features(db, west, feature_row("cad", 10))
    add_allocation(db, sf["cad"], "w", 1)
    add_portion(db, 1, sf["cad"], 2)
    store_mirror(db, west, entry(west, 9, "vlm-USER-w", "w", "cad", 1))
    assert _inputs(db, drifted) == before
