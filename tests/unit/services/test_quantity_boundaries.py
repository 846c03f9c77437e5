"""Boundaries of the quantity rules (DESIGN §3 rules 2 and 3): exactly what is left, one more,
growth and shrink of an allocation, a pool resized to its allocated amount and below (issue 14)."""

import pytest

from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import VlmError
from vlm.services import allocations, pools, vlms

CAD = ("cad", "1.0")


@pytest.fixture
def pool(ctx):
    add_people(ctx)
    add_server(ctx, "east", {CAD: 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    return ctx, pools.create_pool(ctx, ADMIN, vlm_id, "p", MANAGER.username, {CAD: 5})


def allocated(ctx, pool_id: int) -> int:
    return ctx.db.scalar(
        "SELECT coalesce(sum(count), 0) FROM allocations WHERE pool_id = ? AND state <> 'removing'",
        [pool_id],
    )


def test_exactly_what_is_left_fits_and_one_more_does_not(pool):
    ctx, pool_id = pool
    allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "ann", 4)
    allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "ben", 1)  # the last license
    assert allocated(ctx, pool_id) == 5
    with pytest.raises(VlmError):
        allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "cy", 1)
    assert allocated(ctx, pool_id) == 5


def test_a_count_edit_may_grow_to_exactly_the_room_and_not_past_it(pool):
    ctx, pool_id = pool
    allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "ann", 2)
    [aid] = [r[0] for r in ctx.db.query("SELECT id FROM allocations")]
    allocations.update_allocation(ctx, MANAGER, pool_id, aid, count=5)
    assert allocated(ctx, pool_id) == 5
    with pytest.raises(VlmError):
        allocations.update_allocation(ctx, MANAGER, pool_id, aid, count=6)
    allocations.update_allocation(ctx, MANAGER, pool_id, aid, count=1)
    assert allocated(ctx, pool_id) == 1


@pytest.mark.parametrize("count", [0, -1])
def test_zero_or_negative_counts_are_refused(pool, count):
    ctx, pool_id = pool
    with pytest.raises(VlmError):
        allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "ann", count)
    assert allocated(ctx, pool_id) == 0


def test_a_pool_shrinks_to_its_allocated_amount_but_never_below(pool):
    ctx, pool_id = pool
    allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "ann", 3)
    pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 3})
    with pytest.raises(VlmError):
        pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 2})
    assert (
        ctx.db.scalar("SELECT sum(quantity) FROM pool_portions WHERE pool_id = ?", [pool_id]) == 3
    )


def test_a_pool_grows_to_exactly_the_poolable_room_and_not_past_it(pool):
    ctx, pool_id = pool
    pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 10})
    with pytest.raises(VlmError):
        pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 11})
    assert (
        ctx.db.scalar("SELECT sum(quantity) FROM pool_portions WHERE pool_id = ?", [pool_id]) == 10
    )


def test_a_manager_cannot_resize_their_own_pool(pool):
    ctx, pool_id = pool
    with pytest.raises(VlmError):
        pools.update_pool(ctx, MANAGER, pool_id, quantities={CAD: 6})
    assert (
        ctx.db.scalar("SELECT sum(quantity) FROM pool_portions WHERE pool_id = ?", [pool_id]) == 5
    )
