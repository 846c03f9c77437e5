"""The benchmark's PostgreSQL: a server of its own whose data folder lives next to the cached
estate, the estate loaded into it once (a template database), and a fresh copy per run.

The server is started with `initdb` / `pg_ctl` (as the `postgres` user when run as root) on a
free loopback port and stopped cleanly after the run, so the next run reuses the loaded estate.
Durability stays on (fsync and synchronous_commit at their defaults, like DuckDB's own
checkpoints); memory is sized for the estate.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO

import psycopg

from bench.estate import Estate, working_copy
from tests.postgres_server import postgres_bindir
from vlm.store import open_database
from vlm.store.move import move_installation

ESTATE_DATABASE = "estate"
LOADING_DATABASE = "estate_loading"
WORK_DATABASE = "work"
USER = "vlm"
SETTINGS = {
    "shared_buffers": "1GB",
    "effective_cache_size": "8GB",
    "work_mem": "64MB",
    "maintenance_work_mem": "1GB",
    "max_wal_size": "8GB",
    "checkpoint_timeout": "30min",
    "random_page_cost": "1.1",
    "max_connections": "100",
    "fsync": "on",
    "synchronous_commit": "on",
}
Log = Callable[[str], None]


def settings_summary() -> str:
    """The server settings, for the report."""
    return ", ".join(f"{name}={value}" for name, value in SETTINGS.items())


def server_version() -> str:
    """E.g. "PostgreSQL 15.18", from the installed server binary."""
    answer = subprocess.run(
        [str(postgres_bindir() / "postgres"), "--version"], capture_output=True, text=True
    ).stdout
    found = re.search(r"\d+(?:\.\d+)+", answer)
    return f"PostgreSQL {found.group(0) if found else '?'}"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class BenchPostgres:
    """A PostgreSQL server over a data folder that outlives the run (context manager)."""

    def __init__(self, folder: Path, log: Log = print) -> None:
        self.folder = folder
        self.data = folder / "data"
        self.log = log
        self.port = 0
        self.bindir = postgres_bindir()
        self._run_as = "postgres" if os.geteuid() == 0 else None
        self._lock: IO[str] | None = None

    def _pg(self, program: str, *args: str, check: bool = True) -> int:
        command = [str(self.bindir / program), *args]
        if self._run_as:
            command = ["runuser", "-u", self._run_as, "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, cwd=self.folder)
        if check and done.returncode != 0:
            raise RuntimeError(f"{program} failed ({done.returncode}): {done.stderr[-2000:]}")
        return done.returncode

    def _own(self, path: Path) -> None:
        if self._run_as:
            owner = pwd.getpwnam(self._run_as)
            os.chown(path, owner.pw_uid, owner.pw_gid)

    def _check_reachable(self) -> None:
        """Run as root, the server runs as `postgres`, which must reach the folder."""
        if self._run_as is None:
            return
        command = ["runuser", "-u", self._run_as, "--", "test", "-w", str(self.folder)]
        if subprocess.run(command, capture_output=True).returncode != 0:
            raise RuntimeError(
                f"the {self._run_as} user cannot write {self.folder}: "
                "every folder above it must be searchable by others (chmod o+x)"
            )

    def _initdb(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder.mkdir(parents=True)
        self._own(self.folder)
        self._check_reachable()
        self.log(f"initdb of the benchmark's PostgreSQL under {self.folder}")
        self._pg(
            "initdb", "-D", str(self.data), "-A", "trust", "-U", USER, "-E", "UTF8", "--locale=C"
        )

    def _take_lock(self) -> None:
        """One benchmark run at a time per data folder: a second one waits for the first."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self._lock = (self.folder.parent / "postgres.lock").open("w")
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.log(f"waiting for another benchmark run that uses {self.folder}")
            fcntl.flock(self._lock, fcntl.LOCK_EX)

    def _release_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def start(self) -> None:
        self._take_lock()
        try:
            self._start_server()
        except BaseException:
            self._release_lock()
            raise

    def _start_server(self) -> None:
        if not (self.data / "PG_VERSION").exists():
            self._initdb()
        if self._pg("pg_ctl", "-D", str(self.data), "status", check=False) == 0:
            # left running by a run that crashed (a live run would hold the lock)
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        self.port = _free_port()
        options = " ".join(
            [f"-p {self.port}", f"-k {self.folder}", "-c listen_addresses=127.0.0.1"]
            + [f"-c {name}={value}" for name, value in SETTINGS.items()]
        )
        log_file = str(self.folder / "server.log")
        self._pg("pg_ctl", "-D", str(self.data), "-o", options, "-l", log_file, "-w", "start")

    def stop(self) -> None:
        try:
            self._pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "300", "stop")
        finally:
            self._release_lock()

    def __enter__(self) -> BenchPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def url(self, database: str) -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _admin(self, *statements: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def _exists(self, database: str) -> bool:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
            return found.fetchone() is not None

    @property
    def _marker(self) -> Path:
        return self.folder / "estate.json"

    def _loaded(self, generated_at: str) -> bool:
        if not self._marker.exists() or not self._exists(ESTATE_DATABASE):
            return False
        return json.loads(self._marker.read_text(encoding="utf-8")) == generated_at

    def ensure_estate(self, estate: Estate) -> None:
        """The estate as a template database: loaded with vlm.store.move when the cached estate
        is new, else migrated in place (as the DuckDB working copy is when it opens)."""
        generated_at = str(estate.meta["generated_at"])
        if not self._loaded(generated_at):
            self._marker.unlink(missing_ok=True)
            self._load(estate)
            self._marker.write_text(json.dumps(generated_at), encoding="utf-8")
        self._migrate_estate()

    def _load(self, estate: Estate) -> None:
        """Load into a database of its own, then put it in place of the old estate."""
        started = time.perf_counter()
        self._admin(
            f"DROP DATABASE IF EXISTS {LOADING_DATABASE} WITH (FORCE)",
            f"CREATE DATABASE {LOADING_DATABASE}",
        )
        source = working_copy(estate, estate.directory / "load")
        open_database(str(source)).close()  # the cached estate may predate a migration
        self.log(f"loading the estate into PostgreSQL ({self.url(LOADING_DATABASE)})")
        report = move_installation(str(source), self.url(LOADING_DATABASE), self._table_done)
        if not report.ok:
            raise RuntimeError("loading the estate failed:\n" + "\n".join(report.lines()))
        shutil.rmtree(source.parent, ignore_errors=True)
        loaded = time.perf_counter()
        self._vacuum(LOADING_DATABASE)
        self._admin(
            f"DROP DATABASE IF EXISTS {WORK_DATABASE} WITH (FORCE)",
            f"DROP DATABASE IF EXISTS {ESTATE_DATABASE} WITH (FORCE)",
            f"ALTER DATABASE {LOADING_DATABASE} RENAME TO {ESTATE_DATABASE}",
        )
        self.log(
            f"  estate loaded in {loaded - started:.1f} s, "
            f"vacuumed and analyzed in {time.perf_counter() - loaded:.1f} s"
        )

    def _vacuum(self, database: str) -> None:
        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute("VACUUM (FREEZE, ANALYZE)")

    def _schema_version(self) -> int:
        with psycopg.connect(self.url(ESTATE_DATABASE), autocommit=True) as conn:
            row = conn.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _migrate_estate(self) -> None:
        """Newer migrations applied to the loaded estate, then vacuumed and analyzed again."""
        before = self._schema_version()
        open_database(self.url(ESTATE_DATABASE)).close()
        if self._schema_version() != before:
            self.log(f"  loaded estate migrated from schema {before}")
            self._vacuum(ESTATE_DATABASE)

    def _table_done(self, line: str) -> None:
        """The move's progress, one line per table (not every batch)."""
        if " of " not in line:
            self.log("  " + line)

    def working_copy(self) -> str:
        """A private copy of the loaded estate that scenarios may change: its URL."""
        self._admin(
            f"DROP DATABASE IF EXISTS {WORK_DATABASE} WITH (FORCE)",
            f"CREATE DATABASE {WORK_DATABASE} TEMPLATE {ESTATE_DATABASE} STRATEGY FILE_COPY",
        )
        return self.url(WORK_DATABASE)
