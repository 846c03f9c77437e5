"""Level-triggered reconciler: desired allocations minus VLM's reservation groups -> operations.

VLM owns one group per host id per server, named `reservation_group_name(prefix, type, id)`,
holding one reservation (that host id) with one entry per feature+version whose count is the
sum of the host's pending and applied allocations on that server. A pass:

1. plans every host from DuckDB alone (allocations + the owned mirror rows);
2. sends the HTTP writes of different hosts concurrently, without holding the DB write lock:
   first hosts that only free licenses (deletions, decreases), then the others;
3. records the mirror and every allocation state in one batched write.

Ownership is proven, never assumed: the mirror only says which hosts may need work. Before a
task changes or deletes anything of an existing group it reads the group by its exact VLM name
in the same pass, and every id it then writes to comes from that read (or from the answer to
its own create). A stored id is never written to, so a restarted server that handed a stored id
to another team's group cannot make VLM touch that group.

Crash safety: a create refused because the name is taken re-reads that group and re-diffs it;
a 404 on a delete means already gone; anything left half-done is seen by the next pass.
"""

from __future__ import annotations

import contextlib
import ipaddress
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar
from urllib.parse import urlsplit

import duckdb

from vlm.context import ServiceContext
from vlm.domain import reservation_group_name
from vlm.flexnet import (
    AuthenticationError,
    FlexNetClient,
    FlexNetError,
    HostId,
    NotFoundError,
    RefusedError,
    Reservation,
    ReservationEntry,
    ReservationGroup,
    TransientError,
)
from vlm.store.drift import record_repairs
from vlm.store.reservations import (
    delete_removed,
    mark_applied,
    mark_failed,
    mark_retry,
    plan_rows,
    replace_mirror_groups,
    retry_pending_of_server,
)
from vlm.store.servers import load_servers
from vlm.sync.clients import ClientCache, ServerConfigError, borrowed_client, server_lock
from vlm.sync.inventory import (
    forget_stored_inventory,
    groups_mirror_table,
    read_reservations,
)
from vlm.sync.observed import MISSING
from vlm.sync.ownership import (
    AllocRow,
    HostOutcome,
    HostPlan,
    Key,
    Verdicts,
    entries_by_key,
    frees_only,
    in_sync,
    is_sane,
    with_entries,
)

T = TypeVar("T")
WORKERS = 16
LOOPBACK_WORKERS = 4
MAX_ROUNDS = 4
BREAKER_THRESHOLD = 10


@dataclass(frozen=True)
class ReconcileReport:
    """What one reconcile pass of one server did."""

    server_id: int
    hosts: int = 0
    hosts_changed: int = 0
    operations: int = 0
    applied: int = 0
    failed: int = 0
    transient: int = 0
    removed: int = 0
    duration_s: float = 0.0
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.transient == 0


# -- the per-host worker -----------------------------------------------------------------------


class _Breaker:
    """Stops a pass from hammering a server that fails every request (e.g. it is down)."""

    def __init__(self, threshold: int = BREAKER_THRESHOLD) -> None:
        self._lock = threading.Lock()
        self._threshold = threshold
        self._streak = 0
        self._reason: str | None = None

    @property
    def open(self) -> bool:
        return self._reason is not None

    def check(self) -> None:
        if self._reason is not None:
            raise TransientError(f"not attempted, the server keeps failing: {self._reason}")

    def success(self) -> None:
        with self._lock:
            self._streak = 0

    def failure(self, exc: FlexNetError) -> None:
        with self._lock:
            self._streak += 1
            if self._streak >= self._threshold and self._reason is None:
                self._reason = str(exc)


class _HostTask:
    """Brings one host's group on one server to the plan, then reports what it holds."""

    def __init__(self, client: FlexNetClient, plan: HostPlan, breaker: _Breaker) -> None:
        self.client = client
        self.plan = plan
        self.breaker = breaker
        self.group = plan.actual
        self.want = dict(plan.want)
        self.refused: dict[Key, str] = {}
        self.operations = 0

    def run(self) -> HostOutcome:
        try:
            self._converge()
            self._drop_if_empty()
        except FlexNetError as exc:
            return self._uncertain(exc)
        return HostOutcome(self.group, True, self.refused, None, self.operations)

    def _uncertain(self, exc: FlexNetError) -> HostOutcome:
        """After a failed request: re-read the group to learn what really happened."""
        outcome = HostOutcome(self.group, False, self.refused, str(exc), self.operations)
        if self.breaker.open:
            return outcome
        try:
            outcome.group = self._read_by_name()
            outcome.known = True
        except FlexNetError:
            pass
        return outcome

    # -- the plan, step by step --------------------------------------------------------------

    def _converge(self) -> None:
        if self.group is not None:
            self.group = self._read_by_name()
        for _ in range(MAX_ROUNDS):
            if not self.plan.wanted:
                self._delete_group()
                return
            if self.group is not None and not is_sane(self.group, self.plan.host):
                self._delete_group()
            if self.group is None:
                if not self.want or self._create():
                    return
            elif self._edit():
                return
            self.group = self._read_by_name()
        raise FlexNetError(f"reservation group {self.plan.group_name} kept changing")

    def _create(self) -> bool:
        """POST the group with every wanted entry; False if it turned out to exist already."""
        keys = list(self.want)
        try:
            self._create_with([self._entry(k, self.want[k]) for k in keys])
            return True
        except RefusedError as exc:
            existing = self._read_by_name()
            if existing is not None:
                self.group = existing
                return False
            self._one_by_one(keys, exc)
            return True

    def _edit(self) -> bool:
        """Delete and add entries of the group just read by name; False if it changed under us."""
        assert self.group is not None and self.group.id is not None
        if not is_sane(self.group, self.plan.host):
            return False
        held = entries_by_key(self.group)
        stale = [key for key, entries in held.items() if self._stale(key, entries)]
        adds = [key for key in self.want if key not in held or key in stale]
        try:
            for key in stale:
                for entry in held[key]:
                    self._delete_entry(entry)
            if adds:
                self._add_keys(adds)
        except NotFoundError:
            return False
        return True

    def _stale(self, key: Key, entries: list[ReservationEntry]) -> bool:
        if key in self.plan.skip:
            return False
        if key not in self.want:
            return True
        return [e.count for e in entries] != [self.want[key]]

    def _add_keys(self, keys: list[Key]) -> None:
        try:
            self._add([self._entry(k, self.want[k]) for k in keys])
        except RefusedError as exc:
            self._one_by_one(keys, exc)

    def _one_by_one(self, keys: list[Key], first: RefusedError) -> None:
        """After a refused batch: place each key alone so only the refused ones fail."""
        for key in keys:
            self._place(key, first if len(keys) == 1 else None)

    def _place(self, key: Key, refusal: RefusedError | None) -> None:
        """Place one key; on refusal keep the allocations that were already applied."""
        if refusal is None:
            try:
                self._send([self._entry(key, self.want[key])])
                return
            except RefusedError as exc:
                refusal = exc
        self.refused[key] = refusal.message
        keep = self.plan.applied.get(key, 0)
        self.want.pop(key)
        if 0 < keep < self.plan.want[key]:
            try:
                self._send([self._entry(key, keep)])
                self.want[key] = keep
            except RefusedError:
                pass

    def _drop_if_empty(self) -> None:
        """A group left without any entry (everything refused) is deleted."""
        if self.group is None or self.plan.skip or self.want:
            return
        if not entries_by_key(self.group):
            self._delete_group()

    # -- requests ----------------------------------------------------------------------------

    @staticmethod
    def _entry(key: Key, count: int) -> ReservationEntry:
        return ReservationEntry(key[0], key[1], count)

    def _send(self, entries: list[ReservationEntry]) -> None:
        if self.group is None:
            self._create_with(entries)
        else:
            self._add(entries)

    def _create_with(self, entries: list[ReservationEntry]) -> None:
        reservation = Reservation(self.plan.host, tuple(entries))
        body = ReservationGroup(None, self.plan.group_name, (reservation,))
        self.group = self._write(self.client.create_reservation_group, body)

    def _add(self, entries: list[ReservationEntry]) -> None:
        assert self.group is not None and self.group.id is not None
        rid = self.group.reservations[0].id
        self._write(self.client.add_entries, self.group.id, rid, entries)
        self.group = with_entries(self.group, add=entries)

    def _delete_entry(self, entry: ReservationEntry) -> None:
        assert self.group is not None and self.group.id is not None
        rid = self.group.reservations[0].id
        with contextlib.suppress(NotFoundError):
            self._write(self.client.delete_entry, self.group.id, rid, entry.id)
        self.group = with_entries(self.group, drop=entry.id)

    def _delete_group(self) -> None:
        if self.group is None:
            return
        if self.group.id is not None:
            with contextlib.suppress(NotFoundError):
                self._write(self.client.delete_group, self.group.id)
        self.group = None

    def _read_by_name(self) -> ReservationGroup | None:
        """The group that carries exactly this host's VLM name now, with its reservations.

        This read is the proof of ownership: every id written to afterwards comes from it."""
        for group in self._read(self.client.reservation_groups, self.plan.group_name):
            if group.name != self.plan.group_name or group.id is None:
                continue
            if not group.reservations:
                try:
                    fresh = self._read(self.client.reservations, group.id)
                except NotFoundError:
                    return None
                group = replace(group, reservations=tuple(fresh))
            return group
        return None

    def _write(self, fn: Callable[..., T], *args: object) -> T:
        return self._call(fn, args, write=True)

    def _read(self, fn: Callable[..., T], *args: object) -> T:
        return self._call(fn, args, write=False)

    def _call(self, fn: Callable[..., T], args: tuple, *, write: bool) -> T:
        """Send one request unless the breaker is open; feed its result to the breaker."""
        self.breaker.check()
        if write:
            self.operations += 1
        try:
            result = fn(*args)
        except (TransientError, AuthenticationError) as exc:
            self.breaker.failure(exc)
            raise
        except FlexNetError:
            self.breaker.success()
            raise
        self.breaker.success()
        return result


# -- planning ----------------------------------------------------------------------------------


def _opt_int(value: object) -> int | None:
    return None if value is None else int(value)  # type: ignore[call-overload]


def groups_from_mirror(rows: Iterable[tuple]) -> dict[str, ReservationGroup]:
    """Rebuild groups from mirror rows (MIRROR_COLUMNS order), skipping placeholder rows."""
    found: dict[str, tuple[int | None, dict[tuple, list[ReservationEntry]]]] = {}
    for _, gid, name, _, rid, host_type, host_id, eid, fname, fver, count, state in rows:
        _, reservations = found.setdefault(name, (_opt_int(gid), {}))
        if host_type == "" and host_id == "":
            continue
        entries = reservations.setdefault((_opt_int(rid), host_type, host_id), [])
        if fname != "":
            entries.append(ReservationEntry(fname, fver, int(count), _opt_int(eid), state))
    return {
        name: ReservationGroup(
            gid,
            name,
            tuple(
                Reservation(HostId(t, v), tuple(entries), rid)
                for (rid, t, v), entries in reservations.items()
            ),
        )
        for name, (gid, reservations) in found.items()
    }


def plan_unsettled(
    ctx: ServiceContext, server_id: int, *, force: bool = False
) -> tuple[list[HostPlan], int]:
    """One plan per host with allocations or with a VLM-owned group on the server (no HTTP),
    except settled hosts (see vlm.store.reservations.plan_rows): nothing could change for them;
    and the number of settled hosts left out."""
    prefix = ctx.settings.group_prefix
    allocation_rows, mirror_rows, settled = plan_rows(ctx.db, server_id, force, prefix)
    groups = groups_from_mirror(mirror_rows)
    plans: dict[tuple[str, str], HostPlan] = {}
    for aid, host_type, host_id, fname, fver, count, state, due in allocation_rows:
        plan = plans.get((host_type, host_id))
        if plan is None:
            name = reservation_group_name(prefix, host_type, host_id)
            plan = HostPlan(host_type, host_id, name, groups.pop(name, None))
            plans[(host_type, host_id)] = plan
        plan.add(AllocRow(int(aid), (fname, fver), int(count), state, bool(due)))
    result = list(plans.values())
    for name, group in groups.items():
        host = group.reservations[0].host_id if group.reservations else HostId("", "")
        result.append(HostPlan(host.type, host.value, name, group))
    for plan in result:
        plan.settle()
    return result, settled


# -- running -----------------------------------------------------------------------------------


def default_workers(base_url: str) -> int:
    """Concurrent hosts per pass: many for a remote server (hides network latency), few on
    loopback, where there is no latency to hide and extra threads only fight for the CPU (and
    for the GIL when the server runs in this process, as the emulator does in tests)."""
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return LOOPBACK_WORKERS
    try:
        return LOOPBACK_WORKERS if ipaddress.ip_address(host).is_loopback else WORKERS
    except ValueError:
        return WORKERS


def _run_tasks(
    client: FlexNetClient, plans: list[HostPlan], workers: int
) -> dict[str, HostOutcome]:
    """Run the host tasks: license-freeing hosts first, then the rest, each batch concurrently."""
    breaker = _Breaker()
    outcomes: dict[str, HostOutcome] = {}
    if len(plans) == 1:
        outcomes[plans[0].group_name] = _HostTask(client, plans[0], breaker).run()
        return outcomes
    first = [p for p in plans if frees_only(p)]
    second = [p for p in plans if not frees_only(p)]
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vlm-reconcile")
    try:
        for batch in (first, second):
            results = pool.map(lambda p: _HostTask(client, p, breaker).run(), batch)
            for plan, outcome in zip(batch, results, strict=True):
                outcomes[plan.group_name] = outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes


# -- recording ---------------------------------------------------------------------------------


def _record(
    ctx: ServiceContext,
    server_id: int,
    plans: list[HostPlan],
    outcomes: dict[str, HostOutcome],
) -> tuple[int, int, int, int]:
    """Store the mirror of touched groups and every allocation verdict in one write."""
    verdicts = Verdicts()
    touched: list[str] = []
    groups: list[ReservationGroup] = []
    for plan in plans:
        outcome = outcomes.get(plan.group_name)
        if outcome is None:
            outcome = HostOutcome(plan.actual)
        elif outcome.known:
            touched.append(plan.group_name)
            if outcome.group is not None:
                groups.append(outcome.group)
        verdicts.judge(plan, outcome)
    if not touched and verdicts.empty:
        return 0, 0, 0, 0
    mirror = groups_mirror_table(server_id, groups, ctx.settings.group_prefix)
    applied, failed, retry = verdicts.frames()
    if touched:
        forget_stored_inventory(ctx, server_id)

    def store(cur: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int]:
        replace_mirror_groups(cur, server_id, touched, mirror)
        record_repairs(cur, applied, MISSING)
        return (
            mark_applied(cur, applied),
            mark_failed(cur, failed),
            mark_retry(cur, retry),
            delete_removed(cur, verdicts.removed),
        )

    return ctx.db.write(store)


# -- public ------------------------------------------------------------------------------------


def _not_reached(
    ctx: ServiceContext, server_id: int, message: str, started: float, force: bool
) -> ReconcileReport:
    """The server could not be read or reached: its due pending rows (all, when forced) count
    an attempt, back off and show why; nothing else changes."""
    retry = ctx.db.write(lambda cur: retry_pending_of_server(cur, server_id, message, force))
    return ReconcileReport(
        server_id, transient=retry, error=message, duration_s=time.perf_counter() - started
    )


def reconcile_server(
    ctx: ServiceContext,
    server_id: int,
    client: FlexNetClient | None = None,
    *,
    force: bool = False,
    workers: int | None = None,
) -> ReconcileReport:
    """Bring one server's VLM groups to the desired allocations; see the module docstring.

    Every pass starts from a read of the server's groups (read_reservations), so allocation
    states and the plan rest on what the server holds now; force ignores the retry backoff of
    pending allocations (an explicit "Sync now"); workers defaults to default_workers(url).
    """
    started = time.perf_counter()
    with server_lock(ctx, server_id):
        try:
            with borrowed_client(ctx, server_id, client) as api:
                read_reservations(ctx, server_id, api)
                plans, settled = plan_unsettled(ctx, server_id, force=force)
                todo = [p for p in plans if not in_sync(p)]
                outcomes = _run_tasks(api, todo, workers or default_workers(api.base_url))
        except (FlexNetError, ServerConfigError) as exc:
            return _not_reached(ctx, server_id, str(exc), started, force)
        applied, failed, retry, removed = _record(ctx, server_id, plans, outcomes)
    return ReconcileReport(
        server_id=server_id,
        hosts=len(plans) + settled,
        hosts_changed=len(todo),
        operations=sum(o.operations for o in outcomes.values()),
        applied=applied,
        failed=failed,
        transient=retry,
        removed=removed,
        duration_s=time.perf_counter() - started,
    )


def reconcile_all(
    ctx: ServiceContext,
    *,
    client_cache: ClientCache | None = None,
    force: bool = False,
) -> list[ReconcileReport]:
    """reconcile_server for every license server, one after the other."""
    reports = []
    for server in load_servers(ctx.db):
        server_id = int(server["id"])
        try:
            client = client_cache.get(server) if client_cache is not None else None
        except ServerConfigError as exc:
            reports.append(_not_reached(ctx, server_id, str(exc), time.perf_counter(), force))
            continue
        reports.append(reconcile_server(ctx, server_id, client, force=force))
    return reports
