"""Bad input gets a clear error naming the problem, and nothing is written."""

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import NotFound, PermissionDenied, ValidationError, VlmError
from vlm.services import allocations, pools, vlms


@pytest.fixture
def estate(ctx):
    add_people(ctx)
    add_server(ctx, "east", {("cad", "1.0"): 10, ("sim", "2.0"): 4})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "team", "bob", {("cad", "1.0"): 5})
    return ctx, vlm_id, pool_id


def _tables(ctx):
    return [
        ctx.db.query(f"SELECT * FROM {t} ORDER BY ALL")
        for t in ("allocations", "pool_portions", "pools", "vlms")
    ] + [ctx.db.query("SELECT COUNT(*) FROM audit_log")]


@pytest.mark.parametrize(
    ("host_type", "host_id", "count", "message"),
    [
        ("ETHERNET", "12345", 1, "must be 12 hex digits"),
        ("ETHERNET", "ZZ50569A1B2C", 1, "must be 12 hex digits"),
        ("MAC", "0050569A1B2C", 1, "host type 'MAC' is not one of"),
        ("USER", "", 1, "host id is empty"),
        ("USER", "jsmith", 0, "count must be a whole number ≥ 1"),
        ("USER", "jsmith", -2, "count must be a whole number ≥ 1"),
        ("USER", "jsmith", 6, "only 5 of cad 1.0 left in this pool, 6 requested"),
    ],
)
def test_bad_allocation_is_refused_and_nothing_written(estate, host_type, host_id, count, message):
    ctx, _, pool_id = estate
    before = _tables(ctx)
    with pytest.raises(ValidationError, match=message):
        allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), host_type, host_id, count)
    assert _tables(ctx) == before


def test_quantity_beyond_availability(estate):
    ctx, vlm_id, pool_id = estate
    before = _tables(ctx)
    with pytest.raises(ValidationError, match="cad 1.0: only 10 can be pooled, 11 requested"):
        pools.update_pool(ctx, ADMIN, pool_id, quantities={("cad", "1.0"): 11})
    with pytest.raises(ValidationError, match="only 5 can be pooled"):
        pools.create_pool(ctx, ADMIN, vlm_id, "second", "carol", {("cad", "1.0"): 6})
    assert _tables(ctx) == before


def test_unknown_pool_and_feature(estate):
    ctx, vlm_id, pool_id = estate
    before = _tables(ctx)
    with pytest.raises(NotFound, match="pool 999 does not exist"):
        allocations.allocate(ctx, ADMIN, 999, ("cad", "1.0"), "USER", "u1")
    with pytest.raises(NotFound, match="feature nope 1.0 is not in this pool"):
        allocations.allocate(ctx, MANAGER, pool_id, ("nope", "1.0"), "USER", "u1")
    with pytest.raises(NotFound, match="feature nope 9 is not part of this VLM"):
        pools.create_pool(ctx, ADMIN, vlm_id, "x", "carol", {("nope", "9"): 1})
    with pytest.raises(NotFound, match="user 'zed' does not exist"):
        pools.create_pool(ctx, ADMIN, vlm_id, "x", "zed", {("cad", "1.0"): 1})
    assert _tables(ctx) == before


def test_managers_and_analysts_cannot_act_on_pools_not_theirs(estate):
    ctx, vlm_id, pool_id = estate
    allocation = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "u1")
    before = _tables(ctx)
    for actor in (OTHER_MANAGER, ANALYST):
        with pytest.raises(PermissionDenied):
            allocations.allocate(ctx, actor, pool_id, ("cad", "1.0"), "USER", "u2")
        with pytest.raises(PermissionDenied):
            allocations.update_allocation(ctx, actor, pool_id, allocation, description="x")
        with pytest.raises(PermissionDenied):
            allocations.remove_allocation(ctx, actor, pool_id, allocation)
    for actor in (MANAGER, ANALYST):
        with pytest.raises(PermissionDenied):
            pools.create_pool(ctx, actor, vlm_id, "mine", "bob", {("cad", "1.0"): 1})
        with pytest.raises(PermissionDenied):
            vlms.delete_vlm(ctx, actor, vlm_id)
    with pytest.raises(NotFound):
        allocations.list_allocations(ctx, OTHER_MANAGER, pool_id)
    assert _tables(ctx) == before


def test_grid_apply_keeps_valid_rows_and_reports_invalid_ones(estate):
    ctx, _, pool_id = estate
    first = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "keep", 1, "old")
    gone = allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "USER", "gone", 1)
    change = allocations.AllocationChange
    results = allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool_id,
        [
            change(
                "add", 0, host_type="ETHERNET", host_id="0050569A1B2C", count=2, description="new"
            ),
            change("edit", 1, first, description="renamed"),
            change("delete", 2, gone),
            change("add", 3, host_type="ETHERNET", host_id="not-a-mac", count=1),
            change("add", 4, host_type="USER", host_id="keep", count=1),
        ],
        feature=("cad", "1.0"),
    )
    assert [r.ok for r in results] == [True, True, True, False, False]
    assert "12 hex digits" in results[3].message and results[3].row == 3
    assert "already holds cad 1.0" in results[4].message
    frame = allocations.list_allocations(ctx, MANAGER, pool_id)
    assert sorted(frame["host_id"]) == ["0050569A1B2C", "keep"]
    assert frame.set_index("host_id").loc["keep", "description"] == "renamed"
    assert results[0].allocation_id in set(frame["id"])
    actions = [r[0] for r in ctx.db.query("SELECT action FROM audit_log ORDER BY id")]
    assert actions[-3:] == ["allocation.remove", "allocation.edit", "allocation.add"]


def test_errors_are_vlm_errors_with_fields(estate):
    ctx, _, pool_id = estate
    with pytest.raises(VlmError) as info:
        allocations.allocate(ctx, MANAGER, pool_id, ("cad", "1.0"), "ETHERNET", "x", 1)
    assert info.value.field == "host_id"
