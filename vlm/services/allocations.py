"""Manager use cases: allocate to host ids, edit, remove, retry — one row or a whole grid."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import Actor, FeatureKey, VlmError, record_id, record_ids, validate_feature
from vlm.services import audit
from vlm.services.ledger import PoolLedger
from vlm.services.permissions import (
    pool_scope_sql,
    require_pool_read,
    require_pool_write,
    require_pool_write_in,
)
from vlm.store import allocations as store

Operation = Literal["add", "edit", "delete", "retry", "extend"]
_ORDER = {"delete": 0, "retry": 1, "edit": 2, "extend": 2, "add": 3}


@dataclass(frozen=True)
class AllocationChange:
    """One requested change, e.g. a grid row; row is its position for messages."""

    op: Operation
    row: int | None = None
    allocation_id: int | None = None
    feature_name: str | None = None
    feature_version: str | None = None
    host_type: object = None
    host_id: object = None
    count: object = None
    description: object = None
    starts_on: object = None
    ends_on: object = None


@dataclass(frozen=True)
class RowResult:
    """The outcome of one change: ok, or the message to show next to its row."""

    change: AllocationChange
    ok: bool
    message: str
    allocation_id: int | None = None
    field: str | None = None
    error: VlmError | None = None

    @property
    def row(self) -> int | None:
        return self.change.row


def _feature_of(change: AllocationChange, default: FeatureKey | None) -> FeatureKey:
    if change.feature_name:
        return validate_feature((change.feature_name, change.feature_version or ""))
    if default is None:
        raise VlmError("no feature given for this row", field="feature")
    return default


def _apply_one(
    ledger: PoolLedger, change: AllocationChange, feature: FeatureKey | None, actor: Actor
) -> tuple[RowResult, tuple | None]:
    """Apply a change to the ledger; return its result and the audit row it needs."""
    if change.op == "add":
        alloc = ledger.add(
            _feature_of(change, feature),
            change.host_type,
            change.host_id,
            change.count,
            change.description,
            actor.username,
            change.starts_on,
            change.ends_on,
        )
        label = f"{alloc['host_type']} {alloc['host_id']} × {alloc['count']}"
        return RowResult(change, True, f"allocated {label}"), ("allocation.add", alloc)
    if change.op == "edit":
        before, after = ledger.edit(
            change.allocation_id,
            count=change.count,
            description=change.description,
            ends_on=change.ends_on,
            starts_on=change.starts_on,
        )
        if before == after:
            return RowResult(change, True, "unchanged", change.allocation_id), None
        return (
            RowResult(change, True, "updated", change.allocation_id),
            ("allocation.edit", before, after),
        )
    if change.op == "extend":
        before, after = ledger.extend(change.allocation_id, change.ends_on)
        if before == after:
            return RowResult(change, True, "unchanged", change.allocation_id), None
        return (
            RowResult(change, True, f"now ends on {after['ends_on']}", change.allocation_id),
            ("allocation.extend", before, after),
        )
    if change.op == "retry":
        before, after = ledger.retry(change.allocation_id)
        return (
            RowResult(change, True, "queued for retry", change.allocation_id),
            ("allocation.retry", before, after),
        )
    if change.op == "delete":
        before = ledger.remove(change.allocation_id)
        return (
            RowResult(change, True, "removed", change.allocation_id),
            ("allocation.remove", before),
        )
    raise VlmError(f"unknown operation '{change.op}'")


def _flush(cur, ledger: PoolLedger) -> list[int]:
    """Write the ledger's accepted changes in bulk; return the new allocation ids in order."""
    new_ids = store.insert_allocations(cur, ledger.pool_id, ledger.inserts)
    for allocation_id, changes in ledger.updates.items():
        store.update_allocation(cur, allocation_id, changes, reset_attempts="state" in changes)
    store.delete_allocations(cur, ledger.deletes)
    store.mark_removing(cur, ledger.removals)
    return new_ids


def apply_allocation_changes(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    changes: Sequence[AllocationChange],
    *,
    feature: FeatureKey | None = None,
) -> list[RowResult]:
    """Apply every valid change in one transaction; invalid ones come back with their message."""
    pool_id = record_id(pool_id, "pool")
    feature = None if feature is None else validate_feature(feature)
    require_pool_write(ctx.db, actor, pool_id)
    if not changes:
        return []

    def write(cur):
        require_pool_write_in(cur, actor, pool_id)
        ledger = PoolLedger.load(cur, pool_id, ctx.today())
        results: dict[int, RowResult] = {}
        audit_rows: list[tuple] = []
        adds: list[tuple[int, RowResult]] = []
        order = sorted(range(len(changes)), key=lambda i: (_ORDER.get(changes[i].op, 9), i))
        for index in order:
            change = changes[index]
            try:
                result, audit_row = _apply_one(ledger, change, feature, actor)
            except VlmError as exc:
                results[index] = RowResult(change, False, exc.message, field=exc.field, error=exc)
                continue
            results[index] = result
            if audit_row is not None:
                audit_rows.append(audit_row)
            if change.op == "add":
                adds.append((index, result))
        new_ids = _flush(cur, ledger)
        for (index, result), new_id in zip(adds, new_ids, strict=True):
            results[index] = RowResult(result.change, True, result.message, new_id)
        _audit(cur, actor, audit_rows, new_ids, pool_id)
        return [results[i] for i in range(len(changes))], ledger.server_ids()

    results, servers = ctx.db.write(write)
    ctx.allocations_changed(servers)
    return results


def _in_pool(alloc: dict | None, pool_id: int) -> dict | None:
    """An audited allocation that names its pool (a pool's trend is read from the audit log)."""
    return None if alloc is None else {**alloc, "pool_id": pool_id}


def _audit(cur, actor: Actor, audit_rows: list[tuple], new_ids: list[int], pool_id: int) -> None:
    ids = iter(new_ids)
    rows = []
    for entry in audit_rows:
        action = entry[0]
        if action == "allocation.add":
            alloc = {**entry[1], "id": next(ids)}
            rows.append((action, "allocation", alloc["id"], None, alloc))
        elif action == "allocation.remove":
            rows.append((action, "allocation", entry[1]["id"], entry[1], None))
        else:
            rows.append((action, "allocation", entry[1]["id"], entry[1], entry[2]))
    rows = [(a, t, i, _in_pool(b, pool_id), _in_pool(c, pool_id)) for a, t, i, b, c in rows]
    audit.record_many(cur, actor, rows)


def _single(results: list[RowResult]) -> RowResult:
    result = results[0]
    if result.error is not None:
        raise result.error
    return result


def allocate(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    feature: FeatureKey,
    host_type: object,
    host_id: object,
    count: object = 1,
    description: object = "",
    *,
    starts_on: object = None,
    ends_on: object = None,
) -> int:
    """Allocate count licenses of a pool feature to one host id, from starts_on (None: now)
    through ends_on (None: the pool's default, else no end); returns the allocation id."""
    feature = validate_feature(feature)
    change = AllocationChange(
        "add",
        None,
        None,
        feature[0],
        feature[1],
        host_type,
        host_id,
        count,
        description,
        starts_on,
        ends_on,
    )
    result = _single(apply_allocation_changes(ctx, actor, pool_id, [change]))
    assert result.allocation_id is not None
    return result.allocation_id


def update_allocation(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    allocation_id: int,
    *,
    description: object = None,
    count: object = None,
    ends_on: object = None,
) -> None:
    """Edit an allocation's description, count and/or end day."""
    change = AllocationChange(
        "edit", None, allocation_id, count=count, description=description, ends_on=ends_on
    )
    _single(apply_allocation_changes(ctx, actor, pool_id, [change]))


def remove_allocation(ctx: ServiceContext, actor: Actor, pool_id: int, allocation_id: int) -> None:
    """Remove an allocation; its reservation goes from the server on the next push."""
    _single(
        apply_allocation_changes(
            ctx, actor, pool_id, [AllocationChange("delete", None, allocation_id)]
        )
    )


def retry_allocation(ctx: ServiceContext, actor: Actor, pool_id: int, allocation_id: int) -> None:
    """Send a failed allocation to the server again."""
    _single(
        apply_allocation_changes(
            ctx, actor, pool_id, [AllocationChange("retry", None, allocation_id)]
        )
    )


def list_allocations(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    feature: FeatureKey | None = None,
    *,
    include_removing: bool = False,
) -> pd.DataFrame:
    """A pool's allocations (optionally one feature), oldest first."""
    pool_id = record_id(pool_id, "pool")
    feature = None if feature is None else validate_feature(feature)
    require_pool_read(ctx.db, actor, pool_id)
    return store.pool_allocations(ctx.db, pool_id, feature, include_removing=include_removing)


def allocation_states(ctx: ServiceContext, actor: Actor, ids: Sequence[int]) -> pd.DataFrame:
    """Current state and last error of given allocations (for live grid refresh)."""
    ids = record_ids(ids, "allocation")
    if not ids:
        return pd.DataFrame(columns=["id", "state", "last_error"])
    return store.allocation_states(ctx.db, ids, pool_scope_sql(actor))


def visible_allocations_query(actor: Actor) -> tuple[str, list[object]]:
    """The SQL and parameters of visible_allocations (also streamed to CSV by exports)."""
    return store.visible_allocations_sql(pool_scope_sql(actor))


def visible_allocations(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """Every allocation the actor may see (managers: their pools), for export."""
    return store.days_as_dates(ctx.db.query_df(*visible_allocations_query(actor)))


def retry_allocations(
    ctx: ServiceContext, actor: Actor, pool_id: int, allocation_ids: Sequence[int]
) -> list[RowResult]:
    """Send failed allocations of a pool to the server again, in one transaction.

    Each goes back to pending and the reconciler of their servers is woken at once; a row that
    is not failed (or not in the pool) comes back refused with its reason.
    """
    if isinstance(allocation_ids, str | bytes) or not isinstance(allocation_ids, Sequence):
        raise VlmError("give the allocation ids to retry as a list", field="allocation")
    changes = [AllocationChange("retry", allocation_id=i) for i in allocation_ids]
    return apply_allocation_changes(ctx, actor, pool_id, changes)


def extend_allocations(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    allocation_ids: Sequence[int],
    ends_on: object,
) -> list[RowResult]:
    """Give allocations of a pool a new end day, in one transaction; each is audited, and a row
    beyond the pool's maximum duration (or expired, or not in the pool) comes back refused."""
    if isinstance(allocation_ids, str | bytes) or not isinstance(allocation_ids, Sequence):
        raise VlmError("give the allocation ids to extend as a list", field="allocation")
    changes = [AllocationChange("extend", allocation_id=i, ends_on=ends_on) for i in allocation_ids]
    return apply_allocation_changes(ctx, actor, pool_id, changes)
