"""Endpoints for quantity requests: list them, ask for more of a feature, decide, withdraw."""

from __future__ import annotations

from collections.abc import Callable

from vlm.api.framework import PAGE_PARAMS, Call, Operation, Param, Success, body_fields, paged_frame
from vlm.api.replies import Reply, first_record, problem_for
from vlm.api.schemas import ID, ref
from vlm.domain import ValidationError, VlmError
from vlm.services import requests

REQUEST_ID = Param("request_id", "path", ID, "The request's id.", required=True)
STATE = Param(
    "state",
    "query",
    {"type": "string", "enum": ["open", "all"], "default": "all"},
    "open: requests waiting for a decision; all: every request, decided ones included.",
)
NEW_FIELDS = ("pool_id", "feature_name", "feature_version", "quantity", "reason")
DECISION_FIELDS = ("decision", "granted", "reason")
# the service's field names as these bodies spell them (FIELD_NAMES says "quantities")
BODY_FIELDS = {"quantity": "quantity", "feature": "feature_name"}


def _answer(handler: Callable[[Call], Reply]) -> Callable[[Call], Reply]:
    """A refusal names the field as these endpoints' bodies do."""

    def run(call: Call) -> Reply:
        try:
            return handler(call)
        except VlmError as exc:
            return problem_for(exc, BODY_FIELDS)

    return run


def _open_only(call: Call) -> bool:
    state = call.query_text("state") or "all"
    if state not in ("open", "all"):
        raise ValidationError("state must be open or all", field="state")
    return state == "open"


def _request(call: Call, request_id: int) -> dict:
    return first_record(requests.list_requests(call.ctx, call.actor), "request", request_id)


def list_requests(call: Call) -> Reply:
    frame = requests.list_requests(call.ctx, call.actor, open_only=_open_only(call))
    return paged_frame(call, frame)


def create_request(call: Call) -> Reply:
    body = body_fields(call, NEW_FIELDS, required=("pool_id", "feature_name", "quantity", "reason"))
    version = body.get("feature_version")
    request_id = requests.create_request(
        call.ctx,
        call.actor,
        body["pool_id"],
        (body["feature_name"], "" if version is None else version),
        body["quantity"],
        body.get("reason"),
    )
    headers = {"Location": f"{call.url}/{request_id}"}
    return Reply(201, _request(call, request_id), headers=headers)


def decide(call: Call) -> Reply:
    request_id = call.path_id("request_id", "request")
    body = body_fields(call, DECISION_FIELDS, required=("decision",))
    requests.decide(
        call.ctx,
        call.actor,
        request_id,
        body["decision"],
        granted=body.get("granted"),
        reason=body.get("reason"),
    )
    return Reply(200, _request(call, request_id))


def withdraw(call: Call) -> Reply:
    request_id = call.path_id("request_id", "request")
    requests.withdraw(call.ctx, call.actor, request_id)
    return Reply(200, _request(call, request_id))


OPERATIONS = (
    Operation(
        "GET",
        "/requests",
        "listQuantityRequests",
        "Quantity requests, with the VLM's availability of each feature now",
        "requests",
        _answer(list_requests),
        Success(200, "A page of requests, newest first.", ref("QuantityRequestPage")),
        description="Managers see the requests about the pools they manage; admins and analysts "
        "every one.",
        params=(STATE, *PAGE_PARAMS),
    ),
    Operation(
        "POST",
        "/requests",
        "createQuantityRequest",
        "Ask for more of a feature for a pool",
        "requests",
        _answer(create_request),
        Success(201, "The request, open.", ref("QuantityRequest")),
        description="A manager for a pool they manage, an admin for any pool. The feature must "
        "be a counted feature of the pool's VLM; the reason is required.",
        body=ref("NewQuantityRequest"),
        problems=(400, 401, 403, 404, 422),
    ),
    Operation(
        "POST",
        "/requests/{request_id}/decision",
        "decideQuantityRequest",
        "Approve, approve partly or decline a request",
        "requests",
        _answer(decide),
        Success(200, "The request, decided.", ref("QuantityRequest")),
        description="Admins. approve grows the pool by the quantity asked, partial by `granted` "
        "(1 to asked - 1); a growth the VLM cannot give is refused (422) and nothing changes. "
        "decline needs a reason. The requester is notified either way.",
        params=(REQUEST_ID,),
        body=ref("QuantityDecision"),
        problems=(400, 401, 403, 404, 409, 422),
    ),
    Operation(
        "POST",
        "/requests/{request_id}/withdraw",
        "withdrawQuantityRequest",
        "Withdraw one's own open request",
        "requests",
        _answer(withdraw),
        Success(200, "The request, withdrawn.", ref("QuantityRequest")),
        description="Only the requester.",
        params=(REQUEST_ID,),
        problems=(401, 403, 404, 409, 422),
    ),
)
