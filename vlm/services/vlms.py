"""Admin use cases for Virtual License Managers: create, edit features, delete, list, figures."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from vlm.domain import (
    Actor,
    Conflict,
    NotFound,
    ValidationError,
    record_id,
    record_ids,
    validate_description,
    validate_name,
)
from vlm.services import audit
from vlm.services.context import ServiceContext
from vlm.services.permissions import require_admin, require_admin_in
from vlm.services.servers import require_can_read_estate
from vlm.store.figures import SERVER_FEATURE_FIGURES, VLM_FEATURE_FIGURES

VLM_TYPES = ("FlexNet Embedded",)


def _check_features(cur, vlm_id: int | None, server_feature_ids: Sequence[int]) -> list[int]:
    """Validate chosen server features: they exist, can be pooled, and no other VLM has them."""
    ids = sorted(set(server_feature_ids))
    if not ids:
        raise ValidationError("choose at least one feature", field="features")
    marks = ", ".join("?" for _ in ids)
    rows = cur.execute(
        f"SELECT server_feature_id, feature_name, feature_version, server_name, can_pool, "
        f"vlm_id, vlm_name FROM ({SERVER_FEATURE_FIGURES}) WHERE server_feature_id IN ({marks})",
        ids,
    ).fetchall()
    found = {r[0]: r for r in rows}
    missing = [i for i in ids if i not in found]
    if missing:
        raise NotFound(f"unknown server feature(s): {missing}", field="features")
    for _sf_id, name, version, server, can_pool, owner, owner_name in rows:
        label = f"{name} {version} on {server}"
        if not can_pool:
            raise ValidationError(
                f"{label} is not a concurrent counted feature and cannot be pooled",
                field="features",
            )
        if owner is not None and owner != vlm_id:
            raise Conflict(f"{label} is already exposed by VLM '{owner_name}'", field="features")
    return ids


def _description(value: object) -> str:
    """A VLM description: None counts as empty."""
    return "" if value is None else validate_description(value)


def _server_ids(cur, ids: list[int]) -> list[int]:
    marks = ", ".join("?" for _ in ids)
    return [
        r[0]
        for r in cur.execute(
            f"SELECT DISTINCT server_id FROM server_features WHERE id IN ({marks}) ORDER BY 1", ids
        ).fetchall()
    ]


def _store_features(cur, vlm_id: int, ids: list[int]) -> None:
    cur.executemany(
        "INSERT INTO vlm_features (vlm_id, server_feature_id) VALUES (?, ?)",
        [[vlm_id, i] for i in ids],
    )
    cur.executemany(
        "INSERT INTO vlm_servers (vlm_id, server_id) VALUES (?, ?)",
        [[vlm_id, s] for s in _server_ids(cur, ids)],
    )


def create_vlm(
    ctx: ServiceContext,
    actor: Actor,
    name: str,
    server_feature_ids: Sequence[int],
    *,
    vlm_type: str = "FlexNet Embedded",
    description: str = "",
) -> int:
    """Create a VLM exposing chosen features of one or more servers (rule 1)."""
    require_admin(actor)
    name = validate_name(name, "VLM name")
    description = _description(description)
    server_feature_ids = record_ids(server_feature_ids, "features")
    if not isinstance(vlm_type, str) or vlm_type not in VLM_TYPES:
        raise ValidationError(f"VLM type must be one of {', '.join(VLM_TYPES)}", field="type")

    def write(cur):
        require_admin_in(cur, actor)
        if cur.execute("SELECT 1 FROM vlms WHERE name = ?", [name]).fetchone():
            raise Conflict(f"a VLM named '{name}' exists already", field="name")
        ids = _check_features(cur, None, server_feature_ids)
        vlm_id = cur.execute(
            "INSERT INTO vlms (name, vlm_type, description, created_by) VALUES (?, ?, ?, ?) "
            "RETURNING id",
            [name, vlm_type, description, actor.username],
        ).fetchone()[0]
        _store_features(cur, vlm_id, ids)
        audit.record(
            cur,
            actor,
            "vlm.create",
            "vlm",
            vlm_id,
            None,
            {"name": name, "type": vlm_type, "server_feature_ids": ids},
        )
        return vlm_id

    return ctx.db.write(write)


def update_vlm(
    ctx: ServiceContext,
    actor: Actor,
    vlm_id: int,
    *,
    name: str,
    description: str,
    server_feature_ids: Sequence[int],
) -> None:
    """Rename a VLM or change its features; a feature a pool draws on cannot be removed."""
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    name = validate_name(name, "VLM name")
    description = _description(description)
    server_feature_ids = record_ids(server_feature_ids, "features")

    def write(cur):
        require_admin_in(cur, actor)
        old = cur.execute("SELECT name, description FROM vlms WHERE id = ?", [vlm_id]).fetchone()
        if old is None:
            raise NotFound(f"VLM {vlm_id} does not exist")
        if cur.execute("SELECT 1 FROM vlms WHERE name = ? AND id <> ?", [name, vlm_id]).fetchone():
            raise Conflict(f"a VLM named '{name}' exists already", field="name")
        ids = _check_features(cur, vlm_id, server_feature_ids)
        current = [
            r[0]
            for r in cur.execute(
                "SELECT server_feature_id FROM vlm_features WHERE vlm_id = ?", [vlm_id]
            ).fetchall()
        ]
        dropped = sorted(set(current) - set(ids))
        if dropped:
            marks = ", ".join("?" for _ in dropped)
            in_use = cur.execute(
                f"SELECT DISTINCT sf.feature_name || ' ' || sf.feature_version || ' on ' || s.name "
                f"FROM pool_portions pp JOIN server_features sf ON sf.id = pp.server_feature_id "
                f"JOIN license_servers s ON s.id = sf.server_id "
                f"WHERE pp.server_feature_id IN ({marks}) ORDER BY 1",
                dropped,
            ).fetchall()
            if in_use:
                raise Conflict(
                    "pools still draw on: " + ", ".join(r[0] for r in in_use), field="features"
                )
        cur.execute("DELETE FROM vlm_features WHERE vlm_id = ?", [vlm_id])
        cur.execute("DELETE FROM vlm_servers WHERE vlm_id = ?", [vlm_id])
        _store_features(cur, vlm_id, ids)
        cur.execute(
            "UPDATE vlms SET name = ?, description = ? WHERE id = ?",
            [name, description, vlm_id],
        )
        audit.record(
            cur,
            actor,
            "vlm.update",
            "vlm",
            vlm_id,
            {"name": old[0], "description": old[1], "server_feature_ids": sorted(current)},
            {"name": name, "description": description, "server_feature_ids": ids},
        )

    ctx.db.write(write)


def delete_vlm(ctx: ServiceContext, actor: Actor, vlm_id: int) -> None:
    """Delete a VLM; refused while any pool depends on it."""
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")

    def write(cur):
        require_admin_in(cur, actor)
        row = cur.execute("SELECT name FROM vlms WHERE id = ?", [vlm_id]).fetchone()
        if row is None:
            raise NotFound(f"VLM {vlm_id} does not exist")
        pools = cur.execute(
            "SELECT name FROM pools WHERE vlm_id = ? ORDER BY name", [vlm_id]
        ).fetchall()
        if pools:
            raise Conflict(
                f"VLM '{row[0]}' still has {len(pools)} pool(s): "
                + ", ".join(p[0] for p in pools)
                + "; delete them first"
            )
        cur.execute("DELETE FROM vlm_features WHERE vlm_id = ?", [vlm_id])
        cur.execute("DELETE FROM vlm_servers WHERE vlm_id = ?", [vlm_id])
        cur.execute("DELETE FROM vlms WHERE id = ?", [vlm_id])
        audit.record(cur, actor, "vlm.delete", "vlm", vlm_id, {"name": row[0]})

    ctx.db.write(write)


def list_vlms(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """VLMs with servers, features and total / pooled / allocated / available (admin, analyst)."""
    require_can_read_estate(actor)
    return ctx.db.query_df(
        f"""
        WITH f AS ({VLM_FEATURE_FIGURES})
        SELECT v.id, v.name, v.vlm_type, v.description, v.created_at, v.created_by,
            (SELECT string_agg(s.name, ', ' ORDER BY s.name) FROM vlm_servers vs
             JOIN license_servers s ON s.id = vs.server_id WHERE vs.vlm_id = v.id) AS servers,
            (SELECT COUNT(*) FROM pools p WHERE p.vlm_id = v.id)::INTEGER AS pools,
            COUNT(f.feature_name)::INTEGER AS features,
            COALESCE(SUM(f.total), 0)::INTEGER AS total,
            COALESCE(SUM(f.pooled), 0)::INTEGER AS pooled,
            COALESCE(SUM(f.allocated), 0)::INTEGER AS allocated,
            COALESCE(SUM(f.available), 0)::INTEGER AS available,
            COALESCE(SUM(f.deficit), 0)::INTEGER AS deficit
        FROM vlms v LEFT JOIN f ON f.vlm_id = v.id
        GROUP BY v.id, v.name, v.vlm_type, v.description, v.created_at, v.created_by
        ORDER BY v.name
        """
    )


def vlm_features(ctx: ServiceContext, actor: Actor, vlm_id: int | None = None) -> pd.DataFrame:
    """Per VLM feature (name, version): total, reserved by others, pooled, available, deficit."""
    require_can_read_estate(actor)
    if vlm_id is not None:
        vlm_id = record_id(vlm_id, "VLM")
    where, params = ("WHERE vlm_id = ?", [vlm_id]) if vlm_id is not None else ("", [])
    return ctx.db.query_df(
        f"SELECT * FROM ({VLM_FEATURE_FIGURES}) {where} "
        "ORDER BY vlm_name, feature_name, feature_version",
        params,
    )


def vlm_server_features(ctx: ServiceContext, actor: Actor, vlm_id: int) -> list[int]:
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    return [
        r[0]
        for r in ctx.db.query(
            "SELECT server_feature_id FROM vlm_features WHERE vlm_id = ? ORDER BY 1", [vlm_id]
        )
    ]
