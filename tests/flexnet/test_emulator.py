"""The FlexNet LLS emulator: API surface, auth, reservation rules and usage accounting."""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vlm.flexnet.emulator import EmulatorError, EmulatorState, RunningEmulator

from .conftest import INSTANCE_ID, SMALL_FIXTURE

API = "/api/1.0/instances/~"
DEMO = Path(__file__).resolve().parents[2] / "data" / "demo"


def _group_body(name: str, *reservations: tuple[str, list[tuple[str, str, int]]]) -> dict:
    return {
        "name": name,
        "reservations": [
            {
                "hostId": {"type": "ETHERNET", "value": mac},
                "reservationEntries": [
                    {"featureName": f, "featureVersion": v, "featureCount": c}
                    for f, v, c in entries
                ],
            }
            for mac, entries in reservations
        ],
    }


def _checkout(
    http: httpx.Client, mac: str, feature: str, version: str, count: int
) -> httpx.Response:
    body = {"hostid": {"type": "ETHERNET", "value": mac}, "featureName": feature}
    return http.post(
        "/_emulator/checkout", json={**body, "featureVersion": version, "count": count}
    )


def _feature_rows(http: httpx.Client, headers: dict[str, str], name: str, version: str) -> list:
    rows = http.get(f"{API}/features", params={"activeOnly": "true"}, headers=headers).json()
    return [r for r in rows if (r["featureName"], r["featureVersion"]) == (name, version)]


def _sum(rows: list[dict[str, Any]], field: str) -> int:
    return sum(row[field] for row in rows)


def assert_invariants(state: EmulatorState) -> None:
    """Per-slice and per-feature accounting identities (docs/architecture.md §9)."""
    rows = state.list_features()
    for row in rows:
        assert row["used"] == row["sharedUsed"] + row["assignedReserved"]
        assert row["unassignedReserved"] == row["reserved"] - row["assignedReserved"]
        assert min(row["used"], row["reserved"], row["unassignedReserved"]) >= 0
        clients = state.feature_clients(row["id"])
        assert sum(c["useCount"] for c in clients) == row["used"]
        assert sum(c["reservedCount"] for c in clients) == row["assignedReserved"]
    active: Counter[tuple[str, str]] = Counter()
    for _, _, entry in state.iter_entries():
        if entry.state == "ACTIVE":
            active[entry.key] += entry.count
    reserved: Counter[tuple[str, str]] = Counter()
    used: Counter[tuple[str, str]] = Counter()
    for row in rows:
        reserved[(row["featureName"], row["featureVersion"])] += row["reserved"]
        used[(row["featureName"], row["featureVersion"])] += row["used"]
    assert +reserved == +active
    for key, amount in active.items():
        assert amount <= state.capacity(key, reservable_only=True)
    held: Counter[tuple[str, str]] = Counter()
    for client in state.list_clients():
        for feature in client["features"]:
            held[(feature["featureName"], feature["featureVersion"])] += feature["count"]
    assert +used == +held


# -- paths, health, auth -------------------------------------------------------------------


def test_both_path_prefixes_and_instance_id(
    http: httpx.Client, auth_headers: dict[str, str]
) -> None:
    paths = ["/api/1.0/features", f"{API}/features", f"/api/1.0/instances/{INSTANCE_ID}/features"]
    answers = [http.get(path, headers=auth_headers) for path in paths]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert answers[0].json() == answers[1].json() == answers[2].json()
    assert len(answers[0].json()) == len(SMALL_FIXTURE["features"])


def test_unknown_instance_is_404(http: httpx.Client, auth_headers: dict[str, str]) -> None:
    answer = http.get("/api/1.0/instances/NOSUCHINST/features", headers=auth_headers)
    assert answer.status_code == 404
    body = answer.json()
    assert set(body) == {"timestamp", "status", "error", "message", "path"}
    assert (body["status"], body["error"]) == (404, "Not Found")
    assert body["path"] == "/api/1.0/instances/NOSUCHINST/features"


def test_health_shape_without_auth(http: httpx.Client) -> None:
    for path in ("/api/1.0/health", f"{API}/health"):
        answer = http.get(path)
        assert answer.status_code == 200
        lls = answer.json()["LLS"]
        assert lls["serverInstanceID"] == INSTANCE_ID
        assert lls["security"] == "enabled"
        assert lls["database"] == {"connectionCheck": "success"}
        assert {"version", "buildDate", "buildVersion", "httpAuth", "gitHash"} <= set(lls)


def test_authorize_issues_hs512_jwt(http: httpx.Client) -> None:
    answer = http.post(f"{API}/authorize", json={"user": "admin", "password": "admin"})
    assert answer.status_code == 200
    body = answer.json()
    assert jwt.get_unverified_header(body["token"])["alg"] == "HS512"
    claims = jwt.decode(body["token"], options={"verify_signature": False})
    assert claims["sub"] == "admin" and claims["iss"] == INSTANCE_ID
    assert claims["exp"] - claims["iat"] == 86400
    assert {"ROLE_READ", "ROLE_RESERVATIONS", "ROLE_ADMIN"} <= set(claims["roles"].split(","))
    assert len(claims["xsrfToken"]) == 36
    assert body["expires"].endswith("Z")
    expires = dt.datetime.fromisoformat(body["expires"])
    assert int(expires.timestamp()) == claims["exp"]


def test_bad_credentials_spring_body(http: httpx.Client) -> None:
    answer = http.post(f"{API}/authorize", json={"user": "admin", "password": "nope"})
    assert answer.status_code == 401
    body = answer.json()
    assert (body["status"], body["error"], body["message"]) == (
        401,
        "Unauthorized",
        "Bad credentials",
    )
    assert body["path"] == f"{API}/authorize"


def test_missing_expired_or_invalid_token_is_401(
    http: httpx.Client, emulator: RunningEmulator
) -> None:
    assert http.get(f"{API}/features").status_code == 401
    assert http.get(f"{API}/features", headers={"Authorization": "Bearer junk"}).status_code == 401
    token = http.post(f"{API}/authorize", json={"user": "admin", "password": "admin"}).json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    assert http.get(f"{API}/features", headers=headers).status_code == 200
    http.post("/_emulator/faults", json={"expire_tokens": True})
    assert http.get(f"{API}/features", headers=headers).status_code == 401


def test_missing_role_is_403(http: httpx.Client) -> None:
    def headers_for(user: str) -> dict[str, str]:
        answer = http.post(f"{API}/authorize", json={"user": user, "password": user})
        return {"Authorization": f"Bearer {answer.json()['token']}"}

    reader, nobody = headers_for("reader"), headers_for("nobody")
    assert http.get(f"{API}/reservationgroups", headers=reader).status_code == 200
    denied = http.post(f"{API}/reservationgroups", json=_group_body("x"), headers=reader)
    assert denied.status_code == 403
    assert denied.json()["error"] == "Forbidden"
    assert http.delete(f"{API}/reservationgroups/1", headers=reader).status_code == 403
    assert http.get(f"{API}/features", headers=nobody).status_code == 403


def test_security_disabled_needs_no_token(open_emulator: RunningEmulator) -> None:
    with httpx.Client(base_url=open_emulator.url) as http:
        assert http.get("/api/1.0/health").json()["LLS"]["security"] == "disabled"
        assert http.get(f"{API}/features").status_code == 200
        assert http.post(f"{API}/reservationgroups", json=_group_body("free")).status_code == 201


def test_unknown_route_is_json_404(http: httpx.Client, auth_headers: dict[str, str]) -> None:
    answer = http.get(f"{API}/nothing-here", headers=auth_headers)
    assert answer.status_code == 404
    assert answer.json()["path"] == f"{API}/nothing-here"


# -- features ------------------------------------------------------------------------------


def test_feature_by_id_and_summaries(http: httpx.Client, auth_headers: dict[str, str]) -> None:
    rows = http.get(f"{API}/features", headers=auth_headers).json()
    first = http.get(f"{API}/features/{rows[0]['id']}", headers=auth_headers).json()
    assert first == rows[0]
    assert http.get(f"{API}/features/9999", headers=auth_headers).status_code == 404
    summary = http.get(f"{API}/features/summaries", headers=auth_headers).json()
    solver = summary["solver"]
    assert solver["permanent"]["totalCount"] == 10 + 6
    assert sum(bucket["totalCount"] for bucket in solver.values()) == 10 + 5 + 2 + 4 + 6
    assert set(solver["permanent"]) == {"totalCount", "totalUsed", "totalReserved"}


def test_feature_rows_carry_documented_fields(
    http: httpx.Client, auth_headers: dict[str, str]
) -> None:
    row = http.get(f"{API}/features", headers=auth_headers).json()[0]
    expected = {
        "id", "featureName", "featureVersion", "featureCount", "used", "reserved",
        "assignedReserved", "unassignedReserved", "sharedUsed", "uncounted", "concurrent",
        "metered", "type", "expiry", "starts", "issued", "featureId", "vendor", "receivedTime",
    }  # fmt: skip
    assert expected <= set(row)
    assert row["type"] == "CONCURRENT"


# -- reservation groups --------------------------------------------------------------------


def test_group_endpoints(http: httpx.Client, auth_headers: dict[str, str]) -> None:
    created = http.post(
        f"{API}/reservationgroups",
        json=_group_body("g", ("AA01", [("solver", "1.0", 2)])),
        headers=auth_headers,
    )
    assert created.status_code == 201
    group = created.json()
    gid, rid = group["id"], group["reservations"][0]["id"]
    assert http.get(f"{API}/reservationgroups/{gid}", headers=auth_headers).json() == group
    listed = http.get(f"{API}/reservationgroups", params={"name": "g"}, headers=auth_headers)
    assert listed.json() == [group]
    everything = http.get(f"{API}/reservationgroups", headers=auth_headers).json()
    assert [g["name"] for g in everything] == ["preexisting", "g"]
    assert all("reservationEntries" in r for g in everything for r in g["reservations"])
    entries = http.post(
        f"{API}/reservationgroups/{gid}/reservations/{rid}/entries",
        json=[{"featureName": "mesher", "featureVersion": "3.2", "featureCount": 1}],
        headers=auth_headers,
    )
    assert entries.status_code == 201
    eid = entries.json()[0]["id"]
    base = f"{API}/reservationgroups/{gid}/reservations/{rid}"
    assert http.delete(f"{base}/entries/{eid}", headers=auth_headers).status_code == 410
    assert http.delete(f"{base}/entries/{eid}", headers=auth_headers).status_code == 404
    assert http.delete(base, headers=auth_headers).status_code == 410
    assert http.delete(f"{API}/reservationgroups/{gid}", headers=auth_headers).status_code == 410
    assert http.get(f"{API}/reservationgroups/{gid}", headers=auth_headers).status_code == 404


def test_reservation_validation_errors(http: httpx.Client, auth_headers: dict[str, str]) -> None:
    def post(body: Any) -> httpx.Response:
        return http.post(f"{API}/reservationgroups", json=body, headers=auth_headers)

    cases = [
        (_group_body("m", ("A1", [("tokens", "1.0", 1)])), 400, "tokens"),
        (_group_body("u", ("A1", [("viewer", "1.0", 1)])), 400, "viewer"),
        (_group_body("n", ("A1", [("ghost", "1.0", 1)])), 400, "ghost"),
        (_group_body("c", ("A1", [("solver", "1.0", 0)])), 400, "featureCount"),
        (_group_body("d", ("A1", []), ("A1", [])), 409, "A1"),
        (_group_body("x", ("A1", [("solver", "1.0", 17)]), ("A2", [("solver", "1.0", 1)])),
         409, "solver"),
        ({"reservations": []}, 400, "name"),
    ]  # fmt: skip
    for body, status, needle in cases:
        answer = post(body)
        assert answer.status_code == status, body
        assert needle in answer.json()["message"]
    assert [
        g["name"] for g in http.get(f"{API}/reservationgroups", headers=auth_headers).json()
    ] == ["preexisting"]
    malformed = http.post(
        f"{API}/reservationgroups",
        content=b"{nope",
        headers={**auth_headers, "content-type": "application/json"},
    )
    assert malformed.status_code == 400


def test_model_definition_blocks_reservation_writes(
    http: httpx.Client, auth_headers: dict[str, str]
) -> None:
    assert (
        http.post("/_emulator/fixture", json={**SMALL_FIXTURE, "modelDefinition": True}).status_code
        == 200
    )
    answer = http.post(f"{API}/reservationgroups", json=_group_body("p"), headers=auth_headers)
    assert answer.status_code == 409
    assert "model definition" in answer.json()["message"]


# -- simulated usage -----------------------------------------------------------------------


def test_checkout_and_checkin_keep_usage_consistent(
    http: httpx.Client, auth_headers: dict[str, str], emulator: RunningEmulator
) -> None:
    http.post(
        f"{API}/reservationgroups",
        json=_group_body("r", ("AA01", [("solver", "1.0", 3)])),
        headers=auth_headers,
    )
    assert _checkout(http, "AA01", "solver", "1.0", 4).status_code == 200
    assert _checkout(http, "BB02", "solver", "1.0", 2).status_code == 200
    rows = _feature_rows(http, auth_headers, "solver", "1.0")
    sums = {f: _sum(rows, f) for f in ("used", "reserved", "assignedReserved", "sharedUsed")}
    assert sums == {"used": 6, "reserved": 3, "assignedReserved": 3, "sharedUsed": 3}
    assert _sum(rows, "unassignedReserved") == 0
    clients = {
        c["hostid"]["hostidValue"]: c
        for c in http.get(f"{API}/clients", headers=auth_headers).json()
    }
    assert clients["AA01"]["features"][0]["count"] == 4
    assert clients["AA01"]["features"][0]["reservedCount"] == 3
    assert clients["BB02"]["servedStatus"] == "NORMAL"
    first = rows[0]["id"]
    holders = http.get(f"{API}/features/{first}/clients", headers=auth_headers).json()
    assert sum(h["useCount"] for h in holders) == rows[0]["used"]
    too_many = _checkout(http, "CC03", "solver", "1.0", 12)
    assert too_many.status_code == 409
    assert "available 11" in too_many.json()["message"]
    checkin = {"hostid": {"type": "ETHERNET", "value": "AA01"}, "featureName": "solver"}
    assert (
        http.post("/_emulator/checkin", json={**checkin, "featureVersion": "1.0"}).status_code
        == 200
    )
    rows = _feature_rows(http, auth_headers, "solver", "1.0")
    assert (
        _sum(rows, "used"),
        _sum(rows, "unassignedReserved"),
        _sum(rows, "assignedReserved"),
    ) == (2, 3, 0)
    assert [
        c["hostid"]["hostidValue"] for c in http.get(f"{API}/clients", headers=auth_headers).json()
    ] == ["BB02"]
    assert_invariants(emulator.state)


def test_count_drop_disables_entries_and_recovery_reenables(
    http: httpx.Client, auth_headers: dict[str, str], emulator: RunningEmulator
) -> None:
    for name, mac, count in (("one", "D1", 5), ("two", "D2", 8)):
        body = _group_body(name, (mac, [("solver", "1.0", count)]))
        assert (
            http.post(f"{API}/reservationgroups", json=body, headers=auth_headers).status_code
            == 201
        )
    _checkout(http, "D2", "solver", "1.0", 2)
    drop = {"featureName": "solver", "featureVersion": "1.0", "count": 10}
    assert http.post("/_emulator/features/count", json=drop).status_code == 200
    states = {
        g["name"]: g["reservations"][0]["reservationEntries"][0]["state"]
        for g in http.get(f"{API}/reservationgroups", headers=auth_headers).json()
        if g["name"] in ("one", "two")
    }
    assert states == {"one": "ACTIVE", "two": "DISABLED"}
    rows = _feature_rows(http, auth_headers, "solver", "1.0")
    assert (_sum(rows, "featureCount"), _sum(rows, "reserved"), _sum(rows, "used")) == (10, 5, 2)
    assert _sum(rows, "assignedReserved") == 0
    assert_invariants(emulator.state)
    http.post("/_emulator/features/count", json={**drop, "count": 17})
    assert {e.state for _, _, e in emulator.state.iter_entries()} == {"ACTIVE"}
    assert_invariants(emulator.state)


# -- control endpoints ---------------------------------------------------------------------


def test_faults_spare_control_endpoints(http: httpx.Client, emulator: RunningEmulator) -> None:
    assert http.post("/_emulator/faults", json={"error_rate": 1.0, "seed": 7}).status_code == 200
    assert http.get("/api/1.0/health").status_code in (500, 503)
    state = http.get("/_emulator/state")
    assert state.status_code == 200
    assert state.json()["faults"]["error_rate"] == 1.0
    assert http.delete("/_emulator/faults").status_code == 204
    assert http.get("/api/1.0/health").status_code == 200


def test_error_rate_is_seeded(http: httpx.Client) -> None:
    def run() -> list[int]:
        http.post("/_emulator/faults", json={"error_rate": 0.5, "seed": 42})
        return [http.get("/api/1.0/health").status_code for _ in range(20)]

    first, second = run(), run()
    assert first == second
    assert 200 in first and any(code >= 500 for code in first)


def test_fixture_replace_and_reset(http: httpx.Client, auth_headers: dict[str, str]) -> None:
    fixture = {"features": [{"featureName": "only", "featureVersion": "1", "featureCount": 2}]}
    assert http.post("/_emulator/fixture", json=fixture).json() == {"features": 1, "groups": 0}
    bad = http.post("/_emulator/fixture", json={"features": [{"featureVersion": "1"}]})
    assert bad.status_code == 400
    names = [r["featureName"] for r in http.get(f"{API}/features", headers=auth_headers).json()]
    assert names == ["only"]
    assert http.post("/_emulator/reset").status_code == 200
    dump = http.get("/_emulator/state").json()
    assert len(dump["features"]) == len(SMALL_FIXTURE["features"])
    assert [g["name"] for g in dump["reservationGroups"]] == ["preexisting"]
    assert dump["stats"]["authorizeCalls"] == 0


def test_rollback_returns_to_the_checkpoint_again_and_again() -> None:
    state = EmulatorState(SMALL_FIXTURE)
    feature = SMALL_FIXTURE["features"][0]
    key = (feature["featureName"], feature["featureVersion"])
    state.create_group(_group_body("kept", ("AA0000000001", [(*key, 1)])))
    state.checkout(
        {
            "hostid": {"type": "ETHERNET", "value": "AA0000000002"},
            "featureName": key[0],
            "featureVersion": key[1],
            "count": 1,
        }
    )
    kept = state.checkpoint()
    before = (state.list_features(), state.list_groups(), state.list_clients(), state.instance_id)

    for round_ in range(2):
        state.delete_group(state.group_ids_by_name["kept"])
        state.create_group(_group_body(f"later-{round_}", ("AA0000000003", [(*key, 1)])))
        state.restart(new_instance_id=True)
        state.rollback(kept)
        after = (
            state.list_features(),
            state.list_groups(),
            state.list_clients(),
            state.instance_id,
        )
        assert after == before
        assert_invariants(state)
    created = state.create_group(_group_body("next", ("AA0000000004", [(*key, 1)])))
    assert created["id"] == max(g["id"] for g in before[1]) + 1, "group ids go on from there"


@pytest.mark.parametrize("name", ["lls-east.json", "lls-west.json", "cls-cloud.json"])
def test_demo_fixtures(name: str) -> None:
    state = EmulatorState(json.loads((DEMO / name).read_text()))
    rows = state.list_features(active_only=True)
    soon = dt.date.today() + dt.timedelta(days=30)
    assert any(
        r["expiry"] != "permanent" and dt.date.fromisoformat(r["expiry"]) <= soon for r in rows
    )
    assert any(r["uncounted"] for r in rows) and any(r["metered"] for r in rows)
    per_key = Counter((r["featureName"], r["featureVersion"]) for r in rows)
    assert max(per_key.values()) >= 2
    assert len({r["featureName"] for r in rows}) >= 5
    assert_invariants(state)
    if name == "lls-west.json":
        group = state.list_groups("cad-team-manual")[0]
        hosts = [r["hostId"] for r in group["reservations"]]
        assert {"type": "ETHERNET", "value": "0050569A1B2C"} in hosts


# -- accounting invariants under random operations (pure state, no HTTP) -------------------

HOSTS = [f"H{i}" for i in range(4)]
OPERATION = st.one_of(
    st.tuples(st.just("group"), st.sampled_from(HOSTS), st.integers(1, 9)),
    st.tuples(st.just("entry"), st.sampled_from(HOSTS), st.integers(1, 9)),
    st.tuples(st.just("checkout"), st.sampled_from(HOSTS), st.integers(1, 9)),
    st.tuples(st.just("checkin"), st.sampled_from(HOSTS), st.integers(1, 9)),
    st.tuples(st.just("count"), st.just(""), st.integers(0, 25)),
    st.tuples(st.just("ungroup"), st.sampled_from(HOSTS), st.just(0)),
)


def _apply(state: EmulatorState, op: str, host: str, amount: int) -> None:
    usage = {"hostid": {"type": "ETHERNET", "value": host}, "featureName": "solver"}
    usage["featureVersion"] = "1.0"
    reservation = state.reservation_by_host.get(("ETHERNET", host))
    entry = [{"featureName": "solver", "featureVersion": "1.0", "featureCount": amount}]
    if op == "group":
        state.create_group(_group_body(f"g-{host}", (host, [("solver", "1.0", amount)])))
    elif op == "entry" and reservation is not None:
        state.add_entries(reservation.group_id, reservation.id, entry)
    elif op == "checkout":
        state.checkout({**usage, "count": amount})
    elif op == "checkin":
        state.checkin({**usage, "count": amount})
    elif op == "count":
        state.set_feature_count("solver", "1.0", amount)
    elif op == "ungroup" and reservation is not None:
        state.delete_group(reservation.group_id)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(OPERATION, max_size=25))
def test_accounting_invariants_hold(operations: list[tuple[str, str, int]]) -> None:
    state = EmulatorState(SMALL_FIXTURE)
    for op, host, amount in operations:
        try:
            _apply(state, op, host, amount)
        except EmulatorError as exc:
            assert exc.status in (400, 404, 409)
        assert_invariants(state)
