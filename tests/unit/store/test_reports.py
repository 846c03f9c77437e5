"""Report and export reads on a real, migrated database of each backend (estate: pool_estate.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta

import pandas as pd
import pytest

from tests.unit.store.pool_estate import seed
from vlm.store import Database, access
from vlm.store import csv as csv_store
from vlm.store import reports as store
from vlm.store.hourly import rebuild_hourly

START = datetime(2024, 1, 1)
HOUR_US = 3_600_000_000
PATTERN = r"^[ \t\n\r\f\v\xa0]*[=+\-@]|^[\t\r]"
FIRST = ("=", "+", "-", "@", " ", "\t", "\n", "\r", "\f", "\v", "\xa0")


@pytest.fixture
def db(fresh_db) -> Iterator[Database]:
    database = seed(fresh_db)
    yield database
    database.close()


def execute(db: Database, sql: str, params: list | None = None) -> None:
    db.write(lambda cur: cur.execute(sql, params or []))


def window(points: int) -> dict[str, object]:
    """A grid of hourly points from START (as the trend service builds it)."""
    return {
        "start": START,
        "start_us": int((START - datetime(1970, 1, 1)) / timedelta(microseconds=1)),
        "last": START + timedelta(hours=points - 1),
        "step_us": HOUR_US,
        "points": points,
    }


def _count(audited: dict | None) -> int:
    count = (audited or {}).get("count")
    return count if isinstance(count, int) else 0


def audit(
    db: Database,
    at: datetime,
    action: str,
    target: tuple[str, int],
    before,
    after,
    pool_id: int | None = None,
) -> None:
    """An audit row as services.audit stores it: a pool row carries its own id as pool_id, an
    allocation row its change of count."""
    if target[0] == "pool":
        pool_id = target[1]
    count_change = _count(after) - _count(before) if target[0] == "allocation" else None
    execute(
        db,
        """INSERT INTO audit_log (happened_at, actor, action, target_type, target_id, before, after,
            pool_id, count_change)
        VALUES (?, 'alice', ?, ?, ?, ?, ?, ?, ?)""",
        [
            at,
            action,
            target[0],
            str(target[1]),
            None if before is None else json.dumps(before),
            None if after is None else json.dumps(after),
            pool_id,
            count_change,
        ],
    )


def test_pool_totals_in_scope(db: Database) -> None:
    assert store.pool_totals(db, access.every_pool()) == (2, 14, 8, 6, 1, 1, 0)
    assert store.pool_totals(db, access.managed_by("f", "bob")) == (1, 10, 5, 5, 1, 1, 0)
    assert store.pool_totals(db, access.managed_by("f", "dave")) == (0, 0, 0, 0, 0, 0, 0)


def test_server_counts_and_counted_feature_totals(db: Database) -> None:
    execute(db, """UPDATE license_servers SET status = 'error' WHERE id = 2""")
    assert store.server_counts(db) == (2, 1)
    assert store.read_server_figures(db).counted_totals() == (3, 20, 0, 14, 5, 0)
    execute(db, """UPDATE server_features SET total = 7, used = 4 WHERE id = 1""")
    assert store.read_server_figures(db).counted_totals() == (3, 17, 4, 14, 4, 1)


def test_license_kind_totals_keep_metered_features_apart(db: Database) -> None:
    assert store.read_server_figures(db).kind_totals() == [("counted", 3, 20, 0)]
    execute(
        db,
        """INSERT INTO server_features (server_id, feature_name, feature_version, total, used,
        metered) VALUES (2, 'meter', '1.0', 100, 30, TRUE)""",
    )
    assert sorted(store.read_server_figures(db).kind_totals()) == [
        ("counted", 3, 20, 0),
        ("metered", 1, 100, 30),
    ]


def test_server_and_vlm_stacks(db: Database) -> None:
    servers = store.read_server_figures(db).server_stack()
    assert servers.values.tolist() == [
        ["s1", 7, 4, 2, 1, 14, 0, 0],
        ["s2", 1, 2, 3, 0, 6, 0, 0],
    ]
    assert list(servers.columns) == [
        "name",
        "allocated",
        "pooled_unallocated",
        "poolable",
        "reserved_outside",
        "total",
        "used",
        "deficit",
    ]
    assert store.read_server_figures(db).vlm_stack().values.tolist() == [["v1", 8, 6, 5, 1, 20, 0]]


def test_pool_stack_in_scope(db: Database) -> None:
    frame = store.pool_stack(db, access.every_pool())
    assert frame[["name", "pool_id", "allocated", "available", "quantity"]].values.tolist() == [
        ["v1 / p1", 1, 5, 5, 10],
        ["v1 / p2", 2, 3, 1, 4],
    ]
    assert store.pool_stack(db, access.managed_by("f", "carol"))["pool_id"].tolist() == [2]


def test_over_committed_features_largest_deficit_first(db: Database) -> None:
    assert store.read_server_figures(db).over_committed().empty
    execute(db, """UPDATE server_features SET total = 7 WHERE id = 1""")
    execute(db, """UPDATE server_features SET total = 2 WHERE id = 2""")
    frame = store.read_server_figures(db).over_committed()
    assert frame[["server_name", "total", "pooled", "allocated", "deficit"]].values.tolist() == [
        ["s1", 7, 9, 5, 2],
        ["s2", 2, 3, 1, 1],
    ]


def add_snapshots(db: Database, rows: list[tuple]) -> None:
    """Snapshot rows written out of time order, then the hourly summary rebuilt from them."""

    def write(cur) -> None:
        cur.executemany("INSERT INTO utilization_snapshots VALUES (?, ?, ?, ?, ?)", rows)
        rebuild_hourly(cur)

    db.write(write)


def test_counted_trend_carries_each_features_last_snapshot_forward(db: Database) -> None:
    add_snapshots(
        db,
        [
            (1, START - timedelta(hours=1), 10, 1, 0),
            (2, START + timedelta(minutes=90), 6, 2, 1),
            (1, START + timedelta(hours=9), 10, 9, 0),
        ],
    )
    every = store.counted_trend(db, None, window(4))
    assert every[["total", "used", "reserved"]].values.tolist() == [
        [10, 1, 0],
        [10, 1, 0],
        [16, 3, 1],
        [16, 3, 1],
    ]
    assert every["taken_at"].tolist() == [START + timedelta(hours=h) for h in range(4)]
    second = store.counted_trend(db, 2, window(4))
    assert second[["taken_at", "total"]].values.tolist() == [
        [pd.Timestamp(START + timedelta(hours=2)), 6],
        [pd.Timestamp(START + timedelta(hours=3)), 6],
    ]


def test_counted_trend_sums_each_features_last_snapshot_of_every_step(db: Database) -> None:
    execute(
        db,
        """INSERT INTO server_features (id, server_id, feature_name, feature_version, metered)
        VALUES (4, 1, 'meter', '1.0', TRUE)""",
    )
    add_snapshots(
        db,
        [
            (4, START + timedelta(hours=1), 100, 50, 0),
            (1, START + timedelta(minutes=1), 10, 4, 0),
            (1, START + timedelta(hours=2), 10, 5, 0),
            (3, START + timedelta(hours=2, minutes=1), 4, 1, 0),
            (1, START + timedelta(hours=3, minutes=59), 8, 8, 2),
            (1, START + timedelta(hours=4), 8, 3, 1),
            (3, START + timedelta(hours=5, seconds=1), 4, 2, 0),
        ],
    )
    params = {**window(4), "step_us": 2 * HOUR_US, "last": START + timedelta(hours=6)}
    trend = store.counted_trend(db, 1, params)
    assert trend.values.tolist() == [
        [pd.Timestamp(START + timedelta(hours=2)), 10, 5, 0],
        [pd.Timestamp(START + timedelta(hours=4)), 12, 4, 1],
        [pd.Timestamp(START + timedelta(hours=6)), 12, 5, 1],
    ]


@pytest.mark.parametrize(
    "grid",
    [
        {"start": START + timedelta(minutes=30)},
        {"start": START + timedelta(microseconds=1)},
        {"step_us": HOUR_US // 2},
        {"step_us": 0},
    ],
)
def test_counted_trend_refuses_a_grid_off_the_whole_hours(db: Database, grid: dict) -> None:
    with pytest.raises(ValueError, match="whole hour"):
        store.counted_trend(db, None, {**window(4), **grid})


def test_pool_now_sums_portions_and_live_counts(db: Database) -> None:
    created_at, quantity, allocated = store.pool_now(db, 1)
    assert (quantity, allocated) == (10, 5) and isinstance(created_at, datetime)
    assert store.pool_now(db, 99) is None


def test_pool_quantity_changes_after_a_moment(db: Database) -> None:
    audit(db, START - timedelta(days=1), "pool.create", ("pool", 1), None, {"quantities": {}})
    audit(db, START + timedelta(hours=1), "pool.update", ("pool", 1), {"q": 1}, {"q": 2})
    audit(db, START + timedelta(hours=2), "pool.delete", ("pool", 1), {"q": 2}, None)
    audit(db, START + timedelta(hours=3), "pool.update", ("pool", 2), {"q": 1}, {"q": 5})
    changes = store.pool_quantity_changes(db, 1, START)
    assert changes == [(START + timedelta(hours=1), '{"q": 1}', '{"q": 2}')]


def test_pool_allocated_changes_read_the_rows_stored_under_the_pool(db: Database) -> None:
    """Only rows stored under the pool count (whatever their text names), each by the change of
    count it stores; a row that changed no count is no change."""
    at = [START + timedelta(hours=h) for h in range(6)]
    audit(db, at[1], "allocation.add", ("allocation", 1), None, {"count": 2}, pool_id=1)
    audit(db, at[2], "allocation.edit", ("allocation", 4), {"count": 2}, {"count": 5}, pool_id=1)
    gone = {"pool_id": 1, "count": 3}
    audit(db, at[3], "allocation.remove", ("allocation", 5), gone, None, pool_id=2)
    audit(db, at[4], "allocation.edit", ("allocation", 1), {"count": 2}, {"count": 2}, pool_id=1)
    audit(db, at[5], "allocation.remove", ("allocation", 2), {"count": 1}, None, pool_id=1)
    audit(db, START - timedelta(hours=1), "allocation.add", ("allocation", 4), None, {"count": 2})
    audit(db, at[4], "allocation.edit", ("allocation", 6), {"count": "x"}, {"count": 4}, pool_id=2)
    audit(db, at[5], "allocation.add", ("allocation", 3), None, {"count": 9}, pool_id=12)
    audit(db, at[5], "allocation.retry", ("allocation", 3), {"count": 9}, {"count": 9}, pool_id=12)
    audit(db, at[5], "allocation.add", ("allocation", 8), None, {"count": 7})
    audit(db, at[5], "pool.update", ("pool", 1), {"count": 1}, {"count": 8})
    assert changes_of(db, 1) == [(at[1], 2), (at[2], 3), (at[5], -1)]
    assert changes_of(db, 2) == [(at[3], -3), (at[4], 4)]
    assert changes_of(db, 12) == [(at[5], 9)]
    assert changes_of(db, 99) == []


def changes_of(db: Database, pool_id: int) -> list[tuple[datetime, int]]:
    frame = store.pool_allocated_changes(db, pool_id, START)
    assert list(frame.columns) == ["happened_at", "delta"]
    return sorted(
        (moment.to_pydatetime(), int(delta))
        for moment, delta in zip(frame["happened_at"], frame["delta"], strict=True)
    )


def test_utilization_history_sql_lists_snapshots_since_oldest_first(db: Database) -> None:
    execute(
        db,
        """INSERT INTO utilization_snapshots VALUES
        (3, ?, 4, 1, 0), (2, ?, 6, 2, 1), (1, ?, 9, 9, 9)""",
        [START + timedelta(hours=2), START + timedelta(hours=1), START - timedelta(hours=1)],
    )
    frame = db.query_df(*store.utilization_history_sql(START))
    assert frame[["server_name", "feature_name", "license_kind", "total"]].values.tolist() == [
        ["s2", "cad", "counted", 6],
        ["s1", "cam", "counted", 4],
    ]


def test_the_history_is_counted_from_the_hourly_summary_as_its_query_returns(
    db: Database,
) -> None:
    moments = [START + timedelta(minutes=m) for m in (-60, -1, 0, 1, 59, 60, 61, 185)]
    rows = [(1 + i % 3, at, 5, i % 4, 0) for i, at in enumerate(moments)]
    db.write(
        lambda cur: cur.executemany(
            "INSERT INTO utilization_snapshots VALUES (?, ?, ?, ?, ?)", rows
        )
    )
    db.write(rebuild_hourly)
    expected = {-2: 8, -1: 7, 0: 5, 1: 2, 2: 1, 3: 1, 4: 0}
    for hours, count in expected.items():
        since = START + timedelta(hours=hours)
        assert store.utilization_history_rows(db, since) == count
        assert store.row_count(db, *store.utilization_history_sql(since)) == count
    with pytest.raises(ValueError, match="whole hour"):
        store.utilization_history_rows(db, START + timedelta(minutes=1))


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a FROM t ORDER BY a, t.b DESC", "SELECT a FROM t"),
        ("SELECT a FROM t", "SELECT a FROM t"),
        ("SELECT a FROM t ORDER BY a LIMIT 5", "SELECT a FROM t ORDER BY a LIMIT 5"),
        ("SELECT a FROM t ORDER BY a OFFSET 2", "SELECT a FROM t ORDER BY a OFFSET 2"),
        ("SELECT 1 ORDER BY lower(x)", "SELECT 1 ORDER BY lower(x)"),
        ("SELECT a FROM t\norder  by a", "SELECT a FROM t"),
    ],
)
def test_without_final_order_by(sql: str, expected: str) -> None:
    assert store.without_final_order_by(sql) == expected


def test_row_count_and_first_rows(db: Database) -> None:
    sql, params = """SELECT id FROM allocations WHERE state = ? ORDER BY id DESC""", ["applied"]
    assert store.row_count(db, sql, params) == 2
    assert store.row_count(db, """SELECT id FROM allocations WHERE count > ?""", [99]) == 0
    assert store.first_rows(db, sql, params, 1)["id"].tolist() == [5]
    assert store.first_rows(db, sql, params, 0).columns.tolist() == ["id"]


def test_formula_safe_csv_quotes_risky_text_and_blanks_empty_text(db: Database) -> None:
    sql = """SELECT * FROM (VALUES ('=1+1', TRUE, 1), (' -x', FALSE, 2), ('plain', NULL, 3),
        ('', TRUE, 4), (NULL, TRUE, 5), ('a=b', TRUE, 6)) AS t(text, flag, n) ORDER BY n"""
    written = db.write(lambda cur: csv_store.write_formula_safe_csv(cur, sql, (), PATTERN, FIRST))
    assert written.decode().splitlines() == [
        "text,flag,n",
        "'=1+1,True,1",
        "' -x,False,2",
        "plain,,3",
        ",True,4",
        ",True,5",
        "a=b,True,6",
    ]


def test_formula_safe_sql_keeps_names_and_only_wraps_text_and_booleans() -> None:
    sql = csv_store.formula_safe_sql(
        [('odd "name"', "VARCHAR"), ("n", "INTEGER")], "x", PATTERN, "="
    )
    assert '"odd ""name"""' in sql and ">= '=' AND" in sql and " IN (" not in sql
    assert sql.endswith('"n" FROM (x) AS export_rows')


def test_write_frame_csv_writes_a_frame_formula_safe() -> None:
    frame = pd.DataFrame({"host": ["@cmd", "ok"], "count": [1, 2]})
    assert csv_store.write_frame_csv(frame, PATTERN, FIRST).decode().splitlines() == [
        "host,count",
        "'@cmd,1",
        "ok,2",
    ]
