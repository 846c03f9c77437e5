"""Admin use cases for Virtual Pools: create, edit quantities and manager, delete, list, figures."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import (
    ID_MAX,
    NAME_MAX_LENGTH,
    Actor,
    Conflict,
    FeatureKey,
    NotFound,
    PortionRoom,
    Role,
    ValidationError,
    bounded_int,
    clean_text,
    optional_text,
    record_id,
    reduce_portions,
    split_into_portions,
    validate_description,
    validate_duration_days,
    validate_name,
    validate_quantities,
)
from vlm.services import audit
from vlm.services.permissions import (
    pool_scope_sql,
    require_admin,
    require_admin_in,
    require_pool_read,
)
from vlm.store import access
from vlm.store import pools as store


def _check_manager(cur, manager: str) -> str:
    manager = manager.strip().lower()  # clean_text has refused an empty or malformed one
    row = access.role_and_disabled(cur, manager)
    if row is None:
        raise NotFound(f"user '{manager}' does not exist", field="manager")
    if row[0] != Role.MANAGER.value:
        raise ValidationError(f"user '{manager}' is not a manager", field="manager")
    if row[1]:
        raise ValidationError(f"user '{manager}' is disabled", field="manager")
    return manager


def _vlm_rooms(cur, vlm_id: int) -> dict[FeatureKey, list[dict]]:
    """The VLM's server features grouped by feature, with poolable room and over-commitment."""
    rooms: dict[FeatureKey, list[dict]] = {}
    for sf_id, server, name, version, poolable, deficit in store.vlm_feature_rooms(cur, vlm_id):
        rooms.setdefault((name, version), []).append(
            {"sf": sf_id, "server": server, "poolable": poolable, "deficit": deficit}
        )
    return rooms


def _pool_state(cur, pool_id: int) -> tuple[dict[int, int], dict[int, int]]:
    """Current portions and allocated counts per server feature of a pool."""
    return store.pool_portions(cur, pool_id), store.allocated_per_server_feature(cur, pool_id)


def _label(key: FeatureKey) -> str:
    return f"{key[0]} {key[1]}"


def _plan_portions(
    cur, vlm_id: int, pool_id: int | None, quantities: Mapping[FeatureKey, int]
) -> dict[int, int]:
    """New portions per server feature for the per-feature quantities (rule 2), as
    validate_quantities returns them."""
    rooms = _vlm_rooms(cur, vlm_id)
    portions, allocated = _pool_state(cur, pool_id) if pool_id is not None else ({}, {})
    planned = dict(portions)
    for key, wanted in quantities.items():
        if key not in rooms:
            raise NotFound(f"feature {_label(key)} is not part of this VLM", field="quantity")
        server_features = rooms[key]
        current = {s["sf"]: portions.get(s["sf"], 0) for s in server_features}
        have = sum(current.values())
        if wanted > have:
            usable = [
                PortionRoom(s["sf"], s["server"], max(s["poolable"], 0))
                for s in server_features
                if s["deficit"] == 0
            ]
            try:
                extra = split_into_portions(wanted - have, usable)
            except ValidationError:
                room = sum(r.room for r in usable)
                raise ValidationError(
                    f"{_label(key)}: only {have + room} can be pooled, {wanted} requested",
                    field="quantity",
                ) from None
            for sf, q in extra.items():
                planned[sf] = planned.get(sf, 0) + q
        elif wanted < have:
            try:
                reduced = reduce_portions(current, allocated, wanted)
            except ValidationError as exc:
                raise ValidationError(f"{_label(key)}: {exc.message}", field="quantity") from None
            for sf in current:
                planned[sf] = reduced.get(sf, 0)
    return {sf: q for sf, q in planned.items() if q > 0 or allocated.get(sf, 0) > 0}


def _feature_quantities(cur, pool_id: int) -> dict[str, int]:
    """The pool's quantity per feature, keyed 'name version' (as audit rows show them)."""
    return {f"{n} {v}": q for n, v, q in store.feature_quantities(cur, pool_id)}


def create_pool(
    ctx: ServiceContext,
    actor: Actor,
    vlm_id: int,
    name: str,
    manager: str,
    quantities: Mapping[FeatureKey, object],
    *,
    description: str = "",
    default_duration_days: object = None,
    max_duration_days: object = None,
) -> int:
    """Carve a pool out of a VLM with a quantity per feature, split into per-server portions;
    optionally with a default and maximum allocation duration (see set_pool_durations)."""
    require_admin(actor)
    durations = check_durations(default_duration_days, max_duration_days)
    vlm_id = record_id(vlm_id, "VLM")
    name = validate_name(name, "pool name")
    manager = clean_text(manager, "manager", max_len=NAME_MAX_LENGTH)
    quantities = validate_quantities(quantities)
    description = "" if description is None else validate_description(description)

    def write(cur):
        require_admin_in(cur, actor)
        if not store.vlm_exists(cur, vlm_id):
            raise NotFound(f"VLM {vlm_id} does not exist", field="vlm")
        if store.pool_name_taken(cur, vlm_id, name):
            raise Conflict(f"this VLM has a pool named '{name}' already", field="name")
        manager_name = _check_manager(cur, manager)
        portions = _plan_portions(cur, vlm_id, None, quantities)
        if not portions:
            raise ValidationError("give at least one feature a quantity above 0", field="quantity")
        pool_id = store.insert_pool(
            cur, vlm_id, name, manager_name, (description or "").strip(), actor.username
        )
        store.replace_portions(cur, pool_id, portions)
        if durations != (None, None):
            store.set_pool_durations(cur, pool_id, *durations)
        audit.record(
            cur,
            actor,
            "pool.create",
            "pool",
            pool_id,
            None,
            {
                "name": name,
                "vlm_id": vlm_id,
                "manager": manager_name,
                "quantities": _feature_quantities(cur, pool_id),
                **_durations_audited(*durations),
            },
        )
        return pool_id

    return ctx.db.write(write)


def update_pool(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    *,
    name: str | None = None,
    manager: str | None = None,
    description: str | None = None,
    quantities: Mapping[FeatureKey, object] | None = None,
) -> None:
    """Change a pool's name, manager, description or quantities (never below allocated)."""
    require_admin(actor)
    pool_id = record_id(pool_id, "pool")
    name = None if name is None else validate_name(name, "pool name")
    manager = None if manager is None else clean_text(manager, "manager", max_len=NAME_MAX_LENGTH)
    description = None if description is None else validate_description(description)
    quantities = None if quantities is None else validate_quantities(quantities)
    ctx.db.write(
        lambda cur: update_pool_in(
            cur,
            actor,
            pool_id,
            name=name,
            manager=manager,
            description=description,
            quantities=quantities,
        )
    )


def update_pool_in(
    cur,
    actor: Actor,
    pool_id: int,
    *,
    name: str | None = None,
    manager: str | None = None,
    description: str | None = None,
    quantities: Mapping[FeatureKey, int] | None = None,
) -> None:
    """Inside a write: update_pool with validated values (the one path that changes a pool's
    portions after it is made; an approved quantity request grows a pool through it)."""
    require_admin_in(cur, actor)
    row = store.pool_row(cur, pool_id)
    if row is None:
        raise NotFound(f"pool {pool_id} does not exist", field="pool")
    vlm_id, old_name, old_manager, old_description = row
    new_name = name if name is not None else old_name
    if new_name != old_name and store.pool_name_taken(cur, vlm_id, new_name, other_than=pool_id):
        raise Conflict(f"this VLM has a pool named '{new_name}' already", field="name")
    new_manager = _check_manager(cur, manager) if manager is not None else old_manager
    new_description = (description if description is not None else old_description).strip()
    before = {
        "name": old_name,
        "manager": old_manager,
        "description": old_description,
        "quantities": _feature_quantities(cur, pool_id),
    }
    if quantities:
        store.replace_portions(cur, pool_id, _plan_portions(cur, vlm_id, pool_id, quantities))
    store.update_pool(cur, pool_id, new_name, new_manager, new_description)
    after = {
        "name": new_name,
        "manager": new_manager,
        "description": new_description,
        "quantities": _feature_quantities(cur, pool_id),
    }
    audit.record(cur, actor, "pool.update", "pool", pool_id, before, after)


def deletion_impact(ctx: ServiceContext, actor: Actor, pool_id: int) -> dict[str, int]:
    """What deleting a pool takes with it: allocations and server reservations (for the prompt)."""
    require_admin(actor)
    pool_id = record_id(pool_id, "pool")
    row = store.deletion_counts(ctx.db, pool_id)
    return {"allocations": row[0], "reservations": row[1], "hosts": row[2]}


def delete_pool(
    ctx: ServiceContext, actor: Actor, pool_id: int, *, confirmed_allocations: int
) -> None:
    """Delete a pool and its allocations; the caller confirms the allocation count it was shown."""
    require_admin(actor)
    pool_id = record_id(pool_id, "pool")
    confirmed_allocations = bounded_int(
        confirmed_allocations, "confirmed_allocations", minimum=0, maximum=ID_MAX
    )

    def write(cur):
        require_admin_in(cur, actor)
        name = store.pool_name(cur, pool_id)
        if name is None:
            raise NotFound(f"pool {pool_id} does not exist", field="pool")
        live = store.live_allocation_count(cur, pool_id)
        if live != confirmed_allocations:
            raise Conflict(
                f"pool '{name}' now has {live} allocation(s), not {confirmed_allocations}; "
                "review and confirm again"
            )
        servers = store.servers_of_allocations(cur, pool_id)
        quantities = _feature_quantities(cur, pool_id)
        store.delete_pool(cur, pool_id)
        audit.record(
            cur,
            actor,
            "pool.delete",
            "pool",
            pool_id,
            {"name": name, "allocations": live, "quantities": quantities},
        )
        return servers

    servers = ctx.db.write(write)
    ctx.allocations_changed(servers)


def list_pools(ctx: ServiceContext, actor: Actor, *, search: str | None = None) -> pd.DataFrame:
    """Pools the actor may see, with quantity, allocated and available summed over features."""
    search = optional_text(search, "search", max_len=NAME_MAX_LENGTH)
    return store.pool_summaries(ctx.db, pool_scope_sql(actor), search)


def pool_features(ctx: ServiceContext, actor: Actor, pool_id: int | None = None) -> pd.DataFrame:
    """Per pool feature: quantity, allocated, available, pending, failed, over-committed."""
    if pool_id is not None:
        pool_id = record_id(pool_id, "pool")
        require_pool_read(ctx.db, actor, pool_id)
    return store.pool_feature_figures(ctx.db, pool_scope_sql(actor, alias="f"), pool_id)


def pool_quantity_bounds(
    ctx: ServiceContext, actor: Actor, vlm_id: int, pool_id: int | None = None
) -> pd.DataFrame:
    """For a pool editor: each VLM feature with the pool's quantity, minimum and maximum."""
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    pool_id = None if pool_id is None else record_id(pool_id, "pool")
    return store.quantity_bounds(ctx.db, vlm_id, pool_id)


def _durations_audited(default: int | None, maximum: int | None) -> dict[str, int]:
    """The durations a new pool was given, for its audit row (none when unset)."""
    named = {"default_duration_days": default, "max_duration_days": maximum}
    return {key: value for key, value in named.items() if value is not None}


def check_durations(default_days: object, max_days: object) -> tuple[int | None, int | None]:
    """A pool's default and maximum duration in whole days (None: unset); the default may not
    exceed the maximum."""
    default = validate_duration_days(default_days, "default_duration_days")
    maximum = validate_duration_days(max_days, "max_duration_days")
    if default is not None and maximum is not None and default > maximum:
        raise ValidationError(
            f"the default duration ({default} days) is longer than the maximum ({maximum} days)",
            field="default_duration_days",
        )
    return default, maximum


def set_pool_durations(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    *,
    default_days: object = None,
    max_days: object = None,
) -> None:
    """Set (None: clear) a pool's default and maximum allocation duration in days.

    The default fills the end of a new allocation given none; the maximum caps every
    allocation's days from its start through its end. Existing allocations keep their dates.
    """
    require_admin(actor)
    pool_id = record_id(pool_id, "pool")
    default, maximum = check_durations(default_days, max_days)

    def write(cur):
        require_admin_in(cur, actor)
        if store.pool_row(cur, pool_id) is None:
            raise NotFound(f"pool {pool_id} does not exist", field="pool")
        old_default, old_max = store.pool_durations(cur, pool_id)
        if (old_default, old_max) == (default, maximum):
            return
        store.set_pool_durations(cur, pool_id, default, maximum)
        audit.record(
            cur,
            actor,
            "pool.durations",
            "pool",
            pool_id,
            {"default_duration_days": old_default, "max_duration_days": old_max},
            {"default_duration_days": default, "max_duration_days": maximum},
        )

    ctx.db.write(write)
