"""The command line: `init` writes fresh keys, first admin from stdin, one sync pass, and one
clear line (exit 2) for a held database or settings VLM refuses (#7.2, #7.5, #7.10)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from vlm.cli import main
from vlm.config import Settings, read_secrets_file
from vlm.context import ServiceContext
from vlm.domain import SYSTEM_ACTOR
from vlm.flexnet import FlexNetClient
from vlm.flexnet.emulator.server import start_emulator
from vlm.secret_box import SecretBox
from vlm.services import servers
from vlm.store import open_database

ROOT = Path(__file__).resolve().parents[2]


def _environment(**variables: str) -> dict[str, str]:
    """This process's environment without VLM_* settings (bcrypt rounds kept), plus variables."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith("VLM_")}
    rounds = os.environ.get("VLM_BCRYPT_ROUNDS", "4")
    return {**kept, "PYTHONPATH": str(ROOT), "VLM_BCRYPT_ROUNDS": rounds, **variables}


def _vlm(
    *args: str, cwd: Path, stdin: str = "", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """`python -m vlm ARGS` started in cwd (a test directory: a developer's own
    .streamlit/secrets.toml in the checkout must not reach the test)."""
    return subprocess.run(
        [sys.executable, "-m", "vlm", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env if env is not None else _environment(VLM_SECRET_KEY=SecretBox.generate_key()),
        timeout=60,
    )


def test_users_add_reads_password_from_stdin(tmp_path):
    db_path = str(tmp_path / "cli.duckdb")
    done = _vlm(
        "users",
        "add",
        "Root",
        "--role",
        "admin",
        "--db",
        db_path,
        stdin="a-long-password\n",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "user 'root' added with role admin" in done.stdout
    again = _vlm(
        "users", "add", "root", "--role", "admin", "--db", db_path, stdin="x" * 10, cwd=tmp_path
    )
    assert again.returncode == 1 and "exists already" in again.stderr
    short = _vlm(
        "users", "add", "bo", "--role", "analyst", "--db", db_path, stdin="short\n", cwd=tmp_path
    )
    assert short.returncode == 1 and "at least 8" in short.stderr
    db = open_database(db_path)
    try:
        assert db.query("SELECT username, role, must_change_password FROM users") == [
            ("root", "admin", False)
        ]
    finally:
        db.close()


def test_sync_says_clearly_when_the_database_is_held(tmp_path):
    db_path = str(tmp_path / "held.duckdb")
    open_database(db_path).close()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb, time; c = duckdb.connect({db_path!r}); print('ready', flush=True); "
            "time.sleep(30)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        started = time.monotonic()
        done = _vlm("sync", "--db", db_path, cwd=tmp_path)
        assert done.returncode == 2
        assert "in use by another process" in done.stderr and "Traceback" not in done.stderr
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()


def test_sync_pulls_inventory_of_every_server(tmp_path):
    key = SecretBox.generate_key()
    env = _environment(VLM_SECRET_KEY=key)
    db_path = str(tmp_path / "sync.duckdb")
    with start_emulator(ROOT / "data" / "demo" / "lls-east.json") as emulator:
        ctx = ServiceContext.open(Settings(db_path=db_path, secret_key=key))
        servers.add_server(
            ctx,
            SYSTEM_ACTOR,
            servers.ServerInput("east", emulator.url, username="admin", password="admin"),
        )
        ctx.db.close()
        done = _vlm("sync", "--db", db_path, cwd=tmp_path, env=env)
        assert done.returncode == 0, done.stderr
        db = open_database(db_path)
        try:
            assert db.query("SELECT status, last_error FROM license_servers") == [("ok", None)]
            features = db.scalar("SELECT COUNT(*) FROM server_features WHERE present")
            with FlexNetClient(emulator.url, username="admin", password="admin") as client:
                assert features == len(client.feature_totals(active_only=True)) > 0
        finally:
            db.close()
    done = _vlm("sync", "--db", db_path, cwd=tmp_path, env=env)
    assert done.returncode == 1 and "1 server(s) had problems" in done.stderr
    db = open_database(db_path)
    try:
        assert db.query("SELECT status FROM license_servers") == [("error",)]
        assert db.scalar("SELECT COUNT(*) FROM server_features") == features
    finally:
        db.close()


def test_init_writes_fresh_keys_that_start_in_a_file_only_its_owner_reads(tmp_path):
    done = _vlm("init", cwd=tmp_path, env=_environment())
    assert done.returncode == 0, done.stderr
    written = tmp_path / ".streamlit" / "secrets.toml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    first = read_secrets_file(written)
    assert Settings(**first).problems() == []
    other = tmp_path / "elsewhere" / "secrets.toml"
    assert main(["init", "--path", str(other)]) == 0
    second = read_secrets_file(other)
    assert first["cookie_key"] != second["cookie_key"]
    assert first["secret_key"] != second["secret_key"]


def test_init_never_overwrites_without_force(tmp_path, capsys):
    path = tmp_path / "secrets.toml"
    path.write_text('[auth]\ncookie_key = "the operator\'s own"\n')
    path.chmod(0o644)
    assert main(["init", "--path", str(path)]) == 1
    assert "exists already" in capsys.readouterr().err
    assert tomllib.loads(path.read_text())["auth"]["cookie_key"] == "the operator's own"
    assert main(["init", "--path", str(path), "--force"]) == 0
    assert Settings(**read_secrets_file(path)).problems() == []
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["secrets.toml"]  # no temporary file left


def test_the_readme_setup_init_then_first_admin_reads_the_written_file(tmp_path):
    env = _environment()
    assert _vlm("init", cwd=tmp_path, env=env).returncode == 0
    db_path = str(tmp_path / "vlm.duckdb")
    done = _vlm(
        "users",
        "add",
        "alice",
        "--role",
        "admin",
        "--db",
        db_path,
        stdin="a-long-password\n",
        cwd=tmp_path,
        env=env,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"VLM_SECRET_KEY": "not-a-fernet-key"}, "not a valid Fernet key"),
        ({"VLM_SECRET_KEY": "x" * 44}, "not a valid Fernet key"),
        ({}, "VLM_SECRET_KEY"),
        ({"VLM_SECRET_KEY": "replace-with-a-fernet-key"}, "not a valid Fernet key"),
        ({"VLM_GROUP_PREFIX": ""}, "group prefix"),
        ({"VLM_SYNC_INTERVAL": "soon"}, "sync_interval_seconds"),
    ],
)
def test_sync_refuses_bad_settings_with_one_line_and_exit_2(tmp_path, variables, named):
    variables = {"VLM_SECRET_KEY": SecretBox.generate_key(), **variables}
    if "VLM_SECRET_KEY" in named:
        del variables["VLM_SECRET_KEY"]
    db_path = tmp_path / "vlm.duckdb"
    done = _vlm("sync", "--db", str(db_path), cwd=tmp_path, env=_environment(**variables))
    assert done.returncode == 2
    assert done.stderr.startswith("vlm sync: refuses to start: ") and named in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
    assert not db_path.exists()  # refused before opening anything


def test_every_command_that_opens_the_database_refuses_an_invalid_fernet_key(
    tmp_path, monkeypatch, capsys
):
    for name in [n for n in os.environ if n.startswith("VLM_") and n != "VLM_BCRYPT_ROUNDS"]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VLM_SECRET_KEY", "not-a-fernet-key")
    db = str(tmp_path / "vlm.duckdb")
    assert main(["sync", "--db", db]) == 2
    assert main(["users", "add", "alice", "--role", "admin", "--db", db]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in lines] == ["vlm sync", "vlm users"]
    assert all("not a valid Fernet key" in line for line in lines)
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text("[vlm\n")
    assert main(["sync", "--db", db]) == 2
    assert "secrets.toml cannot be read" in capsys.readouterr().err
