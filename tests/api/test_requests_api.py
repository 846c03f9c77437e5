"""Quantity requests over the REST API: the demo's open request is listed with the VLM's
availability; a manager asks for more, an admin approves partly and the pool grows; a decline
needs a reason; a grant beyond the VLM's availability is refused with nothing changed; the
requester withdraws; other managers and analysts are kept out of what is not theirs."""

from __future__ import annotations

import httpx

from tests.api.conftest import CAD_POOL, SIM_POOL, RunningApi, assert_problem


def cad_feature(admin: httpx.Client, pool_id: int) -> dict:
    return admin.get(f"/pools/{pool_id}/features").json()["items"][0]


def ask(client: httpx.Client, pool_id: int, feature: dict, quantity: int) -> httpx.Response:
    return client.post(
        "/requests",
        json={
            "pool_id": pool_id,
            "feature_name": feature["feature_name"],
            "feature_version": feature["feature_version"],
            "quantity": quantity,
            "reason": "new starters",
        },
    )


def test_the_demo_request_is_open_with_the_vlms_availability(
    api: RunningApi, admin: httpx.Client, analyst: httpx.Client
) -> None:
    listed = admin.get("/requests", params={"state": "open"}).json()["items"]
    demo = [r for r in listed if r["requested_by"] == "mia" and r["quantity"] == 2]
    assert demo, listed
    row = demo[0]
    vlm = admin.get("/vlms").json()["items"][0]
    figures = admin.get(f"/vlms/{vlm['id']}/features").json()["items"]
    same = [
        f
        for f in figures
        if (f["feature_name"], f["feature_version"])
        == (row["feature_name"], row["feature_version"])
    ]
    assert row["vlm_available"] == same[0]["available"]
    assert row["state"] == "open" and row["decided_at"] is None
    assert any(r["id"] == row["id"] for r in analyst.get("/requests").json()["items"])


def test_a_manager_asks_and_an_admin_approves_partly(
    api: RunningApi, admin: httpx.Client, manager: httpx.Client, other_manager: httpx.Client
) -> None:
    cad = api.pool_id(CAD_POOL)
    feature = cad_feature(admin, cad)
    created = ask(manager, cad, feature, 3)
    assert created.status_code == 201, created.text
    request = created.json()
    assert (request["requested_by"], request["state"], request["pool_id"]) == ("mia", "open", cad)
    assert created.headers["Location"].endswith(f"/requests/{request['id']}")
    assert all(r["pool_id"] != cad for r in other_manager.get("/requests").json()["items"])
    assert_problem(other_manager.post(f"/requests/{request['id']}/withdraw"), 404, "request_id")
    assert_problem(
        manager.post(f"/requests/{request['id']}/decision", json={"decision": "approve"}), 403
    )
    assert_problem(
        admin.post(f"/requests/{request['id']}/decision", json={"decision": "partial"}),
        422,
        "granted",
    )

    decided = admin.post(
        f"/requests/{request['id']}/decision",
        json={"decision": "partial", "granted": 2, "reason": "two now"},
    )

    assert decided.status_code == 200, decided.text
    body = decided.json()
    assert (body["state"], body["granted"], body["decided_by"]) == ("partly approved", 2, "admin")
    assert cad_feature(admin, cad)["quantity"] == feature["quantity"] + 2
    assert_problem(
        admin.post(f"/requests/{request['id']}/decision", json={"decision": "approve"}),
        409,
        "request_id",
    )
    seen = manager.get("/requests").json()["items"]
    mine = [r for r in seen if r["id"] == request["id"]][0]
    assert (mine["state"], mine["decision_reason"]) == ("partly approved", "two now")


def test_a_decline_needs_a_reason_and_a_grant_beyond_the_vlm_is_refused(
    api: RunningApi, admin: httpx.Client, manager: httpx.Client
) -> None:
    cad = api.pool_id(CAD_POOL)
    feature = cad_feature(admin, cad)
    request_id = ask(manager, cad, feature, 100_000).json()["id"]
    path = f"/requests/{request_id}/decision"
    assert_problem(admin.post(path, json={"decision": "decline"}), 422, "reason")

    refused = assert_problem(admin.post(path, json={"decision": "approve"}), 422, "granted")

    assert "can be pooled" in refused["detail"]
    assert cad_feature(admin, cad)["quantity"] == feature["quantity"]
    declined = admin.post(path, json={"decision": "decline", "reason": "too many"})
    assert declined.json()["state"] == "declined"


def test_bad_requests_are_named_and_only_the_requester_withdraws(
    api: RunningApi, admin: httpx.Client, manager: httpx.Client, analyst: httpx.Client
) -> None:
    cad, sim = api.pool_id(CAD_POOL), api.pool_id(SIM_POOL)
    feature = cad_feature(admin, cad)
    assert_problem(ask(manager, cad, feature, 0), 422, "quantity")
    assert_problem(ask(manager, cad, {**feature, "feature_name": "nope"}, 1), 422, "feature_name")
    assert_problem(ask(manager, sim, feature, 1), 403, "pool_id")
    assert_problem(ask(analyst, cad, feature, 1), 403)
    assert_problem(admin.get("/requests", params={"state": "odd"}), 422, "state")
    request_id = ask(manager, cad, feature, 1).json()["id"]
    assert_problem(admin.post(f"/requests/{request_id}/withdraw"), 403, "request_id")

    withdrawn = manager.post(f"/requests/{request_id}/withdraw")

    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
