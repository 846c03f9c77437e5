"""The reconciler's failure paths, over loopback HTTP to the emulator, asserting states:
allocation rows (state, attempts, next_attempt_at), the mirror, and what the server holds."""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

import pytest

from tests.faults.conftest import create_foreign_group, foreign_snapshot
from tests.sync.conftest import (
    PREFIX,
    add_pool,
    add_synced_server,
    allocate,
    allocation,
    control,
    desired_state,
    emulator_groups,
    feature_id,
    remove,
    server_state,
    set_count,
    states,
)
from vlm.context import ServiceContext
from vlm.domain import reservation_group_name
from vlm.flexnet import FlexNetClient, HostId, Reservation, ReservationEntry, ReservationGroup
from vlm.flexnet.emulator.server import RunningEmulator, start_emulator
from vlm.secret_box import SecretBox
from vlm.store.drift import drift_report
from vlm.sync import ClientCache, pull_inventory, reconcile_all, reconcile_server
from vlm.sync import batch as batch_module
from vlm.sync.host_task import BREAKER_THRESHOLD, MAX_ROUNDS

H1, H2, H6 = "0050569A0001", "0050569A0002", "0050569A0006"
G1 = reservation_group_name(PREFIX, "ETHERNET", H1)
FEATURES = ("cad", "viz", "sim")


@pytest.fixture
def server(ctx: ServiceContext, emulator: RunningEmulator) -> int:
    return add_synced_server(ctx, emulator.url)


@pytest.fixture
def pool(ctx: ServiceContext, server: int) -> int:
    return add_pool(ctx, {feature_id(ctx, server, f): 20 for f in FEATURES})


@pytest.fixture
def foreign(emulator: RunningEmulator) -> dict:
    """Another team's group on the server; returns its snapshot (compare it afterwards)."""
    with _admin(emulator) as api:
        create_foreign_group(api, "team-x", "xavier", {"cad": 1, "viz": 1})
    return foreign_snapshot(emulator)


def _admin(emu: RunningEmulator, **options: Any) -> FlexNetClient:
    return FlexNetClient(emu.url, username="admin", password="admin", timeout=5, **options)


def _alloc(ctx: ServiceContext, server: int, pool: int, feature: str, host: str, n: int) -> int:
    return allocate(ctx, pool, feature_id(ctx, server, feature), host, n)


def _row(ctx: ServiceContext, alloc_id: int) -> tuple:
    """(state, attempts, next_attempt_at is set, last_error is set) of one allocation."""
    row = allocation(ctx, alloc_id)
    assert row is not None
    return (
        row["state"],
        row["attempts"],
        row["next_attempt_at"] is not None,
        row["last_error"] is not None,
    )


def _mirror(ctx: ServiceContext, server: int) -> list[tuple]:
    return ctx.db.query(
        "SELECT group_id, group_name, owned, reservation_id, host_type, host_id, entry_id, "
        "feature_name, feature_version, count, entry_state FROM reservation_mirror "
        "WHERE server_id = ? ORDER BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11",
        [server],
    )


def _group(emu: RunningEmulator, name: str) -> dict | None:
    found = [g for g in emulator_groups(emu) if g["name"] == name]
    assert len(found) <= 1
    return found[0] if found else None


def _assert_no_duplicate_entries(emu: RunningEmulator) -> None:
    """server_state fails on a feature held twice by one reservation."""
    assert server_state(emu) is not None


def _api_requests(emu: RunningEmulator) -> int:
    return sum(emu.state.request_counts.values())


def _body(name: str, *reservations: tuple[str, dict[str, int]]) -> ReservationGroup:
    return ReservationGroup(
        None,
        name,
        tuple(
            Reservation(
                HostId("ETHERNET", host),
                tuple(ReservationEntry(f, "1.0", n) for f, n in entries.items()),
            )
            for host, entries in reservations
        ),
    )


# -- the server cannot be reached or configured ------------------------------------------------


def test_unreachable_server_backs_off_pending_rows_and_leaves_everything_else_alone(
    ctx: ServiceContext,
) -> None:
    with start_emulator({"features": [{"featureName": "cad", "featureCount": 50}]}) as emu:
        server = add_synced_server(ctx, emu.url)
        pool = add_pool(ctx, {feature_id(ctx, server, "cad"): 50})
        applied = _alloc(ctx, server, pool, "cad", H1, 2)
        leaving = _alloc(ctx, server, pool, "cad", H2, 1)
        assert reconcile_server(ctx, server).applied == 2
        remove(ctx, leaving)
        pending = _alloc(ctx, server, pool, "cad", H6, 3)
        mirror = _mirror(ctx, server)
        emu.stop()

        report = reconcile_server(ctx, server)

    assert report.error is not None and not report.ok
    assert (report.transient, report.applied, report.removed, report.operations) == (1, 0, 0, 0)
    assert _row(ctx, pending) == ("pending", 1, True, True)
    assert _row(ctx, applied) == ("applied", 0, False, False)
    assert _row(ctx, leaving)[0] == "removing"
    assert states(ctx) == {"applied": 1, "removing": 1, "pending": 1}
    assert _mirror(ctx, server) == mirror


def _broken_password(ctx: ServiceContext, server: int) -> None:
    """The stored password was encrypted with another key (e.g. the key was rotated)."""
    foreign_token = SecretBox(SecretBox.generate_key()).encrypt("admin")
    ctx.db.write(
        lambda cur: cur.execute(
            "UPDATE license_servers SET password_encrypted = ? WHERE id = ?",
            [foreign_token, server],
        )
    )


@pytest.mark.parametrize("cached", [True, False], ids=["client_cache", "fresh_clients"])
def test_a_server_whose_password_cannot_be_decrypted_fails_alone(
    ctx: ServiceContext, emulator: RunningEmulator, emulator2: RunningEmulator, cached: bool
) -> None:
    broken = add_synced_server(ctx, emulator.url, "lls-a")
    fine = add_synced_server(ctx, emulator2.url, "lls-b")
    pool = add_pool(ctx, {feature_id(ctx, s, "cad"): 20 for s in (broken, fine)})
    stuck = _alloc(ctx, broken, pool, "cad", H1, 2)
    going = _alloc(ctx, fine, pool, "cad", H1, 2)
    _broken_password(ctx, broken)
    requests_before = _api_requests(emulator)
    cache = ClientCache(ctx) if cached else None

    try:
        reports = reconcile_all(ctx, client_cache=cache)
    finally:
        if cache is not None:
            cache.close_all()

    by_server = {r.server_id: r for r in reports}
    assert list(by_server) == [broken, fine]
    assert by_server[broken].error is not None and by_server[broken].applied == 0
    assert by_server[fine].error is None and by_server[fine].applied == 1
    assert allocation(ctx, stuck)["state"] == "pending"
    assert _row(ctx, going) == ("applied", 0, False, False)
    assert _api_requests(emulator) == requests_before
    assert server_state(emulator) == {}
    assert server_state(emulator2) == desired_state(ctx, fine)
    if not cached:
        assert _row(ctx, stuck) == ("pending", 1, True, True)


# -- groups changed by someone else ----------------------------------------------------------------


def test_entries_edited_outside_vlm_in_its_group_are_restored_exactly(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, foreign: dict
) -> None:
    ids = [_alloc(ctx, server, pool, f, H1, n) for f, n in (("cad", 3), ("viz", 2))]
    reconcile_server(ctx, server)
    with _admin(emulator) as api:
        (group,) = api.reservation_groups(G1)
        reservation = group.reservations[0]
        viz = next(e for e in reservation.entries if e.feature_name == "viz")
        api.delete_entry(group.id, reservation.id, viz.id)
        api.add_entries(
            group.id,
            reservation.id,
            [ReservationEntry("viz", "1.0", 5), ReservationEntry("sim", "1.0", 1)],
        )
    assert server_state(emulator)[G1] == {
        ("ETHERNET", H1): {("cad", "1.0"): 3, ("viz", "1.0"): 5, ("sim", "1.0"): 1}
    }

    report = reconcile_server(ctx, server)

    assert report.error is None and report.failed == 0
    assert server_state(emulator) == {
        G1: {("ETHERNET", H1): {("cad", "1.0"): 3, ("viz", "1.0"): 2}}
    }
    assert [_row(ctx, i) for i in ids] == [("applied", 0, False, False)] * 2
    assert foreign_snapshot(emulator) == foreign
    assert pull_inventory(ctx, server).ok
    assert drift_report(ctx.db, server).empty


def test_a_second_reservation_in_a_vlm_named_group_is_replaced_by_the_desired_one(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, foreign: dict
) -> None:
    ids = [_alloc(ctx, server, pool, f, H1, n) for f, n in (("cad", 3), ("viz", 2))]
    reconcile_server(ctx, server)
    with _admin(emulator) as api:
        (group,) = api.reservation_groups(G1)
        api.delete_group(group.id)
        api.create_reservation_group(_body(G1, (H1, {"cad": 3, "viz": 2}), (H6, {"sim": 4})))
    assert len(_group(emulator, G1)["reservations"]) == 2

    report = reconcile_server(ctx, server)

    assert report.error is None
    assert server_state(emulator) == {
        G1: {("ETHERNET", H1): {("cad", "1.0"): 3, ("viz", "1.0"): 2}}
    }
    assert [_row(ctx, i) for i in ids] == [("applied", 0, False, False)] * 2
    assert foreign_snapshot(emulator) == foreign


class VanishingClient(FlexNetClient):
    """Deletes one group through the API right after the pass has read every group."""

    def __init__(self, *args: Any, vanish: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.vanish = vanish

    def group_answer_bytes(self) -> tuple[bytes, str]:
        answer = super().group_answer_bytes()
        for group in super().reservation_groups(self.vanish):
            self.delete_group(group.id)
        return answer


def test_a_group_that_vanished_after_the_pass_read_is_created_again(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, foreign: dict
) -> None:
    edited = _alloc(ctx, server, pool, "cad", H1, 2)
    kept = _alloc(ctx, server, pool, "viz", H1, 1)
    other = _alloc(ctx, server, pool, "cad", H2, 1)
    reconcile_server(ctx, server)
    g2 = reservation_group_name(PREFIX, "ETHERNET", H2)
    h2_group = _group(emulator, g2)
    set_count(ctx, edited, 4)

    with VanishingClient(emulator.url, username="admin", password="admin", vanish=G1) as api:
        report = reconcile_server(ctx, server, api)

    assert report.error is None and report.transient == 0
    assert server_state(emulator)[G1] == {("ETHERNET", H1): {("cad", "1.0"): 4, ("viz", "1.0"): 1}}
    assert [_row(ctx, i) for i in (edited, kept, other)] == [("applied", 0, False, False)] * 3
    assert _group(emulator, g2) == h2_group
    assert foreign_snapshot(emulator) == foreign


class NamedListingWithoutReservations(FlexNetClient):
    """A server whose answer to a read by name lists the group without its reservations."""

    def reservation_groups(self, name: str | None = None) -> list[ReservationGroup]:
        return [replace(g, reservations=()) for g in super().reservation_groups(name)]


def test_a_group_read_by_name_without_reservations_is_completed_before_it_is_edited(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, foreign: dict
) -> None:
    edited = _alloc(ctx, server, pool, "cad", H1, 2)
    kept = _alloc(ctx, server, pool, "viz", H1, 1)
    reconcile_server(ctx, server)
    gid = _group(emulator, G1)["id"]
    set_count(ctx, edited, 4)

    with NamedListingWithoutReservations(emulator.url, username="admin", password="admin") as api:
        report = reconcile_server(ctx, server, api)

    assert report.error is None and report.applied == 1
    assert emulator.state.request_counts[f"GET /api/1.0/reservationgroups/{gid}/reservations"] > 0
    assert _group(emulator, G1)["id"] == gid
    assert server_state(emulator) == {
        G1: {("ETHERNET", H1): {("cad", "1.0"): 4, ("viz", "1.0"): 1}}
    }
    assert [_row(ctx, i) for i in (edited, kept)] == [("applied", 0, False, False)] * 2
    assert foreign_snapshot(emulator) == foreign


class ShiftingClient(FlexNetClient):
    """After every read of a group by name, someone deletes it and creates it again (new ids)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.shifts = 0

    def reservation_groups(self, name: str | None = None) -> list[ReservationGroup]:
        answer = super().reservation_groups(name)
        if name is not None:
            for group in answer:
                super().delete_group(group.id)
                super().create_reservation_group(replace(group, id=None))
                self.shifts += 1
        return answer


def test_a_group_that_keeps_changing_under_the_task_leaves_its_rows_pending(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, foreign: dict
) -> None:
    edited = _alloc(ctx, server, pool, "cad", H1, 3)
    reconcile_server(ctx, server)
    set_count(ctx, edited, 5)

    with ShiftingClient(emulator.url, username="admin", password="admin") as api:
        report = reconcile_server(ctx, server, api)

    assert report.error is None
    assert (report.transient, report.applied, report.failed) == (1, 0, 0)
    assert _row(ctx, edited) == ("pending", 1, True, True)
    assert 0 < api.shifts <= MAX_ROUNDS + 2
    assert server_state(emulator)[G1] == {("ETHERNET", H1): {("cad", "1.0"): 3}}
    assert foreign_snapshot(emulator) == foreign


def test_a_host_whose_every_entry_is_refused_leaves_no_empty_group(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int
) -> None:
    gone = _alloc(ctx, server, pool, "cad", H1, 2)
    reconcile_server(ctx, server)
    with _admin(emulator) as api:
        create_foreign_group(api, "team-y", "yves", {"viz": 30, "sim": 20})
    foreign = foreign_snapshot(emulator)
    remove(ctx, gone)
    refused = [_alloc(ctx, server, pool, f, H1, 2) for f in ("viz", "sim")]

    report = reconcile_server(ctx, server)

    assert report.error is None and report.failed == 2 and report.removed == 1
    assert _group(emulator, G1) is None
    assert allocation(ctx, gone) is None
    assert [_row(ctx, i) for i in refused] == [("failed", 0, False, True)] * 2
    assert all(allocation(ctx, i)["last_error"].startswith("Insufficient") for i in refused)
    assert ctx.db.scalar("SELECT count(*) FROM reservation_mirror WHERE group_name = ?", [G1]) == 0
    assert foreign_snapshot(emulator) == foreign


class FailingAfterReadClient(FlexNetClient):
    """Lets the pass read the groups, then the server answers 503 to every request."""

    def __init__(self, emu: RunningEmulator) -> None:
        super().__init__(emu.url, username="admin", password="admin", timeout=5, retries=0)
        self.emu = emu
        self.requests_at_failure = 0

    def group_answer_bytes(self) -> tuple[bytes, str]:
        answer = super().group_answer_bytes()
        control(self.emu, "POST", "faults", {"error_rate": 1.0, "error_statuses": [503]})
        self.requests_at_failure = _api_requests(self.emu)
        return answer


def test_the_breaker_stops_a_pass_after_threshold_failures_and_rows_stay_pending(
    ctx: ServiceContext,
    emulator: RunningEmulator,
    server: int,
    pool: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Hosts placed one group each (no batch: each sends its own request) stop sending once
    the breaker opens."""
    monkeypatch.setattr(batch_module, "BATCH_MIN_HOSTS", 10**6)
    hosts = [f"0050569E{i:04X}" for i in range(3 * BREAKER_THRESHOLD)]
    ids = [_alloc(ctx, server, pool, "cad" if i % 2 else "viz", h, 1) for i, h in enumerate(hosts)]

    with FailingAfterReadClient(emulator) as api:
        report = reconcile_server(ctx, server, api, workers=1)

    sent = _api_requests(emulator) - api.requests_at_failure
    assert sent == BREAKER_THRESHOLD
    assert emulator.state.request_counts["POST /api/1.0/reservationgroups"] < len(hosts)
    assert report.transient == len(hosts) and report.applied == 0
    assert {_row(ctx, i) for i in ids} == {("pending", 1, True, True)}
    assert server_state(emulator) == {}


# -- lost responses ------------------------------------------------------------------------------

LOST_PATHS = {
    "create": r"POST /api/1\.0/reservationgroups",
    "add_entries": r"POST /api/1\.0/reservationgroups/\d+/reservations/\d+/entries",
    "delete_entry": r"DELETE /api/1\.0/reservationgroups/\d+/reservations/\d+/entries/\d+",
    "delete_group": r"DELETE /api/1\.0/reservationgroups/\d+",
}


def _prepare_lost(ctx: ServiceContext, server: int, pool: int, case: str) -> None:
    """Bring the host to the state before the write whose response will be lost."""
    if case == "create":
        _alloc(ctx, server, pool, "cad", H1, 2)
        return
    cad = _alloc(ctx, server, pool, "cad", H1, 2)
    viz = None if case == "delete_group" else _alloc(ctx, server, pool, "viz", H1, 1)
    assert reconcile_server(ctx, server).applied == (1 if viz is None else 2)
    if case == "add_entries":
        _alloc(ctx, server, pool, "sim", H1, 3)
    elif case == "count_edit":
        set_count(ctx, cad, 4)
    elif case == "remove_entry":
        remove(ctx, viz)
    else:
        remove(ctx, cad)


LOST_CASES = {
    "create": "create",
    "add_entries": "add_entries",
    "count_edit": "delete_entry",
    "remove_entry": "delete_entry",
    "delete_group": "delete_group",
}


@pytest.mark.parametrize("case", list(LOST_CASES))
def test_a_lost_write_response_converges_on_the_next_pass_without_duplicates(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, foreign: dict, case: str
) -> None:
    _prepare_lost(ctx, server, pool, case)
    control(emulator, "POST", "faults", {"lose_write_responses": 1})

    first = reconcile_server(ctx, server)

    lost = emulator.state.lost_response_counts
    assert list(lost.values()) == [1]
    assert re.fullmatch(LOST_PATHS[LOST_CASES[case]], next(iter(lost)))
    assert first.error is None and first.failed == 0
    _assert_no_duplicate_entries(emulator)

    second = reconcile_server(ctx, server, force=True)

    assert second.error is None and second.failed == 0
    assert server_state(emulator) == desired_state(ctx, server)
    assert set(states(ctx)) <= {"applied"}
    assert {g["name"] for g in emulator_groups(emulator)} == {"team-x"} | set(
        desired_state(ctx, server)
    )
    assert reconcile_server(ctx, server, force=True).operations == 0
    assert foreign_snapshot(emulator) == foreign


def test_lost_responses_at_random_converge_without_duplicates(
    ctx: ServiceContext, emulator: RunningEmulator, server: int, pool: int, foreign: dict
) -> None:
    hosts = [f"0050569F{i:04X}" for i in range(8)]
    ids = [_alloc(ctx, server, pool, "cad", h, 1) for h in hosts]
    reconcile_server(ctx, server)
    for i, alloc_id in enumerate(ids):
        if i % 3 == 0:
            remove(ctx, alloc_id)
        elif i % 3 == 1:
            set_count(ctx, alloc_id, 2)
        else:
            _alloc(ctx, server, pool, "viz", hosts[i], 1)
    control(emulator, "POST", "faults", {"lose_write_rate": 0.5, "seed": 3})

    for _ in range(6):
        reconcile_server(ctx, server, force=True)
        _assert_no_duplicate_entries(emulator)
    control(emulator, "DELETE", "faults")
    reconcile_server(ctx, server, force=True)

    assert sum(emulator.state.lost_response_counts.values()) > 0
    assert server_state(emulator) == desired_state(ctx, server)
    assert states(ctx) == {"applied": len(hosts) - 3 + 2}
    assert foreign_snapshot(emulator) == foreign
