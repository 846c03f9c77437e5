"""Editing a VLM (issue #8 item 5): rename, describe, add and remove features, audited, and
refused with nothing written when a rule says no (docs/architecture.md §3 rules 1 and 7)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.context import ServiceContext
from vlm.domain import Conflict, NotFound, PermissionDenied, ValidationError
from vlm.services import allocations, pools, vlms

TABLES = ("vlms", "vlm_features", "vlm_servers", "pool_portions", "allocations", "audit_log")


@pytest.fixture
def estate(ctx):
    """east: cad 1.0 (10), sim 2.0 (4); west: cad 1.0 (6), viz 3.0 (2). VLM 'eng' exposes
    east's two features; VLM 'other' exposes west's viz."""
    add_people(ctx)
    east = add_server(ctx, "east", {("cad", "1.0"): 10, ("sim", "2.0"): 4})
    west = add_server(ctx, "west", {("cad", "1.0"): 6, ("viz", "3.0"): 2})
    east_cad, east_sim = feature_ids(ctx, east)
    west_cad, west_viz = feature_ids(ctx, west)
    eng = vlms.create_vlm(ctx, ADMIN, "eng", [east_cad, east_sim], description="first")
    other = vlms.create_vlm(ctx, ADMIN, "other", [west_viz])
    ids = {
        "east": east,
        "west": west,
        "east_cad": east_cad,
        "east_sim": east_sim,
        "west_cad": west_cad,
        "west_viz": west_viz,
        "eng": eng,
        "other": other,
    }
    return ctx, ids


def snapshot(ctx: ServiceContext) -> dict[str, list[tuple]]:
    """Every row of the tables an edit could touch."""
    return {t: sorted(map(tuple, ctx.db.query(f"SELECT * FROM {t}")), key=repr) for t in TABLES}


def exposed(ctx: ServiceContext, vlm_id: int) -> list[int]:
    return vlms.vlm_server_features(ctx, ADMIN, vlm_id)


def vlm_servers(ctx: ServiceContext, vlm_id: int) -> list[int]:
    rows = ctx.db.query("SELECT server_id FROM vlm_servers WHERE vlm_id = ? ORDER BY 1", [vlm_id])
    return [r[0] for r in rows]


def update_rows(ctx: ServiceContext, vlm_id: int) -> list[dict]:
    rows = ctx.db.query(
        "SELECT actor, before, after FROM audit_log "
        "WHERE action = 'vlm.update' AND target_id = ? ORDER BY id",
        [str(vlm_id)],
    )
    return [{"actor": a, "before": json.loads(b), "after": json.loads(f)} for a, b, f in rows]


def edit(ctx: ServiceContext, vlm_id: int, features: list[int], **fields) -> vlms.VlmChanges:
    row = ctx.db.query("SELECT name, description FROM vlms WHERE id = ?", [vlm_id])[0]
    return vlms.update_vlm(
        ctx,
        ADMIN,
        vlm_id,
        name=fields.get("name", row[0]),
        description=fields.get("description", row[1]),
        server_feature_ids=features,
    )


def test_rename_and_new_description_are_stored_and_audited_with_before_and_after(estate):
    ctx, ids = estate
    features = [ids["east_cad"], ids["east_sim"]]
    changes = edit(ctx, ids["eng"], features, name="Engineering", description="CAD and sim")
    assert changes.renamed and changes.description_changed
    assert (changes.old_name, changes.new_name) == ("eng", "Engineering")
    assert changes.added == () and changes.removed == ()
    stored = ctx.db.query("SELECT name, description FROM vlms WHERE id = ?", [ids["eng"]])
    assert stored == [("Engineering", "CAD and sim")]
    assert exposed(ctx, ids["eng"]) == features
    [row] = update_rows(ctx, ids["eng"])
    assert row["actor"] == ADMIN.username
    assert row["before"] == {
        "name": "eng",
        "description": "first",
        "server_feature_ids": features,
        "features": ["cad 1.0 on east", "sim 2.0 on east"],
    }
    assert row["after"] == {**row["before"], "name": "Engineering", "description": "CAD and sim"}


def test_adding_a_free_feature_of_another_server_adds_that_server(estate):
    ctx, ids = estate
    wanted = [ids["east_cad"], ids["east_sim"], ids["west_cad"]]
    changes = edit(ctx, ids["eng"], wanted)
    assert changes.added == ("cad 1.0 on west",) and changes.removed == ()
    assert not changes.renamed and not changes.description_changed
    assert exposed(ctx, ids["eng"]) == sorted(wanted)
    assert vlm_servers(ctx, ids["eng"]) == [ids["east"], ids["west"]]
    listed = vlms.list_vlms(ctx, ADMIN).set_index("name")
    assert listed.loc["eng", "servers"] == "east, west"
    assert listed.loc["eng", "total"] == 10 + 4 + 6
    [row] = update_rows(ctx, ids["eng"])
    assert row["after"]["server_feature_ids"] == sorted(wanted)
    assert "cad 1.0 on west" in row["after"]["features"]
    assert "cad 1.0 on west" not in row["before"]["features"]
    # the added feature can now be pooled through this VLM
    pools.create_pool(ctx, ADMIN, ids["eng"], "big", MANAGER.username, {("cad", "1.0"): 16})


def test_removing_features_no_pool_uses_drops_them_and_a_server_left_without_any(estate):
    ctx, ids = estate
    edit(ctx, ids["eng"], [ids["east_cad"], ids["east_sim"], ids["west_cad"]])
    pools.create_pool(ctx, ADMIN, ids["eng"], "p", MANAGER.username, {("cad", "1.0"): 3})
    changes = edit(ctx, ids["eng"], [ids["east_cad"], ids["west_cad"]])
    assert changes.removed == ("sim 2.0 on east",)
    assert exposed(ctx, ids["eng"]) == [ids["east_cad"], ids["west_cad"]]
    assert vlm_servers(ctx, ids["eng"]) == [ids["east"], ids["west"]]
    # the pool's 3 went to east (most room first), so west's cad is unused and can go
    changes = edit(ctx, ids["eng"], [ids["east_cad"]])
    assert changes.removed == ("cad 1.0 on west",)
    assert vlm_servers(ctx, ids["eng"]) == [ids["east"]]
    # a removed feature is free again: another VLM may take it
    vlms.update_vlm(
        ctx,
        ADMIN,
        ids["other"],
        name="other",
        description="",
        server_feature_ids=[ids["west_viz"], ids["west_cad"]],
    )
    assert exposed(ctx, ids["other"]) == sorted([ids["west_viz"], ids["west_cad"]])


def test_removing_a_feature_pools_draw_on_is_refused_naming_the_pools(estate):
    ctx, ids = estate
    alpha = pools.create_pool(
        ctx, ADMIN, ids["eng"], "alpha", MANAGER.username, {("cad", "1.0"): 2}
    )
    pools.create_pool(ctx, ADMIN, ids["eng"], "beta", MANAGER.username, {("cad", "1.0"): 1})
    pools.create_pool(ctx, ADMIN, ids["eng"], "gamma", MANAGER.username, {("sim", "2.0"): 1})
    allocations.allocate(ctx, MANAGER, alpha, ("cad", "1.0"), "USER", "u1", 1)
    before = snapshot(ctx)
    with pytest.raises(Conflict) as refused:
        edit(ctx, ids["eng"], [ids["west_cad"]], name="renamed too")
    assert refused.value.field == "features"
    assert refused.value.message == (
        "cannot remove features that pools still draw on: cad 1.0 on east (pools alpha, beta); "
        "sim 2.0 on east (pool gamma). Take them out of those pools first."
    )
    with pytest.raises(Conflict) as refused:
        edit(ctx, ids["eng"], [ids["east_sim"]], name="renamed too")
    assert refused.value.field == "features"
    assert "cad 1.0 on east (pools alpha, beta)" in refused.value.message
    assert "gamma" not in refused.value.message
    assert snapshot(ctx) == before


def test_a_feature_kept_only_by_an_allocation_still_counts_as_used(estate):
    ctx, ids = estate
    pool = pools.create_pool(ctx, ADMIN, ids["eng"], "solo", MANAGER.username, {("sim", "2.0"): 1})
    allocations.allocate(ctx, MANAGER, pool, ("sim", "2.0"), "USER", "u1", 1)
    ctx.db.write(lambda cur: cur.execute("DELETE FROM pool_portions WHERE pool_id = ?", [pool]))
    before = snapshot(ctx)
    with pytest.raises(Conflict, match=r"sim 2\.0 on east \(pool solo\)\. Take it out"):
        edit(ctx, ids["eng"], [ids["east_cad"]])
    assert snapshot(ctx) == before


def test_a_feature_another_vlm_exposes_cannot_be_added(estate):
    ctx, ids = estate
    before = snapshot(ctx)
    with pytest.raises(Conflict) as refused:
        edit(ctx, ids["eng"], [ids["east_cad"], ids["east_sim"], ids["west_viz"]], name="x")
    assert refused.value.field == "features"
    assert refused.value.message == "viz 3.0 on west is already exposed by VLM 'other'"
    assert snapshot(ctx) == before


def test_a_name_another_vlm_has_is_refused(estate):
    ctx, ids = estate
    before = snapshot(ctx)
    with pytest.raises(Conflict) as refused:
        edit(ctx, ids["eng"], [ids["east_cad"], ids["west_cad"]], name="other")
    assert refused.value.field == "name"
    assert refused.value.message == "a VLM named 'other' exists already"
    assert snapshot(ctx) == before


def test_a_new_feature_that_cannot_be_pooled_is_refused_but_a_kept_one_is_not(estate):
    ctx, ids = estate
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE server_features SET metered = TRUE WHERE id IN (?, ?)",
            [ids["west_cad"], ids["east_sim"]],
        )
    )
    before = snapshot(ctx)
    with pytest.raises(ValidationError, match="cad 1.0 on west is not a concurrent counted"):
        edit(ctx, ids["eng"], [ids["east_cad"], ids["east_sim"], ids["west_cad"]])
    assert snapshot(ctx) == before
    # east's sim turned metered after the VLM took it: a rename must not be blocked by it
    changes = edit(ctx, ids["eng"], [ids["east_cad"], ids["east_sim"]], name="eng 2")
    assert changes.renamed and exposed(ctx, ids["eng"]) == [ids["east_cad"], ids["east_sim"]]


def test_submitting_the_stored_values_writes_nothing(estate):
    ctx, ids = estate
    before = snapshot(ctx)
    changes = edit(ctx, ids["eng"], [ids["east_sim"], ids["east_cad"], ids["east_cad"]])
    assert not changes.changed
    assert snapshot(ctx) == before


def test_only_an_admin_edits_and_an_unknown_vlm_is_not_found(estate):
    ctx, ids = estate
    before = snapshot(ctx)
    for actor in (MANAGER, ANALYST):
        with pytest.raises(PermissionDenied):
            vlms.update_vlm(
                ctx,
                actor,
                ids["eng"],
                name="mine",
                description="",
                server_feature_ids=[ids["east_cad"]],
            )
    with pytest.raises(NotFound):
        vlms.update_vlm(
            ctx, ADMIN, 999, name="x", description="", server_feature_ids=[ids["east_cad"]]
        )
    assert snapshot(ctx) == before


def test_feature_choices_are_the_vlms_own_and_the_free_poolable_ones_with_their_pools(estate):
    ctx, ids = estate
    pools.create_pool(ctx, ADMIN, ids["eng"], "alpha", MANAGER.username, {("cad", "1.0"): 2})
    ctx.db.write(
        lambda cur: cur.execute(
            "INSERT INTO server_features (server_id, feature_name, feature_version, total, "
            "metered) VALUES (?, 'meter', '1.0', 100, TRUE)",
            [ids["west"]],
        )
    )
    choices = vlms.feature_choices(ctx, ADMIN, ids["eng"]).set_index("server_feature_id")
    assert sorted(choices.index) == sorted([ids["east_cad"], ids["east_sim"], ids["west_cad"]])
    assert choices["exposed"].to_dict() == {
        ids["east_cad"]: True,
        ids["east_sim"]: True,
        ids["west_cad"]: False,
    }
    assert choices["pools"].to_dict() == {
        ids["east_cad"]: "alpha",
        ids["east_sim"]: "",
        ids["west_cad"]: "",
    }
    with pytest.raises(PermissionDenied):
        vlms.feature_choices(ctx, ANALYST, ids["eng"])
