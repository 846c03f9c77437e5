"""Emulator fault abilities (issue #7, E): restart in place, lost write responses, slow paths,
entries disabled by a feature shrink, and group snapshots. Everything goes over real HTTP."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from vlm.flexnet import (
    FlexNetClient,
    HostId,
    Reservation,
    ReservationEntry,
    ReservationGroup,
    TransientError,
)
from vlm.flexnet.emulator import RunningEmulator
from vlm.flexnet.emulator.state import iso_utc

from .conftest import INSTANCE_ID

API = "/api/1.0/instances/~"
SOLVER = ("solver", "1.0")


def _group(name: str, host: str, *entries: tuple[str, str, int]) -> ReservationGroup:
    reservation = Reservation(
        HostId("ETHERNET", host), tuple(ReservationEntry(f, v, c) for f, v, c in entries)
    )
    return ReservationGroup(None, name, (reservation,))


def _control(http: httpx.Client, method: str, path: str, body: Any = None) -> Any:
    response = http.request(method, f"/_emulator/{path}", json=body)
    response.raise_for_status()
    return response.json() if response.content else None


def _dump(http: httpx.Client) -> dict[str, Any]:
    return _control(http, "GET", "state")


def _group_ids(http: httpx.Client) -> dict[str, int]:
    return {g["name"]: g["id"] for g in _dump(http)["reservationGroups"]}


def _login(http: httpx.Client) -> dict[str, str]:
    answer = http.post(f"{API}/authorize", json={"user": "admin", "password": "admin"})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}


def _health_instance(http: httpx.Client) -> str:
    return http.get("/api/1.0/health").json()["LLS"]["serverInstanceID"]


def _set_solver_count(http: httpx.Client, count: int) -> None:
    body = {"featureName": SOLVER[0], "featureVersion": SOLVER[1], "count": count}
    _control(http, "POST", "features/count", body)


def _solver_totals(http: httpx.Client) -> tuple[int, int]:
    """(featureCount, reserved) of solver 1.0 summed over its active slices, from /features."""
    rows = http.get(f"{API}/features", params={"activeOnly": "true"}, headers=_login(http)).json()
    mine = [r for r in rows if (r["featureName"], r["featureVersion"]) == SOLVER]
    return sum(r["featureCount"] for r in mine), sum(r["reserved"] for r in mine)


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> bool:
    """Poll `condition` until it holds or `seconds` pass (for work the server finishes later)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


# -- restart in place ----------------------------------------------------------------------


def test_restart_empties_groups_and_the_next_group_gets_id_1(
    client: FlexNetClient, http: httpx.Client
) -> None:
    client.create_reservation_group(_group("before", "AA01", ("solver", "1.0", 2)))
    _set_solver_count(http, 12)
    assert _group_ids(http) == {"preexisting": 1, "before": 2}

    assert http.post("/_emulator/restart").status_code == 200

    assert _dump(http)["reservationGroups"] == []
    created = client.create_reservation_group(_group("after", "AA01", ("solver", "1.0", 3)))
    assert created.id == 1
    assert created.reservations[0].id == 1
    assert created.reservations[0].entries[0].id == 1
    assert _solver_totals(http) == (12, 3)


def test_restart_drops_client_checkouts_but_keeps_users(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    body = {"hostid": {"type": "ETHERNET", "value": "CC01"}, "featureName": "solver"}
    _control(http, "POST", "checkout", {**body, "featureVersion": "1.0", "count": 2})
    assert len(_dump(http)["clients"]) == 1

    _control(http, "POST", "restart", {})

    assert _dump(http)["clients"] == []
    reader = http.post(f"{API}/authorize", json={"user": "reader", "password": "reader"})
    assert reader.status_code == 200
    assert sum(r["used"] for r in emulator.state.list_features()) == 0


def test_restart_invalidates_old_tokens_and_the_client_logs_in_again(
    client: FlexNetClient, http: httpx.Client, emulator: RunningEmulator
) -> None:
    old_headers = _login(http)
    assert http.get(f"{API}/clients", headers=old_headers).status_code == 200
    assert client.reservation_groups()
    assert emulator.state.authorize_calls == 2

    _control(http, "POST", "restart")

    assert http.get(f"{API}/clients", headers=old_headers).status_code == 401
    assert client.reservation_groups() == []
    assert emulator.state.authorize_calls == 3


def test_restart_keeps_the_instance_id_unless_a_new_one_is_asked_for(
    http: httpx.Client, auth_headers: dict[str, str]
) -> None:
    _control(http, "POST", "restart")
    assert _health_instance(http) == INSTANCE_ID

    answer = _control(http, "POST", "restart", {"new_instance_id": True})

    fresh = _health_instance(http)
    assert fresh != INSTANCE_ID and re.fullmatch(r"[A-Z0-9]{12}", fresh)
    assert answer["instanceId"] == fresh == _dump(http)["instanceId"]
    headers = _login(http)
    assert http.get(f"/api/1.0/instances/{fresh}/clients", headers=headers).status_code == 200
    assert http.get(f"/api/1.0/instances/{INSTANCE_ID}/clients", headers=headers).status_code == 404


def test_health_keeps_its_documented_fields_across_restarts(http: httpx.Client) -> None:
    before = set(http.get("/api/1.0/health").json()["LLS"])
    _control(http, "POST", "restart", {"new_instance_id": True})
    assert set(http.get("/api/1.0/health").json()["LLS"]) == before


def test_restart_changes_the_start_time_in_the_state_dump(
    http: httpx.Client, emulator: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(emulator.state, "clock", lambda: 2_000_000_000.0)
    assert _dump(http)["startedAt"] != iso_utc(2_000_000_000.0)

    answer = _control(http, "POST", "restart")

    assert answer["startedAt"] == _dump(http)["startedAt"] == iso_utc(2_000_000_000.0)
    assert _dump(http)["stats"]["restarts"] == 1


def test_restart_keeping_reservations_keeps_groups_and_their_ids(
    client: FlexNetClient, http: httpx.Client, emulator: RunningEmulator
) -> None:
    client.create_reservation_group(_group("kept", "AA01", ("solver", "1.0", 4)))
    body = {"hostid": {"type": "ETHERNET", "value": "AA01"}, "featureName": "solver"}
    _control(http, "POST", "checkout", {**body, "featureVersion": "1.0", "count": 1})
    before = emulator.state.groups_snapshot()

    _control(http, "POST", "restart", {"keep_reservations": True})

    assert emulator.state.groups_snapshot() == before
    assert _dump(http)["clients"] == []
    assert _solver_totals(http) == (17, 4)
    after = client.create_reservation_group(_group("next", "AA02", ("solver", "1.0", 1)))
    assert after.id == 3


def test_restore_from_backup_loads_the_groups_with_ids_from_1(
    client: FlexNetClient, http: httpx.Client, emulator: RunningEmulator
) -> None:
    client.create_reservation_group(_group("a", "AA01", ("solver", "1.0", 2), ("mesher", "3.2", 1)))
    client.create_reservation_group(_group("b", "AA02", ("solver", "1.0", 3)))
    client.delete_group(1)
    backup = _dump(http)
    assert _group_ids(http) == {"a": 2, "b": 3}

    emulator.state.restart(restore=backup)

    assert _group_ids(http) == {"a": 1, "b": 2}
    snapshot = emulator.state.groups_snapshot()
    assert [r["host"]["value"] for g in snapshot.values() for r in g["reservations"]] == [
        "AA01",
        "AA02",
    ]
    assert [
        (e["id"], e["feature"], e["count"]) for e in snapshot[1]["reservations"][0]["entries"]
    ] == [
        (1, "solver", 2),
        (2, "mesher", 1),
    ]
    assert _health_instance(http) == INSTANCE_ID


def test_a_restore_that_does_not_fit_is_refused_and_changes_nothing(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    before = emulator.state.groups_snapshot()
    too_big = {
        "reservationGroups": [
            {
                "name": "huge",
                "reservations": [
                    {
                        "hostId": {"type": "ETHERNET", "value": "EE01"},
                        "reservationEntries": [
                            {"featureName": "solver", "featureVersion": "1.0", "featureCount": 99}
                        ],
                    }
                ],
            }
        ]
    }

    answer = http.post("/_emulator/restart", json={"restore": too_big})

    assert answer.status_code == 400 and "Invalid restore" in answer.json()["message"]
    assert emulator.state.groups_snapshot() == before
    assert _dump(http)["stats"]["restarts"] == 0
    assert _solver_totals(http) == (17, 0)
    mesher = [r for r in emulator.state.list_features() if r["featureName"] == "mesher"]
    assert [r["reserved"] for r in mesher] == [1]


@pytest.mark.parametrize(
    "body",
    [
        {"new_instance_id": "yes"},
        {"keep_reservations": 1},
        {"reboot": True},
        {"keep_reservations": True, "restore": {}},
        [],
    ],
)
def test_restart_refuses_bad_options(
    http: httpx.Client, emulator: RunningEmulator, body: Any
) -> None:
    before = emulator.state.groups_snapshot()
    assert http.post("/_emulator/restart", json=body).status_code == 400
    assert emulator.state.groups_snapshot() == before


# -- lost write responses ------------------------------------------------------------------


def test_a_lost_create_response_is_transient_yet_the_group_exists(
    client: FlexNetClient, http: httpx.Client
) -> None:
    faults = _control(http, "POST", "faults", {"lose_write_responses": 1})
    assert faults["lose_write_responses"] == 1

    with pytest.raises(TransientError):
        client.create_reservation_group(_group("lost", "AA01", ("solver", "1.0", 2)))

    [group] = client.reservation_groups("lost")
    assert [e.count for r in group.reservations for e in r.entries] == [2]
    dump = _dump(http)
    assert dump["faults"]["lose_write_responses"] == 0
    assert dump["stats"]["lostResponses"] == {"POST /api/1.0/reservationgroups": 1}
    answered = client.create_reservation_group(_group("answered", "AA02", ("solver", "1.0", 1)))
    assert answered.id == 3


def test_a_lost_delete_entry_response_still_deletes_the_entry(
    client: FlexNetClient, http: httpx.Client
) -> None:
    created = client.create_reservation_group(
        _group("two", "AA01", ("solver", "1.0", 2), ("mesher", "3.2", 1))
    )
    reservation = created.reservations[0]
    solver_entry = next(e for e in reservation.entries if e.feature_name == "solver")
    _control(http, "POST", "faults", {"lose_write_responses": 1})

    with pytest.raises(TransientError):
        client.delete_entry(created.id, reservation.id, solver_entry.id)

    [left] = client.reservations(created.id)
    assert [e.feature_name for e in left.entries] == ["mesher"]
    assert _solver_totals(http) == (17, 0)


def test_reads_and_logins_never_lose_their_response(
    client: FlexNetClient, http: httpx.Client
) -> None:
    _control(http, "POST", "faults", {"lose_write_responses": 2})

    assert [g.name for g in client.reservation_groups()] == ["preexisting"]
    assert client.feature_slices()

    assert _dump(http)["faults"]["lose_write_responses"] == 2
    with pytest.raises(TransientError):
        client.delete_group(1)
    assert _group_ids(http) == {}
    assert _dump(http)["faults"]["lose_write_responses"] == 1


def test_a_write_refused_by_an_expired_token_keeps_the_lost_response_for_the_retry(
    client: FlexNetClient, http: httpx.Client, emulator: RunningEmulator
) -> None:
    client.clients()
    _control(http, "POST", "faults", {"expire_tokens": True, "lose_write_responses": 1})

    with pytest.raises(TransientError):
        client.create_reservation_group(_group("relogged", "AA01", ("solver", "1.0", 1)))

    assert emulator.state.authorize_calls == 2
    assert "relogged" in _group_ids(http)
    assert _dump(http)["faults"]["lose_write_responses"] == 0


def test_lose_write_rate_is_seeded_and_every_write_is_committed(http: httpx.Client) -> None:
    def run() -> list[bool]:
        _control(http, "POST", "reset")
        _control(http, "POST", "faults", {"lose_write_rate": 0.5, "seed": 11})
        headers = _login(http)
        answered = []
        for i in range(12):
            try:
                http.post(f"{API}/reservationgroups", json={"name": f"g{i}"}, headers=headers)
                answered.append(True)
            except httpx.TransportError:
                answered.append(False)
        assert sorted(_group_ids(http)) == sorted(["preexisting", *(f"g{i}" for i in range(12))])
        return answered

    first, second = run(), run()
    assert first == second
    assert True in first and False in first


def test_clearing_faults_clears_lost_responses(client: FlexNetClient, http: httpx.Client) -> None:
    _control(http, "POST", "faults", {"lose_write_responses": 3, "lose_write_rate": 1.0})
    assert http.delete("/_emulator/faults").status_code == 204

    created = client.create_reservation_group(_group("fine", "AA01", ("solver", "1.0", 1)))

    assert created.id == 2
    faults = _dump(http)["faults"]
    assert (faults["lose_write_responses"], faults["lose_write_rate"]) == (0, 0.0)


@pytest.mark.parametrize(
    "body",
    [
        {"lose_write_responses": -1},
        {"lose_write_responses": 1.5},
        {"lose_write_rate": 2},
        {"slow_paths": "reservationgroups"},
        {"slow_paths": [""]},
    ],
)
def test_bad_fault_settings_are_refused(http: httpx.Client, body: dict[str, Any]) -> None:
    assert http.post("/_emulator/faults", json=body).status_code == 400
    assert _dump(http)["faults"]["lose_write_responses"] == 0


# -- slow answers --------------------------------------------------------------------------


def test_slow_paths_slow_only_the_matching_requests(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    _control(http, "POST", "faults", {"latency_ms": 30_000, "slow_paths": ["reservationgroups"]})
    impatient = FlexNetClient(
        emulator.url, username="admin", password="admin", timeout=0.5, retries=0
    )
    with impatient:
        with pytest.raises(TransientError):
            impatient.reservation_groups()
        assert impatient.clients() == []
        assert impatient.feature_slices()

    delayed = _dump(http)["stats"]["delayed"]
    assert delayed == {"GET /api/1.0/reservationgroups": 1}
    assert _dump(http)["faults"]["slow_paths"] == ["reservationgroups"]


def test_latency_without_slow_paths_applies_to_every_api_request(
    client: FlexNetClient, http: httpx.Client
) -> None:
    _control(http, "POST", "faults", {"latency_ms": 1})

    client.clients()
    client.reservation_groups()

    assert _dump(http)["stats"]["delayed"] == {
        "POST /api/1.0/authorize": 1,
        "GET /api/1.0/clients": 1,
        "GET /api/1.0/reservationgroups": 1,
    }


def test_a_slowed_write_whose_client_gave_up_is_still_executed(
    emulator: RunningEmulator, http: httpx.Client
) -> None:
    _control(http, "POST", "faults", {"latency_ms": 30_000, "slow_paths": ["reservationgroups"]})
    impatient = FlexNetClient(emulator.url, username="admin", password="admin", timeout=0.5)
    with impatient, pytest.raises(TransientError):
        impatient.create_reservation_group(_group("late", "AA01", ("solver", "1.0", 2)))

    assert _wait_for(lambda: "late" in _group_ids(http))
    assert _solver_totals(http) == (17, 2)


# -- entries disabled by a feature shrink --------------------------------------------------


def _entry_states(http: httpx.Client, group_id: int) -> list[str]:
    answer = http.get(f"{API}/reservationgroups/{group_id}/reservations", headers=_login(http))
    return [e["state"] for r in answer.json() for e in r["reservationEntries"]]


def test_a_shrink_disables_entries_and_regrowth_enables_them_again(
    client: FlexNetClient, http: httpx.Client
) -> None:
    older = client.create_reservation_group(_group("older", "AA01", ("solver", "1.0", 6)))
    newer = client.create_reservation_group(_group("newer", "AA02", ("solver", "1.0", 8)))
    assert _solver_totals(http) == (17, 14)

    _set_solver_count(http, 10)

    assert (_entry_states(http, older.id), _entry_states(http, newer.id)) == (
        ["ACTIVE"],
        ["DISABLED"],
    )
    assert _solver_totals(http) == (10, 6)
    [seen] = client.reservations(newer.id)
    assert seen.entries[0].state == "DISABLED"

    _set_solver_count(http, 3)
    assert (_entry_states(http, older.id), _entry_states(http, newer.id)) == (
        ["DISABLED"],
        ["DISABLED"],
    )
    assert _solver_totals(http) == (3, 0)

    _set_solver_count(http, 14)
    assert (_entry_states(http, older.id), _entry_states(http, newer.id)) == (
        ["ACTIVE"],
        ["ACTIVE"],
    )
    assert _solver_totals(http) == (14, 14)


def test_a_disabled_entry_frees_its_count_and_comes_back_only_when_it_fits(
    client: FlexNetClient, http: httpx.Client
) -> None:
    client.create_reservation_group(_group("big", "AA01", ("solver", "1.0", 10)))
    _set_solver_count(http, 5)
    assert _solver_totals(http) == (5, 0)

    small = client.create_reservation_group(_group("small", "AA02", ("solver", "1.0", 5)))

    assert _entry_states(http, small.id) == ["ACTIVE"]
    _set_solver_count(http, 12)
    assert _solver_totals(http) == (12, 5)
    assert _set_and_read_states(http, 15) == {"big": ["ACTIVE"], "small": ["ACTIVE"]}


def _set_and_read_states(http: httpx.Client, count: int) -> dict[str, list[str]]:
    _set_solver_count(http, count)
    return {
        g["name"]: [e["state"] for r in g["reservations"] for e in r["reservationEntries"]]
        for g in _dump(http)["reservationGroups"]
        if g["name"] != "preexisting"
    }


# -- snapshots of groups -------------------------------------------------------------------


def test_groups_snapshot_matches_the_state_dump_and_is_a_copy(
    client: FlexNetClient, http: httpx.Client, emulator: RunningEmulator
) -> None:
    client.create_reservation_group(_group("mine", "AA01", ("solver", "1.0", 2)))
    snapshot = emulator.state.groups_snapshot()

    from_dump = {
        g["id"]: {
            "name": g["name"],
            "reservations": [
                {
                    "id": r["id"],
                    "host": r["hostId"],
                    "entries": [
                        {
                            "id": e["id"],
                            "feature": e["featureName"],
                            "version": e["featureVersion"],
                            "count": e["featureCount"],
                            "state": e["state"],
                        }
                        for e in r["reservationEntries"]
                    ],
                }
                for r in g["reservations"]
            ],
        }
        for g in _dump(http)["reservationGroups"]
    }
    assert snapshot == from_dump
    assert snapshot[1]["name"] == "preexisting"

    snapshot[1]["reservations"][0]["entries"][0]["count"] = 99
    snapshot[2]["reservations"].clear()
    assert emulator.state.groups_snapshot() == from_dump


def test_a_snapshot_of_foreign_groups_survives_writes_to_other_groups(
    client: FlexNetClient, emulator: RunningEmulator
) -> None:
    mine = client.create_reservation_group(_group("mine", "AA01", ("solver", "1.0", 2)))
    foreign_before = {1: emulator.state.groups_snapshot()[1]}

    reservation = mine.reservations[0]
    client.add_entries(mine.id, reservation.id, [ReservationEntry("solver", "1.0", 1)])
    client.delete_group(mine.id)

    assert emulator.state.groups_snapshot() == foreign_before
