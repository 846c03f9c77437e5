"""The reconciler's plan of one server: a HostPlan per host that may need work, read from the
store alone (allocations and the owned mirror rows, no HTTP). The rules a plan follows (what a
host wants, in_sync, frees_only) are in vlm.sync.ownership."""

from __future__ import annotations

from dataclasses import replace

from vlm.context import ServiceContext
from vlm.domain import is_batch_group, reservation_group_name
from vlm.flexnet import HostId, ReservationGroup
from vlm.store.reservations import plan_rows
from vlm.sync.mirror import groups_from_mirror
from vlm.sync.ownership import AllocRow, HostPlan, in_sync

__all__ = ["HostPlan", "in_sync", "plan_unsettled"]


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
