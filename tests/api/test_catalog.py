"""An admin builds and tears down a VLM and a pool over HTTP, with the same refusals and audit
rows as the pages; exports come as CSV or JSON, scoped to what the role may see."""

from __future__ import annotations

import csv
import io

import httpx

from tests.api.conftest import ADMIN, CAD_POOL, OTHER_MANAGER, RunningApi, assert_problem


def _free_features(admin: httpx.Client) -> list[dict]:
    """Poolable features no VLM exposes yet (the demo leaves the cloud server's free)."""
    free = []
    for server in admin.get("/servers").json()["items"]:
        features = admin.get(f"/servers/{server['id']}/features", params={"limit": 1000})
        free += [
            f
            for f in features.json()["items"]
            if f["can_pool"] and f["present"] and f["vlm_id"] is None and f["poolable"] >= 3
        ]
    return free


def _audit_actions(api: RunningApi, target_type: str, target_id: int) -> list[tuple[str, str]]:
    rows = api.ctx.db.query(
        """SELECT actor, action FROM audit_log WHERE target_type = ? AND target_id = ?
        ORDER BY id""",
        [target_type, str(target_id)],
    )
    return [tuple(r) for r in rows]


def test_an_admin_builds_and_removes_a_vlm_and_a_pool(api: RunningApi, admin: httpx.Client) -> None:
    feature, spare = _free_features(admin)[:2]
    created = admin.post(
        "/vlms", json={"name": "API cloud", "server_feature_ids": [feature["server_feature_id"]]}
    )
    assert created.status_code == 201, created.text
    vlm = created.json()
    assert vlm["name"] == "API cloud" and vlm["features"] == 1
    assert admin.get(created.headers["location"]).json()["id"] == vlm["id"]
    clash = admin.post(
        "/vlms", json={"name": "API cloud", "server_feature_ids": [feature["server_feature_id"]]}
    )
    assert_problem(clash, 409, "name")

    quantity = {
        "feature_name": feature["feature_name"],
        "feature_version": feature["feature_version"],
    }
    pool = admin.post(
        "/pools",
        json={
            "vlm_id": vlm["id"],
            "name": "API team",
            "manager": OTHER_MANAGER.username,
            "quantities": [{**quantity, "quantity": 2}],
        },
    )
    assert pool.status_code == 201, pool.text
    pool_id = pool.json()["id"]
    assert (pool.json()["manager"], pool.json()["quantity"]) == (OTHER_MANAGER.username, 2)
    with api.client(OTHER_MANAGER) as owner:
        allocation = owner.post(
            f"/pools/{pool_id}/allocations", json={**quantity, "host_type": "USER", "host_id": "o"}
        )
    assert allocation.status_code == 201, allocation.text

    grown = admin.patch(f"/pools/{pool_id}", json={"quantities": [{**quantity, "quantity": 3}]})
    assert grown.status_code == 200 and grown.json()["quantity"] == 3
    too_small = admin.patch(f"/pools/{pool_id}", json={"quantities": [{**quantity, "quantity": 0}]})
    assert_problem(too_small, 422, "quantities")
    swap = {"server_feature_ids": [spare["server_feature_id"]]}
    assert_problem(admin.patch(f"/vlms/{vlm['id']}", json=swap), 409, "server_feature_ids")
    assert_problem(admin.delete(f"/vlms/{vlm['id']}"), 409)
    assert_problem(admin.delete(f"/pools/{pool_id}", params={"confirmed_allocations": 0}), 409)

    assert admin.delete(f"/pools/{pool_id}", params={"confirmed_allocations": 1}).status_code == 204
    assert_problem(admin.get(f"/pools/{pool_id}"), 404, "pool_id")
    renamed = admin.patch(f"/vlms/{vlm['id']}", json={"name": "API cloud 2"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "API cloud 2"
    assert admin.delete(f"/vlms/{vlm['id']}").status_code == 204
    assert_problem(admin.get(f"/vlms/{vlm['id']}"), 404, "vlm_id")

    admin_name = ADMIN.username
    assert _audit_actions(api, "vlm", vlm["id"]) == [
        (admin_name, "vlm.create"),
        (admin_name, "vlm.update"),
        (admin_name, "vlm.delete"),
    ]
    assert _audit_actions(api, "pool", pool_id) == [
        (admin_name, "pool.create"),
        (admin_name, "pool.update"),
        (admin_name, "pool.delete"),
    ]


def _csv_rows(response: httpx.Response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(response.text)))


def test_exports_are_scoped_and_agree_in_both_formats(api: RunningApi, manager, admin) -> None:
    pool = api.pool_id(CAD_POOL)
    made = manager.post(
        f"/pools/{pool}/allocations",
        json={
            "feature_name": "cad_modeler",
            "feature_version": "2024.1",
            "host_type": "USER",
            "host_id": "exported",
            "description": "=HYPERLINK(1)",
        },
    )
    assert made.status_code == 201, made.text

    mine = _csv_rows(manager.get("/exports/allocations"))
    as_json = manager.get("/exports/allocations", params={"format": "json"}).json()
    everyone = _csv_rows(admin.get("/exports/allocations"))

    assert {r["pool_name"] for r in mine} == {CAD_POOL}
    assert len(everyone) >= len(mine) == as_json["total"] == len(as_json["items"])
    exported = next(r for r in mine if r["host_id"] == "exported")
    assert exported["description"] == "'=HYPERLINK(1)"
    pools = manager.get("/exports/pools", params={"format": "json"}).json()["items"]
    assert {p["pool_name"] for p in pools} == {CAD_POOL}
    features = _csv_rows(admin.get("/exports/server-features"))
    assert {"server_name", "feature_name", "poolable"} <= set(features[0])
    history = admin.get("/exports/utilization", params={"days": 30, "format": "json"}).json()
    assert history["total"] == len(history["items"]) > 0
    assert_problem(admin.get("/exports/pools", params={"format": "xml"}), 422, "format")
