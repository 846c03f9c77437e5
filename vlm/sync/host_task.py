"""One host's task in a reconcile pass: bring its VLM group on the server to the plan, then
report what the group holds; and the breaker that stops a pass hammering a failing server.

Ownership is proven, never assumed: before the task changes or deletes anything of an existing
group it reads the group by its exact VLM name, and every id it then writes to comes from that
read (or from the answer to its own create).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from vlm.flexnet import (
    AuthenticationError,
    FlexNetClient,
    FlexNetError,
    NotFoundError,
    RefusedError,
    Reservation,
    ReservationEntry,
    ReservationGroup,
    TransientError,
)
from vlm.sync.ownership import (
    HostOutcome,
    HostPlan,
    Key,
    entries_by_key,
    is_sane,
    same_host,
    with_entries,
)

T = TypeVar("T")
MAX_ROUNDS = 4
BREAKER_THRESHOLD = 10


def group_named(
    client: FlexNetClient, name: str, read: Callable[..., T] | None = None
) -> ReservationGroup | None:
    """The group carrying exactly this name on the server now, with its reservations (None
    when there is none); read(fn, *args) sends each request (default: directly)."""
    send = read or (lambda fn, *args: fn(*args))
    for group in send(client.reservation_groups, name):
        if group.name != name or group.id is None:
            continue
        if not group.reservations:
            try:
                fresh = send(client.reservations, group.id)
            except NotFoundError:
                return None
            group = replace(group, reservations=tuple(fresh))
        return group
    return None


class BatchReads:
    """The first read by name of each batch group in one pass, shared by the tasks of the
    batch's hosts: one GET of the group instead of one per host. Each task takes only its own
    host's reservation from it; any later read of a task is its own."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._groups: dict[str, ReservationGroup | None] = {}

    def group(
        self, name: str, read: Callable[[str], ReservationGroup | None]
    ) -> ReservationGroup | None:
        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:
            if name not in self._groups:
                self._groups[name] = read(name)
            return self._groups[name]


class Breaker:
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


class HostTask:
    """Brings one host's group on one server to the plan, then reports what it holds."""

    def __init__(
        self,
        client: FlexNetClient,
        plan: HostPlan,
        breaker: Breaker,
        *,
        mirror_read: bool = True,
        batch_reads: BatchReads | None = None,
    ) -> None:
        """mirror_read: plan.actual comes from a read of the server taken in this pass; when it
        does not (a pass pushed by a save), a host that creates nothing reads its group by name
        even if the plan knows none, so a removal is never judged done on a stale mirror."""
        self.client = client
        self.plan = plan
        self.breaker = breaker
        self.group = plan.actual
        self.batch_name = plan.batch_name  # the group holding self.group is a batch group
        self.batch_reads = batch_reads
        self.check_absent = not mirror_read
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
        if self.group is not None or (self.check_absent and not self.want):
            self.group = self._read_by_name(shared=True)
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
        """Take the host's group off the server; in a batch group, only the host's reservation
        (an emptied batch group is deleted by a later pass, after a read shows it empty)."""
        if self.group is None:
            return
        if self.group.id is not None:
            with contextlib.suppress(NotFoundError):
                if self.batch_name is not None and self.group.reservations:
                    rid = self.group.reservations[0].id
                    self._write(self.client.delete_reservation, self.group.id, rid)
                else:
                    self._write(self.client.delete_group, self.group.id)
        self.group = None
        self.batch_name = None

    def _read_by_name(self, *, shared: bool = False) -> ReservationGroup | None:
        """The group that carries exactly this host's VLM name now, with its reservations; for
        a host held in a batch group, that group seen with the host's reservation alone (None,
        and the batch forgotten, once the batch no longer holds the host). shared: the first
        read of a batch group in a pass is shared by the tasks of its hosts (BatchReads).

        This read is the proof of ownership: every id written to afterwards comes from it."""
        if self.batch_name is None:
            return self._read_group(self.plan.group_name)
        if shared and self.batch_reads is not None:
            batch = self.batch_reads.group(self.batch_name, self._read_group)
        else:
            batch = self._read_group(self.batch_name)
        mine = [
            r for r in (batch.reservations if batch else ()) if same_host(r.host_id, self.plan.host)
        ]
        if batch is None or len(mine) != 1:
            self.batch_name = None
            return self._read_group(self.plan.group_name)
        return replace(batch, reservations=(mine[0],))

    def _read_group(self, name: str) -> ReservationGroup | None:
        return group_named(self.client, name, self._read)

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
