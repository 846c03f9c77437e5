"""Harvesting over the REST API on the demo: John Smith's never-used seat is listed as idle with
its cost; Mia releases it (a used seat is refused with its reason); another manager and an
analyst cannot release it; the admin sets the policy (a bad one is refused by field) and prices."""

from __future__ import annotations

from tests.api.conftest import (
    ADMIN,
    ANALYST,
    CAD_POOL,
    MANAGER,
    OTHER_MANAGER,
    RunningApi,
    assert_problem,
)
from vlm.demo import DEMO_SEAT_PRICE, IDLE_DEMO_HOST


def _idle(client, days: int = 30) -> list[dict]:
    answer = client.get(f"/idle-allocations?days={days}")
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


def test_a_manager_lists_and_releases_an_idle_seat_over_http(api: RunningApi) -> None:
    cad = api.pool_id(CAD_POOL)
    with api.client(MANAGER) as mia:
        idle = _idle(mia)
        assert [(a["host_id"], a["seat_cost"]) for a in idle] == [(IDLE_DEMO_HOST, DEMO_SEAT_PRICE)]
        assert idle[0]["last_seen"] is None and idle[0]["pool_id"] == cad
        in_use = mia.get(f"/pools/{cad}/allocations").json()["items"]
        other = next(a["id"] for a in in_use if a["host_id"] != IDLE_DEMO_HOST)

    with api.client(OTHER_MANAGER) as max_:
        assert _idle(max_) == []
        body = {"allocation_ids": [idle[0]["id"]], "days": 30}
        assert max_.post(f"/pools/{cad}/release-idle", json=body).status_code in (403, 404)
    with api.client(ANALYST) as ana:
        assert len(_idle(ana)) == 1
        assert_problem(ana.post(f"/pools/{cad}/release-idle", json=body), 403)

    with api.client(MANAGER) as mia:
        body = {"allocation_ids": [idle[0]["id"], other], "days": 30}
        released = mia.post(f"/pools/{cad}/release-idle", json=body)
        assert released.status_code == 200, released.text
        answer = released.json()
        assert answer["released"] == [idle[0]["id"]]
        assert [r["allocation_id"] for r in answer["refused"]] == [other]
        assert "not idle for 30 days" in answer["refused"][0]["message"]
        assert _idle(mia) == []
        assert_problem(mia.post(f"/pools/{cad}/release-idle", json={"days": 30}), 422)


def test_the_admin_sets_the_policy_and_prices_over_http(api: RunningApi) -> None:
    with api.client(ADMIN) as admin:
        policy = admin.get("/harvest-policy").json()
        assert (policy["enabled"], policy["warn_after_days"]) == (True, 30)
        bad = {"enabled": True, "warn_after_days": 30, "release_after_days": 10}
        assert_problem(admin.put("/harvest-policy", json=bad), 422, "release_after_days")
        good = {"enabled": False, "warn_after_days": 20, "release_after_days": 40}
        changed = admin.put("/harvest-policy", json=good)
        assert changed.status_code == 200, changed.text
        assert changed.json()["release_after_days"] == 40 and not changed.json()["enabled"]

        prices = admin.get("/seat-prices").json()["items"]
        feature = prices[0]["feature_name"], prices[0]["feature_version"]
        body = {"feature_name": feature[0], "feature_version": feature[1], "seat_price": 10}
        assert admin.put("/seat-prices", json=body).status_code == 204
        after = {
            (p["feature_name"], p["feature_version"]): p
            for p in admin.get("/seat-prices").json()["items"]
        }
        assert after[feature]["seat_price"] == 10
        unknown = {"feature_name": "nope", "feature_version": "1", "seat_price": 1}
        assert_problem(admin.put("/seat-prices", json=unknown), 422, "feature_name")
    with api.client(MANAGER) as mia:
        assert_problem(mia.put("/harvest-policy", json=good), 403)
        assert_problem(mia.put("/seat-prices", json=body), 403)
        assert mia.get("/harvest-policy").json()["warn_after_days"] == 20
