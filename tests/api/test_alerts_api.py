"""Alerts over the REST API: a manager subscribes to their pool, the alert it raises is listed
and acknowledged; another manager's pool is out of reach; analysts read only; destinations never
leave the server unmasked."""

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
from vlm.alerting.evaluate import evaluate_alerts

SECRET = "s3cret-webhook-token"


def test_a_manager_subscribes_lists_and_acknowledges_over_http(api: RunningApi) -> None:
    cad = api.pool_id(CAD_POOL)
    body = {
        "name": "CAD nearly full",
        "kind": "pool_nearly_full",
        "threshold": 1,
        "pool_id": cad,
        "destinations": f"json://vlm:{SECRET}@127.0.0.1:9/hook",
    }
    with api.client(MANAGER) as mia:
        created = mia.post("/alert-rules", json=body)
        assert created.status_code == 201, created.text
        rule = created.json()
        assert (rule["owner"], rule["pool_id"], rule["kind"]) == ("mia", cad, "pool_nearly_full")
        assert SECRET not in created.text

        evaluate_alerts(api.ctx)
        listed = mia.get("/alerts").json()["items"]
        mine = [a for a in listed if a["rule_id"] == rule["id"]]
        assert [a["pool_id"] for a in mine] == [cad]

        acknowledged = mia.post(f"/alerts/{mine[0]['id']}/acknowledge")
        assert acknowledged.status_code == 200, acknowledged.text
        assert acknowledged.json()["acknowledged_by"] == "mia"
        assert SECRET not in mia.get("/alert-rules").text

    with api.client(OTHER_MANAGER) as max_:
        assert all(a["pool_id"] != cad for a in max_.get("/alerts?state=all").json()["items"])
        assert_problem(max_.post(f"/alerts/{mine[0]['id']}/acknowledge"), 404)
        assert_problem(max_.post("/alert-rules", json=body), 404, "pool_id")
        assert_problem(max_.delete(f"/alert-rules/{rule['id']}"), 404)
    with api.client(ANALYST) as ana:
        assert any(a["id"] == mine[0]["id"] for a in ana.get("/alerts").json()["items"])
        assert_problem(ana.post(f"/alerts/{mine[0]['id']}/acknowledge"), 403)
    with api.client(ADMIN) as admin:
        assert admin.delete(f"/alert-rules/{rule['id']}").status_code == 204
        assert all(a["rule_id"] != rule["id"] for a in admin.get("/alerts").json()["items"])


def test_a_rule_of_an_unknown_kind_is_refused_naming_the_field(api: RunningApi) -> None:
    with api.client(ADMIN) as admin:
        refused = admin.post("/alert-rules", json={"name": "x", "kind": "weather"})
    assert_problem(refused, 422, "kind")
