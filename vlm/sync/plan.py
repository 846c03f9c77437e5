"""The reconciler's plan of one server: a HostPlan per host that may need work, read from the
store alone (allocations and the owned mirror rows, no HTTP). The rules a plan follows (what a
host wants, in_sync, frees_only) are in vlm.sync.ownership."""

from __future__ import annotations

import threading
from dataclasses import replace

from vlm.context import ServiceContext
from vlm.domain import is_batch_group, reservation_group_name
from vlm.flexnet import HostId, ReservationGroup
from vlm.store import Database
from vlm.store.reservations import every_plan_inputs, plan_inputs, plan_rows
from vlm.sync.mirror import groups_from_mirror
from vlm.sync.ownership import AllocRow, HostPlan, in_sync

__all__ = ["HostPlan", "SettledServers", "in_sync", "plan_unsettled"]


class SettledServers:
    """Per server, the fingerprint of plan_rows' inputs (store.reservations.plan_inputs) when
    its last plan found every host settled, and how many: while the fingerprint is unchanged a
    plan would find the same (the reconciler's steady pass then skips plan_rows, ~40 ms of SQL
    per server of the bench estate). Only an all-settled plan is kept: it has no allocation
    row, so the clock and `force` (which only decide when a pending row is due) cannot change
    it. It is kept when the server's fingerprint read again after plan_rows equals the one read
    before (no write fell between them).

    The fingerprints a pass compares with are read for every server at once and kept for the
    database generation they were read in (a steady pass writes nothing, so its servers share
    one read of each table instead of one read per server, which grew with servers ×
    allocations). One per service context."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reading = threading.Lock()
        self._known: dict[int, tuple[str, tuple, int]] = {}
        self._inputs: tuple[int, dict[int, tuple]] | None = None

    def inputs(self, db: Database, server_id: int) -> tuple | None:
        """The server's fingerprint as of the current database generation (every server's read
        at once when the generation moved); None on PostgreSQL or for an unknown server."""
        with self._reading:
            generation = db.generation
            kept = self._inputs
            if kept is None or kept[0] != generation:
                every = every_plan_inputs(db)
                if every is None:
                    return None
                kept = self._inputs = (generation, every)
        return kept[1].get(server_id)

    def settled(self, server_id: int, prefix: str, inputs: tuple) -> int | None:
        """The settled hosts of the server's last all-settled plan if its inputs were these."""
        with self._lock:
            found = self._known.get(server_id)
        if found is None or found[0] != prefix or found[1] != inputs:
            return None
        return found[2]

    def remember(self, server_id: int, prefix: str, inputs: tuple, settled: int) -> None:
        with self._lock:
            self._known[server_id] = (prefix, inputs, settled)

    def forget(self, server_id: int) -> None:
        with self._lock:
            self._known.pop(server_id, None)


def plan_unsettled(
    ctx: ServiceContext, server_id: int, *, force: bool = False, settled_known: bool = True
) -> tuple[list[HostPlan], int]:
    """One plan per host with allocations or with a VLM-owned group on the server (no HTTP),
    except settled hosts (see vlm.store.reservations.plan_rows): nothing could change for them;
    and the number of settled hosts left out.

    settled_known=False (a pass pushed by a save or a due retry, which has work to do) plans
    without reading the fingerprint of SettledServers first."""
    prefix = ctx.settings.group_prefix
    known = ctx.owned(SettledServers)
    inputs = known.inputs(ctx.db, server_id) if settled_known else None
    if inputs is not None:
        settled = known.settled(server_id, prefix, inputs)
        if settled is not None:
            return [], settled
    allocation_rows, mirror_rows, settled = plan_rows(ctx.db, server_id, force, prefix)
    if allocation_rows or mirror_rows or inputs is None:
        known.forget(server_id)
    elif plan_inputs(ctx.db, server_id) == inputs:
        known.remember(server_id, prefix, inputs, settled)
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
        if is_batch_group(prefix, name):
            result.extend(_batch_plans(prefix, group, plans))
            continue
        host = group.reservations[0].host_id if group.reservations else HostId("", "")
        result.append(HostPlan(host.type, host.value, name, group))
    for plan in result:
        plan.settle()
    return result, settled


def _batch_plans(
    prefix: str, group: ReservationGroup, plans: dict[tuple[str, str], HostPlan]
) -> list[HostPlan]:
    """The hosts a batch group holds: each reservation becomes the actual state of its host's
    plan (seen as a group of that one reservation), unless the host already has a group, in
    which case a plan of its own (no allocations) takes the extra reservation off. A batch
    group without reservations gets a plan that deletes it."""
    if not group.reservations:
        return [HostPlan("", "", group.name, group)]
    extra: list[HostPlan] = []
    for reservation in group.reservations:
        host = reservation.host_id
        view = replace(group, reservations=(reservation,))
        plan = plans.get((host.type, host.value))
        if plan is not None and plan.actual is None and plan.batch_name is None:
            plan.actual, plan.batch_name = view, group.name
            continue
        name = reservation_group_name(prefix, host.type, host.value)
        extra.append(HostPlan(host.type, host.value, name, view, batch_name=group.name))
    return extra
