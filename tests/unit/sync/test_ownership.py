"""The reconciler's pure rules (vlm.sync.ownership): a host's plan, whether a group is VLM's for
that host and already matches the plan, and the verdict on each allocation after a host's
operations (docs/architecture.md §5, §5.4 "Ownership is proven, never assumed")."""

from __future__ import annotations

import pytest

from tests.unit.sync.builders import (
    ANN,
    BEN,
    CAD,
    VIZ,
    entry,
    group,
    host_group,
    reservation,
)
from vlm.flexnet import HostId, ReservationGroup
from vlm.sync.ownership import (
    AllocRow,
    HostOutcome,
    HostPlan,
    Verdicts,
    entries_by_key,
    frees_only,
    held_counts,
    in_sync,
    is_sane,
    same_host,
    with_entries,
)

NAME = "vlm-USER-ann"
REFUSAL = "not enough unreserved licenses"


def row(alloc_id: int, count: int, state: str = "pending", key=CAD, due: bool = True) -> AllocRow:
    return AllocRow(alloc_id, key, count, state, due)


def plan_of(*rows: AllocRow, actual: ReservationGroup | None = None) -> HostPlan:
    """ANN's settled plan over these allocation rows, with the group last read for ANN."""
    plan = HostPlan(ANN.type, ANN.value, NAME, actual)
    for alloc in rows:
        plan.add(alloc)
    plan.settle()
    return plan


def held(*entries) -> ReservationGroup:
    """ANN's VLM group holding these entries."""
    return host_group(NAME, ANN, *entries)


def judged(plan: HostPlan, outcome: HostOutcome) -> Verdicts:
    verdicts = Verdicts()
    verdicts.judge(plan, outcome)
    return verdicts


def verdict_lists(verdicts: Verdicts) -> dict[str, list]:
    return {
        "applied": verdicts.applied,
        "failed": verdicts.failed,
        "retry": verdicts.retry,
        "removed": verdicts.removed,
    }


def only(**lists: list) -> dict[str, list]:
    """The four verdict lists, empty except the ones named."""
    return {"applied": [], "failed": [], "retry": [], "removed": [], **lists}


# -- the plan of a host ---------------------------------------------------------------------


def test_a_plan_stands_for_its_host_type_and_id():
    assert HostPlan("ETHERNET", "0a1b2c3d4e5f", "vlm-x", None).host == HostId(
        "ETHERNET", "0a1b2c3d4e5f"
    )


def test_a_plan_keeps_its_rows_in_the_order_added():
    first, second = row(1, 2), row(2, 1, key=VIZ)
    assert plan_of(first, second).rows == [first, second]


def test_settle_wants_the_sum_of_pending_applied_and_disabled_counts_per_feature():
    plan = plan_of(
        row(1, 2, "pending"),
        row(2, 3, "applied"),
        row(3, 1, "disabled"),
        row(4, 4, "pending", key=VIZ),
    )
    assert plan.want == {CAD: 6, VIZ: 4}
    assert plan.applied == {CAD: 4}
    assert plan.skip == set()
    assert plan.wanted is True


def test_settle_leaves_a_removing_row_out_of_what_is_wanted_and_held():
    plan = plan_of(row(1, 5, "removing"), row(2, 2, "applied"))
    assert (plan.want, plan.applied) == ({CAD: 2}, {CAD: 2})


def test_a_host_with_only_removing_rows_wants_nothing():
    plan = plan_of(row(1, 5, "removing"))
    assert (plan.want, plan.applied, plan.skip) == ({}, {}, set())
    assert plan.wanted is False


def test_settle_leaves_alone_every_row_of_a_feature_with_a_backed_off_pending_row():
    plan = plan_of(
        row(1, 1, "pending", due=False),
        row(2, 2, "applied"),
        row(3, 3, "pending", key=VIZ),
    )
    assert plan.skip == {CAD}
    assert plan.want == {VIZ: 3}
    assert plan.applied == {}


def test_a_due_pending_row_is_not_left_alone():
    plan = plan_of(row(1, 1, "pending", due=True))
    assert (plan.skip, plan.want) == (set(), {CAD: 1})


def test_a_host_whose_only_feature_is_backed_off_is_still_wanted():
    plan = plan_of(row(1, 1, "pending", due=False))
    assert (plan.want, plan.skip) == ({}, {CAD})
    assert plan.wanted is True


# -- same host, sane group ------------------------------------------------------------------


def test_same_host_ignores_the_case_of_the_host_type():
    assert same_host(HostId("user", "ann"), HostId("USER", "ann")) is True
    assert same_host(HostId("USER", "ann"), HostId("User", "ann")) is True


def test_same_host_compares_the_host_id_value_exactly():
    assert same_host(HostId("USER", "Ann"), HostId("USER", "ann")) is False


def test_same_host_needs_the_same_host_type():
    assert same_host(HostId("ETHERNET", "ann"), HostId("USER", "ann")) is False


def test_a_group_with_one_reservation_for_the_host_is_sane():
    assert is_sane(held(entry(CAD, 1)), ANN) is True
    assert is_sane(host_group(NAME, HostId("user", "ann")), ANN) is True


def test_a_group_whose_reservation_is_for_another_host_is_not_sane():
    assert is_sane(host_group(NAME, BEN, entry(CAD, 1)), ANN) is False


def test_a_group_with_a_second_reservation_is_not_sane_even_if_the_first_is_the_host():
    two = group(NAME, reservation(ANN, entry(CAD, 1)), reservation(BEN, reservation_id=2))
    assert is_sane(two, ANN) is False


def test_a_group_without_reservations_is_not_sane():
    assert is_sane(group(NAME), ANN) is False


# -- what a group holds ---------------------------------------------------------------------


def test_entries_by_key_of_no_group_is_empty():
    assert entries_by_key(None) == {}
    assert held_counts(None) == {}


def test_entries_by_key_groups_entries_per_feature_and_version_in_order():
    cad_a, viz, cad_b = entry(CAD, 2, 1), entry(VIZ, 1, 2), entry(CAD, 3, 3)
    cad_2 = entry(("cad", "2.0"), 4, 4)
    found = entries_by_key(held(cad_a, viz, cad_b, cad_2))
    assert found == {CAD: [cad_a, cad_b], VIZ: [viz], ("cad", "2.0"): [cad_2]}


def test_entries_by_key_reads_every_reservation_of_the_group():
    first, second = entry(CAD, 2, 1), entry(CAD, 5, 2)
    two = group(NAME, reservation(ANN, first), reservation(BEN, second, reservation_id=2))
    assert entries_by_key(two) == {CAD: [first, second]}


def test_held_counts_sums_the_entries_of_each_feature():
    group_held = held(entry(CAD, 2, 1), entry(VIZ, 1, 2), entry(CAD, 3, 3))
    assert held_counts(group_held) == {CAD: 5, VIZ: 1}


# -- in sync: no request needed -------------------------------------------------------------


def test_a_host_wanting_nothing_is_in_sync_only_once_its_group_is_gone():
    assert in_sync(plan_of(row(1, 2, "removing"))) is True
    assert in_sync(plan_of(row(1, 2, "removing"), actual=held(entry(CAD, 2, 1)))) is False


def test_a_host_wanting_licenses_without_a_group_is_out_of_sync():
    assert in_sync(plan_of(row(1, 2))) is False


def test_a_host_with_only_backed_off_features_and_no_group_is_in_sync():
    assert in_sync(plan_of(row(1, 2, due=False))) is True


def test_a_group_holding_exactly_the_wanted_counts_is_in_sync():
    group_held = held(entry(CAD, 3, 1), entry(VIZ, 4, 2))
    plan = plan_of(row(1, 2, "applied"), row(2, 1), row(3, 4, key=VIZ), actual=group_held)
    assert in_sync(plan) is True


def test_a_group_for_another_host_is_out_of_sync_even_with_the_right_counts():
    plan = plan_of(row(1, 2, "applied"), actual=host_group(NAME, BEN, entry(CAD, 2, 1)))
    assert in_sync(plan) is False


def test_a_group_holding_another_count_is_out_of_sync():
    assert in_sync(plan_of(row(1, 2, "applied"), actual=held(entry(CAD, 3, 1)))) is False


def test_a_feature_split_over_two_entries_is_out_of_sync_even_if_they_add_up():
    plan = plan_of(row(1, 3, "applied"), actual=held(entry(CAD, 2, 1), entry(CAD, 1, 2)))
    assert in_sync(plan) is False


def test_a_group_missing_a_wanted_feature_is_out_of_sync():
    plan = plan_of(row(1, 2, "applied"), row(2, 1, key=VIZ), actual=held(entry(CAD, 2, 1)))
    assert in_sync(plan) is False


def test_a_group_holding_a_feature_no_longer_wanted_is_out_of_sync():
    plan = plan_of(row(1, 2, "applied"), actual=held(entry(CAD, 2, 1), entry(VIZ, 1, 2)))
    assert in_sync(plan) is False


def test_a_held_feature_that_is_backed_off_does_not_make_the_group_out_of_sync():
    plan = plan_of(
        row(1, 2, "applied"),
        row(2, 5, "pending", key=VIZ, due=False),
        actual=held(entry(CAD, 2, 1), entry(VIZ, 1, 2)),
    )
    assert in_sync(plan) is True


# -- frees only: run before the hosts that need room ----------------------------------------


def test_a_host_wanting_nothing_only_frees_licenses():
    assert frees_only(plan_of(row(1, 2, "removing"), actual=held(entry(CAD, 2, 1)))) is True
    assert frees_only(plan_of(row(1, 2, "removing"))) is True


def test_a_host_without_a_group_does_not_only_free_licenses():
    assert frees_only(plan_of(row(1, 2))) is False
    assert frees_only(plan_of(row(1, 2, due=False))) is False


def test_a_host_whose_group_is_not_sane_does_not_only_free_licenses():
    two = group(NAME, reservation(ANN, entry(CAD, 5, 1)), reservation(BEN, reservation_id=2))
    assert frees_only(plan_of(row(1, 2, "applied"), actual=two)) is False


def test_shrinking_or_keeping_every_count_only_frees_licenses():
    shrink = plan_of(row(1, 2, "pending"), actual=held(entry(CAD, 3, 1)))
    keep = plan_of(row(1, 3, "pending"), actual=held(entry(CAD, 3, 1)))
    assert (frees_only(shrink), frees_only(keep)) == (True, True)


def test_dropping_a_feature_only_frees_licenses():
    plan = plan_of(row(1, 1, "applied", key=VIZ), actual=held(entry(CAD, 2, 1), entry(VIZ, 1, 2)))
    assert frees_only(plan) is True


def test_growing_a_count_by_one_needs_room():
    assert frees_only(plan_of(row(1, 4), actual=held(entry(CAD, 3, 1)))) is False


def test_adding_a_single_license_of_a_new_feature_needs_room():
    plan = plan_of(row(1, 2, "applied"), row(2, 1, key=VIZ), actual=held(entry(CAD, 2, 1)))
    assert frees_only(plan) is False


# -- with entries: the group as it is after an add or a delete ------------------------------


def test_with_entries_appends_added_entries_and_keeps_the_group_and_reservation_ids():
    before = group(NAME, reservation(ANN, entry(CAD, 2, 1), reservation_id=40), group_id=9)
    after = with_entries(before, add=[entry(VIZ, 1)])
    assert after == group(
        NAME, reservation(ANN, entry(CAD, 2, 1), entry(VIZ, 1), reservation_id=40), group_id=9
    )


def test_with_entries_drops_only_the_entry_with_that_id():
    before = held(entry(CAD, 2, 1), entry(VIZ, 1, 2), entry(CAD, 3, 3))
    assert with_entries(before, drop=1) == held(entry(VIZ, 1, 2), entry(CAD, 3, 3))


def test_with_entries_can_drop_and_add_in_one_step():
    before = held(entry(CAD, 2, 1), entry(VIZ, 1, 2))
    after = with_entries(before, add=[entry(CAD, 5)], drop=1)
    assert after == held(entry(VIZ, 1, 2), entry(CAD, 5))


def test_with_entries_without_a_drop_keeps_entries_that_have_no_id_yet():
    before = held(entry(CAD, 2))
    assert with_entries(before, add=[entry(VIZ, 1)]) == held(entry(CAD, 2), entry(VIZ, 1))


# -- verdicts: what the server now holds decides each allocation's state --------------------


def test_a_pending_row_the_server_now_holds_is_applied():
    plan = plan_of(row(11, 2))
    verdicts = judged(plan, HostOutcome(held(entry(CAD, 2, 1))))
    assert verdict_lists(verdicts) == only(applied=[(11, 2, "pending", None)])


def test_only_the_pending_row_of_a_held_feature_is_applied_the_applied_one_stays():
    plan = plan_of(row(11, 2, "applied"), row(12, 1))
    verdicts = judged(plan, HostOutcome(held(entry(CAD, 3, 1))))
    assert verdict_lists(verdicts) == only(applied=[(12, 1, "pending", None)])


def test_an_applied_row_still_held_needs_no_verdict():
    verdicts = judged(plan_of(row(11, 2, "applied")), HostOutcome(held(entry(CAD, 2, 1))))
    assert verdict_lists(verdicts) == only()
    assert verdicts.empty is True


def test_a_pending_row_not_held_after_a_clean_pass_is_retried_as_not_yet_held():
    verdicts = judged(plan_of(row(11, 2)), HostOutcome(held(entry(VIZ, 1, 1))))
    assert verdict_lists(verdicts) == only(retry=[(11, 2, "pending", "not yet held by the server")])


def test_a_pending_row_held_with_another_count_is_retried():
    verdicts = judged(plan_of(row(11, 2)), HostOutcome(held(entry(CAD, 1, 1))))
    assert verdict_lists(verdicts) == only(retry=[(11, 2, "pending", "not yet held by the server")])


def test_a_pending_row_not_held_after_an_error_is_retried_with_that_error():
    outcome = HostOutcome(held(), known=True, error="HTTP 503 from the license server")
    verdicts = judged(plan_of(row(11, 2)), outcome)
    assert verdict_lists(verdicts) == only(
        retry=[(11, 2, "pending", "HTTP 503 from the license server")]
    )


def test_when_the_outcome_is_unknown_pending_rows_are_retried_and_nothing_else_moves():
    plan = plan_of(row(11, 2), row(12, 1, "applied", key=VIZ), row(13, 3, "removing", key=VIZ))
    outcome = HostOutcome(held(entry(CAD, 2, 1)), known=False, error="timed out")
    verdicts = judged(plan, outcome)
    assert verdict_lists(verdicts) == only(retry=[(11, 2, "pending", "timed out")])


def test_a_refused_pending_row_fails_with_the_servers_message():
    outcome = HostOutcome(held(), refused={CAD: REFUSAL})
    verdicts = judged(plan_of(row(11, 2)), outcome)
    assert verdict_lists(verdicts) == only(failed=[(11, 2, "pending", REFUSAL)])


def test_a_refused_growth_fails_the_pending_row_and_keeps_the_applied_one_still_held():
    plan = plan_of(row(11, 2, "applied"), row(12, 1))
    outcome = HostOutcome(held(entry(CAD, 2, 5)), refused={CAD: REFUSAL})
    verdicts = judged(plan, outcome)
    assert verdict_lists(verdicts) == only(failed=[(12, 1, "pending", REFUSAL)])


def test_a_refused_growth_that_lost_the_applied_licenses_fails_the_applied_row_too():
    plan = plan_of(row(11, 2, "applied"), row(12, 1))
    outcome = HostOutcome(held(entry(CAD, 1, 5)), refused={CAD: REFUSAL})
    verdicts = judged(plan, outcome)
    assert verdict_lists(verdicts) == only(
        failed=[(11, 2, "applied", REFUSAL), (12, 1, "pending", REFUSAL)]
    )


def test_a_refusal_with_an_unknown_outcome_fails_only_the_pending_row():
    plan = plan_of(row(11, 2, "applied"), row(12, 1))
    outcome = HostOutcome(held(), known=False, refused={CAD: REFUSAL}, error="timed out")
    verdicts = judged(plan, outcome)
    assert verdict_lists(verdicts) == only(failed=[(12, 1, "pending", REFUSAL)])


def test_a_removing_row_is_removed_once_the_server_holds_no_more_than_the_rest():
    plan = plan_of(row(11, 1, "applied"), row(12, 2, "removing"))
    verdicts = judged(plan, HostOutcome(held(entry(CAD, 1, 5))))
    assert verdict_lists(verdicts) == only(removed=[12])


def test_a_removing_row_is_kept_while_the_server_still_holds_its_licenses():
    plan = plan_of(row(11, 1, "applied"), row(12, 2, "removing"))
    verdicts = judged(plan, HostOutcome(held(entry(CAD, 3, 5))))
    assert verdict_lists(verdicts) == only()


def test_the_last_removing_row_of_a_feature_is_removed_once_its_entry_is_gone():
    plan = plan_of(row(12, 2, "removing"), row(13, 1, "applied", key=VIZ))
    verdicts = judged(plan, HostOutcome(held(entry(VIZ, 1, 6))))
    assert verdict_lists(verdicts) == only(removed=[12])


def test_the_last_removing_row_is_kept_while_even_one_license_is_still_held():
    plan = plan_of(row(12, 2, "removing"))
    verdicts = judged(plan, HostOutcome(held(entry(CAD, 1, 5))))
    assert verdict_lists(verdicts) == only()


def test_a_removing_row_is_removed_when_the_whole_group_is_gone():
    verdicts = judged(plan_of(row(12, 2, "removing")), HostOutcome(None))
    assert verdict_lists(verdicts) == only(removed=[12])


def test_rows_of_a_backed_off_feature_get_no_verdict():
    plan = plan_of(row(11, 2, due=False), row(12, 1, "applied"), row(13, 1, key=VIZ))
    verdicts = judged(plan, HostOutcome(held(entry(VIZ, 1, 6))))
    assert verdict_lists(verdicts) == only(applied=[(13, 1, "pending", None)])


def test_each_feature_is_judged_on_its_own_counts():
    plan = plan_of(row(11, 2), row(12, 1, key=VIZ), row(13, 4, "removing", key=("sim", "1.0")))
    outcome = HostOutcome(held(entry(CAD, 2, 1)), refused={VIZ: REFUSAL})
    verdicts = judged(plan, outcome)
    assert verdict_lists(verdicts) == only(
        applied=[(11, 2, "pending", None)],
        failed=[(12, 1, "pending", REFUSAL)],
        removed=[13],
    )


@pytest.mark.parametrize("filled", ["applied", "failed", "retry", "removed"])
def test_verdicts_are_not_empty_once_any_list_has_a_row(filled):
    verdicts = Verdicts()
    getattr(verdicts, filled).append(1 if filled == "removed" else (1, 1, "pending", None))
    assert verdicts.empty is False


def test_verdict_frames_carry_the_applied_failed_and_retry_rows_in_that_order():
    verdicts = Verdicts(
        applied=[(1, 2, "pending", None)],
        failed=[(2, 1, "applied", REFUSAL), (3, 4, "pending", REFUSAL)],
        retry=[(4, 3, "pending", "timed out")],
        removed=[5],
    )
    applied, failed, retry = verdicts.frames()
    assert applied.to_records(index=False).tolist() == [(1, 2, "pending", None)]
    assert failed.to_records(index=False).tolist() == [
        (2, 1, "applied", REFUSAL),
        (3, 4, "pending", REFUSAL),
    ]
    assert retry.to_records(index=False).tolist() == [(4, 3, "pending", "timed out")]
    for frame in (applied, failed, retry):
        assert list(frame.columns) == ["id", "count", "state", "message"]
        assert [str(t) for t in frame.dtypes] == ["int64", "int64", "object", "object"]


def test_verdict_frames_of_an_empty_pass_are_typed_and_empty():
    for frame in Verdicts().frames():
        assert frame.empty
        assert [str(t) for t in frame.dtypes] == ["int64", "int64", "object", "object"]


def test_an_expiring_row_is_wanted_no_more_and_removed_like_a_removing_one():
    plan = plan_of(row(11, 1, "applied"), row(12, 2, "expiring"))
    assert plan.want == {CAD: 1}
    assert verdict_lists(judged(plan, HostOutcome(held(entry(CAD, 1, 5))))) == only(removed=[12])
    kept = plan_of(row(11, 1, "applied"), row(12, 2, "expiring"))
    assert verdict_lists(judged(kept, HostOutcome(held(entry(CAD, 3, 5))))) == only()
