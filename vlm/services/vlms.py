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
from vlm.store import catalog as store

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
    rows = store.feature_owners(cur, ids)
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


def _store_features(cur, vlm_id: int, ids: list[int]) -> None:
    store.add_exposed_features(cur, vlm_id, ids)
    store.add_vlm_servers(cur, vlm_id, store.servers_of_features(cur, ids))


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
        if store.vlm_name_taken(cur, name):
            raise Conflict(f"a VLM named '{name}' exists already", field="name")
        ids = _check_features(cur, None, server_feature_ids)
        vlm_id = store.insert_vlm(cur, name, vlm_type, description, actor.username)
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
    exposed = store.exposed_features(cur, vlm_id)
    store.set_servers(cur, vlm_id, set(store.servers_of_features(cur, exposed)))


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
    """Rename a VLM, change its description, add or remove features (architecture.md §3 rule 1).

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
        if store.vlm_name_taken(cur, name, other_than=vlm_id):
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
        store.update_vlm_row(cur, vlm_id, name, description)
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
        row = store.vlm_row(cur, vlm_id)
        if row is None:
            raise NotFound(f"VLM {vlm_id} does not exist")
        pools = store.pool_names_of_vlm(cur, vlm_id)
        if pools:
            raise Conflict(
                f"VLM '{row[0]}' still has {len(pools)} pool(s): "
                + ", ".join(pools)
                + "; delete them first"
            )
        store.delete_vlm_rows(cur, vlm_id)
        audit.record(cur, actor, "vlm.delete", "vlm", vlm_id, {"name": row[0]})

    ctx.db.write(write)


def list_vlms(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    """VLMs with servers, features and total / pooled / allocated / available (admin, analyst)."""
    require_can_read_estate(actor)
    return store.vlm_list(ctx.db)


def vlm_features(ctx: ServiceContext, actor: Actor, vlm_id: int | None = None) -> pd.DataFrame:
    """Per VLM feature (name, version): total, reserved by others, pooled, available, deficit."""
    require_can_read_estate(actor)
    if vlm_id is not None:
        vlm_id = record_id(vlm_id, "VLM")
    return store.vlm_feature_figures(ctx.db, vlm_id)


def feature_choices(ctx: ServiceContext, actor: Actor, vlm_id: int) -> pd.DataFrame:
    """What an edit of a VLM may keep or add: its features, and every free poolable one (no
    VLM exposes it), with figures and the pools that draw on each (admin)."""
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    return store.feature_choices(ctx.db, vlm_id)


def vlm_server_features(ctx: ServiceContext, actor: Actor, vlm_id: int) -> list[int]:
    require_admin(actor)
    vlm_id = record_id(vlm_id, "VLM")
    return store.exposed_feature_ids(ctx.db, vlm_id)
