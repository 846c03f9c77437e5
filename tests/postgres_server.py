"""A throwaway PostgreSQL server for tests: initdb and pg_ctl in a temporary folder, a free
loopback port, one migrated template database and a fresh copy of it per test."""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import psycopg

TEMPLATE = "vlm_template"


def postgres_bindir() -> Path:
    """Where initdb and pg_ctl live: pg_config's answer, else Debian's versioned folder."""
    found = shutil.which("pg_config")
    if found:
        bindir = subprocess.run([found, "--bindir"], capture_output=True, text=True).stdout
        if (Path(bindir.strip()) / "initdb").exists():
            return Path(bindir.strip())
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists():
            return Path(candidate)
    raise RuntimeError(
        "PostgreSQL is not installed: `make test` installs Debian's postgresql package "
        "(or set VLM_TEST_BACKENDS=duckdb to run the DuckDB half only)"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One postgres process owned by the test session; databases are cheap copies of a template."""

    def __init__(self) -> None:
        self.bindir = postgres_bindir()
        self.folder = Path(tempfile.mkdtemp(prefix="vlm-pg-"))
        self.port = _free_port()
        self._names = itertools.count(1)
        self._run_as = None
        if os.geteuid() == 0:  # initdb and postgres refuse to run as root
            self._run_as = "postgres"
            owner = pwd.getpwnam("postgres")
            os.chown(self.folder, owner.pw_uid, owner.pw_gid)
        data = self.folder / "data"
        self._pg(
            "initdb",
            "-D",
            str(data),
            "-A",
            "trust",
            "-U",
            "vlm",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        options = (
            f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._pg(
            "pg_ctl", "-D", str(data), "-o", options, "-l", str(self.folder / "log"), "-w", "start"
        )
        self.admin_url = f"postgresql://vlm@127.0.0.1:{self.port}/postgres"

    def _pg(self, program: str, *args: str) -> None:
        command = [str(self.bindir / program), *args]
        if self._run_as:
            command = ["runuser", "-u", self._run_as, "--", *command]
        subprocess.run(command, check=True, capture_output=True, cwd=self.folder)

    def url(self, database: str) -> str:
        return f"postgresql://vlm@127.0.0.1:{self.port}/{database}"

    def _admin(self, statement: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)

    def create_template(self) -> None:
        """The template every test database copies: created and migrated once."""
        from vlm.store import open_database

        self._admin(f"CREATE DATABASE {TEMPLATE}")
        open_database(self.url(TEMPLATE)).close()

    def fresh_database(self) -> str:
        """The URL of a new database holding the migrated, empty schema."""
        name = f"vlm_test_{os.getpid()}_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def copy_of(self, url: str) -> str:
        """The URL of a new database copied from the one at url (nobody may be connected to it)."""
        name = f"vlm_copy_{os.getpid()}_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name} TEMPLATE {url.rsplit('/', 1)[1]}")
        return self.url(name)

    def empty_database(self) -> str:
        """The URL of a new database with no tables at all (for migrate and move tests)."""
        name = f"vlm_empty_{os.getpid()}_{next(self._names)}"
        self._admin(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        try:
            self._pg("pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
