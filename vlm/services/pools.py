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
    validate_name,
    validate_quantities,
    validate_quantity,
)
from vlm.services import audit
from vlm.services.permissions import (
    pool_scope_sql,
    require_admin,
    require_admin_in,
    require_pool_read,
)
from vlm.store.figures import POOL_FEATURE_FIGURES, SERVER_FEATURE_FIGURES

FeatureKey = tuple[str, str]


def _check_manager(cur, manager: str) -> str:
    manager = (manager or "").strip().lower()
    row = cur.execute(
        """SELECT role, disabled FROM users WHERE username = ?""", [manager]
    ).fetchone()
    if row is None:
        raise NotFound(f"user '{manager}' does not exist", field="manager")
    if row[0] != Role.MANAGER.value:
        raise ValidationError(f"user '{manager}' is not a manager", field="manager")
    if row[1]:
        raise ValidationError(f"user '{manager}' is disabled", field="manager")
    return manager


def _vlm_rooms(cur, vlm_id: int) -> dict[FeatureKey, list[dict]]:
    """The VLM's server features grouped by feature, with poolable room and over-commitment."""
    rows = cur.execute(
        f"SELECT server_feature_id, server_name, feature_name, feature_version, poolable, deficit "
        f"FROM ({SERVER_FEATURE_FIGURES}) WHERE vlm_id = ?",
        [vlm_id],
    ).fetchall()
    rooms: dict[FeatureKey, list[dict]] = {}
    for sf_id, server, name, version, poolable, deficit in rows:
        rooms.setdefault((name, version), []).append(
            {"sf": sf_id, "server": server, "poolable": poolable, "deficit": deficit}
        )
    return rooms


def _pool_state(cur, pool_id: int) -> tuple[dict[int, int], dict[int, int]]:
    """Current portions and allocated counts per server feature of a pool."""
    portions = dict(
        cur.execute(
            """SELECT server_feature_id, quantity FROM pool_portions WHERE pool_id = ?""", [pool_id]
        ).fetchall()
    )
    allocated = dict(
        cur.execute(
            """SELECT server_feature_id, SUM(count)::INTEGER FROM allocations
            WHERE pool_id = ? AND state <> 'removing' GROUP BY 1""",
            [pool_id],
        ).fetchall()
    )
    return portions, allocated


def _label(key: FeatureKey) -> str:
    return f"{key[0]} {key[1]}"


def _plan_portions(
    cur, vlm_id: int, pool_id: int | None, quantities: Mapping[FeatureKey, object]
) -> dict[int, int]:
    """New portions per server feature for the given per-feature quantities (rule 2)."""
    rooms = _vlm_rooms(cur, vlm_id)
    portions, allocated = _pool_state(cur, pool_id) if pool_id is not None else ({}, {})
    planned = dict(portions)
    for key, raw in quantities.items():
        key = (str(key[0]), str(key[1]))
        try:
            wanted = validate_quantity(raw)
        except ValidationError as exc:
            raise ValidationError(f"{_label(key)}: {exc.message}", field="quantity") from None
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


def _write_portions(cur, pool_id: int, portions: dict[int, int]) -> None:
    cur.execute("""DELETE FROM pool_portions WHERE pool_id = ?""", [pool_id])
    if portions:
        cur.executemany(
            """INSERT INTO pool_portions (pool_id, server_feature_id, quantity) VALUES (?, ?, ?)""",
            [[pool_id, sf, q] for sf, q in sorted(portions.items())],
        )


def _feature_quantities(cur, pool_id: int) -> dict[str, int]:
    return {
        f"{n} {v}": q
        for n, v, q in cur.execute(
            """SELECT sf.feature_name, sf.feature_version, SUM(pp.quantity)::INTEGER
            FROM pool_portions pp JOIN server_features sf ON sf.id = pp.server_feature_id
            WHERE pp.pool_id = ? GROUP BY 1, 2 ORDER BY 1, 2""",
            [pool_id],
        ).fetchall()
    }


def create_pool(
    ctx: ServiceContext,
    actor: Actor,
    vlm_id: int,
    name: str,
    manager: str,
    quantities: Mapping[FeatureKey, object],
    *,
    description: str = "",
) -> int:
    """Carve a pool out of a VLM with a quantity per feature, split into per-server portions."""
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    name = validate_name(name, "pool name")
    manager = clean_text(manager, "manager", max_len=NAME_MAX_LENGTH)
    quantities = validate_quantities(quantities)
    description = "" if description is None else validate_description(description)

    def write(cur):
        require_admin_in(cur, actor)
        if cur.execute("""SELECT 1 FROM vlms WHERE id = ?""", [vlm_id]).fetchone() is None:
            raise NotFound(f"VLM {vlm_id} does not exist", field="vlm")
        if cur.execute(
            """SELECT 1 FROM pools WHERE vlm_id = ? AND name = ?""", [vlm_id, name]
        ).fetchone():
            raise Conflict(f"this VLM has a pool named '{name}' already", field="name")
        manager_name = _check_manager(cur, manager)
        portions = _plan_portions(cur, vlm_id, None, quantities)
        if not portions:
            raise ValidationError("give at least one feature a quantity above 0", field="quantity")
        pool_id = cur.execute(
            """INSERT INTO pools (vlm_id, name, manager, description, created_by)
            VALUES (?, ?, ?, ?, ?) RETURNING id""",
            [vlm_id, name, manager_name, (description or "").strip(), actor.username],
        ).fetchone()[0]
        _write_portions(cur, pool_id, portions)
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

    def write(cur):
        require_admin_in(cur, actor)
        row = cur.execute(
            """SELECT vlm_id, name, manager, description FROM pools WHERE id = ?""", [pool_id]
        ).fetchone()
        if row is None:
            raise NotFound(f"pool {pool_id} does not exist", field="pool")
        vlm_id, old_name, old_manager, old_description = row
        new_name = validate_name(name, "pool name") if name is not None else old_name
        if (
            new_name != old_name
            and cur.execute(
                """SELECT 1 FROM pools WHERE vlm_id = ? AND name = ? AND id <> ?""",
                [vlm_id, new_name, pool_id],
            ).fetchone()
        ):
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
            _write_portions(cur, pool_id, _plan_portions(cur, vlm_id, pool_id, quantities))
        cur.execute(
            """UPDATE pools SET name = ?, manager = ?, description = ? WHERE id = ?""",
            [new_name, new_manager, new_description, pool_id],
        )
        after = {
            "name": new_name,
            "manager": new_manager,
            "description": new_description,
            "quantities": _feature_quantities(cur, pool_id),
        }
        audit.record(cur, actor, "pool.update", "pool", pool_id, before, after)

    ctx.db.write(write)


def deletion_impact(ctx: ServiceContext, actor: Actor, pool_id: int) -> dict[str, int]:
    """What deleting a pool takes with it: allocations and server reservations (for the prompt)."""
    require_admin(actor)
    pool_id = record_id(pool_id, "pool")
    row = ctx.db.query(
        """SELECT COUNT(*)::INTEGER,
        COUNT(*) FILTER (WHERE state IN ('applied', 'pending', 'disabled'))::INTEGER,
        COUNT(DISTINCT (a.host_type, a.host_id, sf.server_id))::INTEGER
        FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id
        WHERE a.pool_id = ? AND a.state <> 'removing'""",
        [pool_id],
    )[0]
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
        row = cur.execute("""SELECT name FROM pools WHERE id = ?""", [pool_id]).fetchone()
        if row is None:
            raise NotFound(f"pool {pool_id} does not exist", field="pool")
        live = cur.execute(
            """SELECT COUNT(*) FROM allocations WHERE pool_id = ? AND state <> 'removing'""",
            [pool_id],
        ).fetchone()[0]
        if live != confirmed_allocations:
            raise Conflict(
                f"pool '{row[0]}' now has {live} allocation(s), not {confirmed_allocations}; "
                "review and confirm again"
            )
        servers = [
            r[0]
            for r in cur.execute(
                """SELECT DISTINCT sf.server_id FROM allocations a
                JOIN server_features sf ON sf.id = a.server_feature_id WHERE a.pool_id = ?""",
                [pool_id],
            ).fetchall()
        ]
        quantities = _feature_quantities(cur, pool_id)
        cur.execute("""DELETE FROM allocations WHERE pool_id = ? AND state = 'failed'""", [pool_id])
        cur.execute(
            """UPDATE allocations SET state = 'removing', updated_at = current_timestamp
            WHERE pool_id = ?""",
            [pool_id],
        )
        cur.execute("""DELETE FROM pool_portions WHERE pool_id = ?""", [pool_id])
        cur.execute("""DELETE FROM pools WHERE id = ?""", [pool_id])
        audit.record(
            cur,
            actor,
            "pool.delete",
            "pool",
            pool_id,
            {"name": row[0], "allocations": live, "quantities": quantities},
        )
        return servers

    servers = ctx.db.write(write)
    ctx.allocations_changed(servers)


def list_pools(ctx: ServiceContext, actor: Actor, *, search: str | None = None) -> pd.DataFrame:
    """Pools the actor may see, with quantity, allocated and available summed over features."""
    search = optional_text(search, "search", max_len=NAME_MAX_LENGTH)
    scope, params = pool_scope_sql(actor)
    if search:
        scope += " AND (p.name ILIKE ? OR v.name ILIKE ? OR p.manager ILIKE ?)"
        params = [*params, *[f"%{search}%"] * 3]
    return ctx.db.query_df(
        f"""
        WITH f AS ({POOL_FEATURE_FIGURES})
        SELECT p.id, p.name, v.name AS vlm_name, p.vlm_id, p.manager, p.description,
            COUNT(f.feature_name)::INTEGER AS features,
            COALESCE(SUM(f.quantity), 0)::INTEGER AS quantity,
            COALESCE(SUM(f.allocated), 0)::INTEGER AS allocated,
            COALESCE(SUM(f.available), 0)::INTEGER AS available,
            COALESCE(SUM(f.allocations), 0)::INTEGER AS allocations,
            COALESCE(SUM(f.failed), 0)::INTEGER AS failed,
            COALESCE(BOOL_OR(f.over_committed), FALSE) AS over_committed,
            p.created_at
        FROM pools p JOIN vlms v ON v.id = p.vlm_id LEFT JOIN f ON f.pool_id = p.id
        WHERE {scope}
        GROUP BY p.id, p.name, v.name, p.vlm_id, p.manager, p.description, p.created_at
        ORDER BY v.name, p.name
        """,
        params,
    )


def pool_features(ctx: ServiceContext, actor: Actor, pool_id: int | None = None) -> pd.DataFrame:
    """Per pool feature: quantity, allocated, available, pending, failed, over-committed."""
    scope, params = pool_scope_sql(actor, alias="f")
    if pool_id is not None:
        pool_id = record_id(pool_id, "pool")
        require_pool_read(ctx.db, actor, pool_id)
        scope += " AND f.pool_id = ?"
        params = [*params, pool_id]
    return ctx.db.query_df(
        f"""SELECT * FROM ({POOL_FEATURE_FIGURES}) f WHERE {scope}
        ORDER BY vlm_name, pool_name, feature_name, feature_version""",
        params,
    )


def pool_quantity_bounds(
    ctx: ServiceContext, actor: Actor, vlm_id: int, pool_id: int | None = None
) -> pd.DataFrame:
    """For a pool editor: each VLM feature with the pool's quantity, minimum and maximum."""
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    pool_id = None if pool_id is None else record_id(pool_id, "pool")
    return ctx.db.query_df(
        f"""
        WITH sff AS ({SERVER_FEATURE_FIGURES}),
        mine AS (
            SELECT server_feature_id, quantity FROM pool_portions WHERE pool_id = ?
        ), used AS (
            SELECT server_feature_id, SUM(count) AS allocated FROM allocations
            WHERE pool_id = ? AND state <> 'removing' GROUP BY 1
        )
        SELECT sff.feature_name, sff.feature_version,
            SUM(sff.total)::INTEGER AS total,
            COALESCE(SUM(mine.quantity), 0)::INTEGER AS quantity,
            COALESCE(SUM(used.allocated), 0)::INTEGER AS minimum,
            (COALESCE(SUM(mine.quantity), 0)
             + SUM(CASE WHEN sff.deficit = 0 THEN GREATEST(sff.poolable, 0) ELSE 0 END)
            )::INTEGER AS maximum,
            SUM(sff.deficit)::INTEGER AS deficit
        FROM sff
        LEFT JOIN mine ON mine.server_feature_id = sff.server_feature_id
        LEFT JOIN used ON used.server_feature_id = sff.server_feature_id
        WHERE sff.vlm_id = ?
        GROUP BY sff.feature_name, sff.feature_version
        ORDER BY sff.feature_name, sff.feature_version
        """,
        [pool_id or -1, pool_id or -1, vlm_id],
    )
