"""Quantity requests on every backend: who may request, decide, withdraw and read; an approval
grows the pool through the pool service (a growth the VLM cannot give is refused with nothing
changed); partial approvals and declines; every change audited.

The estate: one server (cad 20, sim 10, viz 4 uncounted), a VLM over cad and sim, bob's pool
Design (cad 5) and carol's pool Sim (sim 2)."""

from __future__ import annotations

import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER, every_row
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.context import ServiceContext
from vlm.domain import Conflict, NotFound, PermissionDenied, ValidationError
from vlm.services import audit, pools, requests, vlms

CAD, SIM = ("cad", "1.0"), ("sim", "1.0")
REASON = "two designers join in January"


@pytest.fixture
def estate(ctx: ServiceContext) -> dict[str, int]:
    add_people(ctx)
    add_server(ctx, "east", {CAD: 20, SIM: 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "Engineering", feature_ids(ctx))
    design = pools.create_pool(ctx, ADMIN, vlm_id, "Design", MANAGER.username, {CAD: 5})
    sim = pools.create_pool(ctx, ADMIN, vlm_id, "Sim", OTHER_MANAGER.username, {SIM: 2})
    return {"design": design, "sim": sim}


def cad_quantity(ctx: ServiceContext, pool_id: int) -> int:
    frame = pools.pool_features(ctx, ADMIN, pool_id)
    row = frame[frame["feature_name"] == "cad"]
    return int(row["quantity"].iloc[0]) if not row.empty else 0


def state_of(ctx: ServiceContext, request_id: int) -> tuple:
    return ctx.db.query(
        "SELECT state, granted, decided_by, decision_reason FROM quantity_requests WHERE id = ?",
        [request_id],
    )[0]


def ask(ctx: ServiceContext, estate: dict[str, int], quantity: int = 4) -> int:
    return requests.create_request(ctx, MANAGER, estate["design"], CAD, quantity, REASON)


def test_a_manager_requests_for_their_own_pool_and_sees_it_with_the_vlms_availability(
    ctx, estate
) -> None:
    request_id = ask(ctx, estate)

    mine = requests.list_requests(ctx, MANAGER, open_only=True)
    assert mine["id"].tolist() == [request_id]
    row = mine.iloc[0]
    assert (row["pool_name"], row["feature_name"], row["quantity"], row["state"]) == (
        "Design",
        "cad",
        4,
        "open",
    )
    # cad: 20 on the server, 5 pooled by Design -> the VLM has 15 left; Design holds 5
    assert (row["vlm_available"], row["pool_quantity"]) == (15, 5)
    assert requests.list_requests(ctx, OTHER_MANAGER).empty
    assert requests.list_requests(ctx, ANALYST)["id"].tolist() == [request_id]
    logged = audit.audit_log(ctx, ADMIN, action="quantity_request.create")
    assert logged["actor"].tolist() == ["bob"]


@pytest.mark.parametrize(
    ("actor", "pool", "refusal"),
    [
        (OTHER_MANAGER, "design", PermissionDenied),
        (ANALYST, "design", PermissionDenied),
        (MANAGER, "sim", PermissionDenied),
    ],
)
def test_nobody_requests_for_a_pool_they_do_not_manage(ctx, estate, actor, pool, refusal) -> None:
    with pytest.raises(refusal):
        requests.create_request(ctx, actor, estate[pool], CAD, 1, REASON)
    assert every_row(ctx.db, "quantity_requests") == []


@pytest.mark.parametrize(
    ("feature", "quantity", "reason", "field"),
    [
        (CAD, 0, REASON, "quantity"),
        (CAD, -3, REASON, "quantity"),
        (CAD, 2.5, REASON, "quantity"),
        (CAD, 1, "  ", "reason"),
        (CAD, 1, None, "reason"),
        (("nope", "1.0"), 1, REASON, "feature"),
        ("cad", 1, REASON, "feature"),
    ],
)
def test_a_bad_request_is_refused_at_its_field_and_nothing_is_stored(
    ctx, estate, feature, quantity, reason, field
) -> None:
    with pytest.raises(ValidationError) as refused:
        requests.create_request(ctx, MANAGER, estate["design"], feature, quantity, reason)
    assert refused.value.field == field
    assert every_row(ctx.db, "quantity_requests") == []


def test_an_approval_grows_the_pool_through_the_pool_service_and_is_audited(ctx, estate) -> None:
    request_id = ask(ctx, estate)

    decided = requests.decide(ctx, ADMIN, request_id, "approve")

    assert (decided.state, decided.granted) == ("approved", 4)
    assert cad_quantity(ctx, estate["design"]) == 9
    assert state_of(ctx, request_id) == ("approved", 4, "alice", "")
    log = audit.audit_log(ctx, ADMIN)
    assert {"pool.update", "quantity_request.approved"} <= set(log["action"])
    growth = log[log["action"] == "pool.update"].iloc[0]
    assert '"cad 1.0": 9' in growth["after"]
    assert requests.list_requests(ctx, MANAGER, open_only=True).empty


def test_a_partial_approval_grants_less_than_asked(ctx, estate) -> None:
    request_id = ask(ctx, estate)
    for too_many in (4, 5):
        with pytest.raises(ValidationError) as refused:
            requests.decide(ctx, ADMIN, request_id, "partial", granted=too_many)
        assert refused.value.field == "granted"
    with pytest.raises(ValidationError) as missing:
        requests.decide(ctx, ADMIN, request_id, "partial")
    assert missing.value.field == "granted"
    assert cad_quantity(ctx, estate["design"]) == 5

    decided = requests.decide(ctx, ADMIN, request_id, "partial", granted=3, reason="3 for now")

    assert (decided.state, decided.granted) == ("partly approved", 3)
    assert cad_quantity(ctx, estate["design"]) == 8
    assert state_of(ctx, request_id) == ("partly approved", 3, "alice", "3 for now")


def test_a_decline_needs_a_reason_and_leaves_the_pool_as_it_was(ctx, estate) -> None:
    request_id = ask(ctx, estate)
    with pytest.raises(ValidationError) as refused:
        requests.decide(ctx, ADMIN, request_id, "decline", reason=" ")
    assert refused.value.field == "reason"
    assert state_of(ctx, request_id)[0] == "open"

    requests.decide(ctx, ADMIN, request_id, "decline", reason="budget is frozen")

    assert state_of(ctx, request_id) == ("declined", None, "alice", "budget is frozen")
    assert cad_quantity(ctx, estate["design"]) == 5
    shown = requests.list_requests(ctx, MANAGER).iloc[0]
    assert (shown["state"], shown["decision_reason"]) == ("declined", "budget is frozen")


def test_an_approval_beyond_the_vlms_availability_is_refused_with_nothing_changed(
    ctx, estate
) -> None:
    request_id = ask(ctx, estate, quantity=16)  # the VLM has 15 cad left
    before = {t: every_row(ctx.db, t) for t in ("pool_portions", "quantity_requests", "audit_log")}

    with pytest.raises(ValidationError) as refused:
        requests.decide(ctx, ADMIN, request_id, "approve")

    assert refused.value.field == "granted"
    assert "cannot grant 16 more cad 1.0" in refused.value.message
    assert "only 20 can be pooled" in refused.value.message
    assert {t: every_row(ctx.db, t) for t in before} == before
    requests.decide(ctx, ADMIN, request_id, "partial", granted=15)
    assert cad_quantity(ctx, estate["design"]) == 20


def test_only_admins_decide_and_only_open_requests(ctx, estate) -> None:
    request_id = ask(ctx, estate)
    for actor in (MANAGER, OTHER_MANAGER, ANALYST):
        with pytest.raises(PermissionDenied):
            requests.decide(ctx, actor, request_id, "approve")
    with pytest.raises(ValidationError) as unknown:
        requests.decide(ctx, ADMIN, request_id, "maybe")
    assert unknown.value.field == "decision"
    with pytest.raises(NotFound):
        requests.decide(ctx, ADMIN, request_id + 100, "approve")
    requests.decide(ctx, ADMIN, request_id, "approve")
    with pytest.raises(Conflict):
        requests.decide(ctx, ADMIN, request_id, "decline", reason="changed my mind")
    assert cad_quantity(ctx, estate["design"]) == 9


def test_the_requester_withdraws_their_own_open_request(ctx, estate) -> None:
    request_id = ask(ctx, estate)
    with pytest.raises(NotFound):
        requests.withdraw(ctx, OTHER_MANAGER, request_id)
    with pytest.raises(PermissionDenied):
        requests.withdraw(ctx, ADMIN, request_id)
    with pytest.raises(PermissionDenied):
        requests.withdraw(ctx, ANALYST, request_id)

    requests.withdraw(ctx, MANAGER, request_id)

    assert state_of(ctx, request_id)[0] == "withdrawn"
    with pytest.raises(Conflict):
        requests.withdraw(ctx, MANAGER, request_id)
    with pytest.raises(Conflict):
        requests.decide(ctx, ADMIN, request_id, "approve")
    assert cad_quantity(ctx, estate["design"]) == 5
    assert "quantity_request.withdraw" in set(audit.audit_log(ctx, ADMIN)["action"])


def test_requestable_features_are_the_vlms_with_the_pools_quantity(ctx, estate) -> None:
    frame = requests.requestable_features(ctx, MANAGER, estate["design"])
    rows = frame[["feature_name", "pool_quantity", "vlm_available"]].values.tolist()
    assert rows == [["cad", 5, 15], ["sim", 0, 8]]
    with pytest.raises(NotFound):
        requests.requestable_features(ctx, MANAGER, estate["sim"])


def test_the_open_count_is_for_admins(ctx, estate) -> None:
    ask(ctx, estate)
    ask(ctx, estate, quantity=1)
    assert requests.open_request_count(ctx, ADMIN) == 2
    with pytest.raises(PermissionDenied):
        requests.open_request_count(ctx, MANAGER)


def test_a_deleted_pools_requests_leave_the_lists_and_cannot_be_decided(ctx, estate) -> None:
    request_id = ask(ctx, estate)
    pools.delete_pool(ctx, ADMIN, estate["design"], confirmed_allocations=0)

    assert requests.open_request_count(ctx, ADMIN) == 0
    assert requests.list_requests(ctx, ADMIN).empty
    with pytest.raises(NotFound):
        requests.decide(ctx, ADMIN, request_id, "approve")
    assert every_row(ctx.db, "quantity_requests")[0][8] == "open", "the row itself is kept"
