"""Time-boxed allocations over HTTP: dates in and out of the allocation endpoints, extend by
PATCH, per-row date messages in bulk (JSON rows and CSV), a pool's durations set by an admin
only, and a 422 naming the field for a bad or too distant date."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, timedelta
from uuid import uuid4

import httpx
import pytest

from tests.api.conftest import ADMIN, CAD_POOL, RunningApi, assert_problem
from tests.api.test_allocations import FEATURE, _audited, _reserved
from vlm.services import pools, vlms

TODAY = date.today()
ROOM = 6


def _day(days: int) -> str:
    return (TODAY + timedelta(days=days)).isoformat()


@pytest.fixture
def pool(api: RunningApi) -> Iterator[int]:
    """A pool of Mia's with room for the test (the API and its estate are shared by the whole
    package), made through the services beside the CAD team pool and deleted afterwards."""
    ctx = api.ctx
    vlm_id = int(pools.list_pools(ctx, ADMIN).set_index("name").loc[CAD_POOL, "vlm_id"])
    features = vlms.vlm_features(ctx, ADMIN, vlm_id)
    key = (FEATURE["feature_name"], FEATURE["feature_version"])
    room = features[(features["feature_name"] == key[0]) & (features["feature_version"] == key[1])]
    assert int(room["available"].iloc[0]) >= ROOM, "the demo VLM has no room for the test pool"
    pool_id = pools.create_pool(
        ctx, ADMIN, vlm_id, f"timebox {uuid4().hex[:8]}", "mia", {key: ROOM}
    )
    yield pool_id
    left = int(pools.list_pools(ctx, ADMIN).set_index("id").loc[pool_id, "allocations"])
    pools.delete_pool(ctx, ADMIN, pool_id, confirmed_allocations=left)


def test_a_scheduled_allocation_answers_its_dates_and_stays_off_the_server(
    api: RunningApi, manager: httpx.Client, pool: int
) -> None:
    body = {**FEATURE, "host_type": "USER", "host_id": "api-later", "starts_on": _day(7)}
    body["ends_on"] = _day(37)
    created = manager.post(f"/pools/{pool}/allocations", json=body)
    assert created.status_code == 201, created.text
    allocation = created.json()
    assert (allocation["state"], allocation["phase"]) == ("scheduled", "scheduled")
    assert (allocation["starts_on"], allocation["ends_on"]) == (_day(7), _day(37))
    listed = manager.get(f"/pools/{pool}/allocations", params={"state": "scheduled"}).json()
    assert allocation["id"] in [item["id"] for item in listed["items"]]
    assert _reserved(api, allocation["server_name"], "USER", "api-later") == {}


@pytest.mark.parametrize(
    ("dates", "field"),
    [
        ({"ends_on": "2026-02-30"}, "ends_on"),
        ({"starts_on": "next week"}, "starts_on"),
        ({"ends_on": _day(-1)}, "ends_on"),
        ({"starts_on": _day(5), "ends_on": _day(4)}, "ends_on"),
    ],
)
def test_bad_dates_are_422_naming_the_field(
    manager: httpx.Client, pool: int, dates: dict, field: str
) -> None:
    body = {**FEATURE, "host_type": "USER", "host_id": "api-bad-date", **dates}
    assert_problem(manager.post(f"/pools/{pool}/allocations", json=body), 422, field)


def test_patch_extends_the_end_and_is_audited(
    api: RunningApi, manager: httpx.Client, pool: int
) -> None:
    body = {**FEATURE, "host_type": "USER", "host_id": "api-extend", "ends_on": _day(2)}
    allocation = manager.post(f"/pools/{pool}/allocations", json=body).json()
    url = f"/pools/{pool}/allocations/{allocation['id']}"

    changed = manager.patch(url, json={"ends_on": _day(20)})

    assert changed.status_code == 200, changed.text
    assert changed.json()["ends_on"] == _day(20)
    assert _audited(api, "allocation.edit", allocation["id"]) == ["mia"]
    assert_problem(manager.patch(url, json={"ends_on": None}), 422, "ends_on")


def test_pool_durations_are_set_by_admins_and_cap_new_allocations(
    admin: httpx.Client, manager: httpx.Client, pool: int
) -> None:
    durations = {"default_duration_days": 10, "max_duration_days": 30}
    assert_problem(manager.patch(f"/pools/{pool}", json=durations), 403)
    changed = admin.patch(f"/pools/{pool}", json=durations)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["default_duration_days"], changed.json()["max_duration_days"]) == (
        10,
        30,
    )
    refused = {"default_duration_days": 40, "max_duration_days": 30}
    assert_problem(admin.patch(f"/pools/{pool}", json=refused), 422, "default_duration_days")

    filled = manager.post(
        f"/pools/{pool}/allocations", json={**FEATURE, "host_type": "USER", "host_id": "api-dflt"}
    )
    assert filled.json()["ends_on"] == _day(9)
    too_long = {**FEATURE, "host_type": "USER", "host_id": "api-long", "ends_on": _day(30)}
    problem = assert_problem(manager.post(f"/pools/{pool}/allocations", json=too_long), 422)
    assert _day(29) in problem["detail"]


def test_bulk_rows_and_csv_take_dates_with_a_message_per_bad_row(
    manager: httpx.Client, pool: int
) -> None:
    rows = [
        {**FEATURE, "host_type": "USER", "host_id": "bulk-dated", "ends_on": _day(10)},
        {**FEATURE, "host_type": "USER", "host_id": "bulk-undated", "ends_on": "soon"},
    ]
    answer = manager.post(f"/pools/{pool}/allocations/bulk", json={"allocations": rows}).json()
    assert [r["ok"] for r in answer["results"]] == [True, False]
    assert answer["results"][1]["errors"][0]["field"] == "ends_on"

    text = (
        "host_id,host_type,starts_on,ends_on\n"
        f"csv-dated,USER,{_day(3)},{_day(8)}\n"
        f"csv-bad,USER,{_day(3)},31.12.2027\n"
    )
    body = {**FEATURE, "csv": text}
    answer = manager.post(f"/pools/{pool}/allocations/bulk", json=body).json()
    assert [(r["line"], r["ok"]) for r in answer["results"]] == [(2, True), (3, False)]
    assert "ends on must be a date" in answer["results"][1]["message"]
    listed = manager.get(f"/pools/{pool}/allocations", params={"state": "scheduled"}).json()
    dated = [item for item in listed["items"] if item["host_id"] == "csv-dated"]
    assert [(d["starts_on"], d["ends_on"]) for d in dated] == [(_day(3), _day(8))]


def test_extend_answers_a_result_per_id_and_audits_each(
    api: RunningApi, manager: httpx.Client, other_manager: httpx.Client, pool: int
) -> None:
    admin_pool = api.pool_id(CAD_POOL)
    body = {**FEATURE, "host_type": "USER", "host_id": "api-batch", "ends_on": _day(2)}
    mine = manager.post(f"/pools/{pool}/allocations", json=body).json()["id"]
    elsewhere = manager.get(f"/pools/{admin_pool}/allocations").json()["items"][0]["id"]
    url = f"/pools/{pool}/allocations/extend"

    answer = manager.post(url, json={"ids": [mine, elsewhere], "ends_on": _day(12)})

    assert answer.status_code == 200, answer.text
    assert (answer.json()["extended"], answer.json()["refused"]) == (1, 1)
    assert [r["ok"] for r in answer.json()["results"]] == [True, False]
    assert _audited(api, "allocation.extend", mine) == ["mia"]
    assert manager.get(f"/pools/{pool}/allocations/{mine}").json()["ends_on"] == _day(12)
    assert_problem(manager.post(url, json={"ids": ["x"], "ends_on": _day(12)}), 422, "ids")
    assert_problem(manager.post(url, json={"ids": [mine]}), 422, "ends_on")
    assert_problem(other_manager.post(url, json={"ids": [mine], "ends_on": _day(20)}), 403)


def test_a_path_holding_a_line_break_gets_a_problem_answer(manager: httpx.Client) -> None:
    for path in ("/pools/x%0Ay/allocations/extend", "/no%0Asuch"):
        response = manager.post(path, json={"ids": [1], "ends_on": _day(3)})
        assert 400 <= response.status_code < 500, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
