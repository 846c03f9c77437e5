"""`python -m vlm migrate-db --to postgresql://…`: moves the demo installation and verifies it,
never shows the URL's password, refuses a non-empty target, a held file and a non-URL, and
exits non-zero when the copy differs."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.conftest import ADMIN
from tests.unit.test_cli import _environment, _vlm
from vlm import cli
from vlm.config import Settings
from vlm.context import ServiceContext
from vlm.demo import (
    DEMO_ALLOCATIONS,
    DEMO_TIMEBOXED,
    DEMO_USERS,
    prepare_demo_database,
    start_demo_emulators,
)
from vlm.domain import SYSTEM_ACTOR, Role
from vlm.secret_box import SecretBox
from vlm.services import allocations, pools, users
from vlm.store import move, open_database

PASSWORD = "hunter2-not-shown"


@pytest.fixture
def target(postgres_server) -> Iterator[str]:
    """An empty database's URL carrying a password (the test server trusts loopback, so the
    password is never checked, only carried)."""
    url = postgres_server.empty_database()
    yield url.replace("postgresql://vlm@", f"postgresql://vlm:{PASSWORD}@")
    postgres_server.drop(url)


@pytest.fixture(scope="module")
def demo_source(tmp_path_factory) -> str:
    """The demo installation: three emulated servers pulled, users, pools, applied allocations."""
    path = str(tmp_path_factory.mktemp("demo") / "vlm.duckdb")
    emulators = start_demo_emulators(None)
    try:
        prepare_demo_database(path, {name: e.url for name, e in emulators.items()})
    finally:
        for running in emulators.values():
            running.stop()
    return path


def _small_source(path: Path) -> str:
    db = open_database(str(path))
    key = SecretBox.generate_key()
    ctx = ServiceContext(db, Settings(db_path=str(path), secret_key=key), SecretBox(key))
    try:
        users.add_user(ctx, SYSTEM_ACTOR, "root", Role.ADMIN, password="password-123")
    finally:
        db.close()
    return str(path)


def _rows(url: str, sql: str) -> list[tuple]:
    db = open_database(url)
    try:
        return db.query(sql)
    finally:
        db.close()


def _table_lines(stdout: str) -> dict[str, list[str]]:
    """The report's rows by table name: [source rows, target rows, checks, result]."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["table", "source", "rows", "target", "rows", "checks", "result"]
    rows = {}
    for line in lines[1:]:
        if line.startswith("sequences moved on:"):
            break
        name, *cells = line.split()
        rows[name] = cells
    return rows


def test_moves_the_demo_installation_verifies_it_and_never_shows_the_password(demo_source, target):
    done = _vlm("migrate-db", "--to", target, "--db", demo_source, cwd=Path(demo_source).parent)
    assert done.returncode == 0, done.stderr
    assert PASSWORD not in done.stdout + done.stderr
    assert "postgresql://vlm:***@127.0.0.1" in done.stderr
    table = _table_lines(done.stdout)
    assert {"users", "pools", "allocations", "audit_log", "utilization_snapshots"} <= set(table)
    assert all(cells[0] == cells[1] and cells[3] == "ok" for cells in table.values())
    assert table["users"][:2] == [str(len(DEMO_USERS))] * 2
    seeded = len(DEMO_ALLOCATIONS) + len(DEMO_TIMEBOXED) + 2  # and the two Simulation nodes
    assert table["allocations"][:2] == [str(seeded)] * 2
    snapshots = int(table["utilization_snapshots"][0].replace(",", ""))
    assert snapshots > 1000
    assert f"utilization_snapshots: {snapshots:,} rows copied" in done.stderr
    assert f"seq_allocation {seeded}" in done.stdout and "moved and verified" in done.stdout
    settings = Settings(db_url=target, secret_key=SecretBox.generate_key())
    ctx = ServiceContext(open_database(target), settings, SecretBox(settings.secret_key))
    try:
        names = sorted(users.list_users(ctx, ADMIN)["username"])
        cad = pools.list_pools(ctx, ADMIN).set_index("name").loc["CAD team", "id"]
        states = allocations.list_allocations(ctx, ADMIN, int(cad))["state"].tolist()
    finally:
        ctx.db.close()
    assert names == sorted(u.username for u in DEMO_USERS)
    # Mia's rows came across with their states: the plain ones applied, the time-boxed ones
    # scheduled, applied and expired
    assert sorted(states) == sorted(
        ["applied"] * (len(DEMO_ALLOCATIONS) + 1) + ["expired", "scheduled"]
    )


def test_a_second_move_into_the_filled_target_is_refused_and_changes_nothing(tmp_path, target):
    source = _small_source(tmp_path / "vlm.duckdb")
    assert _vlm("migrate-db", "--to", target, "--db", source, cwd=tmp_path).returncode == 0
    before = _rows(target, "SELECT username, password_hash FROM users")
    again = _vlm("migrate-db", "--to", target, "--db", source, cwd=tmp_path)
    assert again.returncode == 2
    assert "already holds rows in audit_log, users" in again.stderr
    assert "Traceback" not in again.stderr and again.stdout == ""
    assert _rows(target, "SELECT username, password_hash FROM users") == before
    assert len(before) == 1


def test_the_source_defaults_to_VLM_DB_PATH(tmp_path, target):
    source = _small_source(tmp_path / "configured.duckdb")
    env = _environment(VLM_DB_PATH=source)
    done = _vlm("migrate-db", "--to", target, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr
    assert f"Moving {source} to " in done.stderr
    assert _rows(target, "SELECT username FROM users") == [("root",)]


def test_a_file_the_app_holds_gets_the_message_sync_gives(tmp_path, target):
    source = _small_source(tmp_path / "held.duckdb")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({source!r}); print('ready', flush=True); "
            "time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        moved = _vlm("migrate-db", "--to", target, "--db", source, cwd=tmp_path)
        synced = _vlm("sync", "--db", source, cwd=tmp_path)
    finally:
        holder.kill()
        holder.wait()
    assert moved.returncode == synced.returncode == 2
    said = moved.stderr.splitlines()[-1].removeprefix("vlm migrate-db: ")
    assert "in use by another process" in said
    assert said == synced.stderr.splitlines()[-1].removeprefix("vlm sync: ")
    with psycopg.connect(target) as untouched:
        tables = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'public'"
        assert untouched.execute(tables).fetchone() == (0,)  # refused before opening it


@pytest.mark.parametrize(
    ("arguments", "said"),
    [
        (["--to", "data/other.duckdb"], "--to must be a postgresql:// URL"),
        (["--to", "postgresql://vlm@127.0.0.1:1/x", "--db", "postgresql://h/db"], "not a URL"),
    ],
)
def test_refuses_targets_and_sources_of_the_wrong_kind(
    tmp_path, monkeypatch, capsys, arguments, said
):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["migrate-db", *arguments]) == 2
    error = capsys.readouterr().err
    assert said in error and error.count("\n") == 1


def test_a_copy_that_differs_exits_1_and_keeps_nothing(tmp_path, target, monkeypatch, capsys):
    source = _small_source(tmp_path / "vlm.duckdb")
    real = move.copy_table

    def corrupting_copy(source_con, cur, table, progress):
        copied = real(source_con, cur, table, progress)
        if table.name == "users":
            cur.execute("UPDATE users SET role = 'analyst'")
        return copied

    monkeypatch.setattr(move, "copy_table", corrupting_copy)
    assert cli.main(["migrate-db", "--to", target, "--db", source]) == 1
    out, err = capsys.readouterr()
    # 32 figures: the checksums of the users table's columns (notification columns and the
    # break-glass flag included)
    assert _table_lines(out)["users"] == ["1", "1", "32", "DIFFERS"]
    assert "difference: users role characters: source 5, target 7" in out
    assert "nothing was kept" in err and PASSWORD not in out + err
    assert _rows(target, "SELECT COUNT(*) FROM users") == [(0,)]
