"""The emulator renders GET /features and GET /reservationgroups once per state: a repeated GET
of unchanged state sends the kept bytes, and every change is seen by the next GET."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import httpx
import pytest

from vlm.flexnet.emulator import RunningEmulator

API = "/api/1.0/instances/~"
HOST = {"type": "ETHERNET", "value": "0050569AFFEE"}


def _body(name: str, host: str, entries: list[tuple[str, str, int]]) -> dict[str, Any]:
    return {
        "name": name,
        "reservations": [
            {
                "hostId": {"type": "ETHERNET", "value": host},
                "reservationEntries": [
                    {"featureName": f, "featureVersion": v, "featureCount": c}
                    for f, v, c in entries
                ],
            }
        ],
    }


class Reader:
    """GETs of both answers, checked against a fresh rendering of the state each time."""

    def __init__(self, http: httpx.Client, headers: dict[str, str], emu: RunningEmulator):
        self.http, self.headers, self.state = http, headers, emu.state

    def groups(self) -> list[dict[str, Any]]:
        answer = self.http.get(f"{API}/reservationgroups", headers=self.headers)
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        assert answer.json() == self.state.list_groups()
        return answer.json()

    def features(self, active_only: bool = True) -> list[dict[str, Any]]:
        params = {"activeOnly": "true"} if active_only else None
        answer = self.http.get(f"{API}/features", params=params, headers=self.headers)
        assert answer.status_code == 200
        assert answer.json() == self.state.list_features(active_only=active_only)
        return answer.json()


@pytest.fixture
def reader(http: httpx.Client, auth_headers: dict[str, str], emulator: RunningEmulator) -> Reader:
    return Reader(http, auth_headers, emulator)


def _used(rows: list[dict[str, Any]], name: str, version: str) -> int:
    return sum(
        r["used"] for r in rows if (r["featureName"], r["featureVersion"]) == (name, version)
    )


def test_a_repeated_get_of_unchanged_state_is_rendered_once(
    reader: Reader, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    for name in ("list_groups", "list_features"):
        original = getattr(reader.state, name)

        def counted(*args: Any, _name: str = name, _original: Any = original, **kw: Any) -> Any:
            calls.append(_name)
            return _original(*args, **kw)

        monkeypatch.setattr(reader.state, name, counted)
    first = reader.http.get(f"{API}/reservationgroups", headers=reader.headers)
    again = reader.http.get(f"{API}/reservationgroups", headers=reader.headers)
    assert first.content == again.content
    reader.http.get(f"{API}/features?activeOnly=true", headers=reader.headers)
    reader.http.get(f"{API}/features?activeOnly=true", headers=reader.headers)
    reader.http.get(f"{API}/features", headers=reader.headers)
    assert calls == ["list_groups", "list_features", "list_features"]


def test_the_kept_bytes_are_those_a_fresh_rendering_sends(reader: Reader) -> None:
    reader.groups()
    answer = reader.http.get(f"{API}/reservationgroups", headers=reader.headers)
    fresh = json.dumps(
        reader.state.list_groups(), ensure_ascii=False, allow_nan=False, separators=(",", ":")
    ).encode()
    assert answer.content == fresh


def test_every_reservation_write_is_seen_by_the_next_get(reader: Reader) -> None:
    before = reader.groups()
    created = reader.http.post(
        f"{API}/reservationgroups",
        json=_body("cache-g", "AA0000000001", [("solver", "1.0", 1)]),
        headers=reader.headers,
    )
    assert created.status_code == 201
    gid, rid = created.json()["id"], created.json()["reservations"][0]["id"]
    assert [g["name"] for g in reader.groups()] == [g["name"] for g in before] + ["cache-g"]
    base = f"{API}/reservationgroups/{gid}/reservations/{rid}"
    added = reader.http.post(
        f"{base}/entries",
        json=[{"featureName": "mesher", "featureVersion": "3.2", "featureCount": 1}],
        headers=reader.headers,
    )
    assert added.status_code == 201
    eid = added.json()[0]["id"]
    assert len(reader.groups()[-1]["reservations"][0]["reservationEntries"]) == 2
    assert reader.http.delete(f"{base}/entries/{eid}", headers=reader.headers).status_code == 410
    assert len(reader.groups()[-1]["reservations"][0]["reservationEntries"]) == 1
    assert reader.http.delete(base, headers=reader.headers).status_code == 410
    assert reader.groups()[-1]["reservations"] == []
    gone = reader.http.delete(f"{API}/reservationgroups/{gid}", headers=reader.headers)
    assert gone.status_code == 410
    assert reader.groups() == before


def test_a_refused_write_changes_nothing_and_the_answer_stays_right(reader: Reader) -> None:
    before = reader.groups()
    refused = reader.http.post(
        f"{API}/reservationgroups",
        json=_body("too-many", "AA0000000002", [("solver", "1.0", 10_000)]),
        headers=reader.headers,
    )
    assert refused.status_code >= 400
    assert reader.groups() == before


def test_usage_changes_are_seen_by_the_next_features_get(
    reader: Reader, http: httpx.Client
) -> None:
    used = _used(reader.features(), "solver", "1.0")
    body = {"hostid": HOST, "featureName": "solver", "featureVersion": "1.0", "count": 2}
    http.post("/_emulator/checkout", json=body).raise_for_status()
    assert _used(reader.features(), "solver", "1.0") == used + 2
    assert _used(reader.features(active_only=False), "solver", "1.0") == used + 2
    http.post("/_emulator/checkin", json=body).raise_for_status()
    assert _used(reader.features(), "solver", "1.0") == used


def _entries(groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [e for g in groups for r in g["reservations"] for e in r["reservationEntries"]]


def test_a_count_change_disables_entries_in_the_next_groups_get(
    reader: Reader, http: httpx.Client
) -> None:
    assert {e["state"] for e in _entries(reader.groups())} == {"ACTIVE"}
    change = {"featureName": "mesher", "featureVersion": "3.2", "count": 0}
    http.post("/_emulator/features/count", json=change).raise_for_status()
    mesher = [e for e in _entries(reader.groups()) if e["featureName"] == "mesher"]
    assert {e["state"] for e in mesher} == {"DISABLED"}
    reader.features(active_only=False)


def test_restart_fixture_and_reset_are_seen_by_the_next_get(
    reader: Reader, http: httpx.Client, emulator: RunningEmulator
) -> None:
    assert reader.groups()
    http.post("/_emulator/restart", json={}).raise_for_status()
    headers = _login(http)
    assert http.get(f"{API}/reservationgroups", headers=headers).json() == []
    fixture = {"features": [{"featureName": "only", "featureVersion": "1", "featureCount": 2}]}
    http.post("/_emulator/fixture", json=fixture).raise_for_status()
    headers = _login(http)
    rows = http.get(f"{API}/features", headers=headers).json()
    assert [r["featureName"] for r in rows] == ["only"]
    http.post("/_emulator/reset").raise_for_status()
    headers = _login(http)
    assert [g["name"] for g in http.get(f"{API}/reservationgroups", headers=headers).json()] == [
        "preexisting"
    ]


def test_a_new_day_is_seen_by_the_next_features_get(reader: Reader) -> None:
    today = reader.features()
    emulator_state = reader.state
    try:
        emulator_state.today_override = dt.date.today() + dt.timedelta(days=400)
        later = reader.features()
    finally:
        emulator_state.today_override = None
    assert len(later) < len(today)
    assert reader.features() == today


def test_faults_still_apply_to_a_kept_answer(reader: Reader, http: httpx.Client) -> None:
    reader.groups()
    http.post(
        "/_emulator/faults", json={"error_rate": 1.0, "error_statuses": [503], "seed": 1}
    ).raise_for_status()
    try:
        answer = http.get(f"{API}/reservationgroups", headers=reader.headers)
        assert answer.status_code == 503
    finally:
        http.delete("/_emulator/faults").raise_for_status()
    reader.groups()


def test_a_kept_answer_still_needs_a_valid_token(reader: Reader, http: httpx.Client) -> None:
    reader.groups()
    assert http.get(f"{API}/reservationgroups").status_code == 401


def _login(http: httpx.Client) -> dict[str, str]:
    answer = http.post(f"{API}/authorize", json={"user": "admin", "password": "admin"})
    answer.raise_for_status()
    return {"Authorization": f"Bearer {answer.json()['token']}"}
