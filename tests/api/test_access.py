"""Every endpoint for every role over HTTP: who may read what, and every write refused to those
who may not make it (another manager's pool, an analyst, a read-only token), with nothing
written and the refused pool's name never shown."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import (
    ADMIN,
    ANALYST,
    CAD_POOL,
    MANAGER,
    OTHER_MANAGER,
    RunningApi,
    assert_problem,
)
from vlm.domain import Actor

ROLES = {
    "admin": ADMIN,
    "manager": MANAGER,
    "other manager": OTHER_MANAGER,
    "analyst": ANALYST,
    "read-only admin": ADMIN,
}
ALL = {"admin": 200, "manager": 200, "other manager": 200, "analyst": 200}
ESTATE = {"admin": 200, "manager": 403, "other manager": 403, "analyst": 200}
ADMIN_ONLY = {"admin": 200, "manager": 403, "other manager": 403, "analyst": 403}
CAD_READERS = {"admin": 200, "manager": 200, "other manager": 404, "analyst": 200}

READS = [
    ("/me", ALL),
    ("/servers", ESTATE),
    ("/servers/1", ESTATE),
    ("/servers/1/features", ESTATE),
    ("/servers/1/drift", ADMIN_ONLY),
    ("/drift/events", ADMIN_ONLY),
    ("/vlms", ESTATE),
    ("/vlms/1", ESTATE),
    ("/vlms/1/features", ESTATE),
    ("/pools", ALL),
    ("/pools/{cad}", CAD_READERS),
    ("/pools/{cad}/features", CAD_READERS),
    ("/pools/{cad}/allocations", CAD_READERS),
    ("/pools/{cad}/allocations/{allocation}", CAD_READERS),
    ("/allocations/states?ids={allocation}", ALL),
    ("/exports/allocations", ALL),
    ("/exports/pools?format=json", ALL),
    ("/exports/server-features", ESTATE),
    ("/exports/utilization?days=7", ESTATE),
    ("/audit", ADMIN_ONLY),
]


def _who(name: str) -> tuple[Actor, bool]:
    return ROLES[name], name == "read-only admin"


def _cad_allocation(api: RunningApi) -> int:
    rows = api.ctx.db.query(
        """SELECT MIN(id) FROM allocations WHERE pool_id = ? AND state <> 'removing'""",
        [api.pool_id(CAD_POOL)],
    )
    return rows[0][0]


def _path(api: RunningApi, template: str) -> str:
    return template.format(cad=api.pool_id(CAD_POOL), allocation=_cad_allocation(api))


@pytest.mark.parametrize(("template", "expected"), READS, ids=[r[0] for r in READS])
@pytest.mark.parametrize("role", list(ROLES))
def test_reads_by_role(api: RunningApi, template: str, expected: dict, role: str) -> None:
    actor, read_only = _who(role)
    want = expected["admin" if read_only else role]
    with api.client(actor, read_only=read_only) as client:
        response = client.get(_path(api, template))
    if want == 200:
        assert response.status_code == 200, response.text
    else:
        body = assert_problem(response, want)
        assert CAD_POOL not in response.text, body


def test_a_manager_lists_only_their_pools(api: RunningApi) -> None:
    with api.client(MANAGER) as client:
        managers = {p["manager"] for p in client.get("/pools").json()["items"]}
    with api.client(ADMIN) as client:
        everyone = {p["manager"] for p in client.get("/pools").json()["items"]}
    assert managers == {MANAGER.username}
    assert {MANAGER.username, OTHER_MANAGER.username} <= everyone


def test_another_managers_allocation_states_are_left_out(api: RunningApi) -> None:
    allocation = _cad_allocation(api)
    with api.client(OTHER_MANAGER) as client:
        assert client.get(f"/allocations/states?ids={allocation}").json() == {"items": []}
    with api.client(MANAGER) as client:
        states = client.get(f"/allocations/states?ids={allocation}").json()["items"]
    assert [s["id"] for s in states] == [allocation]


ADMIN_WRITES = [
    ("POST", "/vlms", {"name": "Refused", "server_feature_ids": [1]}),
    ("PATCH", "/vlms/1", {"description": "refused"}),
    ("DELETE", "/vlms/1", None),
    ("POST", "/pools", {"vlm_id": 1, "name": "Refused", "manager": "mia", "quantities": []}),
    ("PATCH", "/pools/{cad}", {"description": "refused"}),
    ("DELETE", "/pools/{cad}?confirmed_allocations=0", None),
]
POOL_WRITES = [
    (
        "POST",
        "/pools/{cad}/allocations",
        {
            "feature_name": "cad_modeler",
            "feature_version": "2024.1",
            "host_type": "USER",
            "host_id": "refused",
        },
    ),
    (
        "POST",
        "/pools/{cad}/allocations/bulk",
        {
            "allocations": [
                {
                    "feature_name": "cad_modeler",
                    "feature_version": "2024.1",
                    "host_type": "USER",
                    "host_id": "refused-bulk",
                }
            ]
        },
    ),
    ("PATCH", "/pools/{cad}/allocations/{allocation}", {"count": 2}),
    ("DELETE", "/pools/{cad}/allocations/{allocation}", None),
    ("POST", "/pools/{cad}/allocations/{allocation}/retry", None),
]
REFUSED = [
    *[(m, p, b, who) for m, p, b in ADMIN_WRITES for who in ROLES if who != "admin"],
    *[
        (m, p, b, who)
        for m, p, b in POOL_WRITES
        for who in ("other manager", "analyst", "read-only admin")
    ],
]


def _snapshot(api: RunningApi) -> tuple:
    """Everything a refused write could have changed."""
    db = api.ctx.db
    return (
        db.query("""SELECT id, count, description, state FROM allocations ORDER BY id"""),
        db.query("""SELECT id, name, manager, description FROM pools ORDER BY id"""),
        db.query("""SELECT id, name, description FROM vlms ORDER BY id"""),
        db.query("""SELECT COUNT(*) FROM audit_log WHERE action NOT LIKE 'token.%'"""),
    )


@pytest.mark.parametrize(
    ("method", "template", "body", "role"),
    REFUSED,
    ids=[f"{who}: {m} {p}" for m, p, _, who in REFUSED],
)
def test_writes_refused_by_role(
    api: RunningApi, method: str, template: str, body: dict | None, role: str
) -> None:
    actor, read_only = _who(role)
    before = _snapshot(api)
    with api.client(actor, read_only=read_only) as client:
        response = client.request(method, _path(api, template), json=body)
    assert_problem(response, 403)
    assert CAD_POOL not in response.text
    assert _snapshot(api) == before


def test_a_read_only_token_reads(read_only_admin: httpx.Client) -> None:
    me = read_only_admin.get("/me").json()
    assert me["read_only"] is True and me["role"] == "admin"
    assert read_only_admin.get("/vlms").status_code == 200
