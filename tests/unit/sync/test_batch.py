"""Which hosts go in batch groups, how a batch group is named, how a plan sees the hosts of a
batch group, and which mirror rows a host's outcome replaces (no server needed)."""

from __future__ import annotations

import pytest

from tests.unit.sync.builders import ANN, BEN, CAD, VIZ, entry, group, host_group, reservation
from vlm.domain import batch_group_name, is_batch_group, reservation_group_name
from vlm.flexnet import HostId
from vlm.sync.batch import BATCH_MIN_HOSTS, batchable, batches
from vlm.sync.ownership import AllocRow, HostPlan
from vlm.sync.plan import _batch_plans
from vlm.sync.reconciler import _touched_by

PREFIX = "vlm-"
BATCH = batch_group_name(PREFIX, [("USER", "ann", ((CAD, 1),))])


def plan_of(host: HostId, *rows: AllocRow, actual=None, batch_name=None) -> HostPlan:
    plan = HostPlan(
        host.type, host.value, reservation_group_name(PREFIX, host.type, host.value), actual
    )
    plan.batch_name = batch_name
    for row in rows:
        plan.add(row)
    plan.settle()
    return plan


def pending(alloc_id: int, key=CAD, count: int = 1, due: bool = True) -> AllocRow:
    return AllocRow(alloc_id, key, count, "pending", due)


def test_batch_names_carry_the_prefix_and_a_mark_no_per_host_name_has():
    assert is_batch_group(PREFIX, BATCH)
    for host_type, host_id in [("USER", "ann"), ("ETHERNET", "~batch-x"), ("~batch", "x")]:
        assert not is_batch_group(PREFIX, reservation_group_name(PREFIX, host_type, host_id))
    assert not is_batch_group("other-", BATCH)


def test_batch_names_depend_on_what_the_batch_holds_and_not_on_order():
    a = ("USER", "ann", ((CAD, 1),))
    b = ("USER", "ben", ((CAD, 2),))
    assert batch_group_name(PREFIX, [a, b]) == batch_group_name(PREFIX, [b, a])
    assert batch_group_name(PREFIX, [a, b]) != batch_group_name(PREFIX, [a])
    assert batch_group_name(PREFIX, [a]) != batch_group_name(PREFIX, [("USER", "ann", ((CAD, 2),))])


def test_only_hosts_to_create_from_nothing_without_backed_off_rows_are_batchable():
    assert batchable(plan_of(ANN, pending(1)))
    assert not batchable(plan_of(ANN, pending(1, due=False)))
    assert not batchable(plan_of(ANN, pending(1), actual=host_group("g", ANN, entry(CAD, 1, 3))))
    assert not batchable(plan_of(ANN))


def test_batches_start_at_the_minimum_and_are_cut_at_the_size():
    plans = [plan_of(HostId("USER", f"u{i:03}"), pending(i)) for i in range(BATCH_MIN_HOSTS * 3)]
    assert batches(plans[: BATCH_MIN_HOSTS - 1], 250) == []
    assert batches(plans, 1) == batches(plans, 0) == []
    assert batches(plans, 250) == [sorted(plans, key=lambda p: p.host_id)]
    cut = batches(plans, size=BATCH_MIN_HOSTS + 1)
    assert [len(c) for c in cut] == [BATCH_MIN_HOSTS + 1, BATCH_MIN_HOSTS + 1, BATCH_MIN_HOSTS - 2]
    assert [p for c in cut for p in c] == sorted(plans, key=lambda p: p.host_id)


def test_a_batch_reservation_becomes_its_hosts_actual_group_of_that_reservation_alone():
    ann = plan_of(ANN, pending(1))
    batch = group(
        BATCH,
        reservation(ANN, entry(CAD, 1, 5), reservation_id=1),
        reservation(BEN, entry(VIZ, 1, 6), reservation_id=2),
    )
    extra = _batch_plans(PREFIX, batch, {(ANN.type, ANN.value): ann})
    assert ann.batch_name == BATCH and ann.actual is not None
    assert [r.host_id for r in ann.actual.reservations] == [ANN]
    assert ann.actual.id == batch.id
    (ben,) = extra
    assert (ben.host, ben.batch_name, ben.rows) == (BEN, BATCH, [])
    ben.settle()
    assert not ben.wanted


def test_a_host_that_already_has_a_group_gets_an_extra_plan_for_its_batch_reservation():
    own = host_group(reservation_group_name(PREFIX, "USER", "ann"), ANN, entry(CAD, 1, 3))
    ann = plan_of(ANN, pending(1), actual=own)
    batch = group(BATCH, reservation(ANN, entry(CAD, 1, 5)))
    (extra,) = _batch_plans(PREFIX, batch, {(ANN.type, ANN.value): ann})
    assert ann.actual is own and ann.batch_name is None
    assert extra.batch_name == BATCH and extra.key != ann.key and extra.rows == []


def test_an_empty_batch_group_gets_a_plan_that_deletes_it():
    (plan,) = _batch_plans(PREFIX, group(BATCH), {})
    plan.settle()
    assert plan.group_name == BATCH and not plan.wanted and plan.actual is not None


@pytest.mark.parametrize(
    ("batch_name", "outcome", "names", "reservations"),
    [
        (None, None, ["own"], []),
        (None, "own", ["own"], []),
        (None, "batch", [], [("batch", "USER", "ann")]),
        ("batch", None, [], [("batch", "USER", "ann")]),
        ("batch", "batch", [], [("batch", "USER", "ann")]),
        ("batch", "own", ["own"], [("batch", "USER", "ann")]),
    ],
)
def test_a_hosts_outcome_replaces_its_group_or_only_its_reservation_in_a_batch(
    batch_name, outcome, names, reservations
):
    rename = {"own": "vlm-USER-ann", "batch": BATCH, None: None}
    plan = plan_of(ANN, pending(1), batch_name=rename[batch_name])
    result = None if outcome is None else host_group(rename[outcome], ANN, entry(CAD, 1, 3))
    got = _touched_by(PREFIX, plan, result)
    assert got == ([rename[n] for n in names], [(rename[r[0]], *r[1:]) for r in reservations])
