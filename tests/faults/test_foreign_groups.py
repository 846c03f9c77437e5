"""A restarted or restored license server hands out stored ids again: VLM must never write to
an object it has not just proven to be its own (issue 7, A1-A4)."""

from __future__ import annotations

import pytest

from tests.faults.conftest import create_foreign_group, foreign_snapshot, group_ids, restart
from tests.sync.conftest import (
    PREFIX,
    add_pool,
    add_synced_server,
    allocate,
    allocation,
    control,
    desired_state,
    feature_id,
    remove,
    server_state,
    set_count,
    states,
)
from vlm.domain import reservation_group_name
from vlm.flexnet.emulator.server import start_emulator
from vlm.sync import pull_inventory, read_reservations, reconcile_server, sync_all
from vlm.sync.host_task import Breaker, HostTask
from vlm.sync.observed import MISSING
from vlm.sync.plan import plan_unsettled

ALICE = reservation_group_name(PREFIX, "USER", "alice")
# a full pass reads every group first; a pass pushed by a save does not, and each host task
# proves ownership by its own read by name
READ_FIRST = pytest.mark.parametrize("read_first", [True, False], ids=["full", "pushed"])


@pytest.fixture
def server(ctx, emulator) -> int:
    return add_synced_server(ctx, emulator.url)


@pytest.fixture
def pool(ctx, server) -> int:
    return add_pool(ctx, {feature_id(ctx, server, f): 20 for f in ("cad", "viz", "sim")})


def _alice_is_group_2(ctx, emulator, server, pool) -> dict[str, int]:
    """VLM owns vlm-USER-bob (id 1) and vlm-USER-alice (id 2); returns allocation ids."""
    cad = feature_id(ctx, server, "cad")
    ids = {"bob": allocate(ctx, pool, cad, "bob", 1, "USER")}
    reconcile_server(ctx, server)
    ids["alice"] = allocate(ctx, pool, cad, "alice", 2, "USER")
    reconcile_server(ctx, server)
    assert group_ids(emulator)[ALICE] == 2
    return ids


def _restart_and_let_other_team_take_id_2(emulator) -> dict:
    restart(emulator)
    with new_client_for(emulator) as api:
        create_foreign_group(api, "team-x", "xavier", {"cad": 1})
        create_foreign_group(api, "other-team", "zoe", {"cad": 3, "viz": 1})
    assert group_ids(emulator)["other-team"] == 2
    return foreign_snapshot(emulator)


def _repaired_by_a_full_pass(ctx, emulator, server, foreign, read_first: bool) -> None:
    """The server matches the allocations. A pushed pass works only on the hosts that changed:
    bob's group, lost in the restart, is put back by the next full pass (it reads every group),
    which must not touch the other teams' groups either."""
    if not read_first:
        reconcile_server(ctx, server)
        assert foreign_snapshot(emulator) == foreign
    assert server_state(emulator) == desired_state(ctx, server)


def new_client_for(emulator):
    from vlm.flexnet import FlexNetClient

    return FlexNetClient(emulator.url, username="admin", password="admin")


@READ_FIRST
def test_removing_after_restart_never_deletes_the_group_that_took_the_stored_id(
    ctx, emulator, server, pool, read_first
) -> None:
    ids = _alice_is_group_2(ctx, emulator, server, pool)
    foreign = _restart_and_let_other_team_take_id_2(emulator)

    remove(ctx, ids["alice"])
    reconcile_server(ctx, server, read_first=read_first)

    assert foreign_snapshot(emulator) == foreign
    assert allocation(ctx, ids["alice"]) is None
    _repaired_by_a_full_pass(ctx, emulator, server, foreign, read_first)


@READ_FIRST
def test_count_edit_after_restart_never_changes_the_group_that_took_the_stored_id(
    ctx, emulator, server, pool, read_first
) -> None:
    ids = _alice_is_group_2(ctx, emulator, server, pool)
    foreign = _restart_and_let_other_team_take_id_2(emulator)

    set_count(ctx, ids["alice"], 4)
    reconcile_server(ctx, server, read_first=read_first)

    assert foreign_snapshot(emulator) == foreign
    assert allocation(ctx, ids["alice"])["state"] == "applied"
    _repaired_by_a_full_pass(ctx, emulator, server, foreign, read_first)


@pytest.mark.parametrize("wanted", [False, True], ids=["delete", "edit"])
def test_a_host_task_with_a_stale_id_proves_ownership_by_name_before_writing(
    ctx, emulator, server, pool, wanted
) -> None:
    """Even when the plan still carries the stale group (id 2 = alice), the task reads by name
    and never writes to id 2, which now belongs to another team."""
    ids = _alice_is_group_2(ctx, emulator, server, pool)
    foreign = _restart_and_let_other_team_take_id_2(emulator)
    if not wanted:
        remove(ctx, ids["alice"])
    else:
        set_count(ctx, ids["alice"], 5)
    # planned from the stored mirror alone (no read of the server yet): it still says id 2
    [plan] = [p for p in plan_unsettled(ctx, server, force=True)[0] if p.group_name == ALICE]
    assert plan.actual is not None and plan.actual.id == 2

    with new_client_for(emulator) as api:
        outcome = HostTask(api, plan, Breaker()).run()

    assert outcome.error is None
    assert foreign_snapshot(emulator) == foreign
    if wanted:
        assert server_state(emulator)[ALICE] == {("USER", "alice"): {("cad", "1.0"): 5}}
    else:
        assert ALICE not in server_state(emulator)


def test_after_the_server_came_back_empty_no_row_reads_applied_until_it_is_held_again(
    ctx, emulator, server, pool
) -> None:
    cad, viz = feature_id(ctx, server, "cad"), feature_id(ctx, server, "viz")
    held = [allocate(ctx, pool, cad if i % 2 else viz, f"0050569A{i:04X}", 1) for i in range(12)]
    reconcile_server(ctx, server)
    assert states(ctx) == {"applied": 12}
    restart(emulator)

    with new_client_for(emulator) as api:
        read_reservations(ctx, server, api)
    assert states(ctx) == {"pending": 12}
    assert {allocation(ctx, a)["last_error"] for a in held} == {MISSING}

    allocate(ctx, pool, cad, "newhost", 1, "USER")  # a save pushes a reconcile
    report = reconcile_server(ctx, server)

    assert report.applied == 13
    assert states(ctx) == {"applied": 13}
    assert server_state(emulator) == desired_state(ctx, server)
    events = ctx.db.query("SELECT kind, count(*) FROM drift_events GROUP BY kind ORDER BY kind")
    assert events == [("missing", 12), ("repaired", 12)]


def test_a_restart_is_detected_from_a_new_instance_id_and_recorded(
    ctx, emulator, server, pool
) -> None:
    allocate(ctx, pool, feature_id(ctx, server, "cad"), "alice", 1, "USER")
    reconcile_server(ctx, server)
    old = ctx.db.scalar("SELECT instance_id FROM license_servers WHERE id = ?", [server])

    restart(emulator, new_instance_id=True)
    result = pull_inventory(ctx, server)

    assert result.ok and result.observation is not None
    assert result.observation.restarted is not None and old in result.observation.restarted
    new = ctx.db.scalar("SELECT instance_id FROM license_servers WHERE id = ?", [server])
    assert new != old
    kinds = [k for (k,) in ctx.db.query("SELECT kind FROM drift_events ORDER BY id")]
    assert kinds == ["server restarted", "missing"]


def test_an_id_that_now_carries_another_name_marks_the_server_restarted(
    ctx, emulator, server, pool
) -> None:
    _alice_is_group_2(ctx, emulator, server, pool)
    _restart_and_let_other_team_take_id_2(emulator)

    result = pull_inventory(ctx, server)

    assert "group id" in (result.observation.restarted or "")
    mirror_ids = ctx.db.query(
        "SELECT DISTINCT group_id, group_name FROM reservation_mirror ORDER BY 1"
    )
    assert mirror_ids == [(1, "team-x"), (2, "other-team")]


def test_a_reservation_deleted_outside_is_a_drift_event_and_its_repair_too(
    ctx, emulator, server, pool
) -> None:
    alloc = allocate(ctx, pool, feature_id(ctx, server, "sim"), "alice", 2, "USER")
    reconcile_server(ctx, server)
    with new_client_for(emulator) as api:
        api.delete_group(group_ids(emulator)[ALICE])

    [result] = sync_all(ctx)

    assert result.ok
    assert allocation(ctx, alloc)["state"] == "applied"
    assert server_state(emulator)[ALICE] == {("USER", "alice"): {("sim", "1.0"): 2}}
    events = ctx.db.query_dicts("SELECT * FROM drift_events ORDER BY id")
    assert [(e["kind"], e["host_id"], e["count"]) for e in events] == [
        ("missing", "alice", 2),
        ("repaired", "alice", 2),
    ]


def test_a_lost_response_to_a_create_converges_without_a_duplicate(
    ctx, emulator, server, pool
) -> None:
    alloc = allocate(ctx, pool, feature_id(ctx, server, "cad"), "alice", 2, "USER")
    with new_client_for(emulator) as api:
        create_foreign_group(api, "other-team", "zoe", {"cad": 3})
    foreign = foreign_snapshot(emulator)
    control(emulator, "POST", "faults", {"lose_write_responses": 1})

    first = reconcile_server(ctx, server, force=True)
    assert first.transient == 1 or first.applied == 1
    reconcile_server(ctx, server, force=True)

    assert allocation(ctx, alloc)["state"] == "applied"
    assert server_state(emulator) == desired_state(ctx, server)
    assert foreign_snapshot(emulator) == foreign


def test_failed_rows_are_retried_on_every_full_pass_and_keep_their_reason_meanwhile(
    ctx, emulator, server, pool
) -> None:
    with new_client_for(emulator) as api:
        blocker = create_foreign_group(api, "other-team", "alice", {"viz": 1})
    alloc = allocate(ctx, pool, feature_id(ctx, server, "cad"), "alice", 1, "USER")
    reconcile_server(ctx, server)
    failed = allocation(ctx, alloc)
    assert failed["state"] == "failed" and failed["last_error"]

    with new_client_for(emulator) as api:
        api.delete_group(blocker.id)
    sync_all(ctx)

    assert allocation(ctx, alloc)["state"] == "applied"
    assert allocation(ctx, alloc)["last_error"] is None


def test_first_read_warns_when_groups_already_carry_the_prefix(ctx) -> None:
    taken = {
        "name": "vlm-USER-someone",
        "reservations": [
            {
                "hostId": {"type": "USER", "value": "someone"},
                "reservationEntries": [
                    {"featureName": "cad", "featureVersion": "1.0", "featureCount": 1}
                ],
            }
        ],
    }
    fixture = {
        "features": [{"featureName": "cad", "featureVersion": "1.0", "featureCount": 5}],
        "reservationGroups": [taken],
    }
    with start_emulator(fixture) as emu:
        server = add_synced_server(ctx, emu.url)
        second = pull_inventory(ctx, server)
    [event] = ctx.db.query_dicts("SELECT * FROM drift_events WHERE server_id = ?", [server])
    assert event["kind"] == "prefix in use" and "vlm-USER-someone" in event["detail"]
    assert second.observation is None or second.observation.prefix_in_use == ()


def test_a_password_in_a_stored_url_never_reaches_a_stored_error(ctx) -> None:
    """A server row from before URLs with credentials were refused: its errors are redacted."""
    url = "http://admin:hunter2@127.0.0.1:9"  # nothing listens on port 9
    server = ctx.db.write(
        lambda cur: cur.execute(
            "INSERT INTO license_servers (name, base_url, timeout_seconds) "
            "VALUES ('old', ?, 0.5) RETURNING id",
            [url],
        ).fetchone()[0]
    )
    assert not pull_inventory(ctx, server).ok
    report = reconcile_server(ctx, server)

    stored = ctx.db.scalar("SELECT last_error FROM license_servers WHERE id = ?", [server])
    assert stored and "hunter2" not in stored
    assert report.error and "hunter2" not in report.error
