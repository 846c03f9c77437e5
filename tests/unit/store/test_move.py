"""Moving a DuckDB installation to PostgreSQL (vlm/store/move.py): every row arrives, ids go on
after the source's, a non-empty target is refused, and verification catches what differs."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import psycopg
import pytest

from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR, Role
from vlm.secret_box import SecretBox
from vlm.services import allocations, audit, pools, tokens, users, vlms
from vlm.store import move, open_database

KEY = SecretBox.generate_key()
CAD = ("CAD", "2024.1")
SIM = ("SIM", "7.0")
ODD_NAME = 'Zoë "Z" O\'Neil, ops; 100% 🦆'
ODD_TEXT = 'desk "A", row 1 ✓'
MULTILINE = 'first line\r\nsecond "line", with a comma\n\\N'


def _context(target: str) -> ServiceContext:
    setting = {"db_url": target} if target.startswith("postgresql") else {"db_path": target}
    return ServiceContext(
        open_database(target), Settings(**setting, secret_key=KEY), SecretBox(KEY)
    )


def _seed(ctx: ServiceContext) -> None:
    """A small estate with awkward values: quotes, newlines, emoji, an empty email, NULLs,
    microseconds before 1970, a deleted pool (its sequence stands above the highest id)."""
    add_people(ctx)
    users.add_user(
        ctx, SYSTEM_ACTOR, "zoe", Role.ANALYST, display_name=ODD_NAME, password="password-123"
    )
    add_server(ctx, "lls-a", {CAD: 10, SIM: 5})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "Engineering", feature_ids(ctx), description=ODD_TEXT)
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "CAD team", MANAGER.username, {CAD: 4})
    doomed = pools.create_pool(ctx, ADMIN, vlm_id, "Gone", MANAGER.username, {SIM: 1})
    pools.delete_pool(ctx, ADMIN, doomed, confirmed_allocations=0)
    allocations.allocate(ctx, MANAGER, pool_id, CAD, "ETHERNET", "0050569A0001", 2, ODD_TEXT)
    allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "jsmith", 1, "")
    tokens.create_token(ctx, MANAGER, "ci", read_only=True)
    first_feature = feature_ids(ctx)[0]

    def history(cur) -> None:
        cur.executemany(
            "INSERT INTO utilization_snapshots VALUES (?, ?, ?, ?, ?)",
            [
                [first_feature, datetime(1969, 12, 31, 23, 59, 59, 500001), 10, 3, 0],
                [first_feature, datetime(2024, 2, 29, 12, 0, 0, 123456), 10, 7, 2],
            ],
        )
        cur.execute("INSERT INTO login_failures VALUES ('dave', 2, 1717171717.123456)")
        cur.execute(
            "INSERT INTO sync_conflicts (server_id, kind, detail) VALUES (1, 'drift', ?)",
            [MULTILINE],
        )

    ctx.db.write(history)


@pytest.fixture
def source(tmp_path: Path) -> str:
    """A DuckDB installation seeded through the services, closed again."""
    path = str(tmp_path / "vlm.duckdb")
    ctx = _context(path)
    try:
        _seed(ctx)
    finally:
        ctx.db.close()
    return path


@pytest.fixture
def empty_target(postgres_server) -> Iterator[str]:
    url = postgres_server.empty_database()
    yield url
    postgres_server.drop(url)


@pytest.fixture
def occupied_target(postgres_server) -> Iterator[str]:
    """A migrated database that already holds one user."""
    url = postgres_server.fresh_database()
    ctx = _context(url)
    try:
        users.add_user(ctx, SYSTEM_ACTOR, "root", Role.ADMIN, password="password-123")
    finally:
        ctx.db.close()
    yield url
    postgres_server.drop(url)


def _digest(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _move(source: str, target: str, said: list[str] | None = None) -> move.MoveReport:
    return move.move_installation(source, target, (said if said is not None else []).append)


def _tables(source: str) -> list[move.Table]:
    with duckdb.connect(source, read_only=True) as con:
        return move.source_tables(con)


def _rows(query, table: move.Table) -> list[tuple]:
    names = ", ".join(move.quoted(c.name) for c in table.columns)
    return sorted(query(f"SELECT {names} FROM {move.quoted(table.name)}"), key=repr)


def _target_counts(url: str) -> dict[str, int]:
    db = open_database(url)
    try:
        names = {r[0] for r in db.query(move._TARGET_COLUMNS)} - move.SKIPPED_TABLES
        return {n: db.scalar(f"SELECT COUNT(*) FROM {move.quoted(n)}") for n in sorted(names)}
    finally:
        db.close()


def test_every_row_of_every_table_arrives_unchanged_and_the_source_is_untouched(
    source, empty_target
):
    before = _digest(source)
    said: list[str] = []
    report = _move(source, empty_target, said)
    assert report.ok and report.kept
    tables = _tables(source)
    assert [c.table for c in report.checks] == [t.name for t in tables]
    assert {"users", "pools", "allocations", "audit_log", "api_tokens"} <= {t.name for t in tables}
    assert "schema_migrations" not in {t.name for t in tables}
    assert "users: 5 rows copied" in said and said[-1] == f"verifying {len(tables)} tables"
    source_db, target_db = open_database(source), open_database(empty_target)
    try:
        for table in tables:
            mine = _rows(source_db.query, table)
            assert _rows(target_db.query, table) == mine, table.name
        odd = target_db.scalar("SELECT display_name FROM users WHERE username = 'zoe'")
        assert odd == ODD_NAME
        assert target_db.scalar("SELECT detail FROM sync_conflicts") == MULTILINE
        assert target_db.scalar("SELECT COUNT(*) FROM users WHERE email = ''") == 5
        assert target_db.scalar("SELECT COUNT(*) FROM allocations WHERE last_error IS NULL") == 2
    finally:
        source_db.close()
        target_db.close()
    assert _digest(source) == before
    assert not Path(source + ".wal").exists()


def _estate(ctx: ServiceContext) -> dict[str, list[dict]]:
    """What the services show of pools, allocations, users and the audit log."""
    pool_id = int(pools.list_pools(ctx, ADMIN)["id"].iloc[0])
    frames = {
        "pools": pools.list_pools(ctx, ADMIN),
        "pool features": pools.pool_features(ctx, ADMIN, pool_id),
        "allocations": allocations.list_allocations(ctx, MANAGER, pool_id),
        "users": users.list_users(ctx, ADMIN),
        "audit": audit.audit_log(ctx, ADMIN),
        "tokens": tokens.list_all_tokens(ctx, ADMIN),
    }
    return {name: _records(frame) for name, frame in frames.items()}


def _records(frame: pd.DataFrame) -> list[dict]:
    """Rows as dicts, every missing value (None, NaN, NaT: dtypes differ by engine) as None."""
    return [
        {
            k: None if v is None or (pd.api.types.is_scalar(v) and pd.isna(v)) else v
            for k, v in row.items()
        }
        for row in frame.to_dict("records")
    ]


def test_the_services_read_the_same_estate_from_the_target(source, empty_target):
    assert _move(source, empty_target).ok
    before, after = _context(source), _context(empty_target)
    try:
        mine, theirs = _estate(before), _estate(after)
    finally:
        before.db.close()
        after.db.close()
    assert len(mine["allocations"]) == 2 and len(mine["audit"]) >= 8
    for name, rows in mine.items():
        assert theirs[name] == rows, name


def test_new_rows_on_the_target_are_numbered_after_the_source_s(source, empty_target):
    report = _move(source, empty_target)
    assert report.sequences["seq_pool"] == 2  # the deleted pool's id is not handed out again
    ctx = _context(empty_target)
    try:
        vlm_id = int(ctx.db.scalar("SELECT id FROM vlms"))
        highest_audit = int(ctx.db.scalar("SELECT MAX(id) FROM audit_log"))
        pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "Simulation", MANAGER.username, {SIM: 1})
        written = ctx.db.query("SELECT id FROM audit_log WHERE id > ? ORDER BY id", [highest_audit])
    finally:
        ctx.db.close()
    assert pool_id == 3
    assert [row[0] for row in written] == [highest_audit + 1]


def test_a_target_that_holds_rows_is_refused_and_left_unchanged(source, occupied_target):
    before = _target_counts(occupied_target)
    with pytest.raises(move.MoveRefusedError, match="already holds rows in audit_log, users:"):
        _move(source, occupied_target)
    assert _target_counts(occupied_target) == before
    assert before["users"] == before["audit_log"] == 1 and sum(before.values()) == 2


def test_a_source_at_an_older_schema_is_refused_and_nothing_is_copied(source, empty_target):
    with duckdb.connect(source) as con:
        newest = con.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
        con.execute("DELETE FROM schema_migrations WHERE version = ?", [newest])
        older = con.execute("SELECT MAX(version) FROM schema_migrations").fetchone()[0]
    with pytest.raises(move.MoveRefusedError, match=f"schema version {older}"):
        _move(source, empty_target)
    assert sum(_target_counts(empty_target).values()) == 0


def test_a_missing_source_is_refused(tmp_path, empty_target):
    with pytest.raises(move.MoveRefusedError, match="no DuckDB database"):
        _move(str(tmp_path / "absent.duckdb"), empty_target)


def _copied(source: str, target: str) -> tuple[duckdb.DuckDBPyConnection, psycopg.Connection]:
    assert _move(source, target).ok
    return duckdb.connect(source, read_only=True), psycopg.connect(target, autocommit=True)


def test_verification_names_a_changed_value_and_a_missing_row(source, empty_target):
    con, pg = _copied(source, empty_target)
    try:
        tables = move.source_tables(con)
        with pg.cursor() as cur:
            assert all(check.ok for check in move.verify_tables(con, cur, tables))
            cur.execute("UPDATE users SET display_name = 'Alicf' WHERE username = 'alice'")
            cur.execute("UPDATE pool_portions SET quantity = quantity + 1")
            cur.execute("DELETE FROM utilization_snapshots WHERE used = 3")
            checks = {check.table: check for check in move.verify_tables(con, cur, tables)}
    finally:
        con.close()
        pg.close()
    assert {name for name, check in checks.items() if not check.ok} == {
        "users",
        "pool_portions",
        "utilization_snapshots",
    }
    assert any("display_name md5 checksum" in d for d in checks["users"].differences)
    assert not any("display_name characters" in d for d in checks["users"].differences)
    assert checks["pool_portions"].differences == (
        "pool_portions quantity sum: source 4, target 5",
    )
    snapshots = checks["utilization_snapshots"]
    assert (snapshots.source_rows, snapshots.target_rows) == (2, 1)
    assert any("taken_at microseconds" in d for d in snapshots.differences)


def _corrupting(table: str, statement: str):
    """copy_table that, after copying table, runs statement in the move's own transaction."""
    real = move.copy_table

    def copy_table(source, cur, copied: move.Table, progress) -> int:
        rows = real(source, cur, copied, progress)
        if copied.name == table:
            cur.execute(statement)
        return rows

    return copy_table


def test_a_difference_found_before_commit_keeps_nothing(source, empty_target, monkeypatch):
    statement = "UPDATE allocations SET count = count + 1 WHERE host_id = 'jsmith'"
    monkeypatch.setattr(move, "copy_table", _corrupting("allocations", statement))
    report = _move(source, empty_target)
    assert not report.ok and not report.kept
    wrong = [c for c in report.checks if not c.ok]
    assert [c.table for c in wrong] == ["allocations"]
    assert wrong[0].differences == ("allocations count sum: source 3, target 4",)
    assert "allocations" in "\n".join(report.lines()) and "DIFFERS" in "\n".join(report.lines())
    assert sum(_target_counts(empty_target).values()) == 0
    with psycopg.connect(empty_target) as pg:
        assert pg.execute("SELECT is_called FROM seq_pool").fetchone() == (False,)


def test_a_failure_part_way_rolls_everything_back(source, empty_target, monkeypatch):
    monkeypatch.setattr(move, "copy_table", _corrupting("pools", "SELECT 1 / 0"))
    with pytest.raises(move.MoveFailedError, match="DivisionByZero"):
        _move(source, empty_target)
    assert sum(_target_counts(empty_target).values()) == 0


AWKWARD_ROWS = [
    ("héllo🦆", datetime(2024, 3, 1, 12, 34, 56, 789012), 0.1, True, 2**40),
    ("", datetime(1969, 12, 31, 23, 59, 59, 500000), None, False, -7),
    (None, None, float("nan"), None, None),
    ('x\n"y",z', datetime(2030, 1, 1), 1e300, True, 0),
]
AWKWARD = move.Table(
    "awkward",
    (
        move.Column("s", "VARCHAR"),
        move.Column("t", "TIMESTAMP"),
        move.Column("d", "DOUBLE"),
        move.Column("b", "BOOLEAN"),
        move.Column("n", "BIGINT"),
    ),
    len(AWKWARD_ROWS),
)
AWKWARD_DDL = (
    "CREATE TABLE awkward (s VARCHAR, t TIMESTAMP, d DOUBLE PRECISION, b BOOLEAN, n BIGINT)"
)


def test_figures_agree_across_engines_on_awkward_values_and_see_one_changed_letter(
    empty_target,
):
    con = duckdb.connect()
    con.execute(AWKWARD_DDL)
    con.executemany("INSERT INTO awkward VALUES (?, ?, ?, ?, ?)", AWKWARD_ROWS)
    with psycopg.connect(empty_target, autocommit=True) as pg, pg.cursor() as cur:
        cur.execute(AWKWARD_DDL)
        cur.executemany("INSERT INTO awkward VALUES (%s, %s, %s, %s, %s)", AWKWARD_ROWS)
        agreed = move.verify_tables(con, cur, [AWKWARD])[0]
        cur.execute("UPDATE awkward SET s = 'hélln🦆' WHERE s = 'héllo🦆'")
        changed = move.verify_tables(con, cur, [AWKWARD])[0]
    assert agreed.ok and agreed.figures == 1 + 3 + 2 + 3 + 2 + 2
    assert len(changed.differences) == 1 and "awkward s md5 checksum" in changed.differences[0]
    figures = dict(
        zip(
            [f.label for f in move.table_figures(AWKWARD)],
            con.execute(move.figures_sql(AWKWARD, "duckdb")).fetchone(),
            strict=True,
        )
    )
    assert figures["rows"] == 4 and figures["s values"] == 3 and figures["s characters"] == 13
    assert math.isclose(figures["d sum"], 1e300) and figures["d NaNs"] == 1
    assert figures["b trues"] == 2 and figures["n sum"] == 2**40 - 7


def test_a_source_with_a_table_or_sequence_the_target_lacks_is_refused(source, empty_target):
    with duckdb.connect(source) as con:
        con.execute("CREATE TABLE notes (body VARCHAR)")
        con.execute("INSERT INTO notes VALUES ('kept by hand')")
    with pytest.raises(move.MoveRefusedError, match="the target has no table notes"):
        _move(source, empty_target)
    with duckdb.connect(source) as con:
        con.execute("DROP TABLE notes")
        con.execute("CREATE SEQUENCE seq_notes")
    with pytest.raises(move.MoveRefusedError, match="the target has no sequence seq_notes"):
        _move(source, empty_target)
    assert sum(_target_counts(empty_target).values()) == 0
