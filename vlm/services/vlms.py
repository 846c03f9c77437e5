"""Admin use cases for Virtual License Managers: create, edit, delete, list, figures."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pandas as pd

from vlm.context import ServiceContext
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
from vlm.services.permissions import require_admin, require_admin_in
from vlm.services.servers import require_can_read_estate
from vlm.store import vlm_features as store
from vlm.store.figures import COUNTED, SERVER_FEATURE_FIGURES, VLM_FEATURE_FIGURES

VLM_TYPES = ("FlexNet Embedded",)


@dataclass(frozen=True)
class VlmChanges:
    """What an edit of a VLM changed; nothing when the submitted values were the stored ones."""

    old_name: str
    new_name: str
    description_changed: bool = False
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()

    @property
    def renamed(self) -> bool:
        return self.old_name != self.new_name

    @property
    def changed(self) -> bool:
        return self.renamed or self.description_changed or bool(self.added or self.removed)


def _check_features(
    cur, vlm_id: int | None, server_feature_ids: Sequence[int], kept: Collection[int] = ()
) -> list[int]:
    """Validate chosen server features: they exist, no other VLM has them, and each one not
    already `kept` by the VLM can be pooled (a kept feature may have changed kind since)."""
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
    for sf_id, name, version, server, can_pool, owner, owner_name in rows:
        label = f"{name} {version} on {server}"
        if not can_pool and sf_id not in kept:
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


def _refuse_removing_used(cur, dropped: list[int]) -> None:
    """Conflict naming every feature to remove that pools still draw on, and those pools."""
    used = store.pools_drawing_on(cur, dropped)
    if not used:
        return
    labels = store.feature_labels(cur, used)
    parts = [
        f"{labels[sf]} ({'pool' if len(names) == 1 else 'pools'} {', '.join(names)})"
        for sf, names in sorted(used.items(), key=lambda item: labels[item[0]])
    ]
    them = "them" if len(parts) > 1 else "it"
    raise Conflict(
        "cannot remove features that pools still draw on: "
        + "; ".join(parts)
        + f". Take {them} out of those pools first.",
        field="features",
    )


def _replace_features(cur, vlm_id: int, dropped: list[int], added: list[int]) -> None:
    """Remove and add exposed features, and keep the VLM's server list in step."""
    store.replace_features(cur, vlm_id, dropped, added)
    store.set_servers(cur, vlm_id, set(_server_ids(cur, store.exposed_features(cur, vlm_id))))


def _vlm_state(cur, vlm_id: int) -> tuple[str, str, list[int]]:
    """A VLM's stored name, description and exposed server features."""
    row = store.vlm_row(cur, vlm_id)
    if row is None:
        raise NotFound(f"VLM {vlm_id} does not exist")
    return row[0], row[1] or "", store.exposed_features(cur, vlm_id)


def update_vlm(
    ctx: ServiceContext,
    actor: Actor,
    vlm_id: int,
    *,
    name: str,
    description: str,
    server_feature_ids: Sequence[int],
) -> VlmChanges:
    """Rename a VLM, change its description, add or remove features (DESIGN.md §3 rule 1).

    Refused, with nothing written: a name another VLM has, a feature another VLM exposes, a new
    feature that cannot be pooled, removing a feature that pools still draw on (the refusal
    names the pools). A change writes one audit row with before and after; no change, no row.
    """
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    name = validate_name(name, "VLM name")
    description = _description(description)
    server_feature_ids = record_ids(server_feature_ids, "features")

    def write(cur) -> VlmChanges:
        require_admin_in(cur, actor)
        old_name, old_description, current = _vlm_state(cur, vlm_id)
        if cur.execute("SELECT 1 FROM vlms WHERE name = ? AND id <> ?", [name, vlm_id]).fetchone():
            raise Conflict(f"a VLM named '{name}' exists already", field="name")
        ids = _check_features(cur, vlm_id, server_feature_ids, kept=current)
        dropped = sorted(set(current) - set(ids))
        added = sorted(set(ids) - set(current))
        _refuse_removing_used(cur, dropped)
        labels = store.feature_labels(cur, {*current, *ids})
        changes = VlmChanges(
            old_name,
            name,
            description_changed=description != old_description,
            added=tuple(sorted(labels[i] for i in added)),
            removed=tuple(sorted(labels[i] for i in dropped)),
        )
        if not changes.changed:
            return changes
        _replace_features(cur, vlm_id, dropped, added)
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
            _audit_state(old_name, old_description, current, labels),
            _audit_state(name, description, ids, labels),
        )
        return changes

    return ctx.db.write(write)


def _audit_state(
    name: str, description: str, ids: list[int], labels: dict[int, str]
) -> dict[str, object]:
    return {
        "name": name,
        "description": description,
        "server_feature_ids": sorted(ids),
        "features": sorted(labels[i] for i in ids),
    }


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
        FROM vlms v LEFT JOIN f ON f.vlm_id = v.id AND f.license_kind = '{COUNTED}'
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


def feature_choices(ctx: ServiceContext, actor: Actor, vlm_id: int) -> pd.DataFrame:
    """What an edit of a VLM may keep or add: its features, and every free poolable one (no
    VLM exposes it), with figures and the pools that draw on each (admin)."""
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    return ctx.db.query_df(
        f"""
        WITH f AS ({SERVER_FEATURE_FIGURES}), u AS ({store.POOLS_DRAWING_ON})
        SELECT f.server_feature_id, f.server_id, f.server_name, f.feature_name,
            f.feature_version, f.total, f.used, f.reserved_by_others, f.pooled, f.poolable,
            f.can_pool, f.present, COALESCE(f.vlm_id = ?, FALSE) AS exposed,
            COALESCE((SELECT string_agg(u.name, ', ' ORDER BY u.name) FROM u
                WHERE u.server_feature_id = f.server_feature_id), '') AS pools
        FROM f
        WHERE f.vlm_id = ? OR (f.vlm_id IS NULL AND f.can_pool AND f.present)
        ORDER BY f.server_name, f.feature_name, f.feature_version
        """,
        [vlm_id, vlm_id],
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
