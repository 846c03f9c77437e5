"""Endpoints for idle-reservation harvesting: the idle report, releasing idle allocations, seat
prices and the warn-then-release policy."""

from __future__ import annotations

from vlm.api.framework import PAGE_PARAMS, Call, Operation, Param, Success, body_fields, paged_frame
from vlm.api.replies import Reply, plain
from vlm.api.schemas import ID, ref
from vlm.domain import DAYS_MAX
from vlm.services import harvesting

POOL_ID = Param("pool_id", "path", ID, "The pool's id.", required=True)
DAYS = Param(
    "days",
    "query",
    {"type": "integer", "minimum": 1, "maximum": DAYS_MAX},
    "Idle for at least this many days (default: the policy's warning age, else 30).",
)
RELEASE_FIELDS = ("allocation_ids", "days")
POLICY_FIELDS = ("enabled", "warn_after_days", "release_after_days")
PRICE_FIELDS = ("feature_name", "feature_version", "seat_price")


def _days(call: Call) -> int:
    default = harvesting.idle_days_shown(call.ctx)
    return int(call.query_int("days", default, minimum=1, maximum=DAYS_MAX) or default)


def list_idle(call: Call) -> Reply:
    found = harvesting.idle_report(call.ctx, call.actor, _days(call))
    return paged_frame(call, found.allocations)


def release_idle(call: Call) -> Reply:
    body = body_fields(call, RELEASE_FIELDS, required=("allocation_ids",))
    days = body.get("days", harvesting.idle_days_shown(call.ctx))
    pool_id = call.path_id("pool_id", "pool")
    results = harvesting.release_idle(call.ctx, call.actor, pool_id, body["allocation_ids"], days)
    released = [r.allocation_id for r in results if r.ok]
    refused = [
        {"allocation_id": r.allocation_id, "message": r.message} for r in results if not r.ok
    ]
    return Reply(200, {"released": released, "refused": refused})


def _policy_reply(call: Call) -> Reply:
    policy = harvesting.harvest_policy(call.ctx, call.actor)
    if policy is None:
        policy = {"enabled": False, "warn_after_days": None, "release_after_days": None}
        policy |= {"updated_by": None, "updated_at": None}
    return Reply(200, {key: plain(value) for key, value in policy.items()})


def get_policy(call: Call) -> Reply:
    return _policy_reply(call)


def set_policy(call: Call) -> Reply:
    body = body_fields(call, POLICY_FIELDS, required=POLICY_FIELDS)
    harvesting.set_harvest_policy(
        call.ctx,
        call.actor,
        enabled=body["enabled"],
        warn_after_days=body["warn_after_days"],
        release_after_days=body["release_after_days"],
    )
    return _policy_reply(call)


def list_prices(call: Call) -> Reply:
    return paged_frame(call, harvesting.list_prices(call.ctx, call.actor))


def set_price(call: Call) -> Reply:
    body = body_fields(call, PRICE_FIELDS, required=("feature_name", "seat_price"))
    feature = (body["feature_name"], body.get("feature_version", ""))
    harvesting.set_price(call.ctx, call.actor, feature, body["seat_price"])
    return Reply(204)


OPERATIONS = (
    Operation(
        "GET",
        "/idle-allocations",
        "listIdleAllocations",
        "Allocations whose seats nobody used for N days",
        "harvesting",
        list_idle,
        Success(200, "A page of idle allocations, idle longest first.", ref("IdleAllocationPage")),
        description="Every role; managers see their own pools. A seat is idle since its host "
        "was last seen using the feature on its license server, or since it was reserved.",
        params=(DAYS, *PAGE_PARAMS),
        problems=(401, 403, 422),
    ),
    Operation(
        "POST",
        "/pools/{pool_id}/release-idle",
        "releaseIdleAllocations",
        "Release idle allocations of a pool",
        "harvesting",
        release_idle,
        Success(
            200,
            "What was released and what was refused (used since, or not idle).",
            ref("IdleRelease"),
        ),
        description="The pool's manager or an admin; each reservation leaves its server as "
        "any removal does. An allocation used since is refused, the others go.",
        params=(POOL_ID,),
        body=ref("IdleReleaseRequest"),
        problems=(400, 401, 403, 404, 422),
    ),
    Operation(
        "GET",
        "/harvest-policy",
        "getHarvestPolicy",
        "The idle-release policy",
        "harvesting",
        get_policy,
        Success(
            200,
            "The policy (switched off, without ages, until an admin sets one).",
            ref("HarvestPolicy"),
        ),
        description="Every role.",
        problems=(401, 403),
    ),
    Operation(
        "PUT",
        "/harvest-policy",
        "setHarvestPolicy",
        "Set the idle-release policy",
        "harvesting",
        set_policy,
        Success(200, "The policy as set.", ref("HarvestPolicy")),
        description="Admins. release_after_days must be more than warn_after_days.",
        body=ref("HarvestPolicyChange"),
        problems=(400, 401, 403, 422),
    ),
    Operation(
        "GET",
        "/seat-prices",
        "listSeatPrices",
        "The price of one seat of each priced feature",
        "harvesting",
        list_prices,
        Success(200, "A page of seat prices.", ref("SeatPricePage")),
        description="Every role.",
        params=PAGE_PARAMS,
        problems=(401, 403, 422),
    ),
    Operation(
        "PUT",
        "/seat-prices",
        "setSeatPrice",
        "Set (or with null remove) the price of one seat of a feature",
        "harvesting",
        set_price,
        Success(204, "Saved."),
        description="Admins; the feature must be on a license server.",
        body=ref("SeatPriceChange"),
        problems=(400, 401, 403, 422),
    ),
)
