"""Migrations on both backends: per-dialect texts, and migrations 7 and 8 (the hourly utilization
summary and its per-server sums) filling themselves from the snapshots an installation holds."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest

from tests.unit.store.hourly_reference import (
    counted_features,
    counted_of,
    stored_counted,
    stored_snapshots,
    stored_summary,
    summary_of,
)
from vlm.store import Database, migrations
from vlm.store.migrations import MIGRATIONS, migrate, migration_sql

HOURLY, COUNTED, AUDIT_BY_POOL, AUDIT_POOL_COLUMN, AUDIT_COUNTS = 7, 8, 9, 10, 11


@pytest.fixture
def empty_db(request, backend: str, tmp_path) -> Iterator[Any]:
    """A database of the backend under test with no tables at all."""
    if backend == "duckdb":
        database = Database(tmp_path / "empty.duckdb")
        yield database
        database.close()
        return
    from vlm.store.postgres import PostgresDatabase

    server = request.getfixturevalue("postgres_server")
    url = server.empty_database()
    database = PostgresDatabase(url)
    yield database
    database.close()
    server.drop(url)


def _migrate_up_to(db: Any, version: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    with monkeypatch.context() as patch:
        patch.setattr(migrations, "MIGRATIONS", [m for m in MIGRATIONS if m[0] <= version])
        return migrate(db)


def _seed_history(cur: Any) -> None:
    """Two servers' features (one metered) with change-only snapshots over a day, one on the
    whole hour."""
    cur.execute(
        "INSERT INTO license_servers (id, name, base_url) VALUES (1, 'a', 'http://a'), "
        "(2, 'b', 'http://b')"
    )
    cur.execute(
        "INSERT INTO server_features (id, server_id, feature_name, feature_version, metered) "
        "VALUES (1, 1, 'cad', '1', FALSE), (2, 1, 'viz', '1', FALSE), (3, 2, 'cad', '1', FALSE), "
        "(4, 2, 'meter', '1', TRUE)"
    )
    start = datetime(2024, 3, 1, 8)
    rows = [
        (sf, start + timedelta(minutes=minutes), 10 * sf, (minutes // 7) % 9, sf % 2)
        for sf in (1, 2, 3, 4)
        for minutes in range(sf * 5, 24 * 60, 37 * sf)
    ]
    rows.append((2, start + timedelta(hours=30), 0, 0, 0))
    cur.executemany("INSERT INTO utilization_snapshots VALUES (?, ?, ?, ?, ?)", rows)


def test_a_migration_text_is_shared_or_chosen_by_dialect() -> None:
    assert migration_sql("CREATE TABLE t (x INTEGER)", "postgres") == "CREATE TABLE t (x INTEGER)"
    texts = {"duckdb": "SELECT 1", "postgres": "SELECT 2"}
    assert migration_sql(texts, "duckdb") == "SELECT 1"
    assert migration_sql(texts, "postgres") == "SELECT 2"
    assert migration_sql({"postgres": "SELECT 2"}, "duckdb") == ""
    hourly = dict((v, sql) for v, _, sql in MIGRATIONS)[HOURLY]
    assert "BRIN" in hourly["postgres"] and "BRIN" not in hourly["duckdb"]


def test_the_hourly_migrations_backfill_the_summaries_from_existing_snapshots(
    empty_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert _migrate_up_to(empty_db, HOURLY - 1, monkeypatch) == list(range(1, HOURLY))
    empty_db.write(_seed_history)
    snapshots = stored_snapshots(empty_db)
    assert len(snapshots) > 50

    assert _migrate_up_to(empty_db, COUNTED, monkeypatch) == [HOURLY, COUNTED]
    summary = stored_summary(empty_db)
    assert summary == summary_of(snapshots)
    assert sum(row[2] for row in summary) == len(snapshots)
    assert {row[1].minute for row in summary} == {0}
    counted = stored_counted(empty_db)
    assert counted == counted_of(summary, counted_features(empty_db))
    assert {row[0] for row in counted} == {1, 2} and sum(row[5] for row in counted) == 3
    assert _migrate_up_to(empty_db, COUNTED, monkeypatch) == []


def test_the_summary_key_is_enforced_on_postgres_and_absent_on_duckdb(
    empty_db: Any, backend: str
) -> None:
    migrate(empty_db)
    row = "INSERT INTO utilization_hourly VALUES (1, ?, 1, 1, 1, 1, 1, 1, 1, TRUE)"
    hour = datetime(2024, 3, 1, 9)
    empty_db.write(lambda cur: cur.execute(row, [hour]))
    if backend == "duckdb":
        empty_db.write(lambda cur: cur.execute(row, [hour]))
        assert empty_db.scalar("SELECT COUNT(*) FROM utilization_hourly") == 2
        keys = """SELECT COUNT(*) FROM duckdb_constraints() WHERE table_name = 'utilization_hourly'
            AND constraint_type IN ('PRIMARY KEY', 'UNIQUE')"""
        indexes = "SELECT COUNT(*) FROM duckdb_indexes() WHERE table_name = 'utilization_hourly'"
        assert (empty_db.scalar(keys), empty_db.scalar(indexes)) == (0, 0)
        return
    import psycopg

    with pytest.raises(psycopg.errors.UniqueViolation):
        empty_db.write(lambda cur: cur.execute(row, [hour]))
    indexes = dict(
        empty_db.query(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'utilization_hourly'"
        )
    )
    assert "USING brin (hour_end)" in indexes["idx_hourly_hour_end"]


def test_the_counted_sums_migration_fills_from_a_summary_migrated_before_it(
    empty_db: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrate_up_to(empty_db, HOURLY - 1, monkeypatch)
    empty_db.write(_seed_history)
    assert _migrate_up_to(empty_db, HOURLY, monkeypatch) == [HOURLY]
    summary = stored_summary(empty_db)
    assert summary == summary_of(stored_snapshots(empty_db))

    assert _migrate_up_to(empty_db, COUNTED, monkeypatch) == [COUNTED]
    assert stored_counted(empty_db) == counted_of(summary, counted_features(empty_db))


def test_the_pool_index_of_the_audit_is_made_on_postgres_only(
    empty_db: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrate_up_to(empty_db, AUDIT_BY_POOL - 1, monkeypatch)
    assert _migrate_up_to(empty_db, AUDIT_BY_POOL, monkeypatch) == [AUDIT_BY_POOL]
    recorded = "SELECT COUNT(*) FROM schema_migrations WHERE version = ?"
    assert empty_db.scalar(recorded, [AUDIT_BY_POOL]) == 1
    if backend == "duckdb":
        sql = "SELECT COUNT(*) FROM duckdb_indexes() WHERE table_name = 'audit_log'"
        assert empty_db.scalar(sql) == 1  # migration 2's idx_audit_at only
        return
    sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_audit_allocation_pool'"
    assert "WHERE ((target_type)::text = 'allocation'::text)" in empty_db.scalar(sql)


def _seed_audit(cur: Any) -> None:
    """Audit rows as older versions wrote them: allocation rows with and without the pool they
    belong to (an allocation that still exists, or is gone), pool rows, and other targets."""
    cur.execute(
        "INSERT INTO allocations (id, pool_id, server_feature_id, feature_name, feature_version, "
        "host_type, host_id, count, created_by) VALUES (4, 3, 1, 'cad', '1', 'HOSTID', 'h', 1, 'a')"
    )
    rows = [
        ("allocation.add", "allocation", "1", None, '{"pool_id": 7, "count": 2}'),
        ("allocation.remove", "allocation", "2", '{"count": 1, "pool_id": 8}', None),
        ("allocation.add", "allocation", "4", None, '{"count": 2, "host_id": "\\"pool_id\\": 9"}'),
        ("allocation.remove", "allocation", "5", '{"count": 1}', None),
        ("pool.update", "pool", "6", '{"quantities": {}}', '{"quantities": {}}'),
        ("vlm.update", "vlm", "6", '{"pool_id": 2}', '{"pool_id": 2}'),
        ("server.add", "server", "lls-1", None, "{}"),
    ]
    for row in rows:
        cur.execute(
            "INSERT INTO audit_log (actor, action, target_type, target_id, before, after) "
            "VALUES ('alice', ?, ?, ?, ?, ?)",
            list(row),
        )


def test_the_pool_column_of_the_audit_is_filled_from_rows_written_before_it(
    empty_db: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrate_up_to(empty_db, AUDIT_POOL_COLUMN - 1, monkeypatch)
    empty_db.write(_seed_audit)
    assert _migrate_up_to(empty_db, AUDIT_POOL_COLUMN, monkeypatch) == [AUDIT_POOL_COLUMN]
    stored = empty_db.query("SELECT target_type, target_id, pool_id FROM audit_log ORDER BY id")
    assert stored == [
        ("allocation", "1", 7),
        ("allocation", "2", 8),
        ("allocation", "4", 3),
        ("allocation", "5", None),
        ("pool", "6", 6),
        ("vlm", "6", None),
        ("server", "lls-1", None),
    ]
    if backend == "duckdb":
        sql = "SELECT COUNT(*) FROM duckdb_indexes() WHERE table_name = 'audit_log'"
        assert empty_db.scalar(sql) == 1  # migration 2's idx_audit_at only
        return
    indexes = dict(
        empty_db.query("SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'audit_log'")
    )
    assert "idx_audit_allocation_pool" not in indexes
    assert "(pool_id, happened_at) WHERE (pool_id IS NOT NULL)" in indexes["idx_audit_pool"]


def test_the_count_change_of_each_allocation_row_is_filled_from_rows_written_before_it(
    empty_db: Any, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _migrate_up_to(empty_db, AUDIT_COUNTS - 1, monkeypatch)
    rows = [
        ("allocation.add", "allocation", None, '{"count": 2, "pool_id": 7}'),
        ("allocation.edit", "allocation", '{"count": 2}', '{"count": 5}'),
        ("allocation.remove", "allocation", '{"count": 5}', None),
        ("allocation.edit", "allocation", '{"count": "x"}', '{"count": 4}'),
        ("allocation.retry", "allocation", '{"count": 4}', '{"count": 4}'),
        ("pool.update", "pool", '{"count": 1}', '{"count": 3}'),
    ]
    insert = (
        "INSERT INTO audit_log (actor, action, target_type, target_id, before, after) "
        "VALUES ('alice', ?, ?, '1', ?, ?)"
    )
    empty_db.write(lambda cur: [cur.execute(insert, list(row)) for row in rows])
    assert _migrate_up_to(empty_db, AUDIT_COUNTS, monkeypatch) == [AUDIT_COUNTS]
    stored = empty_db.query("SELECT count_change FROM audit_log ORDER BY id")
    assert [row[0] for row in stored] == [2, 3, -5, 4, 0, None]
    if backend == "postgres":
        sql = "SELECT indexdef FROM pg_indexes WHERE indexname = 'idx_audit_pool_counts'"
        assert "INCLUDE (count_change)" in empty_db.scalar(sql)


def test_replicas_migrating_one_new_database_together_apply_each_migration_once(
    postgres_server,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from vlm.store.postgres import PostgresDatabase

    url = postgres_server.empty_database()
    replicas = [PostgresDatabase(url) for _ in range(3)]
    try:
        with ThreadPoolExecutor(max_workers=3) as pool:
            applied = list(pool.map(migrate, replicas))
        every = sorted(v for versions in applied for v in versions)
        assert every == [version for version, _, _ in MIGRATIONS]
        recorded = replicas[0].query("SELECT version FROM schema_migrations ORDER BY version")
        assert [row[0] for row in recorded] == every
    finally:
        for replica in replicas:
            replica.close()
        postgres_server.drop(url)
