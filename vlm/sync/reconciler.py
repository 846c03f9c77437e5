"""Level-triggered reconciler: desired allocations minus VLM's reservation groups -> operations.

VLM owns one reservation per host id per server, with one entry per feature+version whose
count is the sum of the host's pending and applied allocations on that server. It sits in a
group of its own named `reservation_group_name(prefix, type, id)`, or in a batch group made for
many new hosts at once (vlm.sync.batch). A pass:

0. starts and ends the server's time-boxed allocations due today (vlm.sync.timebox);
1. plans every host from DuckDB alone (allocations + the owned mirror rows);
2. sends the HTTP writes of different hosts concurrently, without holding the DB write lock:
   first hosts that only free licenses (deletions, decreases), then the others, new hosts in
   batch groups when there are many;
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

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb

from vlm.context import ServiceContext
from vlm.domain import is_batch_group
from vlm.flexnet import FlexNetClient, FlexNetError, ReservationGroup
from vlm.store.drift import record_repairs
from vlm.store.reservations import (
    delete_removed,
    mark_applied,
    mark_failed,
    mark_retry,
    replace_mirror_parts,
    retry_pending_of_server,
)
from vlm.store.servers import load_servers, set_mirror_digest
from vlm.store.timebox import finish_expiring
from vlm.sync.batch import BatchCreate, BatchResult, UnreadBatches, batchable, batches
from vlm.sync.clients import ClientCache, ServerConfigError, borrowed_client, server_lock
from vlm.sync.host_task import BatchReads, Breaker, HostTask
from vlm.sync.inventory import forget_stored_inventory, read_reservations
from vlm.sync.mirror import groups_mirror_table
from vlm.sync.observed import MISSING
from vlm.sync.ownership import HostOutcome, HostPlan, Verdicts, frees_only
from vlm.sync.plan import in_sync, plan_unsettled
from vlm.sync.timebox import advance_time_boxes

SERVERS_AT_ONCE = 8  # servers a pass over the estate works on at the same time


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


# -- running -----------------------------------------------------------------------------------


def _run_tasks(
    client: FlexNetClient,
    plans: list[HostPlan],
    workers: int,
    prefix: str,
    *,
    batch_hosts: int = 0,
    mirror_read: bool = True,
) -> tuple[dict[tuple[str, str, str], HostOutcome], bool]:
    """Run the host tasks: license-freeing hosts first, then the rest, each batch concurrently;
    new hosts of the second part go in batch groups (vlm.sync.batch), and the hosts of a batch
    the server refused get their own tasks last. Also whether a batch create ended uncertain."""
    breaker = Breaker()
    batch_reads = BatchReads()
    outcomes: dict[tuple[str, str, str], HostOutcome] = {}

    def run(plan: HostPlan) -> HostOutcome:
        task = HostTask(client, plan, breaker, mirror_read=mirror_read, batch_reads=batch_reads)
        return task.run()

    if len(plans) == 1:
        outcomes[plans[0].key] = run(plans[0])
        return outcomes, False
    first = [p for p in plans if frees_only(p)]
    second = [p for p in plans if not frees_only(p)]
    grouped = batches([p for p in second if batchable(p)], batch_hosts)
    in_batches = {p.key for chunk in grouped for p in chunk}
    second = [p for p in second if p.key not in in_batches]

    def create(chunk: list[HostPlan]) -> BatchResult:
        return BatchCreate(client, chunk, breaker, prefix).run()

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="vlm-reconcile")
    try:
        for plan, outcome in zip(first, pool.map(run, first), strict=True):
            outcomes[plan.key] = outcome
        created = [pool.submit(create, chunk) for chunk in grouped]
        for plan, outcome in zip(second, pool.map(run, second), strict=True):
            outcomes[plan.key] = outcome
        left: list[HostPlan] = []
        uncertain = False
        for future in created:
            result = future.result()
            outcomes.update(result.outcomes)
            left.extend(result.one_by_one)
            uncertain = uncertain or result.uncertain
        for plan, outcome in zip(left, pool.map(run, left), strict=True):
            outcomes[plan.key] = outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return outcomes, uncertain


# -- recording ---------------------------------------------------------------------------------


def _record(
    ctx: ServiceContext,
    server_id: int,
    plans: list[HostPlan],
    outcomes: dict[tuple[str, str, str], HostOutcome],
) -> tuple[int, int, int, int]:
    """Store the mirror of touched groups and every allocation verdict in one write."""
    prefix = ctx.settings.group_prefix
    verdicts = Verdicts()
    touched: list[str] = []
    touched_reservations: list[tuple[str, str, str]] = []
    groups: list[ReservationGroup] = []
    for plan in plans:
        outcome = outcomes.get(plan.key)
        if outcome is None:
            outcome = HostOutcome(plan.actual)
        elif outcome.known:
            names, reservations = _touched_by(prefix, plan, outcome.group)
            touched.extend(names)
            touched_reservations.extend(reservations)
            if outcome.group is not None:
                groups.append(outcome.group)
        verdicts.judge(plan, outcome)
    changed = bool(touched or touched_reservations)
    if not changed and verdicts.empty:
        return 0, 0, 0, 0
    mirror = groups_mirror_table(server_id, groups, prefix)
    applied, failed, retry = verdicts.frames()
    if changed:
        forget_stored_inventory(ctx, server_id)

    def store(cur: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int]:
        if changed:
            set_mirror_digest(cur, server_id, None, None)
        replace_mirror_parts(cur, server_id, touched, touched_reservations, mirror)
        record_repairs(cur, applied, MISSING)
        return (
            mark_applied(cur, applied),
            mark_failed(cur, failed),
            mark_retry(cur, retry),
            delete_removed(cur, verdicts.removed) + finish_expiring(cur, verdicts.removed),
        )

    return ctx.db.write(store)


def _touched_by(
    prefix: str, plan: HostPlan, group: ReservationGroup | None
) -> tuple[list[str], list[tuple[str, str, str]]]:
    """Which mirror rows a host's known outcome replaces: whole groups by name, and (group,
    host type, host id) of a host's reservation in a batch group (the batch's other hosts keep
    theirs). A plan for an extra reservation in a batch never touches the host's own group."""
    names: list[str] = []
    reservations: list[tuple[str, str, str]] = []
    if plan.batch_name is not None:
        reservations.append((plan.batch_name, plan.host_type, plan.host_id))
    if group is not None and is_batch_group(prefix, group.name):
        if group.name != plan.batch_name:
            reservations.append((group.name, plan.host_type, plan.host_id))
    elif plan.batch_name is None or group is not None:
        names.append(plan.group_name)
    return names, reservations


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
    read_first: bool = True,
    groups_just_read: bool = False,
) -> ReconcileReport:
    """Bring one server's VLM groups to the desired allocations; see the module docstring.

    A pass normally starts from a read of the server's groups (read_reservations), so allocation
    states and the plan rest on what the server holds now; force ignores the retry backoff of
    pending allocations (an explicit "Sync now"); workers (hosts worked on at once) defaults to
    the sync_in_flight setting.

    read_first=False (a pass pushed by a save or a due retry) skips the read of every group:
    each unsettled host is then worked on without trusting the mirror's "in sync", and its
    task proves ownership by its own read by name (or its create), as always. The periodic full
    pass reads everything and catches what changed on the server meanwhile.

    groups_just_read=True: the caller read and stored every group of the server in the same
    server turn (the inventory pull of a full pass), so the pass plans from that read instead
    of reading the same answer again.

    After a batch create of this server ended uncertain (vlm.sync.batch.UnreadBatches), the
    next pass reads every group first whatever it was asked.
    """
    started = time.perf_counter()
    unread = ctx.owned(UnreadBatches)
    with server_lock(ctx, server_id):
        advance_time_boxes(ctx, server_id)
        try:
            with borrowed_client(ctx, server_id, client) as api:
                if unread.pending(server_id) and not (read_first and groups_just_read):
                    read_first, groups_just_read = True, False
                if read_first and not groups_just_read:
                    read_reservations(ctx, server_id, api)
                unread.done(server_id)
                plans, settled = plan_unsettled(
                    ctx, server_id, force=force, settled_known=read_first
                )
                todo = [p for p in plans if not read_first or not in_sync(p)]
                in_flight = workers or ctx.settings.sync_in_flight
                prefix = ctx.settings.group_prefix
                outcomes, uncertain = _run_tasks(
                    api,
                    todo,
                    in_flight,
                    prefix,
                    batch_hosts=ctx.settings.sync_batch_hosts,
                    mirror_read=read_first,
                )
                if uncertain:
                    unread.add(server_id)
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
    """reconcile_server for every license server, up to SERVERS_AT_ONCE at the same time (a
    slow server does not hold back the others); the reports in the servers' order."""

    def reconcile(server: dict[str, Any]) -> ReconcileReport:
        server_id = int(server["id"])
        try:
            client = client_cache.get(server) if client_cache is not None else None
        except ServerConfigError as exc:
            return _not_reached(ctx, server_id, str(exc), time.perf_counter(), force)
        return reconcile_server(ctx, server_id, client, force=force)

    servers = load_servers(ctx.db)
    workers = max(1, min(SERVERS_AT_ONCE, len(servers)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="vlm-pass") as pool:
        return list(pool.map(reconcile, servers))
