"""Coordination of replicas on PostgreSQL: the sync leader's session advisory lock, one turn per
license server, and the channel that tells the leader which servers have new allocations.

The leader lock and LISTEN live on one connection the leader keeps for as long as it leads: when
its process dies the server closes that session, which releases the lock, and another replica
takes it. Advisory locks belong to the database they are taken in."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

import psycopg

LEADER_LOCK_KEY = 0x564C4D4C  # "VLML": held by the one replica that runs the sync scheduler
SERVER_TURN_CLASS = 0x564C4D53  # "VLMS": with a server id, the turn to pull or reconcile it
CHANGES_CHANNEL = "vlm_allocations"
LEADER_NAME_PREFIX = "vlm-leader "
# the server drops a vanished leader's session (and so its lock) after about idle + interval*count
KEEPALIVE_SETTINGS = {
    "tcp_keepalives_idle": "3",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "2",
}


def try_leader_lock(conn: psycopg.Connection, name: str) -> bool:
    """Take the leader lock on this session if no other session holds it; name the session."""
    taken = conn.execute("SELECT pg_try_advisory_lock(%s)", [LEADER_LOCK_KEY]).fetchone()
    if not (taken and taken[0]):
        return False
    conn.execute("SELECT set_config('application_name', %s, false)", [LEADER_NAME_PREFIX + name])
    for setting, value in KEEPALIVE_SETTINGS.items():
        conn.execute("SELECT set_config(%s, %s, false)", [setting, value])
    return True


def listen_for_changes(conn: psycopg.Connection) -> None:
    """Subscribe this session to the allocation-change channel."""
    conn.execute(f"LISTEN {CHANGES_CHANNEL}")


def session_alive(conn: psycopg.Connection) -> bool:
    """Whether the session still answers (a lost session has lost its locks too)."""
    try:
        conn.execute("SELECT 1").fetchone()
    except psycopg.Error:
        return False
    return True


def release_session(conn: psycopg.Connection) -> None:
    """Give up every advisory lock and subscription of the session and forget its name, so the
    connection can go back to the pool clean (a lost connection is simply discarded)."""
    if conn.closed:
        return
    with suppress(psycopg.Error):
        conn.execute("UNLISTEN *")
        conn.execute("SELECT pg_advisory_unlock_all()")
        for setting in ("application_name", *KEEPALIVE_SETTINGS):
            conn.execute(f"RESET {setting}")


def parse_server_ids(payload: str) -> set[int]:
    """The server ids of a change payload ("3,5"); anything that is not an id is ignored."""
    return {int(part) for part in payload.split(",") if part.strip().isdigit()}


def changes_heard(conn: psycopg.Connection, timeout: float) -> set[int]:
    """Server ids announced on the channel: waits up to timeout for the first announcement, then
    takes whatever else already arrived. Raises psycopg.Error when the session is lost."""
    heard: set[int] = set()
    for notify in conn.notifies(timeout=timeout, stop_after=1):
        heard |= parse_server_ids(notify.payload)
    for notify in conn.notifies(timeout=0):
        heard |= parse_server_ids(notify.payload)
    return heard


def announce_changes(db: Any, server_ids: Iterable[int]) -> None:
    """NOTIFY the leader, wherever it runs, that these servers have new desired state (sent at
    once outside a write; at commit inside one)."""
    payload = ",".join(str(int(s)) for s in sorted(set(server_ids)))
    db.query("SELECT pg_notify(?, ?)", [CHANGES_CHANNEL, payload])


def current_leader(db: Any) -> str | None:
    """The name the leading replica gave its session, or None while no replica leads (or the
    leader has taken the lock but not yet named its session)."""
    name = db.scalar(
        """
        SELECT substr(a.application_name, ?)
        FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid::bigint = ? AND l.objid::bigint = ?
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        """,
        [len(LEADER_NAME_PREFIX) + 1, LEADER_LOCK_KEY >> 32, LEADER_LOCK_KEY & 0xFFFFFFFF],
    )
    return name or None


def server_turn_holders(db: Any, server_id: int) -> int:
    """How many sessions hold the turn of this server right now (0 or 1)."""
    return int(
        db.scalar(
            """
            SELECT count(*) FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND objsubid = 2
              AND classid::bigint = ? AND objid::bigint = ?
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
            """,
            [SERVER_TURN_CLASS, int(server_id)],
        )
        or 0
    )


@contextmanager
def server_turn(db: Any, server_id: int) -> Iterator[None]:
    """Wait for this server's turn among all replicas and the CLI, and hold it inside the with
    (a session lock on a connection of its own, outside the pool the pass's own reads and
    writes use; released even when the body fails, and with the connection in any case)."""
    with db.own_connection() as conn:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", [SERVER_TURN_CLASS, int(server_id)])
        try:
            yield
        finally:
            with suppress(psycopg.Error):  # a lost session has released it already
                conn.execute(
                    "SELECT pg_advisory_unlock(%s, %s)", [SERVER_TURN_CLASS, int(server_id)]
                )
