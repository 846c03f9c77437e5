"""Thread-safe access to one DuckDB file: a cursor per operation and one write lock."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from vlm.store.reads import CursorReads

T = TypeVar("T")


class DatabaseLockedError(RuntimeError):
    """Another process (usually the running app) holds the DuckDB file."""


def database_locked(path: str) -> DatabaseLockedError:
    """What to say when another process (usually the running app) holds the DuckDB file."""
    return DatabaseLockedError(
        f"the database {path} is in use by another process "
        "(is the VLM app running?); stop it or use its 'Sync now' button"
    )


class Database(CursorReads):
    """One DuckDB connection per process; reads use their own cursor, writes share one lock."""

    dialect = "duckdb"

    def __init__(self, path: str | Path, *, threads: int = 2, memory_limit: str = "512MB") -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(
                self.path, config={"threads": threads, "memory_limit": memory_limit}
            )
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise database_locked(self.path) from exc
            raise
        self._write_lock = threading.RLock()
        self._local = threading.local()
        self.generation = 0

    @contextmanager
    def _cursor(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The open write transaction's cursor on this thread, else a fresh cursor for one read."""
        cur = getattr(self._local, "write_cursor", None)
        if cur is not None:
            yield cur
            return
        with self._con.cursor() as own:
            yield own

    def write(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        """Run fn inside one transaction under the write lock; reads inside see its changes."""
        with self._write_lock:
            outer = getattr(self._local, "write_cursor", None)
            if outer is not None:
                return fn(outer)
            with self._con.cursor() as cur:
                cur.execute("BEGIN TRANSACTION")
                self._local.write_cursor = cur
                try:
                    result = fn(cur)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
                finally:
                    self._local.write_cursor = None
                self.generation += 1
                return result

    def execute_script(self, sql: str) -> None:
        """Run DDL statements outside an explicit transaction (used by migrations)."""
        with self._write_lock, self._con.cursor() as cur:
            cur.execute(sql)

    def close(self) -> None:
        self._con.close()
