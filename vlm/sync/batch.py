"""Several new hosts of one server placed with one request: a batch group.

A reconcile pass that has hosts with no group yet (new allocations from one grid's Apply, an
import) creates one group holding a reservation per host, up to sync_batch_hosts hosts a group,
instead of one group per host (the sync_batch_hosts setting, VLM_SYNC_BATCH_HOSTS; 0 or 1
turns batch groups off). The server accepts or refuses a group as a whole, so a refused
batch (one host asks for more than is free) is not retried as a batch: its hosts go through
their own host tasks, one group each, and only the hosts the server refuses fail.

Ownership is proven as for every VLM group: the batch's name is VLM's (prefix, a mark no
per-host name has, and a digest of what it holds), and every id written to later comes from
the create's answer or a read of that name. The name depends only on what the group holds, so
a create retried after an uncertain answer meets its own group ("name taken") and takes it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace

from vlm.domain import batch_group_name
from vlm.flexnet import (
    AuthenticationError,
    FlexNetClient,
    FlexNetError,
    RefusedError,
    Reservation,
    ReservationEntry,
    ReservationGroup,
    TransientError,
)
from vlm.sync.host_task import Breaker, group_named
from vlm.sync.ownership import HostOutcome, HostPlan, host_key

# Fewer new hosts get a group each, named after the host (readable on the server).
BATCH_MIN_HOSTS = 16


def batchable(plan: HostPlan) -> bool:
    """A host to create from nothing: no group known, licenses wanted, no row backed off."""
    return plan.actual is None and plan.batch_name is None and bool(plan.want) and not plan.skip


def batches(plans: list[HostPlan], size: int) -> list[list[HostPlan]]:
    """The plans split into batches of at most size hosts (none when fewer than BATCH_MIN_HOSTS
    plans, or size below 2)."""
    if len(plans) < BATCH_MIN_HOSTS or size < 2:
        return []
    ordered = sorted(plans, key=lambda p: (p.host_type, p.host_id))
    return [ordered[i : i + size] for i in range(0, len(ordered), size)]


def _reservation(plan: HostPlan) -> Reservation:
    entries = tuple(
        ReservationEntry(name, version, count)
        for (name, version), count in sorted(plan.want.items())
    )
    return Reservation(plan.host, entries)


@dataclass
class BatchResult:
    """Outcomes of the hosts the batch settled, and the plans left to their own host tasks."""

    outcomes: dict[tuple[str, str, str], HostOutcome] = field(default_factory=dict)
    one_by_one: list[HostPlan] = field(default_factory=list)
    uncertain: bool = False  # the group may exist on the server without VLM knowing it


class UnreadBatches:
    """Servers where a batch create ended uncertain (no answer, and no read could tell): their
    next pass reads every group first, even a pass pushed by a save, so a batch group that was
    made after all is found before other new hosts are sent (ctx.owned). A restart needs no
    record of them: the first pass after it reads everything."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._servers: set[int] = set()

    def add(self, server_id: int) -> None:
        with self._lock:
            self._servers.add(server_id)

    def pending(self, server_id: int) -> bool:
        with self._lock:
            return server_id in self._servers

    def done(self, server_id: int) -> None:
        with self._lock:
            self._servers.discard(server_id)


class BatchCreate:
    """Creates one batch group for new hosts of one server."""

    def __init__(
        self, client: FlexNetClient, plans: list[HostPlan], breaker: Breaker, prefix: str
    ) -> None:
        self.client = client
        self.plans = plans
        self.breaker = breaker
        reservations = [(p.host_type, p.host_id, tuple(sorted(p.want.items()))) for p in plans]
        self.name = batch_group_name(prefix, reservations)

    def run(self) -> BatchResult:
        body = ReservationGroup(None, self.name, tuple(_reservation(p) for p in self.plans))
        try:
            self.breaker.check()
            created = self.client.create_reservation_group(body)
        except RefusedError:
            self.breaker.success()
            return self._after_refusal()
        except (TransientError, AuthenticationError) as exc:
            self.breaker.failure(exc)
            return self._after_uncertain(exc)
        except FlexNetError as exc:
            return self._after_uncertain(exc)
        self.breaker.success()
        return self._settled_by(created, operations=1)

    def _after_refusal(self) -> BatchResult:
        """Refused: either the name is taken by this very batch (an earlier create whose answer
        was lost), or the server refused the group as a whole: then each host on its own."""
        try:
            found = self._read_by_name()
        except FlexNetError:
            found = None
        if found is None:
            return BatchResult(one_by_one=list(self.plans))
        return self._settled_by(found, operations=0)

    def _after_uncertain(self, exc: FlexNetError) -> BatchResult:
        """No clear answer: a read by name tells whether the group exists; when that read
        fails too, every host stays unknown (pending, retried later)."""
        if self.breaker.open:
            return self._unknown(str(exc))
        try:
            found = self._read_by_name()
        except FlexNetError:
            return self._unknown(str(exc))
        if found is None:
            return BatchResult(one_by_one=list(self.plans))
        return self._settled_by(found, operations=1)

    def _unknown(self, error: str) -> BatchResult:
        result = BatchResult(uncertain=True)
        for plan in self.plans:
            result.outcomes[plan.key] = HostOutcome(None, False, {}, error, 0)
        return result

    def _settled_by(self, group: ReservationGroup, operations: int) -> BatchResult:
        """Each host's outcome is its reservation in the group, seen as a group of its own;
        a host the group does not hold goes to its own host task."""
        result = BatchResult()
        held: dict[tuple[str, str], list[Reservation]] = {}
        for reservation in group.reservations:
            held.setdefault(host_key(reservation.host_id), []).append(reservation)
        for plan in self.plans:
            mine = held.get(host_key(plan.host), [])
            if len(mine) != 1 or group.id is None:
                result.one_by_one.append(plan)
                continue
            view = replace(group, reservations=(mine[0],))
            result.outcomes[plan.key] = HostOutcome(view, True, {}, None, operations)
            operations = 0
        return result

    def _read_by_name(self) -> ReservationGroup | None:
        self.breaker.check()
        return group_named(self.client, self.name)
