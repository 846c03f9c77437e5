"""The pool reads the admin and manager pages use: search, deletion impact, bad ids."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import NAME_MAX_LENGTH, Conflict, NotFound, ValidationError
from vlm.services import allocations, pools, vlms

CAD, SIM = ("cad", "1.0"), ("sim", "1.0")


@pytest.fixture
def estate(ctx) -> dict[str, int]:
    add_people(ctx)
    add_server(ctx, "east", {CAD: 20, SIM: 10})
    add_server(ctx, "west", {CAD: 10})
    engineering = vlms.create_vlm(ctx, ADMIN, "Engineering", feature_ids(ctx))
    design = pools.create_pool(ctx, ADMIN, engineering, "Design team", MANAGER.username, {CAD: 25})
    sim = pools.create_pool(ctx, ADMIN, engineering, "Sim crew", OTHER_MANAGER.username, {SIM: 4})
    return {"design": design, "sim": sim}


def names(frame) -> list[str]:
    return sorted(frame["name"])


@pytest.mark.parametrize(
    ("search", "expected"),
    [
        (None, ["Design team", "Sim crew"]),
        ("", ["Design team", "Sim crew"]),
        ("design", ["Design team"]),  # pool name, any case
        ("ENGINEER", ["Design team", "Sim crew"]),  # VLM name
        ("carol", ["Sim crew"]),  # manager
        ("nobody", []),
    ],
)
def test_search_matches_pool_vlm_or_manager_names_in_any_case(ctx, estate, search, expected):
    assert names(pools.list_pools(ctx, ADMIN, search=search)) == expected


def test_a_managers_search_stays_inside_their_own_pools(ctx, estate) -> None:
    assert names(pools.list_pools(ctx, MANAGER)) == ["Design team"]
    assert names(pools.list_pools(ctx, MANAGER, search="sim")) == []
    assert names(pools.list_pools(ctx, MANAGER, search="design")) == ["Design team"]
    assert names(pools.list_pools(ctx, ANALYST, search="crew")) == ["Sim crew"]


def test_an_overlong_search_is_refused_at_its_field(ctx, estate) -> None:
    with pytest.raises(ValidationError) as refused:
        pools.list_pools(ctx, ADMIN, search="x" * (NAME_MAX_LENGTH + 1))
    assert refused.value.field == "search"


def test_pool_totals_sum_every_feature_and_server(ctx, estate) -> None:
    allocations.allocate(ctx, MANAGER, estate["design"], CAD, "USER", "ann", 18)
    allocations.allocate(ctx, MANAGER, estate["design"], CAD, "USER", "ben", 5)
    [row] = pools.list_pools(ctx, ADMIN, search="design").to_dict("records")
    assert (row["quantity"], row["allocated"], row["available"]) == (25, 23, 2)
    assert row["allocations"] == 2 and row["failed"] == 0 and not row["over_committed"]


def test_deletion_impact_counts_rows_reservations_and_hosts_per_server(ctx, estate) -> None:
    design = estate["design"]
    assert pools.deletion_impact(ctx, ADMIN, design) == {
        "allocations": 0,
        "reservations": 0,
        "hosts": 0,
    }
    allocations.allocate(ctx, MANAGER, design, CAD, "USER", "ann", 18)
    allocations.allocate(ctx, MANAGER, design, CAD, "USER", "ben", 5)
    failed = allocations.allocate(ctx, MANAGER, design, CAD, "USER", "cy", 1)
    ctx.db.write(
        lambda cur: cur.execute("UPDATE allocations SET state = 'failed' WHERE id = ?", [failed])
    )
    assert pools.deletion_impact(ctx, ADMIN, design) == {
        "allocations": 3,  # every row goes
        "reservations": 2,  # the failed one never reached a server
        "hosts": 3,  # ann, ben and cy: one reservation group each
    }


@pytest.mark.parametrize("bad", [0, "pool 1"])
def test_a_bad_pool_id_is_refused_naming_the_pool(ctx, estate, bad) -> None:
    with pytest.raises(ValidationError) as refused:
        pools.deletion_impact(ctx, ADMIN, bad)
    assert refused.value.field == "pool" and "pool id" in refused.value.message


def bounds(frame) -> dict[tuple[str, str], tuple[int, int, int]]:
    return {
        (r.feature_name, r.feature_version): (r.quantity, r.minimum, r.maximum)
        for r in frame.itertuples()
    }


def test_quantity_bounds_of_a_new_pool_leave_out_every_existing_pools_share(ctx, estate) -> None:
    vlm_id = ctx.db.scalar("SELECT id FROM vlms")
    # 30 cad licenses, 25 in Design team; 10 sim, 4 in Sim crew
    assert bounds(pools.pool_quantity_bounds(ctx, ADMIN, vlm_id)) == {
        CAD: (0, 0, 5),
        SIM: (0, 0, 6),
    }


def test_quantity_bounds_of_a_pool_run_from_allocated_to_its_share_plus_the_free_room(
    ctx, estate
) -> None:
    vlm_id = ctx.db.scalar("SELECT id FROM vlms")
    allocations.allocate(ctx, MANAGER, estate["design"], CAD, "USER", "ann", 7)
    assert bounds(pools.pool_quantity_bounds(ctx, ADMIN, vlm_id, estate["design"])) == {
        CAD: (25, 7, 30),
        SIM: (0, 0, 6),
    }
    assert bounds(pools.pool_quantity_bounds(ctx, ADMIN, vlm_id, estate["sim"])) == {
        CAD: (0, 0, 5),
        SIM: (4, 0, 10),
    }


@pytest.mark.parametrize(("vlm_id", "pool_id", "field"), [(0, None, "VLM"), (1, -2, "pool")])
def test_quantity_bounds_refuse_bad_ids_naming_them(ctx, estate, vlm_id, pool_id, field) -> None:
    with pytest.raises(ValidationError) as refused:
        pools.pool_quantity_bounds(ctx, ADMIN, vlm_id, pool_id)
    assert refused.value.field == field and f"{field} id" in refused.value.message


def test_pool_features_of_one_pool_and_bad_ids(ctx, estate) -> None:
    design = pools.pool_features(ctx, ADMIN, estate["design"])
    assert set(design["pool_id"]) == {estate["design"]}
    assert set(pools.pool_features(ctx, ADMIN)["pool_id"]) == set(estate.values())
    with pytest.raises(ValidationError) as refused:
        pools.pool_features(ctx, ADMIN, "first")
    assert refused.value.field == "pool" and "pool id" in refused.value.message


@pytest.mark.parametrize(
    ("pool_id", "confirmed", "field"), [(0, 0, "pool"), (1, -1, "confirmed_allocations")]
)
def test_delete_pool_refuses_bad_input_naming_the_field(
    ctx, estate, pool_id, confirmed, field
) -> None:
    with pytest.raises(ValidationError) as refused:
        pools.delete_pool(ctx, ADMIN, pool_id, confirmed_allocations=confirmed)
    assert refused.value.field == field
    assert ctx.db.scalar("SELECT count(*) FROM pools") == 2


def test_deleting_a_pool_audits_what_it_held_and_wakes_its_servers(ctx, estate) -> None:
    design = estate["design"]
    allocations.allocate(ctx, MANAGER, design, CAD, "USER", "ann", 18)
    woken: list[set[int]] = []
    ctx.on_allocations_changed = lambda ids: woken.append(set(ids))
    pools.delete_pool(ctx, ADMIN, design, confirmed_allocations=1)
    [(actor, target_type, target_id, before, after)] = ctx.db.query(
        "SELECT actor, target_type, target_id, before, after FROM audit_log "
        "WHERE action = 'pool.delete'"
    )
    assert (actor, target_type, target_id, after) == ("alice", "pool", str(design), None)
    assert json.loads(before) == {
        "name": "Design team",
        "allocations": 1,
        "quantities": {"cad 1.0": 25},
    }
    assert woken == [{ctx.db.scalar("SELECT id FROM license_servers WHERE name = 'east'")}]


def test_deleting_a_missing_pool_or_with_a_stale_count_is_refused(ctx, estate) -> None:
    with pytest.raises(NotFound) as missing:
        pools.delete_pool(ctx, ADMIN, 99, confirmed_allocations=0)
    assert missing.value.field == "pool" and missing.value.message == "pool 99 does not exist"
    allocations.allocate(ctx, MANAGER, estate["design"], CAD, "USER", "ann", 1)
    with pytest.raises(Conflict) as stale:
        pools.delete_pool(ctx, ADMIN, estate["design"], confirmed_allocations=0)
    assert stale.value.message == (
        "pool 'Design team' now has 1 allocation(s), not 0; review and confirm again"
    )
    assert ctx.db.scalar("SELECT count(*) FROM pools") == 2
