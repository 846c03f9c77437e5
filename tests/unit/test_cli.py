"""The command line: first admin from stdin, one sync pass, a clear message on a held DB."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from vlm.config import Settings
from vlm.domain import SYSTEM_ACTOR
from vlm.flexnet import FlexNetClient
from vlm.flexnet.emulator.server import start_emulator
from vlm.secret_box import SecretBox
from vlm.services import servers
from vlm.services.context import ServiceContext
from vlm.store import open_database

ROOT = Path(__file__).resolve().parents[2]


def _vlm(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vlm", *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )


def test_users_add_reads_password_from_stdin(tmp_path):
    db_path = str(tmp_path / "cli.duckdb")
    done = _vlm(
        "users", "add", "Root", "--role", "admin", "--db", db_path, stdin="a-long-password\n"
    )
    assert done.returncode == 0, done.stderr
    assert "user 'root' added with role admin" in done.stdout
    again = _vlm("users", "add", "root", "--role", "admin", "--db", db_path, stdin="x" * 10)
    assert again.returncode == 1 and "exists already" in again.stderr
    short = _vlm("users", "add", "bo", "--role", "analyst", "--db", db_path, stdin="short\n")
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
        done = _vlm("sync", "--db", db_path)
        assert done.returncode == 2
        assert "in use by another process" in done.stderr and "Traceback" not in done.stderr
        assert time.monotonic() - started < 30
    finally:
        holder.kill()
        holder.wait()


def test_sync_pulls_inventory_of_every_server(tmp_path, monkeypatch):
    key = SecretBox.generate_key()
    monkeypatch.setenv("VLM_SECRET_KEY", key)
    db_path = str(tmp_path / "sync.duckdb")
    with start_emulator(ROOT / "data" / "demo" / "lls-east.json") as emulator:
        ctx = ServiceContext.open(Settings(db_path=db_path, secret_key=key))
        servers.add_server(
            ctx,
            SYSTEM_ACTOR,
            servers.ServerInput("east", emulator.url, username="admin", password="admin"),
        )
        ctx.db.close()
        done = _vlm("sync", "--db", db_path)
        assert done.returncode == 0, done.stderr
        db = open_database(db_path)
        try:
            assert db.query("SELECT status, last_error FROM license_servers") == [("ok", None)]
            features = db.scalar("SELECT COUNT(*) FROM server_features WHERE present")
            with FlexNetClient(emulator.url, username="admin", password="admin") as client:
                assert features == len(client.feature_totals(active_only=True)) > 0
        finally:
            db.close()
    done = _vlm("sync", "--db", db_path)
    assert done.returncode == 1 and "1 server(s) had problems" in done.stderr
    db = open_database(db_path)
    try:
        assert db.query("SELECT status FROM license_servers") == [("error",)]
        assert db.scalar("SELECT COUNT(*) FROM server_features") == features
    finally:
        db.close()
