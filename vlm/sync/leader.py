"""Which replica runs the sync scheduler, and whose turn it is to work on a license server.

On DuckDB one process owns the file, so it always leads. On PostgreSQL any number of replicas
share the database: the one whose session holds the leader advisory lock leads, and it LISTENs
for the servers that saves on any replica announce. The others retry the lock every second or so;
when the leader's process dies its session ends, the lock is free, and one of them takes over.
Pulling or reconciling a server, by the leader, a "Sync now" or `python -m vlm sync`, happens in
that server's turn (a per-server advisory lock), so two of them never work on one server at once.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any, Protocol

import psycopg

from vlm.context import ServiceContext
from vlm.store import leadership

log = logging.getLogger(__name__)


class LeadershipLost(RuntimeError):
    """The leader's session to the database is gone, and with it the leader lock."""


class Leadership(Protocol):
    """How a scheduler becomes, stays and stops being the one that syncs."""

    shared: bool  # other replicas may share the database

    def acquire(self) -> bool: ...

    def changes(self, timeout: float) -> set[int]: ...

    def release(self) -> None: ...


class SoleLeadership:
    """DuckDB: the process that owns the file always leads; changes come through the context
    hook, not from a channel."""

    shared = False

    def acquire(self) -> bool:
        return True

    def changes(self, timeout: float) -> set[int]:
        return set()

    def release(self) -> None:
        """Nothing to give back."""


def replica_name() -> str:
    """How this process names itself as the leader: host and process id."""
    return f"{socket.gethostname()} pid {os.getpid()}"


class AdvisoryLeadership:
    """PostgreSQL: a pooled connection kept while leading holds the leader lock and LISTENs.

    Used from one thread only (the scheduler's leader thread)."""

    shared = True

    def __init__(self, db: Any, name: str | None = None) -> None:
        self._db = db
        self.name = name or replica_name()
        self._stack: ExitStack | None = None
        self._conn: Any = None

    def acquire(self) -> bool:
        """Take the lock if it is free (and start listening); False while another leads."""
        if self._conn is not None:
            return True
        stack = ExitStack()
        conn = None
        try:
            conn = stack.enter_context(self._db.connection())
            taken = leadership.try_leader_lock(conn, self.name)
            if taken:
                leadership.listen_for_changes(conn)
        except Exception:
            if conn is not None:  # never hand the pool a session that holds the lock
                leadership.release_session(conn)
            stack.close()
            raise
        if not taken:
            stack.close()
            return False
        self._stack, self._conn = stack, conn
        log.info("this replica (%s) now leads the sync", self.name)
        return True

    def changes(self, timeout: float) -> set[int]:
        """Servers announced within timeout; raises LeadershipLost when the session is gone."""
        if self._conn is None:
            raise LeadershipLost("not leading")
        try:
            heard = leadership.changes_heard(self._conn, timeout)
        except psycopg.Error as exc:
            raise LeadershipLost(f"the leader's database session was lost: {exc}") from exc
        if not leadership.session_alive(self._conn):
            raise LeadershipLost("the leader's database session was lost")
        return heard

    def release(self) -> None:
        """Give the lock back (or drop a lost session) and return the connection to the pool."""
        if self._conn is None:
            return
        conn, stack = self._conn, self._stack
        self._conn = self._stack = None
        leadership.release_session(conn)
        try:
            stack.close()
        except Exception:  # noqa: BLE001 - a closed pool must not stop a shutdown
            log.exception("returning the leader's connection failed")
        log.info("this replica (%s) no longer leads the sync", self.name)


def on_postgres(ctx: ServiceContext) -> bool:
    """Whether the context's database is shared by replicas (PostgreSQL)."""
    return getattr(ctx.db, "dialect", "duckdb") == "postgres"


def leadership_for(ctx: ServiceContext) -> Leadership:
    """The kind of leadership the context's database calls for."""
    if on_postgres(ctx):
        return AdvisoryLeadership(ctx.db)
    return SoleLeadership()


def current_leader(ctx: ServiceContext) -> str | None:
    """Who leads on PostgreSQL (host and pid of the replica), None while nobody does; on DuckDB
    always None (the one process leads)."""
    if not on_postgres(ctx):
        return None
    return leadership.current_leader(ctx.db)


@contextmanager
def server_turn(ctx: ServiceContext, server_id: int) -> Iterator[None]:
    """Hold this server's turn among every process on the database (nothing to take on DuckDB,
    where one process owns the file and its threads share the context's server locks)."""
    if not on_postgres(ctx):
        yield
        return
    with leadership.server_turn(ctx.db, server_id):
        yield
