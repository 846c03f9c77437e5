"""Reconciler convergence against emulated servers over loopback HTTP, with faults and crashes."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest

from tests.faults.conftest import create_foreign_group
from tests.sync.conftest import (
    PREFIX,
    add_pool,
    add_synced_server,
    allocate,
    allocate_many,
    allocation,
    control,
    desired_state,
    emulator_groups,
    feature_id,
    new_client,
    remove,
    server_state,
    set_count,
    set_feature_count,
    states,
)
from vlm.config import DEFAULT_BATCH_HOSTS as BATCH_HOSTS
from vlm.domain import is_batch_group, reservation_group_name
from vlm.flexnet import (
    FlexNetClient,
    HostId,
    Reservation,
    ReservationEntry,
    ReservationGroup,
)
from vlm.flexnet.emulator.server import start_emulator
from vlm.store.drift import drift_report
from vlm.sync import pull_inventory, reconcile_all, reconcile_server, sync_all

H1, H2, H3, H4, H5 = (f"0050569A000{i}" for i in range(1, 6))


@dataclass
class Estate:
    """Two synced servers (features 1.0 on a, 2.0 on b) and two pools spanning them."""

    a: int
    b: int
    pool: int
    pool2: int

    def sf(self, ctx, server: int, name: str) -> int:
        return feature_id(ctx, server, name)


@pytest.fixture
def estate(ctx, emulator, emulator2) -> Estate:
    a = add_synced_server(ctx, emulator.url, "lls-a")
    b = add_synced_server(ctx, emulator2.url, "lls-b")
    portions = {feature_id(ctx, s, f): 15 for s in (a, b) for f in ("cad", "viz", "sim")}
    pool = add_pool(ctx, portions, "eng")
    pool2 = add_pool(ctx, {feature_id(ctx, a, "cad"): 10, feature_id(ctx, b, "cad"): 10}, "ops")
    return Estate(a, b, pool, pool2)


def _group_body(name: str, host: str, entries: dict[str, int]) -> ReservationGroup:
    res = Reservation(
        HostId("ETHERNET", host),
        tuple(ReservationEntry(f, "1.0", c) for f, c in entries.items()),
    )
    return ReservationGroup(None, name, (res,))


def _assert_converged(ctx, estate: Estate, emulator, emulator2) -> None:
    assert server_state(emulator) == desired_state(ctx, estate.a)
    assert server_state(emulator2) == desired_state(ctx, estate.b)
    assert set(states(ctx)) <= {"applied"}, states(ctx)


def _host_counts(emu) -> dict[tuple[str, str], int]:
    """How many reservations each host id has on the server (must never exceed 1)."""
    found: dict[tuple[str, str], int] = {}
    for group in emulator_groups(emu):
        for res in group["reservations"]:
            host = (res["hostId"]["type"], res["hostId"]["value"])
            found[host] = found.get(host, 0) + 1
    return found


def test_allocations_edits_and_removals_converge_on_two_servers(
    ctx, estate, emulator, emulator2
) -> None:
    e, sf = estate, estate.sf
    with new_client(ctx, e.a) as client:
        client.create_reservation_group(_group_body("team-x", "AAAAAAAAAAAA", {"viz": 2}))
    h1_cad = allocate(ctx, e.pool, sf(ctx, e.a, "cad"), H1, 3)
    allocate(ctx, e.pool, sf(ctx, e.a, "viz"), H1, 2)
    h2_cad = allocate(ctx, e.pool, sf(ctx, e.a, "cad"), H2, 1)
    allocate(ctx, e.pool, sf(ctx, e.b, "cad"), H3, 4)
    h3_sim = allocate(ctx, e.pool, sf(ctx, e.b, "sim"), H3, 2)
    allocate(ctx, e.pool, sf(ctx, e.b, "cad"), "alice", 1, host_type="USER")
    allocate(ctx, e.pool, sf(ctx, e.a, "cad"), H4, 2)
    h4_ops = allocate(ctx, e.pool2, sf(ctx, e.a, "cad"), H4, 3)

    reports = reconcile_all(ctx)

    assert [r.error for r in reports] == [None, None]
    assert sum(r.applied for r in reports) == 8
    _assert_converged(ctx, estate, emulator, emulator2)
    h4_group = reservation_group_name(PREFIX, "ETHERNET", H4)
    assert server_state(emulator)[h4_group] == {("ETHERNET", H4): {("cad", "1.0"): 5}}

    set_count(ctx, h1_cad, 5)
    remove(ctx, h2_cad)
    remove(ctx, h3_sim)
    set_count(ctx, h4_ops, 1)
    allocate(ctx, e.pool, sf(ctx, e.b, "viz"), H1, 2)
    allocate(ctx, e.pool, sf(ctx, e.b, "sim"), "alice", 3, host_type="USER")

    reports = reconcile_all(ctx)

    assert sum(r.removed for r in reports) == 2
    _assert_converged(ctx, estate, emulator, emulator2)
    assert allocation(ctx, h2_cad) is None and allocation(ctx, h3_sim) is None
    assert reservation_group_name(PREFIX, "ETHERNET", H2) not in server_state(emulator)
    assert server_state(emulator)[h4_group] == {("ETHERNET", H4): {("cad", "1.0"): 3}}
    assert server_state(emulator, prefix="team-") == {
        "team-x": {("ETHERNET", "AAAAAAAAAAAA"): {("viz", "1.0"): 2}}
    }
    again = reconcile_all(ctx)
    assert sum(r.operations for r in again) == 0


def test_converges_under_injected_503s_and_dropped_connections(
    ctx, estate, emulator, emulator2
) -> None:
    e, sf = estate, estate.sf
    ids = []
    for i in range(12):
        server = e.a if i % 2 else e.b
        host = f"0050569B{i:04X}"
        ids.append(allocate(ctx, e.pool, sf(ctx, server, "cad"), host, 1 + i % 3))
        ids.append(allocate(ctx, e.pool, sf(ctx, server, "viz"), host, 1))
    for emu in (emulator, emulator2):
        control(emu, "POST", "faults", {"error_rate": 0.3, "drop_rate": 0.15, "seed": 7})

    passes = 0
    while passes < 30:
        passes += 1
        sync_all(ctx)
        if passes == 2:
            for alloc_id in ids[:6]:
                set_count(ctx, alloc_id, 2)
            for alloc_id in ids[6:10]:
                remove(ctx, alloc_id)
        converged = server_state(emulator) == desired_state(ctx, e.a) and server_state(
            emulator2
        ) == desired_state(ctx, e.b)
        if passes > 2 and converged and set(states(ctx)) <= {"applied"}:
            break
    for emu in (emulator, emulator2):
        control(emu, "DELETE", "faults")

    assert passes < 30, f"no convergence after {passes} passes: {states(ctx)}"
    _assert_converged(ctx, estate, emulator, emulator2)
    assert states(ctx)["applied"] == 20
    for emu in (emulator, emulator2):
        assert set(_host_counts(emu).values()) == {1}


class Crash(Exception):
    """Stands for the process dying between two server operations."""


class CrashingClient(FlexNetClient):
    """The real client, except that every write after the first `allow` ones 'crashes'."""

    def __init__(self, *args, allow: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._allow = allow
        self._lock = threading.Lock()

    def _spend(self) -> None:
        with self._lock:
            if self._allow <= 0:
                raise Crash("process killed")
            self._allow -= 1

    def create_reservation_group(self, group):
        self._spend()
        return super().create_reservation_group(group)

    def add_entries(self, group_id, reservation_id, entries):
        self._spend()
        return super().add_entries(group_id, reservation_id, entries)

    def delete_entry(self, group_id, reservation_id, entry_id):
        self._spend()
        return super().delete_entry(group_id, reservation_id, entry_id)

    def delete_group(self, group_id):
        self._spend()
        return super().delete_group(group_id)


def _crashing(emu, allow: int) -> CrashingClient:
    return CrashingClient(emu.url, username="admin", password="admin", allow=allow)


def test_crash_after_some_creates_then_rerun_converges(ctx, estate, emulator) -> None:
    e = estate
    for i in range(6):
        allocate(ctx, e.pool, e.sf(ctx, e.a, "cad"), f"0050569C{i:04X}", 2)

    with _crashing(emulator, allow=3) as client, pytest.raises(Crash):
        reconcile_server(ctx, e.a, client, workers=1)

    assert len(server_state(emulator)) == 3
    assert states(ctx) == {"pending": 6}
    assert ctx.db.scalar("SELECT count(*) FROM reservation_mirror WHERE owned") == 0

    report = reconcile_server(ctx, e.a)

    assert report.error is None and report.applied == 6
    assert server_state(emulator) == desired_state(ctx, e.a)
    assert states(ctx) == {"applied": 6}
    assert set(_host_counts(emulator).values()) == {1}


def test_crash_between_delete_and_add_of_an_edit_then_rerun_converges(
    ctx, estate, emulator
) -> None:
    e = estate
    cad = allocate(ctx, e.pool, e.sf(ctx, e.a, "cad"), H1, 2)
    allocate(ctx, e.pool, e.sf(ctx, e.a, "viz"), H1, 1)
    reconcile_server(ctx, e.a)
    set_count(ctx, cad, 4)

    with _crashing(emulator, allow=1) as client, pytest.raises(Crash):
        reconcile_server(ctx, e.a, client)

    group = reservation_group_name(PREFIX, "ETHERNET", H1)
    assert server_state(emulator)[group] == {("ETHERNET", H1): {("viz", "1.0"): 1}}

    reconcile_server(ctx, e.a)

    assert server_state(emulator)[group] == {
        ("ETHERNET", H1): {("cad", "1.0"): 4, ("viz", "1.0"): 1}
    }
    assert allocation(ctx, cad)["state"] == "applied"


def test_group_created_but_not_recorded_is_adopted(ctx, estate, emulator) -> None:
    e = estate
    alloc = allocate(ctx, e.pool, e.sf(ctx, e.a, "cad"), H1, 3)
    name = reservation_group_name(PREFIX, "ETHERNET", H1)
    with new_client(ctx, e.a) as client:
        client.create_reservation_group(_group_body(name, H1, {"cad": 1, "sim": 2}))

    report = reconcile_server(ctx, e.a)

    assert report.error is None and report.applied == 1
    assert server_state(emulator) == {name: {("ETHERNET", H1): {("cad", "1.0"): 3}}}
    assert allocation(ctx, alloc)["state"] == "applied"
    assert [g["name"] for g in emulator_groups(emulator)] == [name]


def test_group_deleted_outside_vlm_is_restored_on_refresh(ctx, estate, emulator) -> None:
    e = estate
    allocate(ctx, e.pool, e.sf(ctx, e.a, "cad"), H1, 3)
    reconcile_server(ctx, e.a)
    with new_client(ctx, e.a) as client:
        (group,) = client.reservation_groups(reservation_group_name(PREFIX, "ETHERNET", H1))
        client.delete_group(group.id)

    assert pull_inventory(ctx, e.a).ok
    missing = drift_report(ctx.db, e.a)
    assert list(missing["kind"]) == ["missing"] and list(missing["host_id"]) == [H1]

    report = reconcile_server(ctx, e.a)

    assert report.operations == 1
    assert server_state(emulator) == desired_state(ctx, e.a)
    assert drift_report(ctx.db, e.a).empty


def test_changes_made_outside_vlm_are_reported_and_undone(ctx, estate, emulator) -> None:
    e = estate
    allocate(ctx, e.pool, e.sf(ctx, e.a, "cad"), H1, 3)
    reconcile_server(ctx, e.a)
    with new_client(ctx, e.a) as client:
        (group,) = client.reservation_groups(reservation_group_name(PREFIX, "ETHERNET", H1))
        res = group.reservations[0]
        client.add_entries(group.id, res.id, [ReservationEntry("cad", "1.0", 1)])
        client.create_reservation_group(_group_body(f"{PREFIX}stray", H5, {"viz": 1}))

    pull_inventory(ctx, e.a)

    kinds = dict(
        zip(drift_report(ctx.db, e.a)["kind"], drift_report(ctx.db, e.a)["host_id"], strict=True)
    )
    assert kinds == {"changed": H1, "extra": H5}
    stored = ctx.db.query("SELECT kind FROM sync_conflicts WHERE server_id = ? ORDER BY 1", [e.a])
    assert stored == [("changed",), ("extra",)]

    reconcile_server(ctx, e.a)
    pull_inventory(ctx, e.a)

    assert server_state(emulator) == desired_state(ctx, e.a)
    assert ctx.db.scalar("SELECT count(*) FROM sync_conflicts") == 0


def test_host_held_by_a_foreign_group_fails_and_is_reported(ctx, estate, emulator) -> None:
    e = estate
    with new_client(ctx, e.a) as client:
        client.create_reservation_group(_group_body("team-x", H1, {"cad": 2}))
    held = allocate(ctx, e.pool, e.sf(ctx, e.a, "cad"), H1, 1)
    fine = allocate(ctx, e.pool, e.sf(ctx, e.a, "cad"), H2, 1)
    pull_inventory(ctx, e.a)

    reconcile_server(ctx, e.a)

    row = allocation(ctx, held)
    assert row["state"] == "failed"
    assert "already reserved in group 'team-x'" in row["last_error"]
    assert allocation(ctx, fine)["state"] == "applied"
    assert server_state(emulator, prefix="team-") == {
        "team-x": {("ETHERNET", H1): {("cad", "1.0"): 2}}
    }
    pull_inventory(ctx, e.a)
    conflicts = ctx.db.query_dicts(
        "SELECT * FROM sync_conflicts WHERE kind = 'host_held_elsewhere'"
    )
    assert [(c["host_type"], c["host_id"]) for c in conflicts] == [("ETHERNET", H1)]
    assert "team-x" in conflicts[0]["detail"]
    assert (
        ctx.db.scalar(
            "SELECT reserved_by_others FROM server_features WHERE id = ?", [e.sf(ctx, e.a, "cad")]
        )
        == 2
    )


def test_count_drop_below_pooled_marks_over_committed_and_deletes_nothing(
    ctx, estate, emulator
) -> None:
    e = estate
    cad = e.sf(ctx, e.a, "cad")
    ids = [allocate(ctx, e.pool, cad, host, 5) for host in (H1, H2)]
    reconcile_server(ctx, e.a)
    portions = ctx.db.query("SELECT * FROM pool_portions ORDER BY 1, 2, 3")
    allocations = ctx.db.query("SELECT id, count, state FROM allocations ORDER BY id")

    set_feature_count(emulator, "cad", 8)
    assert pull_inventory(ctx, e.a).ok

    over = ctx.db.query_dicts("SELECT * FROM sync_conflicts WHERE kind = 'over_committed'")
    assert [(c["feature_name"], c["feature_version"]) for c in over] == [("cad", "1.0")]
    assert "deficit 17" in over[0]["detail"]
    report = drift_report(ctx.db, e.a)
    assert list(report.loc[report["kind"] == "over_committed", "deficit"]) == [17]

    reconcile_server(ctx, e.a)

    # nothing is deleted; the entry the server disabled (the newest one it created) reads
    # "disabled by server", the other stays applied
    assert ctx.db.query("SELECT * FROM pool_portions ORDER BY 1, 2, 3") == portions
    assert [r[:2] for r in allocations] == [(ids[0], 5), (ids[1], 5)]
    after = ctx.db.query("SELECT id, count, state FROM allocations ORDER BY id")
    assert sorted(state for _, _, state in after) == ["applied", "disabled"]
    [disabled] = [aid for aid, _, state in after if state == "disabled"]
    entry_states = {
        res["hostId"]["value"]: res["reservationEntries"][0]["state"]
        for g in emulator_groups(emulator)
        for res in g["reservations"]
    }
    assert entry_states[allocation(ctx, disabled)["host_id"]] == "DISABLED"
    assert set(drift_report(ctx.db, e.a)["kind"]) >= {"over_committed", "disabled_by_server"}
    assert len(server_state(emulator)) == 2

    set_feature_count(emulator, "cad", 50)
    reconcile_server(ctx, e.a)
    assert ctx.db.query("SELECT id, count, state FROM allocations ORDER BY id") == allocations
    kinds = [k for (k,) in ctx.db.query("SELECT kind FROM drift_events ORDER BY id")]
    assert kinds == ["disabled", "re-enabled"]


def _taken_outside(ctx, server: int, team: str, holder: str, entries: dict[str, int]) -> None:
    """Another team reserves counts on the server after VLM last read it (VLM does not know)."""
    with new_client(ctx, server) as client:
        create_foreign_group(client, team, holder, entries)


def test_insufficient_count_fails_only_the_refused_allocations(ctx, estate, emulator) -> None:
    e = estate
    sim, cad, viz = (e.sf(ctx, e.a, f) for f in ("sim", "cad", "viz"))
    first = allocate(ctx, e.pool, sim, H1, 3)
    reconcile_server(ctx, e.a)
    too_many = allocate(ctx, e.pool, sim, H2, 6)
    other = allocate(ctx, e.pool, cad, H3, 1)
    mixed_cad = allocate(ctx, e.pool, cad, H4, 2)
    mixed_sim = allocate(ctx, e.pool, sim, H4, 6)
    _taken_outside(ctx, e.a, "team-x", "xavier", {"sim": 12})  # 20 - 3 - 12 = 5 sim left

    report = reconcile_server(ctx, e.a)

    assert report.failed == 2 and report.applied == 2
    assert allocation(ctx, first)["state"] == "applied"
    assert allocation(ctx, other)["state"] == "applied"
    assert allocation(ctx, mixed_cad)["state"] == "applied"
    for refused in (too_many, mixed_sim):
        row = allocation(ctx, refused)
        assert row["state"] == "failed"
        assert row["last_error"].startswith("Insufficient unreserved count for feature 'sim'")
    h4 = reservation_group_name(PREFIX, "ETHERNET", H4)
    assert server_state(emulator)[h4] == {("ETHERNET", H4): {("cad", "1.0"): 2}}
    assert reservation_group_name(PREFIX, "ETHERNET", H2) not in server_state(emulator)

    base = allocate(ctx, e.pool, viz, H5, 10)
    reconcile_server(ctx, e.a)
    lab = add_pool(ctx, {viz: 15}, "lab")
    extra = allocate(ctx, lab, viz, H5, 15)
    _taken_outside(ctx, e.a, "team-y", "yves", {"viz": 10})  # 30 - 10 - 10 = 10 viz left

    reconcile_server(ctx, e.a)

    assert allocation(ctx, base)["state"] == "applied"
    assert allocation(ctx, extra)["state"] == "failed"
    h5 = reservation_group_name(PREFIX, "ETHERNET", H5)
    assert server_state(emulator)[h5] == {("ETHERNET", H5): {("viz", "1.0"): 10}}
    assert reconcile_server(ctx, e.a).operations == 0


def test_transient_failure_backs_off_then_applies(ctx, estate, emulator) -> None:
    e = estate
    alloc = allocate(ctx, e.pool, e.sf(ctx, e.a, "cad"), H1, 2)
    control(emulator, "POST", "faults", {"error_rate": 1.0, "error_statuses": [503]})

    report, backoff = _backoff_of(ctx, lambda: reconcile_server(ctx, e.a))

    row = allocation(ctx, alloc)
    assert report.transient == 1
    assert row["state"] == "pending" and row["attempts"] == 1 and "503" in row["last_error"]
    assert backoff.allows(1.0)
    ctx.db.write(  # not due yet: pinned an hour ahead so the check does not race the clock
        lambda cur: cur.execute(
            "UPDATE allocations SET next_attempt_at = now()::TIMESTAMP + INTERVAL '1 hour'"
        )
    )
    assert reconcile_server(ctx, e.a).operations == 0
    assert allocation(ctx, alloc)["attempts"] == 1

    _, backoff = _backoff_of(ctx, lambda: reconcile_server(ctx, e.a, force=True))
    assert allocation(ctx, alloc)["attempts"] == 2
    assert backoff.allows(2.0)

    control(emulator, "DELETE", "faults")
    reconcile_server(ctx, e.a, force=True)
    row = allocation(ctx, alloc)
    assert row["state"] == "applied" and row["attempts"] == 0 and row["last_error"] is None


@dataclass(frozen=True)
class Backoff:
    """The backoff a pass set, bounded by the database clock read before and after the pass."""

    earliest: float
    latest: float

    def allows(self, seconds: float) -> bool:
        return self.earliest - 1e-3 <= seconds <= self.latest + 1e-3


def _backoff_of(ctx, run_pass):
    clock = "SELECT EXTRACT(EPOCH FROM current_timestamp::TIMESTAMP)"
    started = ctx.db.scalar(clock)
    result = run_pass()
    ended = ctx.db.scalar(clock)
    due = ctx.db.scalar("SELECT EXTRACT(EPOCH FROM next_attempt_at) FROM allocations")
    return result, Backoff(earliest=due - ended, latest=due - started)


def test_unreachable_server_is_not_hammered(ctx) -> None:
    emu = start_emulator({"features": [{"featureName": "cad", "featureCount": 500}]})
    server = add_synced_server(ctx, emu.url)
    cad = feature_id(ctx, server, "cad")
    pool = add_pool(ctx, {cad: 500})
    allocate_many(ctx, pool, cad, [f"0050569D{i:04X}" for i in range(200)])
    emu.stop()

    report = reconcile_server(ctx, server)

    assert report.transient == 200 and report.operations < 40
    assert states(ctx) == {"pending": 200}


def test_thousand_new_allocations_are_applied_in_one_pass(ctx) -> None:
    """A grid of 1,000 new allocations goes to the server in batch groups of BATCH_HOSTS hosts,
    one request each, every host reserved exactly once (timing: `make bench`)."""
    fixture = {"features": [{"featureName": "cad", "featureVersion": "1.0", "featureCount": 5000}]}
    hosts = [f"00505E{i:06X}" for i in range(1000)]
    with start_emulator(fixture) as emu:
        server = add_synced_server(ctx, emu.url)
        cad = feature_id(ctx, server, "cad")
        pool = add_pool(ctx, {cad: 5000})
        allocate_many(ctx, pool, cad, hosts)

        report = reconcile_server(ctx, server)

        assert report.applied == 1000 and report.operations == -(-1000 // BATCH_HOSTS)
        groups = server_state(emu)
        assert len(groups) == report.operations
        assert all(is_batch_group(PREFIX, name) for name in groups)
        held = [(host, features) for group in groups.values() for host, features in group.items()]
        assert sorted(host for host, _ in held) == [("ETHERNET", h) for h in hosts]
        assert all(features == {("cad", "1.0"): 1} for _, features in held)
        assert states(ctx) == {"applied": 1000}
        assert reconcile_server(ctx, server).operations == 0
        assert reconcile_server(ctx, server, read_first=False).operations == 0
