"""Boundaries of the quantity rules (architecture.md §3 rules 2, 3, 5), asserted on stored rows.

Exactly what is left, one more, zero; growth and shrink on an over-committed portion; a pool
split across servers; pool resize to and below allocated; a portion gone; retry and removal of
failed allocations (issue 14, item 2). Every refused call must leave every row as it was.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import ADMIN, MANAGER, every_row
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.context import ServiceContext
from vlm.domain import Conflict, NotFound, PermissionDenied, ValidationError, VlmError
from vlm.services import allocations, pools, vlms
from vlm.services.allocations import AllocationChange

CAD = ("cad", "1.0")
TABLES = ("allocations", "pool_portions", "pools", "server_features", "audit_log")


def tables(ctx: ServiceContext) -> list[list[tuple]]:
    """Every row a quantity rule could touch, to compare before and after a refused call."""
    return [every_row(ctx.db, table) for table in TABLES]


def refused(ctx: ServiceContext, error: type[VlmError], call, *args, **kwargs) -> VlmError:
    """Run a call that must be refused with error and must leave every row as it was."""
    before = tables(ctx)
    with pytest.raises(error) as caught:
        call(ctx, *args, **kwargs)
    assert tables(ctx) == before, "a refused call changed stored rows"
    return caught.value


def allocated(ctx: ServiceContext, pool_id: int) -> int:
    return ctx.db.scalar(
        "SELECT coalesce(sum(count), 0) FROM allocations WHERE pool_id = ? AND state <> 'removing'",
        [pool_id],
    )


def allocation(ctx: ServiceContext, allocation_id: int) -> dict | None:
    """One allocation row as (count, description, state, server name), or None if deleted."""
    rows = ctx.db.query(
        "SELECT a.count, a.description, a.state, s.name, a.attempts, a.last_error "
        "FROM allocations a JOIN server_features sf ON sf.id = a.server_feature_id "
        "JOIN license_servers s ON s.id = sf.server_id WHERE a.id = ?",
        [allocation_id],
    )
    if not rows:
        return None
    names = ("count", "description", "state", "server", "attempts", "last_error")
    return dict(zip(names, rows[0], strict=True))


def portions(ctx: ServiceContext, pool_id: int) -> dict[str, int]:
    """A pool's portions by server name."""
    return dict(
        ctx.db.query(
            "SELECT s.name, pp.quantity FROM pool_portions pp "
            "JOIN server_features sf ON sf.id = pp.server_feature_id "
            "JOIN license_servers s ON s.id = sf.server_id WHERE pp.pool_id = ?",
            [pool_id],
        )
    )


def set_total(ctx: ServiceContext, server: str, total: int) -> None:
    """What an inventory pull writes when a server reports fewer licenses (rule 5)."""
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE server_features SET total = ? WHERE server_id = "
            "(SELECT id FROM license_servers WHERE name = ?)",
            [total, server],
        )
    )


def set_state(ctx: ServiceContext, allocation_id: int, state: str) -> None:
    """What the reconciler writes after a push: applied, or failed with the server's message."""
    error = "not enough unreserved licenses" if state == "failed" else None
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE allocations SET state = ?, last_error = ?, attempts = 3 WHERE id = ?",
            [state, error, allocation_id],
        )
    )


def make_pool(ctx: ServiceContext, servers: dict[str, int], quantity: int) -> tuple[int, int]:
    """Servers with CAD totals, one VLM over all of them, and MANAGER's pool of quantity."""
    add_people(ctx)
    for name, total in servers.items():
        add_server(ctx, name, {CAD: total})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    return vlm_id, pools.create_pool(ctx, ADMIN, vlm_id, "p", MANAGER.username, {CAD: quantity})


def allocate(ctx: ServiceContext, pool_id: int, host: str, count: int) -> int:
    return allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", host, count)


@pytest.fixture
def pool(ctx):
    """East holds 10 CAD; MANAGER's pool has 5 of them."""
    _, pool_id = make_pool(ctx, {"east": 10}, 5)
    return ctx, pool_id


@pytest.fixture
def split(ctx):
    """East holds 3 CAD and west 2; MANAGER's pool of 5 takes all of both."""
    _, pool_id = make_pool(ctx, {"east": 3, "west": 2}, 5)
    return ctx, pool_id


@pytest.fixture
def over_committed(ctx):
    """A pool of 5 on east with ann holding 3 (applied); then east reports only 4 licenses."""
    _, pool_id = make_pool(ctx, {"east": 10}, 5)
    ann = allocate(ctx, pool_id, "ann", 3)
    set_state(ctx, ann, "applied")
    set_total(ctx, "east", 4)
    return ctx, pool_id, ann


# exactly what is left, one more, zero, negative


def test_exactly_what_is_left_fits_and_one_more_does_not(pool):
    ctx, pool_id = pool
    allocate(ctx, pool_id, "ann", 4)
    allocate(ctx, pool_id, "ben", 1)  # the last license
    assert allocated(ctx, pool_id) == 5
    refused(ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "cy", 1)
    assert allocated(ctx, pool_id) == 5


def test_the_whole_pool_fits_in_one_allocation(pool):
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 5)
    assert allocation(ctx, ann)["count"] == 5


def test_a_count_edit_may_grow_to_exactly_the_room_and_not_past_it(pool):
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 2)
    allocations.update_allocation(ctx, MANAGER, pool_id, ann, count=5)
    assert allocation(ctx, ann)["count"] == 5
    refused(ctx, ValidationError, allocations.update_allocation, MANAGER, pool_id, ann, count=6)
    allocations.update_allocation(ctx, MANAGER, pool_id, ann, count=1)
    assert allocated(ctx, pool_id) == 1


@pytest.mark.parametrize("count", [0, -1])
def test_zero_or_negative_counts_are_refused(pool, count):
    ctx, pool_id = pool
    refused(ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "a", count)
    assert allocated(ctx, pool_id) == 0


@pytest.mark.parametrize("count", [0, -1])
def test_a_count_edit_to_zero_or_negative_is_refused(pool, count):
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 2)
    refused(ctx, ValidationError, allocations.update_allocation, MANAGER, pool_id, ann, count=count)
    assert allocation(ctx, ann)["count"] == 2


def test_a_host_holds_a_feature_once_per_pool(pool):
    ctx, pool_id = pool
    allocate(ctx, pool_id, "ann", 1)
    refused(ctx, Conflict, allocations.allocate, MANAGER, pool_id, CAD, "USER", " ann ", 1)
    assert allocated(ctx, pool_id) == 1


# over-committed portion (rule 5): shrink yes, grow no, nothing new


def test_over_committed_portion_refuses_a_new_allocation(over_committed):
    ctx, pool_id, _ = over_committed
    error = refused(ctx, Conflict, allocations.allocate, MANAGER, pool_id, CAD, "USER", "ben", 1)
    assert error.message == (
        "cad 1.0 is over-committed on its server(s); no new allocations until an admin resolves it"
    )
    assert error.field == "count"


def test_over_committed_portion_lets_a_count_shrink_and_sends_it_again(over_committed):
    ctx, pool_id, ann = over_committed
    allocations.update_allocation(ctx, MANAGER, pool_id, ann, count=2)
    row = allocation(ctx, ann)
    assert (row["count"], row["state"], row["attempts"]) == (2, "pending", 0)


def test_over_committed_portion_refuses_growth_by_even_one(over_committed):
    ctx, pool_id, ann = over_committed
    refused(ctx, Conflict, allocations.update_allocation, MANAGER, pool_id, ann, count=4)
    assert allocation(ctx, ann)["count"] == 3
    assert allocation(ctx, ann)["state"] == "applied"


def test_over_committed_portion_still_takes_a_description_edit(over_committed):
    ctx, pool_id, ann = over_committed
    allocations.update_allocation(ctx, MANAGER, pool_id, ann, description="laptop")
    row = allocation(ctx, ann)
    assert (row["count"], row["description"], row["state"]) == (3, "laptop", "applied")


def test_over_committed_portion_refuses_growth_with_a_description_and_writes_neither(
    over_committed,
):
    ctx, pool_id, ann = over_committed
    refused(
        ctx,
        Conflict,
        allocations.update_allocation,
        MANAGER,
        pool_id,
        ann,
        count=4,
        description="bigger",
    )
    assert allocation(ctx, ann)["description"] == ""


def test_over_committed_server_is_skipped_for_the_healthy_one(ctx):
    _, pool_id = make_pool(ctx, {"east": 3, "west": 3}, 4)
    assert portions(ctx, pool_id) == {"east": 3, "west": 1}
    set_total(ctx, "east", 2)  # east: 3 pooled on 2 licenses
    ann = allocate(ctx, pool_id, "ann", 1)
    assert allocation(ctx, ann)["server"] == "west"  # east has more room but is over-committed
    refused(ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "ben", 1)


def test_a_pool_on_an_over_committed_feature_cannot_grow_but_can_shrink_out_of_it(
    over_committed,
):
    ctx, pool_id, _ = over_committed
    refused(ctx, ValidationError, pools.update_pool, ADMIN, pool_id, quantities={CAD: 6})
    refused(ctx, ValidationError, pools.update_pool, ADMIN, pool_id, quantities={CAD: 2})
    pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 4})  # no longer over-committed
    assert portions(ctx, pool_id) == {"east": 4}
    ben = allocate(ctx, pool_id, "ben", 1)
    assert allocation(ctx, ben)["count"] == 1


# a pool split across servers


def test_a_split_pool_stores_one_portion_per_server(split):
    ctx, pool_id = split
    assert portions(ctx, pool_id) == {"east": 3, "west": 2}


def test_a_split_pool_places_on_the_most_room_then_by_server_name(split):
    ctx, pool_id = split
    counts = [("ann", 2), ("ben", 1), ("cy", 1), ("dee", 1)]
    places = [allocation(ctx, allocate(ctx, pool_id, host, n))["server"] for host, n in counts]
    # rooms 3/2 -> east; 1/2 -> west; 1/1 tie -> east by name; 0/1 -> west
    assert places == ["east", "west", "east", "west"]
    refused(ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "eve", 1)


@pytest.mark.parametrize("count", [4, 5])
def test_a_split_pool_refuses_a_count_no_single_server_has_room_for(split, count):
    ctx, pool_id = split
    error = refused(
        ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "ann", count
    )
    assert f"no single license server has room for {count}" in error.message
    assert allocated(ctx, pool_id) == 0


def test_a_split_pool_takes_exactly_each_portion_then_nothing(split):
    ctx, pool_id = split
    ann = allocate(ctx, pool_id, "ann", 3)
    ben = allocate(ctx, pool_id, "ben", 2)
    assert (allocation(ctx, ann)["server"], allocation(ctx, ben)["server"]) == ("east", "west")
    refused(ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "cy", 1)
    assert allocated(ctx, pool_id) == 5


def test_a_split_pool_refuses_more_than_all_portions_together(split):
    ctx, pool_id = split
    error = refused(
        ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "ann", 6
    )
    assert "only 5" in error.message


def test_a_full_portion_adds_nothing_to_what_is_left(split):
    """East full (room 0), west with 2: asking 3 is told exactly 2 are left."""
    ctx, pool_id = split
    allocate(ctx, pool_id, "ann", 3)
    error = refused(
        ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "ben", 3
    )
    assert error.message == "only 2 of cad 1.0 left in this pool, 3 requested"
    assert error.field == "count"


def test_growth_is_limited_by_the_allocations_own_portion_not_the_pool(split):
    ctx, pool_id = split
    ann = allocate(ctx, pool_id, "ann", 2)  # on east, 1 left there and 2 on west
    allocations.update_allocation(ctx, MANAGER, pool_id, ann, count=3)
    refused(ctx, ValidationError, allocations.update_allocation, MANAGER, pool_id, ann, count=4)
    assert (allocation(ctx, ann)["count"], allocation(ctx, ann)["server"]) == (3, "east")


# pool resize and creation


def test_a_pool_shrinks_to_its_allocated_amount_but_never_below(pool):
    ctx, pool_id = pool
    allocate(ctx, pool_id, "ann", 3)
    below = refused(ctx, ValidationError, pools.update_pool, ADMIN, pool_id, quantities={CAD: 2})
    assert below.field == "quantity"  # the pool form shows it at the quantities
    pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 3})
    assert portions(ctx, pool_id) == {"east": 3}
    refused(ctx, ValidationError, allocations.allocate, MANAGER, pool_id, CAD, "USER", "ben", 1)


def test_a_split_pool_shrinks_to_what_each_server_has_allocated(split):
    ctx, pool_id = split
    allocate(ctx, pool_id, "ann", 2)  # east
    allocate(ctx, pool_id, "ben", 1)  # west
    refused(ctx, ValidationError, pools.update_pool, ADMIN, pool_id, quantities={CAD: 2})
    pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 3})
    assert portions(ctx, pool_id) == {"east": 2, "west": 1}


def test_a_pool_grows_to_exactly_the_poolable_room_and_not_past_it(pool):
    ctx, pool_id = pool
    refused(ctx, ValidationError, pools.update_pool, ADMIN, pool_id, quantities={CAD: 11})
    pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 10})
    assert portions(ctx, pool_id) == {"east": 10}


def test_a_pool_is_created_with_exactly_the_poolable_room_and_not_one_more(pool):
    ctx, _ = pool
    ctx.db.write(lambda cur: cur.execute("UPDATE server_features SET reserved_by_others = 2"))
    vlm_id = ctx.db.scalar("SELECT id FROM vlms")
    # 10 total - 2 reserved by others - 5 pooled = 3 poolable
    refused(ctx, ValidationError, pools.create_pool, ADMIN, vlm_id, "q", "carol", {CAD: 4})
    second = pools.create_pool(ctx, ADMIN, vlm_id, "q", "carol", {CAD: 3})
    assert portions(ctx, second) == {"east": 3}
    refused(ctx, ValidationError, pools.create_pool, ADMIN, vlm_id, "r", "carol", {CAD: 1})


def test_quantity_bounds_are_the_accepted_edges(pool):
    ctx, pool_id = pool
    allocate(ctx, pool_id, "ann", 2)
    vlm_id = ctx.db.scalar("SELECT id FROM vlms")
    pools.create_pool(ctx, ADMIN, vlm_id, "q", "carol", {CAD: 3})
    [bounds] = pools.pool_quantity_bounds(ctx, ADMIN, vlm_id, pool_id).to_dict("records")
    assert (bounds["quantity"], bounds["minimum"], bounds["maximum"]) == (5, 2, 7)
    for outside in (bounds["minimum"] - 1, bounds["maximum"] + 1):
        refused(ctx, ValidationError, pools.update_pool, ADMIN, pool_id, quantities={CAD: outside})
    for edge in (bounds["maximum"], bounds["minimum"]):
        pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: edge})
        assert portions(ctx, pool_id) == {"east": edge}


def test_a_manager_cannot_resize_their_own_pool(pool):
    ctx, pool_id = pool
    refused(ctx, PermissionDenied, pools.update_pool, MANAGER, pool_id, quantities={CAD: 6})
    assert portions(ctx, pool_id) == {"east": 5}


# an allocation whose portion is gone


@pytest.fixture
def portion_gone(pool):
    """ann holds 2 of a pool whose portion an admin or a pull deleted underneath it."""
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 2)
    set_state(ctx, ann, "applied")
    ctx.db.write(lambda cur: cur.execute("DELETE FROM pool_portions WHERE pool_id = ?", [pool_id]))
    return ctx, pool_id, ann


@pytest.mark.parametrize("count", [1, 3])
def test_a_count_edit_without_a_portion_is_refused(portion_gone, count):
    ctx, pool_id, ann = portion_gone
    refused(ctx, Conflict, allocations.update_allocation, MANAGER, pool_id, ann, count=count)
    assert allocation(ctx, ann)["count"] == 2


def test_a_description_edit_without_a_portion_is_accepted(portion_gone):
    ctx, pool_id, ann = portion_gone
    allocations.update_allocation(ctx, MANAGER, pool_id, ann, description="kept")
    assert allocation(ctx, ann)["description"] == "kept"


def test_an_allocation_without_a_portion_can_be_removed(portion_gone):
    ctx, pool_id, ann = portion_gone
    allocations.remove_allocation(ctx, MANAGER, pool_id, ann)
    assert allocation(ctx, ann)["state"] == "removing"
    refused(ctx, NotFound, allocations.allocate, MANAGER, pool_id, CAD, "USER", "ben", 1)


# retry and removal by state


def test_retry_sends_a_failed_allocation_back_to_pending(pool):
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 2)
    set_state(ctx, ann, "failed")
    allocations.retry_allocation(ctx, MANAGER, pool_id, ann)
    row = allocation(ctx, ann)
    assert (row["state"], row["attempts"], row["last_error"], row["count"]) == (
        "pending",
        0,
        None,
        2,
    )


@pytest.mark.parametrize("state", ["pending", "applied"])
def test_retry_of_an_allocation_that_did_not_fail_is_refused(pool, state):
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 2)
    set_state(ctx, ann, state)
    refused(ctx, ValidationError, allocations.retry_allocation, MANAGER, pool_id, ann)
    assert allocation(ctx, ann)["state"] == state


def test_retry_of_many_accepts_the_failed_and_refuses_the_rest(pool):
    ctx, pool_id = pool
    ann, ben = allocate(ctx, pool_id, "ann", 1), allocate(ctx, pool_id, "ben", 1)
    set_state(ctx, ann, "failed")
    set_state(ctx, ben, "applied")
    results = allocations.retry_allocations(ctx, MANAGER, pool_id, [ann, ben])
    assert [r.ok for r in results] == [True, False]
    assert (allocation(ctx, ann)["state"], allocation(ctx, ben)["state"]) == ("pending", "applied")


def test_removing_a_failed_allocation_deletes_its_row(pool):
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 2)
    set_state(ctx, ann, "failed")
    allocations.remove_allocation(ctx, MANAGER, pool_id, ann)
    assert allocation(ctx, ann) is None
    allocate(ctx, pool_id, "ben", 5)  # its licenses are free again


@pytest.mark.parametrize("state", ["pending", "applied"])
def test_removing_a_live_allocation_marks_it_removing_and_frees_its_count(pool, state):
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 2)
    set_state(ctx, ann, state)
    allocations.remove_allocation(ctx, MANAGER, pool_id, ann)
    assert allocation(ctx, ann)["state"] == "removing"
    assert allocated(ctx, pool_id) == 0
    allocate(ctx, pool_id, "ben", 5)
    refused(ctx, NotFound, allocations.remove_allocation, MANAGER, pool_id, ann)


def test_a_row_names_its_feature_or_takes_the_grids(pool):
    """A row without a version asks for the version-less feature; a row without a feature in a
    grid without one is refused at its feature; the refused rows write nothing."""
    ctx, pool_id = pool
    before = tables(ctx)
    no_version = allocations.AllocationChange("add", 1, None, "cad", None, "USER", "ann", 1)
    no_feature = allocations.AllocationChange("add", 2, None, None, None, "USER", "ben", 1)
    results = allocations.apply_allocation_changes(ctx, MANAGER, pool_id, [no_version, no_feature])
    assert [(r.ok, r.message, r.field) for r in results] == [
        (False, "feature cad  is not in this pool", "feature"),
        (False, "no feature given for this row", "feature"),
    ]
    assert tables(ctx) == before
    taken = allocations.apply_allocation_changes(ctx, MANAGER, pool_id, [no_feature], feature=CAD)
    assert taken[0].ok and allocated(ctx, pool_id) == 1


def test_each_row_of_an_apply_says_what_it_did_and_names_its_allocation(pool):
    """The grid shows these results next to their rows; the audit names the pool of each row."""
    ctx, pool_id = pool
    ann = allocate(ctx, pool_id, "ann", 1)
    ben = allocate(ctx, pool_id, "ben", 1)
    change = allocations.AllocationChange
    changes = [
        change("add", 1, None, "cad", "1.0", "USER", "cy", 2, "new"),
        change("edit", 2, ann, count=1, description=""),
        change("edit", 3, ann, count=2, description="more"),
        change("delete", 4, ben),
    ]
    results = allocations.apply_allocation_changes(ctx, MANAGER, pool_id, changes)
    assert [(r.change, r.ok, r.message) for r in results] == [
        (changes[0], True, "allocated USER cy × 2"),
        (changes[1], True, "unchanged"),
        (changes[2], True, "updated"),
        (changes[3], True, "removed"),
    ]
    assert [r.allocation_id for r in results[1:]] == [ann, ann, ben]
    assert results[0].allocation_id is not None and results[0].allocation_id not in (ann, ben)
    named = ctx.db.query(
        "SELECT action, after, before FROM audit_log WHERE target_type = 'allocation' "
        "ORDER BY id DESC LIMIT 3"
    )
    for action, after, before in named:
        assert json.loads(after or before)["pool_id"] == pool_id, action


# licenses reserved outside VLM


def test_licenses_reserved_outside_vlm_leave_less_for_the_pools(pool):
    """Over-committed means all pools' portions exceed the total less what others reserved."""
    ctx, pool_id = pool

    def reserved_by_others(count: int) -> None:
        ctx.db.write(
            lambda cur: cur.execute("UPDATE server_features SET reserved_by_others = ?", [count])
        )

    reserved_by_others(6)  # 5 pooled on 10 - 6 = 4
    refused(ctx, Conflict, allocations.allocate, MANAGER, pool_id, CAD, "USER", "ann", 1)
    reserved_by_others(5)  # 5 pooled on 10 - 5 = 5: exactly full, not over
    ann = allocate(ctx, pool_id, "ann", 1)
    assert allocation(ctx, ann)["count"] == 1


# which servers a save wakes


def test_one_save_wakes_every_server_it_changes_and_no_other(ctx):
    """An add, a removal and a count edit on three servers in one Apply wake those three; a
    description edit changes nothing on a server and wakes none."""
    _, pool_id = make_pool(ctx, {"east": 1, "north": 2, "south": 2, "west": 2}, 7)
    ids = dict(ctx.db.query("SELECT name, id FROM license_servers"))
    ann, carl, zed, ben = (
        allocate(ctx, pool_id, host, count)
        for host, count in (("ann", 2), ("carl", 2), ("zed", 2), ("ben", 1))
    )
    server = {a: allocation(ctx, a)["server"] for a in (ann, carl, zed, ben)}
    assert server == {ann: "north", carl: "south", zed: "west", ben: "east"}
    allocations.remove_allocation(ctx, MANAGER, pool_id, zed)  # west has room for 2 again
    woken: list[set[int]] = []
    ctx.on_allocations_changed = lambda servers: woken.append(set(servers))

    results = allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool_id,
        [
            AllocationChange("add", row=0, host_type="USER", host_id="dave", count=2),
            AllocationChange("delete", row=1, allocation_id=ben),
            AllocationChange("edit", row=2, allocation_id=carl, count=1),
            AllocationChange("edit", row=3, allocation_id=ann, description="lab"),
        ],
        feature=CAD,
    )
    assert [r.ok for r in results] == [True] * 4
    assert allocation(ctx, results[0].allocation_id)["server"] == "west"
    assert woken == [{ids["west"], ids["east"], ids["south"]}]

    woken.clear()
    allocations.apply_allocation_changes(
        ctx,
        MANAGER,
        pool_id,
        [AllocationChange("edit", row=0, allocation_id=ann, description="lab 2")],
        feature=CAD,
    )
    assert woken == []


def test_servers_with_equal_room_give_to_the_first_by_name(ctx):
    """Rule 3's tie-break: west is connected first, but east comes first by name."""
    _, pool_id = make_pool(ctx, {"west": 2, "east": 2}, 1)
    assert portions(ctx, pool_id) == {"east": 1}


def test_a_shrink_that_empties_a_servers_portion_removes_that_portion(split):
    """Nothing allocated: the shrink takes from the largest portion first, and east's
    emptied portion goes rather than staying at 0."""
    ctx, pool_id = split
    pools.update_pool(ctx, ADMIN, pool_id, quantities={CAD: 2})
    assert portions(ctx, pool_id) == {"west": 2}
