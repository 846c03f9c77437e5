"""The API's conventions over HTTP: lists paginate (limit, offset, next), errors are problem
documents naming the field at fault, and a write retried with its Idempotency-Key replays the
first answer instead of allocating twice."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.api.conftest import ADMIN, CAD_POOL, MANAGER, RunningApi, assert_problem
from vlm.runtime import current_runtime, install_runtime


def _host_rows(api: RunningApi, host_id: str) -> int:
    return api.ctx.db.scalar(
        """SELECT COUNT(*) FROM allocations WHERE host_id = ? AND state <> 'removing'""", [host_id]
    )


def test_following_next_visits_every_item_once(api: RunningApi, admin: httpx.Client) -> None:
    everything = admin.get("/servers/1/features", params={"limit": 1000}).json()
    assert everything["total"] == len(everything["items"]) > 3
    seen: list[int] = []
    url: str | None = "/servers/1/features?limit=2"
    pages = 0
    while url is not None:
        page = admin.get(url).json()
        assert len(page["items"]) <= 2 and page["limit"] == 2
        assert page["total"] == everything["total"]
        seen += [item["server_feature_id"] for item in page["items"]]
        url, pages = page["next"], pages + 1
    assert seen == [item["server_feature_id"] for item in everything["items"]]
    assert pages == -(-everything["total"] // 2)


def test_an_offset_past_the_end_is_an_empty_last_page(admin: httpx.Client) -> None:
    page = admin.get("/pools", params={"offset": 10_000}).json()
    assert page["items"] == [] and page["next"] is None and page["total"] >= 2


def test_the_audit_log_pages_without_counting(admin: httpx.Client) -> None:
    first = admin.get("/audit", params={"limit": 3}).json()
    second = admin.get(first["next"]).json()
    assert first["total"] is None and len(first["items"]) == 3
    assert first["items"][-1]["id"] > second["items"][0]["id"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "ten"}, "limit"),
    ],
)
def test_bad_page_parameters_are_named(admin: httpx.Client, params: dict, field: str) -> None:
    assert_problem(admin.get("/pools", params=params), 422, field)


def test_field_errors_name_the_field(api: RunningApi, manager: httpx.Client) -> None:
    pool = api.pool_id(CAD_POOL)
    base = {"feature_name": "cad_modeler", "feature_version": "2024.1", "host_type": "USER"}
    cases = [
        ({**base, "host_id": "x", "count": 0}, 422, "count"),
        ({**base, "host_id": "x", "count": 2.5}, 422, "count"),
        ({**base, "host_id": ""}, 422, "host_id"),
        ({**base, "host_id": "x", "host_type": "FLOPPY"}, 422, "host_type"),
        ({**base, "feature_name": "no-such-feature", "host_id": "x"}, 404, "feature_name"),
        ({**base}, 422, "host_id"),
        ({**base, "host_id": "x", "colour": "red"}, 422, "colour"),
    ]
    for body, status, field in cases:
        response = manager.post(f"/pools/{pool}/allocations", json=body)
        problem = assert_problem(response, status, field)
        assert problem["errors"][0]["message"]
    assert_problem(manager.get("/pools/abc"), 422, "pool_id")
    assert_problem(manager.get(f"/pools/{pool}/allocations", params={"state": "odd"}), 422, "state")


def test_a_body_that_is_not_json_is_a_bad_request(api: RunningApi, manager: httpx.Client) -> None:
    pool = api.pool_id(CAD_POOL)
    response = manager.post(
        f"/pools/{pool}/allocations",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400, "body")
    assert_problem(manager.post(f"/pools/{pool}/allocations", json=[1, 2]), 422, "body")
    for raw in (b'{"count": ' + b"9" * 5000 + b"}", b"[" * 100_000, b"\xff\xfe"):
        response = manager.post(
            f"/pools/{pool}/allocations", content=raw, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 400, "body")


def test_unknown_paths_and_methods_are_problems(admin: httpx.Client) -> None:
    assert_problem(admin.get("/no/such/thing"), 404)
    response = admin.put("/pools")
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET, POST"


def test_a_body_over_the_limit_is_refused(api: RunningApi, admin: httpx.Client) -> None:
    huge = b'{"csv": "' + b"x" * (6 * 1024 * 1024) + b'"}'
    pool = api.pool_id(CAD_POOL)
    response = admin.post(
        f"/pools/{pool}/allocations/bulk",
        content=huge,
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 413)


def test_without_a_runtime_the_api_answers_503(api: RunningApi, admin: httpx.Client) -> None:
    installed = current_runtime()
    install_runtime(None)
    try:
        assert_problem(admin.get("/me"), 503)
        assert admin.get("/health").json() == {"status": "starting"}
    finally:
        install_runtime(installed)
    assert admin.get("/health").json() == {"status": "ok"}


def _allocation_body(host_id: str) -> dict:
    return {
        "feature_name": "cad_modeler",
        "feature_version": "2024.1",
        "host_type": "USER",
        "host_id": host_id,
    }


def test_a_retried_post_with_its_key_allocates_once(api: RunningApi, manager: httpx.Client) -> None:
    pool = api.pool_id(CAD_POOL)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = _allocation_body("idempotent-host")

    first = manager.post(f"/pools/{pool}/allocations", json=body, headers=key)
    retry = manager.post(f"/pools/{pool}/allocations", json=body, headers=key)

    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers
    assert _host_rows(api, "idempotent-host") == 1


def test_the_same_key_with_another_body_is_refused(api: RunningApi, manager: httpx.Client) -> None:
    pool = api.pool_id(CAD_POOL)
    key = {"Idempotency-Key": str(uuid.uuid4())}
    assert (
        manager.post(
            f"/pools/{pool}/allocations", json=_allocation_body("key-first"), headers=key
        ).status_code
        == 201
    )

    reused = manager.post(
        f"/pools/{pool}/allocations", json=_allocation_body("key-second"), headers=key
    )

    assert_problem(reused, 422, "Idempotency-Key")
    assert _host_rows(api, "key-second") == 0


def test_keys_belong_to_their_user_and_refusals_replay_too(
    api: RunningApi, manager: httpx.Client
) -> None:
    pool = api.pool_id(CAD_POOL)
    key = {"Idempotency-Key": "shared-" + uuid.uuid4().hex}
    with api.client(ADMIN) as admin:
        by_admin = admin.post(
            f"/pools/{pool}/allocations", json=_allocation_body("admin-keyed"), headers=key
        )
    by_manager = manager.post(
        f"/pools/{pool}/allocations", json=_allocation_body("manager-keyed"), headers=key
    )
    assert by_admin.status_code == by_manager.status_code == 201
    assert _host_rows(api, "admin-keyed") == _host_rows(api, "manager-keyed") == 1

    bad = {**_allocation_body("bad-count"), "count": 0}
    bad_key = {"Idempotency-Key": uuid.uuid4().hex}
    refused = manager.post(f"/pools/{pool}/allocations", json=bad, headers=bad_key)
    replayed = manager.post(f"/pools/{pool}/allocations", json=bad, headers=bad_key)
    assert refused.status_code == replayed.status_code == 422
    assert replayed.json() == refused.json()
    assert replayed.headers["content-type"].startswith("application/problem+json")


def test_a_malformed_key_is_named(api: RunningApi, manager: httpx.Client) -> None:
    pool = api.pool_id(CAD_POOL)
    response = manager.post(
        f"/pools/{pool}/allocations",
        json=_allocation_body("bad-key"),
        headers={"Idempotency-Key": "has spaces"},
    )
    assert_problem(response, 422, "Idempotency-Key")
    assert _host_rows(api, "bad-key") == 0


def test_reads_ignore_idempotency_keys(admin: httpx.Client) -> None:
    assert admin.get("/me", headers={"Idempotency-Key": "x y"}).status_code == 200


def test_a_manager_token_cannot_use_another_users_key_to_read_their_answer(
    api: RunningApi,
) -> None:
    pool = api.pool_id(CAD_POOL)
    key = {"Idempotency-Key": uuid.uuid4().hex}
    with api.client(MANAGER) as manager:
        first = manager.post(
            f"/pools/{pool}/allocations", json=_allocation_body("private-key"), headers=key
        )
    with api.client(ADMIN) as admin:
        other = admin.post(
            f"/pools/{pool}/allocations", json=_allocation_body("private-key"), headers=key
        )
    assert first.status_code == 201
    assert "idempotent-replayed" not in other.headers
