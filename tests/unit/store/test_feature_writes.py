"""A pull's feature writes by id (vlm.sync.inventory.store_changes_by_id) leave the same rows as
the general path (store_changes_in_full) in server_features, utilization_snapshots and both
hourly summaries; new, absent, returning features and a change of kind take the general path."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.unit.store.hourly_reference import (
    counted_features,
    counted_of,
    stored_counted,
    stored_snapshots,
    stored_summary,
    summary_of,
)
from tests.unit.store.sync_estate import add_server, feature_row
from vlm.store import Database
from vlm.store.features import stored_features
from vlm.store.frames import FEW_ROWS
from vlm.store.hourly import rebuild_hourly
from vlm.sync import inventory
from vlm.sync.inventory import (
    feature_changes,
    store_changes_by_id,
    store_changes_in_full,
    store_feature_changes,
)

NAMES = [f"f{i:02d}" for i in range(FEW_ROWS + 6)]


def listed(changes: dict[str, dict] | None = None) -> list[tuple]:
    """The server's answer as feature rows: every feature at total 20 (its `changes` applied);
    every third one metered, so some moves count in the counted sums and some do not."""
    changes = changes or {}
    rows = []
    for i, name in enumerate(NAMES):
        figures = {"total": 20, "used": 0, "reserved": 0, "others": 0, **changes.get(name, {})}
        expiry = figures.pop("expiry", None)
        row = feature_row(name, **figures, metered=i % 3 == 2)
        rows.append((*row[:9], expiry, row[10]))
    return rows


def _by_name(db: Database, server_id: int, sql: str) -> list[tuple]:
    """Rows of a query over one server's features with the feature's name in place of its id."""
    return sorted(db.query(sql, [server_id]), key=repr)


def server_tables(db: Database, server_id: int) -> dict[str, list[tuple]]:
    """One server's rows of the four tables a pull writes, keyed by feature name, not id."""
    return {
        "server_features": _by_name(
            db,
            server_id,
            "SELECT feature_name, feature_version, total, used, reserved, reserved_by_others, "
            "concurrent, uncounted, metered, expiry, slices, present, updated_at "
            "FROM server_features WHERE server_id = ?",
        ),
        "utilization_snapshots": _by_name(
            db,
            server_id,
            "SELECT sf.feature_name, s.taken_at, s.total, s.used, s.reserved "
            "FROM utilization_snapshots s JOIN server_features sf ON sf.id = s.server_feature_id "
            "WHERE sf.server_id = ?",
        ),
        "utilization_hourly": _by_name(
            db,
            server_id,
            "SELECT sf.feature_name, h.hour_end, h.samples, h.total, h.used, h.reserved, "
            "h.total_change, h.used_change, h.reserved_change, h.first_hour "
            "FROM utilization_hourly h JOIN server_features sf ON sf.id = h.server_feature_id "
            "WHERE sf.server_id = ?",
        ),
        "counted_utilization_hourly": _by_name(
            db,
            server_id,
            "SELECT hour_end, total_change, used_change, reserved_change, features_started "
            "FROM counted_utilization_hourly WHERE server_id = ?",
        ),
    }


def store_both_ways(db: Database, by_id: int, in_full: int, rows: list[tuple]) -> None:
    """Store the same answer on two servers holding the same rows, in one write (the same
    current_timestamp): by id on one, by the general path on the other."""

    def write(cur) -> None:
        fast = feature_changes(stored_features(cur, by_id), rows)
        general = feature_changes(stored_features(cur, in_full), rows)
        assert fast.by_id is not None and fast.changed == general.changed
        added = store_changes_by_id(cur, by_id, fast.by_id)
        assert added == store_changes_in_full(cur, in_full, general)

    db.write(write)


def back_date(db: Database, hours: int) -> None:
    """Move every snapshot back and summarise them again (the next pull starts a new hour)."""

    def write(cur) -> None:
        cur.execute(
            "UPDATE utilization_snapshots SET taken_at = taken_at - ? * INTERVAL '1 hour'", [hours]
        )
        rebuild_hourly(cur)

    db.write(write)


MOVES = [
    pytest.param({"f00": {"used": 3}}, id="one-moved"),
    pytest.param({"f00": {"used": 4}, "f02": {"reserved": 2}}, id="few-moved-counted-and-not"),
    pytest.param({"f01": {"others": 5}, "f03": {"expiry": "2031-01-01"}}, id="none-moved"),
    pytest.param({name: {"used": 1, "total": 25} for name in NAMES}, id="many-moved"),
    pytest.param({name: {"used": 2} for name in NAMES[:4]} | {"f05": {"others": 1}}, id="mixed"),
]


@pytest.mark.parametrize("moves", MOVES)
@pytest.mark.parametrize("new_hour", [False, True], ids=["same-hour", "new-hour"])
def test_writes_by_id_equal_the_general_path(
    fresh_db: Database, moves: dict[str, dict], new_hour: bool
) -> None:
    by_id, in_full = add_server(fresh_db, "fast"), add_server(fresh_db, "general")
    for rows in (listed(), listed({"f00": {"used": 1}})):
        fresh_db.write(
            lambda cur, rows=rows: [store_feature_changes(cur, s, rows) for s in (by_id, in_full)]
        )
    if new_hour:
        back_date(fresh_db, 2)
    assert server_tables(fresh_db, by_id) == server_tables(fresh_db, in_full)

    store_both_ways(fresh_db, by_id, in_full, listed(moves))
    store_both_ways(fresh_db, by_id, in_full, listed({**moves, "f01": {"used": 9}}))
    tables = server_tables(fresh_db, by_id)
    assert tables == server_tables(fresh_db, in_full)
    assert len(tables["utilization_snapshots"]) > len(NAMES) + 1
    summary = summary_of(stored_snapshots(fresh_db))
    assert stored_summary(fresh_db) == summary
    assert stored_counted(fresh_db) == counted_of(summary, counted_features(fresh_db))


FALLBACKS: list = [
    pytest.param([*listed(), feature_row("new", 4)], id="new-feature"),
    pytest.param(listed()[1:], id="absent-feature"),
    pytest.param(
        [(*row[:8], True, *row[9:]) if row[0] == "f00" else row for row in listed()],
        id="kind-change",
    ),
    pytest.param([*listed({"f00": {"used": 2}}), feature_row("new", 4)], id="moved-and-new"),
]


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of inventory's write paths store_feature_changes takes, in call order."""
    calls: list[str] = []
    for name in ("store_changes_in_full", "store_changes_by_id"):
        original: Callable[..., int] = getattr(inventory, name)

        def spy(*args: object, _name: str = name, _original: Callable[..., int] = original) -> int:
            calls.append(_name)
            return _original(*args)

        monkeypatch.setattr(inventory, name, spy)
    return calls


@pytest.mark.parametrize("answer", FALLBACKS)
def test_new_absent_features_and_a_change_of_kind_take_the_general_path(
    fresh_db: Database, paths: list[str], answer: list[tuple]
) -> None:
    server_id = add_server(fresh_db, "east")
    fresh_db.write(lambda cur: store_feature_changes(cur, server_id, listed()))
    paths.clear()

    fresh_db.write(lambda cur: store_feature_changes(cur, server_id, answer))
    assert paths == ["store_changes_in_full"]
    summary = summary_of(stored_snapshots(fresh_db))
    assert stored_summary(fresh_db) == summary
    assert stored_counted(fresh_db) == counted_of(summary, counted_features(fresh_db))


def test_a_feature_listed_again_takes_the_general_path(
    fresh_db: Database, paths: list[str]
) -> None:
    server_id = add_server(fresh_db, "east")
    fresh_db.write(lambda cur: store_feature_changes(cur, server_id, listed()))
    fresh_db.write(lambda cur: store_feature_changes(cur, server_id, listed()[1:]))
    paths.clear()

    fresh_db.write(lambda cur: store_feature_changes(cur, server_id, listed()))
    assert paths == ["store_changes_in_full"]
    present = "SELECT present FROM server_features WHERE feature_name = 'f00'"
    assert fresh_db.scalar(present) is True


def test_figures_that_moved_take_the_path_by_id(fresh_db: Database, paths: list[str]) -> None:
    server_id = add_server(fresh_db, "east")
    fresh_db.write(lambda cur: store_feature_changes(cur, server_id, listed()))
    paths.clear()

    added = fresh_db.write(
        lambda cur: store_feature_changes(cur, server_id, listed({"f00": {"used": 2}}))
    )
    assert (paths, added) == (["store_changes_by_id"], 1)


@pytest.mark.parametrize(
    ("answer", "moves"),
    [
        pytest.param(listed(), False, id="unchanged"),
        pytest.param(listed({"f00": {"used": 2}}), False, id="used"),
        pytest.param(listed({"f00": {"reserved": 1}}), False, id="reserved"),
        pytest.param(listed({"f00": {"expiry": "2027-01-01"}}), False, id="expiry"),
        pytest.param(listed({"f00": {"total": 21}}), True, id="total"),
        pytest.param(listed({"f00": {"others": 3}}), True, id="reserved-by-others"),
        pytest.param([*listed(), feature_row("new", 4)], True, id="new"),
        pytest.param(listed()[1:], True, id="absent"),
    ],
)
def test_only_changes_of_what_the_drift_report_reads_move_its_inputs(
    fresh_db: Database, answer: list[tuple], moves: bool
) -> None:
    """A pull whose feature changes do not move the drift inputs keeps the inputs it read
    ahead (vlm.sync.drift.read_inputs_ahead); the drift report reads a feature's id, name,
    version, total and reserved_by_others."""
    server_id = add_server(fresh_db, "east")
    fresh_db.write(lambda cur: store_feature_changes(cur, server_id, listed()))

    changes = fresh_db.write(lambda cur: feature_changes(stored_features(cur, server_id), answer))

    assert changes.moves_drift_inputs is moves
