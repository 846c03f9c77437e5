"""A manager's allocations over HTTP, as a provisioning script would make them: add, wait until
applied on the (emulated) license server, change, remove, bulk add with a result per row, a
refusal by the server shown as failed with its reason, and the audit rows the UI writes too."""

from __future__ import annotations

import json

import httpx

from tests.api.conftest import CAD_POOL, MANAGER, RunningApi, assert_problem, wait_for
from vlm.flexnet import FlexNetClient
from vlm.flexnet.models import HostId, Reservation, ReservationEntry, ReservationGroup

FEATURE = {"feature_name": "cad_modeler", "feature_version": "2024.1"}


def _reserved(api: RunningApi, server: str, host_type: str, host_id: str) -> dict:
    """(feature, version) -> count that the server holds for one host in VLM's groups."""
    state = httpx.get(f"{api.emulators[server].url}/_emulator/state", timeout=10).json()
    held: dict = {}
    for group in state["reservationGroups"]:
        if not group["name"].startswith(api.runtime.settings.group_prefix):
            continue
        for reservation in group["reservations"]:
            if reservation["hostId"] == {"type": host_type, "value": host_id}:
                for entry in reservation["reservationEntries"]:
                    key = (entry["featureName"], entry["featureVersion"])
                    held[key] = held.get(key, 0) + entry["featureCount"]
    return held


def _state(client: httpx.Client, pool: int, allocation: int) -> str:
    return client.get(f"/pools/{pool}/allocations/{allocation}").json()["state"]


def _audited(api: RunningApi, action: str, allocation: int) -> list[str]:
    rows = api.ctx.db.query(
        """SELECT actor FROM audit_log WHERE action = ? AND target_type = 'allocation'
        AND target_id = ?""",
        [action, str(allocation)],
    )
    return [r[0] for r in rows]


def test_an_allocation_becomes_applied_on_the_server_then_changes_and_goes(
    api: RunningApi, manager: httpx.Client
) -> None:
    pool = api.pool_id(CAD_POOL)
    body = {**FEATURE, "host_type": "USER", "host_id": "api-flow", "count": 1}

    created = manager.post(f"/pools/{pool}/allocations", json=body)

    assert created.status_code == 201, created.text
    allocation = created.json()
    assert allocation["state"] == "pending" and allocation["count"] == 1
    assert created.headers["location"].endswith(f"/pools/{pool}/allocations/{allocation['id']}")
    assert wait_for(lambda: _state(manager, pool, allocation["id"]) == "applied")
    server = allocation["server_name"]
    key = (FEATURE["feature_name"], FEATURE["feature_version"])
    assert _reserved(api, server, "USER", "api-flow") == {key: 1}
    assert _audited(api, "allocation.add", allocation["id"]) == [MANAGER.username]

    changed = manager.patch(f"/pools/{pool}/allocations/{allocation['id']}", json={"count": 2})
    assert changed.status_code == 200 and changed.json()["count"] == 2
    assert wait_for(lambda: _reserved(api, server, "USER", "api-flow") == {key: 2})
    assert wait_for(lambda: _state(manager, pool, allocation["id"]) == "applied")

    removed = manager.delete(f"/pools/{pool}/allocations/{allocation['id']}")
    assert removed.status_code == 204 and removed.content == b""
    assert wait_for(lambda: _reserved(api, server, "USER", "api-flow") == {})
    gone = manager.get(f"/pools/{pool}/allocations/{allocation['id']}")
    assert gone.status_code == 404 or gone.json()["state"] == "removing"
    assert _audited(api, "allocation.remove", allocation["id"]) == [MANAGER.username]


def test_bulk_rows_answer_one_result_each_and_write_the_good_ones(
    api: RunningApi, manager: httpx.Client
) -> None:
    pool = api.pool_id(CAD_POOL)
    rows = [
        {**FEATURE, "host_type": "USER", "host_id": "bulk-one"},
        {**FEATURE, "host_type": "ETHERNET", "host_id": "not-hex"},
        {**FEATURE, "host_type": "ETHERNET", "host_id": "00:50:56:AA:BB:01", "count": 2},
    ]

    response = manager.post(f"/pools/{pool}/allocations/bulk", json={"allocations": rows})

    assert response.status_code == 200, response.text
    outcome = response.json()
    assert (outcome["created"], outcome["refused"]) == (2, 1)
    results = outcome["results"]
    assert [r["index"] for r in results] == [0, 1, 2]
    assert [r["ok"] for r in results] == [True, False, True]
    assert results[1]["allocation_id"] is None
    assert [e["field"] for e in results[1]["errors"]] == ["host_id"]
    ids = [results[0]["allocation_id"], results[2]["allocation_id"]]
    states = manager.get(f"/allocations/states?ids={ids[0]},{ids[1]}")
    assert {s["id"] for s in states.json()["items"]} == set(ids)
    assert wait_for(
        lambda: (
            {
                s["state"]
                for s in manager.get(f"/allocations/states?ids={ids[0]},{ids[1]}").json()["items"]
            }
            == {"applied"}
        )
    )
    stored = manager.get(f"/pools/{pool}/allocations/{ids[1]}").json()
    assert (stored["host_id"], stored["count"]) == ("005056AABB01", 2)


def test_bulk_csv_reports_refused_lines_by_number(api: RunningApi, manager: httpx.Client) -> None:
    pool = api.pool_id(CAD_POOL)
    text = "host_id,host_type,count,description\ncsv-one,USER,1,first\ncsv-two,USER,0,zero\n"

    response = manager.post(f"/pools/{pool}/allocations/bulk", json={"csv": text, **FEATURE})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [(r["line"], r["ok"]) for r in results] == [(2, True), (3, False)]
    assert "count" in results[1]["message"]
    listed = manager.get(f"/pools/{pool}/allocations", params={"limit": 1000}).json()["items"]
    assert "csv-one" in {a["host_id"] for a in listed}
    assert "csv-two" not in {a["host_id"] for a in listed}


def test_a_file_without_a_header_is_refused_whole(api: RunningApi, manager: httpx.Client) -> None:
    pool = api.pool_id(CAD_POOL)
    response = manager.post(f"/pools/{pool}/allocations/bulk", json={"csv": "a,b\n", **FEATURE})
    assert_problem(response, 422, "csv")


def _hold_everything(api: RunningApi, server: str, feature: tuple[str, str]) -> int:
    """Another team reserves every license of a feature on the server, outside VLM."""
    emulator = api.emulators[server]
    state = httpx.get(f"{emulator.url}/_emulator/state", timeout=10).json()
    total = sum(
        f["featureCount"]
        for f in state["features"]
        if (f["featureName"], f["featureVersion"]) == feature
    )
    entry = ReservationEntry(feature[0], feature[1], total)
    group = ReservationGroup(None, "other-team", (Reservation(HostId("USER", "yves"), (entry,)),))
    with FlexNetClient(emulator.url, username="admin", password="admin", timeout=5) as flex:
        return flex.create_reservation_group(group).id


def test_a_server_refusal_shows_as_failed_with_its_reason(
    api: RunningApi, manager: httpx.Client
) -> None:
    pool = api.pool_id(CAD_POOL)
    drafting = [
        f
        for f in manager.get(f"/pools/{pool}/features").json()["items"]
        if f["feature_name"] == "cad_drafting"
    ][0]
    body = {
        "feature_name": "cad_drafting",
        "feature_version": drafting["feature_version"],
        "host_type": "USER",
        "host_id": "refused-by-server",
    }
    probe = manager.post(f"/pools/{pool}/allocations", json=body).json()
    server = probe["server_name"]
    assert wait_for(lambda: _state(manager, pool, probe["id"]) == "applied")
    assert manager.delete(f"/pools/{pool}/allocations/{probe['id']}").status_code == 204
    assert wait_for(lambda: _reserved(api, server, "USER", "refused-by-server") == {})
    foreign = _hold_everything(api, server, ("cad_drafting", drafting["feature_version"]))
    try:
        created = manager.post(f"/pools/{pool}/allocations", json=body).json()

        assert wait_for(lambda: _state(manager, pool, created["id"]) == "failed")
        states = manager.get(f"/allocations/states?ids={created['id']}").json()["items"]
        assert states[0]["state"] == "failed" and states[0]["last_error"]
        retried = manager.post(f"/pools/{pool}/allocations/{created['id']}/retry")
        assert retried.status_code == 200, retried.text
        assert _audited(api, "allocation.retry", created["id"]) == [MANAGER.username]
        after = api.ctx.db.scalar(
            """SELECT after FROM audit_log WHERE action = 'allocation.retry' AND target_id = ?""",
            [str(created["id"])],
        )
        assert json.loads(after)["state"] == "pending"
        assert manager.delete(f"/pools/{pool}/allocations/{created['id']}").status_code == 204
    finally:
        with FlexNetClient(
            api.emulators[server].url, username="admin", password="admin", timeout=5
        ) as flex:
            flex.delete_group(foreign)
