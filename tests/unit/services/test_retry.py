"""Retrying failed allocations: only failed rows go back to pending, audited, in one transaction."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import ValidationError, VlmError
from vlm.services import allocations, pools, vlms
from vlm.services.allocations import AllocationChange

CAD = ("cad", "1.0")


@pytest.fixture
def pool(ctx) -> int:
    add_people(ctx)
    add_server(ctx, "east", {CAD: 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    return pools.create_pool(ctx, ADMIN, vlm_id, "p", MANAGER.username, {CAD: 5})


def fail(ctx, allocation_id: int) -> None:
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET state = 'failed', last_error = 'refused' WHERE id = ?",
            [allocation_id],
        )
    )


def state(ctx, allocation_id: int) -> str:
    return ctx.db.scalar("SELECT state FROM allocations WHERE id = ?", [allocation_id])


def test_a_retried_failed_row_is_pending_again_and_audited_so(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ann", 2)
    fail(ctx, alloc)
    allocations.retry_allocation(ctx, MANAGER, pool, alloc)
    assert state(ctx, alloc) == "pending"
    before, after = ctx.db.query(
        "SELECT before, after FROM audit_log WHERE action = 'allocation.retry'"
    )[0]
    assert json.loads(before)["state"] == "failed"
    assert json.loads(after)["state"] == "pending"


def test_a_row_that_has_not_failed_cannot_be_retried(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ann", 2)
    with pytest.raises(ValidationError) as refused:
        allocations.retry_allocation(ctx, MANAGER, pool, alloc)
    assert refused.value.field == "state"
    assert refused.value.message == "only failed allocations can be retried"
    assert state(ctx, alloc) == "pending"
    assert ctx.db.scalar("SELECT count(*) FROM audit_log WHERE action = 'allocation.retry'") == 0


def test_retrying_several_refuses_each_row_that_has_not_failed(ctx, pool) -> None:
    failed = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ann", 1)
    fine = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ben", 1)
    fail(ctx, failed)
    results = allocations.retry_allocations(ctx, MANAGER, pool, [failed, fine])
    assert [(r.allocation_id, r.ok, r.message) for r in results if r.ok] == [
        (failed, True, "queued for retry")
    ]
    assert [r.change.allocation_id for r in results] == [failed, fine]
    [refused] = [r for r in results if not r.ok]
    assert refused.field == "state"
    assert state(ctx, failed) == "pending" and state(ctx, fine) == "pending"


@pytest.mark.parametrize("ids", ["12", b"12", 12, None])
def test_retrying_needs_a_list_of_ids(ctx, pool, ids) -> None:
    with pytest.raises(VlmError) as refused:
        allocations.retry_allocations(ctx, MANAGER, pool, ids)
    assert refused.value.field == "allocation"
    assert refused.value.message == "give the allocation ids to retry as a list"


def test_a_save_that_removes_a_row_can_reuse_its_licenses_and_its_host(ctx, pool) -> None:
    """One grid save: remove ann's 5 (the whole pool), then add 5 for ann again and nothing more."""
    old = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ann", 5)
    results = allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool,
        [
            AllocationChange("delete", 0, old),
            AllocationChange("add", 1, None, *CAD, "USER", "ann", 5, "again"),
        ],
    )
    assert [r.ok for r in results] == [True, True]
    rows = ctx.db.query("SELECT host_id, count, state FROM allocations ORDER BY id")
    assert rows == [("ann", 5, "removing"), ("ann", 5, "pending")]
    more = allocations.apply_allocation_changes(
        ctx, MANAGER, pool, [AllocationChange("add", 0, None, *CAD, "USER", "ben", 1)]
    )
    assert [r.ok for r in more] == [False] and more[0].field == "count"


def test_an_unknown_operation_is_refused_by_name_and_writes_nothing(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ann", 1)
    audited = ctx.db.scalar("SELECT count(*) FROM audit_log")
    [result] = allocations.apply_allocation_changes(
        ctx, MANAGER, pool, [AllocationChange("merge", row=0, allocation_id=alloc)], feature=CAD
    )
    assert (result.ok, result.message) == (False, "unknown operation 'merge'")
    assert ctx.db.scalar("SELECT count(*) FROM audit_log") == audited


def test_an_unknown_operation_among_valid_rows_is_refused_alone(ctx, pool) -> None:
    """The rows of a save are ordered by operation; an unknown one sorts last and is refused,
    and the rows around it are applied."""
    alloc = allocations.allocate(ctx, MANAGER, pool, CAD, "USER", "ann", 1)
    results = allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool,
        [
            AllocationChange("merge", row=0, allocation_id=alloc),
            AllocationChange("add", 1, None, *CAD, "USER", "ben", 1),
            AllocationChange("edit", row=2, allocation_id=alloc, description="lab"),
        ],
        feature=CAD,
    )
    assert [r.ok for r in results] == [False, True, True]
    rows = ctx.db.query("SELECT host_id, description FROM allocations ORDER BY id")
    assert rows == [("ann", "lab"), ("ben", "")]
