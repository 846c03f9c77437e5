"""What a fresh read of a license server proves, stored in the same write as the read's mirror.

A read of every reservation group is the only evidence VLM accepts about a server:
- whether the server was restarted or replaced since the last read (its instance id changed,
  a stored id of a VLM group now carries another name, or a VLM group now has another id), in
  which case every stored id for that server is stale and the fresh read replaces them all;
- which allocations it really holds: a row reads "applied" only when an ACTIVE entry of its
  host's VLM group covers it, "disabled" when the server disabled that entry, and goes back to
  "pending" (to be re-created, a drift event) when the reservation is missing;
- on the first read of a server, whether groups that VLM never created already carry its prefix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import wait
from dataclasses import dataclass, field

import duckdb
import pyarrow as pa

from vlm.domain import BATCH_GROUP_MARK, AllocationState, reservation_group_name
from vlm.store.answer_digest import (
    answer_mirror_digest,
    digests_comparable,
    stored_mirror_digest,
)
from vlm.store.database import Database
from vlm.store.drift import (
    OBSERVED_DTYPES,
    held_allocation_rows,
    insert_drift_events,
    set_observed_states,
)
from vlm.store.frames import frame
from vlm.store.reservations import mirror_holds_exactly, stored_owned_group_ids
from vlm.store.servers import read_server_identity, server_identity, set_instance_id
from vlm.sync.helper_threads import on_helper_thread

MISSING = "missing on the license server (deleted outside VLM or lost); VLM re-creates it"
DISABLED_BY_SERVER = "disabled by the license server (its feature count dropped below the reserved)"
APPLIED = AllocationState.APPLIED.value
DISABLED = AllocationState.DISABLED.value
PENDING = AllocationState.PENDING.value
ACTIVE_ENTRY = "ACTIVE"

Key = tuple[str, str]


@dataclass
class HeldEntries:
    """Counts of one VLM group's entries per feature, split by the entry's state."""

    host: tuple[str, str]
    reservations: int = 0
    active: dict[Key, int] = field(default_factory=lambda: defaultdict(int))
    disabled: dict[Key, int] = field(default_factory=lambda: defaultdict(int))


@dataclass(frozen=True)
class Observation:
    """A summary of what one read proved, for reports and tests."""

    restarted: str | None = None
    missing: int = 0
    disabled: int = 0
    reenabled: int = 0
    prefix_in_use: tuple[str, ...] = ()


def restart_reason(
    stored_instance: str | None,
    fresh_instance: str | None,
    stored_groups: Iterable[tuple[int, str]],
    fresh_groups: dict[int, str],
) -> str | None:
    """Why the server's stored ids are stale (None when nothing says so)."""
    if stored_instance and fresh_instance and stored_instance != fresh_instance:
        return f"instance id changed from {stored_instance} to {fresh_instance}"
    fresh_ids = {name: gid for gid, name in fresh_groups.items()}
    for gid, name in stored_groups:
        now_named = fresh_groups.get(int(gid))
        if now_named is not None and now_named != name:
            return f"group id {gid} was {name!r} and is now {now_named!r}"
        moved_to = fresh_ids.get(name)
        if moved_to is not None and moved_to != int(gid):
            return f"group {name!r} had id {gid} and now has id {moved_to}"
    return None


def batch_held_key(host_type: str, host_id: str) -> str:
    """Where held_by_group files a host's reservation in batch groups (no group name has NUL)."""
    return f"\x00{host_type.upper()}\x00{host_id}"


def held_by_group(
    rows: Iterable[tuple], prefix: str | None = None
) -> tuple[dict[str, HeldEntries], dict[int, str]]:
    """From mirror rows (MIRROR_COLUMNS order): each owned group's entries, and every group's
    name by id. With the prefix, a host's reservation in a batch group is filed under
    batch_held_key of the host instead (its `reservations` counts every batch holding it)."""
    held: dict[str, HeldEntries] = {}
    names: dict[int, str] = {}
    seen_reservations: dict[str, set] = defaultdict(set)
    batch_mark = None if prefix is None else f"{prefix}{BATCH_GROUP_MARK}"
    for _, gid, name, owned, rid, host_type, host_id, _, fname, fver, count, state in rows:
        if gid is not None:
            names[int(gid)] = name
        if not owned or (host_type == "" and host_id == ""):
            continue
        key = name
        if batch_mark is not None and name.startswith(batch_mark):
            key = batch_held_key(str(host_type), host_id)
        group = held.setdefault(key, HeldEntries((str(host_type).upper(), host_id)))
        seen_reservations[key].add((name, rid, str(host_type).upper(), host_id))
        group.reservations = len(seen_reservations[key])
        if fname == "":
            continue
        target = group.active if (state or ACTIVE_ENTRY).upper() == ACTIVE_ENTRY else group.disabled
        target[(fname, fver)] += int(count)
    return held, names


def judge_held_allocations(
    server_id: int, prefix: str, allocations: Iterable[tuple], held: dict[str, HeldEntries]
) -> tuple[list[tuple], list[tuple]]:
    """State changes (OBSERVED_DTYPES rows) and drift events for allocations VLM believes held.

    allocations: (id, host_type, host_id, feature_name, feature_version, count, state)."""
    by_key: dict[tuple[str, str, Key], list[tuple]] = defaultdict(list)
    for row in allocations:
        by_key[(row[1], row[2], (row[3], row[4]))].append(row)
    changes: list[tuple] = []
    events: list[tuple] = []
    names: dict[tuple[str, str], str] = {}
    for (host_type, host_id, key), rows in by_key.items():
        name = names.get((host_type, host_id))
        if name is None:
            name = names[(host_type, host_id)] = reservation_group_name(prefix, host_type, host_id)
        group = held.get(name)
        sane = group is not None and group.reservations == 1
        sane = sane and group.host == (host_type.upper(), host_id)
        if not sane:
            group = held.get(batch_held_key(host_type, host_id))
            sane = group is not None and group.reservations == 1
        needed = sum(int(r[5]) for r in rows)
        active = group.active.get(key, 0) if sane else 0
        disabled = group.disabled.get(key, 0) if sane else 0
        if active >= needed:
            new_state, message, kind = APPLIED, None, "re-enabled"
        elif disabled > 0:
            new_state, message, kind = DISABLED, DISABLED_BY_SERVER, "disabled"
        else:
            new_state, message, kind = PENDING, MISSING, "missing"
        moved = [r for r in rows if r[6] != new_state]
        if not moved:
            continue
        changes.extend((r[0], int(r[5]), r[6], new_state, message) for r in moved)
        detail = message or "the license server enabled the reservation entry again"
        events.append((server_id, kind, name, host_type, host_id, key[0], key[1], needed, detail))
    return changes, events


def proves_nothing_new(
    cur: duckdb.DuckDBPyConnection,
    server_id: int,
    rows: list[tuple],
    table: pa.Table,
    instance_id: str | None,
) -> bool:
    """True when a fresh read (mirror rows, and the same rows as mirror_table makes them) equals
    the stored mirror row for row, comes from the server instance the stored mirror came from,
    and the server was read before. Such a read proves nothing the stored mirror did not, as
    with a byte-identical answer: no allocation is judged again and the mirror is not rewritten.
    This is the read after the reconciler wrote its groups (the digest of the answer is then
    unknown) when the server holds what it wrote."""
    stored_instance, ever_read = server_identity(cur, server_id)
    if not ever_read or stored_instance != instance_id:
        return False
    return mirror_holds_exactly(cur, server_id, rows, table)


def answer_proves_nothing_new(
    db: Database, server_id: int, body: bytes, prefix: str, instance_id: str | None
) -> bool:
    """proves_nothing_new for a groups answer's bytes, without decoding them in Python: the
    answer's mirror digest (vlm.store.answer_digest) equals the stored mirror's. False when the
    digest cannot be read that way (PostgreSQL, an answer of another shape): the answer is then
    decoded and compared row by row. The stored mirror's digest is read on a helper thread
    while DuckDB reads the answer's."""
    if not digests_comparable(db):
        return False
    stored_instance, ever_read = read_server_identity(db, server_id)
    if not ever_read or stored_instance != instance_id:
        return False
    stored = on_helper_thread(stored_mirror_digest, db, server_id)
    try:
        fresh = answer_mirror_digest(db, body, server_id, prefix)
    finally:
        wait((stored,))
    return fresh is not None and fresh == stored.result()


def record_observation(
    cur: duckdb.DuckDBPyConnection,
    server_id: int,
    prefix: str,
    rows: list[tuple],
    instance_id: str | None,
) -> Observation:
    """Inside the write that stores a fresh mirror of `rows`: restart detection, allocation
    states proved by the read, drift events. Call it BEFORE the mirror is replaced."""
    stored_instance, ever_read = server_identity(cur, server_id)
    held, fresh_names = held_by_group(rows, prefix)
    restarted = restart_reason(
        stored_instance, instance_id, stored_owned_group_ids(cur, server_id), fresh_names
    )
    events: list[tuple] = []
    if restarted:
        detail = f"license server restarted or replaced ({restarted}); every stored id is stale"
        events.append((server_id, "server restarted", None, None, None, None, None, None, detail))
    prefix_in_use: tuple[str, ...] = ()
    owned_names = sorted({row[2] for row in rows if row[3]})  # empty groups too: VLM deletes them
    if not ever_read and owned_names:
        prefix_in_use = tuple(owned_names)
        detail = (
            f"{len(owned_names)} reservation group(s) already carry the prefix {prefix!r} on the "
            f"first read of this server ({', '.join(prefix_in_use[:5])}"
            f"{', …' if len(owned_names) > 5 else ''}); VLM treats groups with its prefix as "
            "its own: choose another prefix if they belong to someone else"
        )
        events.append((server_id, "prefix in use", None, None, None, None, None, None, detail))
    changes, held_events = judge_held_allocations(
        server_id, prefix, held_allocation_rows(cur, server_id), held
    )
    events.extend(held_events)
    set_observed_states(cur, frame(changes, OBSERVED_DTYPES))
    insert_drift_events(cur, events)
    if instance_id:
        set_instance_id(cur, server_id, instance_id)
    return Observation(
        restarted=restarted,
        missing=sum(1 for c in changes if c[3] == PENDING),
        disabled=sum(1 for c in changes if c[3] == DISABLED),
        reenabled=sum(1 for c in changes if c[3] == APPLIED),
        prefix_in_use=prefix_in_use,
    )
