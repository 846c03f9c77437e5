"""Where each allocation refusal lands: the grid shows the message next to the cell its field
names (host id, feature, count, state), so field and wording are part of the rule."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import Conflict, NotFound, ValidationError, VlmError
from vlm.services import allocations, pools, vlms
from vlm.services.allocations import AllocationChange

CAD, SIM, VIZ = ("cad", "1.0"), ("sim", "1.0"), ("viz", "1.0")


@pytest.fixture
def pool(ctx) -> int:
    add_people(ctx)
    add_server(ctx, "east", {CAD: 3, SIM: 4, VIZ: 5})
    add_server(ctx, "west", {CAD: 2})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    return pools.create_pool(ctx, ADMIN, vlm_id, "p", MANAGER.username, {CAD: 5, SIM: 4})


def refusal(ctx, pool_id: int, change: AllocationChange) -> tuple[str | None, str]:
    """Field and message of a refused grid row (the save goes through the grid's service)."""
    [result] = allocations.apply_allocation_changes(ctx, MANAGER, pool_id, [change])
    assert not result.ok
    return result.field, result.message


def add(host: str, count: object, feature=CAD, host_type="USER") -> AllocationChange:
    return AllocationChange("add", 0, None, *feature, host_type, host, count)


def test_a_host_already_holding_the_feature_is_refused_at_the_host_id(ctx, pool) -> None:
    allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ann", 1)
    assert refusal(ctx, pool, add("ann", 1)) == (
        "host_id",
        "USER ann already holds cad 1.0 in this pool",
    )


def test_a_feature_outside_the_pool_is_refused_at_the_feature(ctx, pool) -> None:
    assert refusal(ctx, pool, add("ann", 1, VIZ)) == (
        "feature",
        "feature viz 1.0 is not in this pool",
    )


def test_too_many_is_refused_at_the_count_with_what_is_left(ctx, pool) -> None:
    allocations.allocate(ctx, MANAGER, pool, SIM, "USER", "ann", 3)
    assert refusal(ctx, pool, add("ben", 2, SIM)) == (
        "count",
        "only 1 of sim 1.0 left in this pool, 2 requested",
    )


def test_a_count_no_single_server_can_carry_names_the_largest_block(ctx, pool) -> None:
    field, message = refusal(ctx, pool, add("ann", 4))
    assert field == "count"
    assert message == (
        "no single license server has room for 4; the largest free block is 3 "
        "(allocate in smaller counts)"
    )


def test_an_over_committed_feature_refuses_new_rows_and_growth_at_the_count(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, SIM, "USER", "ann", 2)
    ctx.db.write(lambda cur: cur.execute("UPDATE server_features SET total = 3 WHERE id = 2"))
    field, message = refusal(ctx, pool, add("ben", 1, SIM))
    assert field == "count" and "over-committed" in message and "sim 1.0" in message
    grow = AllocationChange("edit", 0, alloc, count=3)
    field, message = refusal(ctx, pool, grow)
    assert field == "count"
    assert message == "sim is over-committed on east; counts cannot grow"


def test_growth_past_the_portions_room_is_refused_at_the_count(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, SIM, "USER", "ann", 2)
    assert refusal(ctx, pool, AllocationChange("edit", 0, alloc, count=5)) == (
        "count",
        "only 2 more can be given on east, 3 more requested",
    )


def test_an_edit_whose_portion_is_gone_is_refused_at_the_count(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, SIM, "USER", "ann", 2)
    ctx.db.write(lambda cur: cur.execute("DELETE FROM pool_portions WHERE server_feature_id = 2"))
    assert refusal(ctx, pool, AllocationChange("edit", 0, alloc, count=1)) == (
        "count",
        "this allocation's server portion is gone",
    )


@pytest.mark.parametrize(
    ("allocation_id", "message"),
    [("x7", "allocation 'x7' does not exist"), (999, "allocation 999 is not in this pool")],
)
def test_an_unknown_allocation_is_not_found(ctx, pool, allocation_id, message) -> None:
    [result] = allocations.apply_allocation_changes(
        ctx, MANAGER, pool, [AllocationChange("edit", 0, allocation_id, description="x")]
    )
    assert not result.ok and result.message == message
    assert isinstance(result.error, NotFound)


def test_a_removed_row_cannot_be_edited_in_the_same_save(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, SIM, "USER", "ann", 2)
    results = allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool,
        [
            AllocationChange("edit", 1, alloc, count=1),
            AllocationChange("delete", 0, alloc),
        ],
    )
    by_op = {r.change.op: r for r in results}
    assert by_op["delete"].ok and not by_op["edit"].ok
    assert isinstance(by_op["edit"].error, NotFound)
    assert ctx.db.query("SELECT count, state FROM allocations") == [(2, "removing")]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (
            lambda ctx, pool: allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ann", 9),
            ValidationError,
        ),
        (
            lambda ctx, pool: allocations.allocate(ctx, MANAGER, pool, VIZ, "USER", "ann", 1),
            NotFound,
        ),
    ],
)
def test_single_calls_raise_the_rows_error(ctx, pool, call, error) -> None:
    with pytest.raises(error) as raised:
        call(ctx, pool)
    assert isinstance(raised.value, VlmError) and not isinstance(raised.value, Conflict)
    assert ctx.db.scalar("SELECT count(*) FROM allocations") == 0


def test_growth_earlier_in_a_save_uses_up_room_for_the_rows_after_it(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, SIM, "USER", "ann", 1)
    results = allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool,
        [AllocationChange("edit", 0, alloc, count=3), add("ben", 2, SIM)],
    )
    assert [r.ok for r in results] == [True, False]
    assert results[1].message == "only 1 of sim 1.0 left in this pool, 2 requested"
    assert ctx.db.query("SELECT host_id, count FROM allocations ORDER BY id") == [("ann", 3)]


def test_a_description_edit_is_audited_under_its_own_key(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, SIM, "USER", "ann", 1)
    allocations.update_allocation(ctx, MANAGER, pool, alloc, description="lab rig")
    before, after = ctx.db.query(
        "SELECT before, after FROM audit_log WHERE action = 'allocation.edit'"
    )[0]
    assert json.loads(before)["description"] == ""
    assert json.loads(after)["description"] == "lab rig"
    assert ctx.db.scalar("SELECT description FROM allocations") == "lab rig"


def test_pool_creation_refusals_name_their_field_and_a_missing_description_is_empty(
    ctx, pool
) -> None:
    vlm_id = ctx.db.scalar("SELECT vlm_id FROM pools WHERE id = ?", [pool])

    def refused(vlm: object, name: str, viz: int = 1) -> tuple[type, str | None, str]:
        with pytest.raises(VlmError) as error:
            pools.create_pool(ctx, ADMIN, vlm, name, MANAGER.username, {VIZ: viz})
        return type(error.value), error.value.field, str(error.value)

    assert refused(vlm_id, "  ") == (ValidationError, "name", "pool name is empty")
    assert refused(9999, "q") == (NotFound, "vlm", "VLM 9999 does not exist")
    assert refused(vlm_id, "p") == (Conflict, "name", "this VLM has a pool named 'p' already")
    assert refused(vlm_id, "q", 0) == (
        ValidationError,
        "quantity",
        "give at least one feature a quantity above 0",
    )
    plain = pools.create_pool(ctx, ADMIN, vlm_id, "q", MANAGER.username, {VIZ: 1}, description=None)
    assert ctx.db.scalar("SELECT description FROM pools WHERE id = ?", [plain]) == ""
