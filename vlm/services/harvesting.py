"""Idle-reservation harvesting: the report of allocations nobody used for N days, their release,
seat prices and the policy that warns and then releases on its own.

An allocation is idle since its host was last seen using its feature on its server (each
inventory pull records who the server shows using what), or since it was applied when it never
was. Admins and analysts see every pool, managers their own. A manager releases idle allocations
of their pools; the admin's policy warns after N days and releases after M days through the
same audited release, and never on a server whose last read failed (its usage is unknown).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd

from vlm.alerting.notify import notify_user
from vlm.context import ServiceContext
from vlm.domain import (
    DAYS_MAX,
    SYSTEM_ACTOR,
    Actor,
    Role,
    ValidationError,
    bounded_float,
    bounded_int,
    record_id,
    record_ids,
    validate_feature,
    validate_flag,
)
from vlm.services import audit
from vlm.services.allocations import AllocationChange, RowResult, apply_allocation_changes
from vlm.services.permissions import (
    require_admin,
    require_admin_in,
    require_can_write,
    require_pool_write,
    require_pool_write_in,
)
from vlm.services.tokens import require_writable
from vlm.store import usage as store
from vlm.store.alerts import pools_of

PRICE_MAX = 1_000_000_000.0
DEFAULT_IDLE_DAYS = 30
NOT_IDLE = "not idle for {days} days in this pool any more (used since, or no longer held)"


@dataclass(frozen=True)
class IdleReport:
    """Allocations idle for at least `days` days, and their sums per pool and per manager."""

    days: int
    idle_before: datetime
    allocations: pd.DataFrame
    per_pool: pd.DataFrame
    per_manager: pd.DataFrame

    @property
    def idle_seats(self) -> int:
        return int(self.allocations["count"].sum()) if not self.allocations.empty else 0

    @property
    def seat_cost(self) -> float:
        return float(self.allocations["seat_cost"].sum()) if not self.allocations.empty else 0.0


@dataclass
class HarvestPass:
    """What one run of the policy did: allocations warned about (by their pool's manager) and
    released."""

    warned: dict[str, list[int]] = field(default_factory=dict)
    released: list[int] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def warned_count(self) -> int:
        return sum(len(ids) for ids in self.warned.values())


def _visible_pools(ctx: ServiceContext, actor: Actor) -> list[int] | None:
    return pools_of(ctx.db, actor.username) if actor.role is Role.MANAGER else None


def validate_idle_days(value: object, what: str = "idle days") -> int:
    return bounded_int(value, "days", minimum=1, maximum=DAYS_MAX, label=what)


def idle_report(
    ctx: ServiceContext, actor: Actor, days: object, now: datetime | None = None
) -> IdleReport:
    """Allocations whose seats were not used for `days` days, with per-pool and per-manager
    sums and the seat cost where the admin entered a price."""
    days = validate_idle_days(days)
    idle_before = (now or datetime.now()) - timedelta(days=days)
    found = store.idle_allocations(ctx.db, idle_before, _visible_pools(ctx, actor))
    return IdleReport(
        days,
        idle_before,
        found,
        _idle_totals(found, ["vlm", "pool", "manager"]),
        _idle_totals(found, ["manager"]),
    )


def _idle_totals(idle: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Idle allocations, seats and their cost summed per keys, costliest first (from the one
    read of the idle allocations, not a second scan of the estate)."""
    totals = (
        idle.groupby(keys, sort=False)
        .agg(
            idle_allocations=("id", "size"),
            idle_seats=("count", "sum"),
            seat_cost=("seat_cost", "sum"),
            priced=("seat_cost", "count"),
        )
        .reset_index()
    )
    totals["seat_cost"] = totals["seat_cost"].where(totals.pop("priced") > 0)  # no price: blank
    return totals.sort_values(
        ["seat_cost", "idle_seats", *keys],
        ascending=[False, False, *[True] * len(keys)],
        na_position="last",
        ignore_index=True,
    )


def idle_days_shown(ctx: ServiceContext) -> int:
    """The idle age pages show by default: the policy's warning age, else 30 days."""
    policy = store.harvest_policy(ctx.db)
    return int(policy["warn_after_days"]) if policy else DEFAULT_IDLE_DAYS


def idle_seats(ctx: ServiceContext, actor: Actor, days: object) -> int:
    """Seats reserved but idle for `days` days in the pools the actor sees (the dashboard's
    figure)."""
    days = validate_idle_days(days)
    idle_before = datetime.now() - timedelta(days=days)
    return store.idle_seat_count(ctx.db, idle_before, _visible_pools(ctx, actor))


def release_idle(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: object,
    allocation_ids: object,
    days: object,
    now: datetime | None = None,
) -> list[RowResult]:
    """Remove the chosen allocations of a pool that are still idle for `days` days, in one
    save (each reservation leaves its server as any removal does). An allocation used since
    the report, or not in this pool, comes back refused with the reason; the rest go."""
    require_writable(actor)
    require_can_write(actor)
    pool_id = record_id(pool_id, "pool")
    ids = list(dict.fromkeys(record_ids(allocation_ids, "allocations")))
    if not ids:
        raise ValidationError("choose at least one idle allocation", field="allocations")
    days = validate_idle_days(days)
    require_pool_write(ctx.db, actor, pool_id)
    ctx.db.write(lambda cur: require_pool_write_in(cur, actor, pool_id))  # as stored now
    idle_before = (now or datetime.now()) - timedelta(days=days)
    return _release(ctx, actor, pool_id, ids, days, idle_before, by_policy=False)


def _release(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    ids: Sequence[int],
    days: int,
    idle_before: datetime,
    *,
    by_policy: bool,
) -> list[RowResult]:
    idle = store.idle_of(ctx.db, list(ids), idle_before)
    results: dict[int, RowResult] = {}
    deletes: list[AllocationChange] = []
    for row, allocation_id in enumerate(ids):
        change = AllocationChange("delete", row, allocation_id)
        found = idle.get(allocation_id)
        if found is None or int(found["pool_id"]) != pool_id:
            message = f"allocation {allocation_id}: " + NOT_IDLE.format(days=days)
            results[row] = RowResult(change, False, message, allocation_id, "allocations")
        else:
            deletes.append(change)
    if deletes:
        for result in apply_allocation_changes(ctx, actor, pool_id, deletes):
            results[int(result.change.row or 0)] = result
        released = [r.allocation_id for r in results.values() if r.ok]
        if released:
            after = {"allocations": released, "idle_days": days, "by_policy": by_policy}
            ctx.db.write(
                lambda cur: audit.record(
                    cur, actor, "pool.release_idle", "pool", pool_id, None, after
                )
            )
    return [results[row] for row in range(len(ids))]


# -- prices ------------------------------------------------------------------------------------


def list_prices(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """The price of one seat of each priced feature (everyone reads the costs they see)."""
    return store.list_prices(ctx.db)


def set_price(ctx: ServiceContext, actor: Actor, feature: object, price: object | None) -> None:
    """Set the price of one seat of a feature (None removes it); admins only."""
    require_writable(actor)
    require_admin(actor)
    name, version = validate_feature(feature)
    value = (
        None
        if price is None
        else bounded_float(price, "price", minimum=0.0, maximum=PRICE_MAX, label="seat price")
    )

    def write(cur) -> None:
        require_admin_in(cur, actor)
        if not store.feature_known(cur, name, version):
            raise ValidationError(
                f"no license server has the feature {name} {version}", field="feature"
            )
        before = store.price_of(cur, name, version)
        store.set_price(cur, name, version, value, actor.username)
        target = f"{name} {version}"
        audit.record(
            cur, actor, "feature_price.set", "feature", target, {"price": before}, {"price": value}
        )

    ctx.db.write(write)


# -- policy ------------------------------------------------------------------------------------


def harvest_policy(ctx: ServiceContext, actor: Actor) -> dict | None:
    """The idle-release policy (None until an admin sets one); everyone may read it."""
    return store.harvest_policy(ctx.db)


def set_harvest_policy(
    ctx: ServiceContext,
    actor: Actor,
    *,
    enabled: object,
    warn_after_days: object,
    release_after_days: object,
) -> None:
    """Warn the pool's manager after warn_after_days idle, release after release_after_days
    (admins)."""
    require_writable(actor)
    require_admin(actor)
    enabled = validate_flag(enabled, "enabled")
    warn = bounded_int(
        warn_after_days, "warn_after_days", minimum=1, maximum=DAYS_MAX, label="warn after (days)"
    )
    release = bounded_int(
        release_after_days,
        "release_after_days",
        minimum=1,
        maximum=DAYS_MAX,
        label="release after (days)",
    )
    if release <= warn:
        raise ValidationError(
            f"release after (days) must be more than warn after ({warn}), got {release}: "
            "the manager is warned before anything is released",
            field="release_after_days",
        )

    def write(cur) -> None:
        require_admin_in(cur, actor)
        before = store.harvest_policy(ctx.db)
        store.set_harvest_policy(cur, enabled, warn, release, actor.username)
        after = {"enabled": enabled, "warn_after_days": warn, "release_after_days": release}
        shown = None if before is None else {k: before[k] for k in after}
        audit.record(cur, actor, "harvest_policy.set", "harvest_policy", 1, shown, after)

    ctx.db.write(write)


def _warning(count: int, warn: int, release: int) -> tuple[str, str]:
    """The message a manager gets when allocations of their pools become due for release."""
    title = f"VLM: {count} reserved seat(s) of your pools unused for {warn} days"
    body = (
        f"{count} allocation(s) in your pools have not been used for {warn} days. Unless their "
        f"hosts use them, the release policy frees them when they reach {release} days idle "
        f"({release - warn} days from now). See Idle licenses in VLM to release or keep them."
    )
    return title, body


def apply_harvest_policy(ctx: ServiceContext, now: datetime | None = None) -> HarvestPass:
    """Run the policy once (the scheduler's leader, after each full pass): mark and audit the
    allocations idle for warn_after_days (once per idle spell) and tell each pool's manager on
    their own destinations, then release, through the same
    path as a manager's release, those still idle for release_after_days and warned at least
    release − warn days ago. A pass with nothing due writes nothing."""
    done = HarvestPass()
    policy = store.harvest_policy(ctx.db)
    if policy is None or not policy["enabled"]:
        return done
    now = now or datetime.now()
    warn, release = int(policy["warn_after_days"]), int(policy["release_after_days"])
    due = store.due_for_warning(ctx.db, now - timedelta(days=warn))
    if due:
        ids = [allocation_id for allocation_id, _, _ in due]
        rows = [
            (
                "allocation.idle_warning",
                "allocation",
                allocation_id,
                None,
                {"pool_id": pool_id, "idle_days": warn, "release_after_days": release},
            )
            for allocation_id, pool_id, _ in due
        ]

        by_manager: dict[str, list[int]] = defaultdict(list)
        for allocation_id, _, manager in due:
            by_manager[manager].append(allocation_id)

        def mark(cur) -> None:
            store.mark_warned(cur, ids, now)
            audit.record_many(cur, SYSTEM_ACTOR, rows)
            for manager, warned in by_manager.items():
                notify_user(cur, manager, *_warning(len(warned), warn, release))

        ctx.db.write(mark)
        done.warned = dict(by_manager)
    idle_before = now - timedelta(days=release)
    warned_before = now - timedelta(days=release - warn)
    by_pool: dict[int, list[int]] = defaultdict(list)
    for allocation_id, pool_id in store.due_for_release(ctx.db, idle_before, warned_before):
        by_pool[pool_id].append(allocation_id)
    for pool_id, ids in by_pool.items():
        for result in _release(
            ctx, SYSTEM_ACTOR, pool_id, ids, release, idle_before, by_policy=True
        ):
            if result.ok:
                done.released.append(int(result.change.allocation_id or 0))
            else:
                done.refused.append(result.message)
    return done


# What the scheduler runs after each full pass (handed to it by the app's runtime).
AFTER_SYNC_PASS = (apply_harvest_policy,)
