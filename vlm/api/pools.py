"""Endpoints for pools and their allocations: list, add, change, remove, retry, bulk add, states."""

from __future__ import annotations

from typing import Any

from vlm.api.framework import (
    PAGE_PARAMS,
    Call,
    Operation,
    Param,
    Success,
    body_fields,
    paged_frame,
)
from vlm.api.replies import Reply, api_field, first_record, records
from vlm.api.schemas import ID, ref
from vlm.domain import (
    ID_MAX,
    AllocationState,
    FeatureKey,
    ValidationError,
    record_ids,
    shown,
    validate_feature,
)
from vlm.services import allocations, bulk, pools
from vlm.services.allocations import AllocationChange, RowResult

POOL_ID = Param("pool_id", "path", ID, "The pool's id.", required=True)
ALLOCATION_ID = Param("allocation_id", "path", ID, "The allocation's id.", required=True)
POOL_FIELDS = (
    "vlm_id",
    "name",
    "manager",
    "quantities",
    "description",
    "default_duration_days",
    "max_duration_days",
)
DURATION_FIELDS = ("default_duration_days", "max_duration_days")
ALLOCATION_FIELDS = (
    "feature_name",
    "feature_version",
    "host_type",
    "host_id",
    "count",
    "description",
    "starts_on",
    "ends_on",
)
BULK_FIELDS = (
    "allocations",
    "csv",
    "feature_name",
    "feature_version",
    "default_host_type",
    "default_count",
)
MAX_STATE_IDS = 1_000
POOL_READERS = "Admins and analysts read every pool; managers only their own (404 otherwise)."
POOL_WRITERS = (
    "Admins on any pool, managers on their own (403 on another's); analysts and read-only "
    "tokens are refused (403)."
)
ADMINS = "Admins only."


# -- pools ------------------------------------------------------------------------------------


def _feature(name: object, version: object) -> FeatureKey:
    return validate_feature((name, "" if version is None else version))


def _quantities(value: object) -> dict[FeatureKey, object]:
    """[{feature_name, feature_version, quantity}] as the pool service takes it."""
    if not isinstance(value, list):
        raise ValidationError("quantities must be a list of features", field="quantities")
    quantities: dict[FeatureKey, object] = {}
    for item in value:
        if not isinstance(item, dict) or "quantity" not in item:
            raise ValidationError(
                "each quantity is {feature_name, feature_version, quantity}", field="quantities"
            )
        key = _feature(item.get("feature_name"), item.get("feature_version"))
        if key in quantities:
            raise ValidationError(f"{key[0]} {key[1]} is listed twice", field="quantities")
        quantities[key] = item["quantity"]
    return quantities


def _pool_row(call: Call, pool_id: int) -> dict:
    return first_record(pools.list_pools(call.ctx, call.actor), "pool", pool_id)


def list_pools(call: Call) -> Reply:
    frame = pools.list_pools(call.ctx, call.actor, search=call.query_text("search"))
    return paged_frame(call, frame)


def get_pool(call: Call) -> Reply:
    return Reply(200, _pool_row(call, call.path_id("pool_id", "pool")))


def create_pool(call: Call) -> Reply:
    body = body_fields(call, POOL_FIELDS, required=("vlm_id", "name", "manager", "quantities"))
    pool_id = pools.create_pool(
        call.ctx,
        call.actor,
        body["vlm_id"],
        body["name"],
        body["manager"],
        _quantities(body["quantities"]),
        description=body.get("description", ""),
        default_duration_days=body.get("default_duration_days"),
        max_duration_days=body.get("max_duration_days"),
    )
    headers = {"Location": f"{call.url}/{pool_id}"}
    return Reply(201, _pool_row(call, pool_id), headers=headers)


def update_pool(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    body = body_fields(call, POOL_FIELDS[1:])
    quantities = body.get("quantities")
    durations = None
    if any(name in body for name in DURATION_FIELDS):
        durations = pools.check_durations(*(body.get(name) for name in DURATION_FIELDS))
    pools.update_pool(
        call.ctx,
        call.actor,
        pool_id,
        name=body.get("name"),
        manager=body.get("manager"),
        description=body.get("description"),
        quantities=None if quantities is None else _quantities(quantities),
    )
    if durations is not None:
        default_days, max_days = durations
        pools.set_pool_durations(
            call.ctx, call.actor, pool_id, default_days=default_days, max_days=max_days
        )
    return Reply(200, _pool_row(call, pool_id))


def delete_pool(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    confirmed = call.query_int("confirmed_allocations", None, minimum=0, maximum=ID_MAX)
    if confirmed is None:
        raise ValidationError(
            "confirmed_allocations is required: the pool's allocation count as you read it "
            "(GET the pool); its allocations go with it",
            field="confirmed_allocations",
        )
    pools.delete_pool(call.ctx, call.actor, pool_id, confirmed_allocations=confirmed)
    return Reply(204)


def pool_features(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    return paged_frame(call, pools.pool_features(call.ctx, call.actor, pool_id))


# -- allocations ------------------------------------------------------------------------------


def _state_filter(call: Call) -> str | None:
    state = call.query_text("state")
    if state is not None and state not in {s.value for s in AllocationState}:
        allowed = ", ".join(s.value for s in AllocationState)
        raise ValidationError(f"state '{shown(state)}' is not one of {allowed}", field="state")
    return state


def list_allocations(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    name = call.query_text("feature_name")
    feature = None if name is None else _feature(name, call.query_text("feature_version"))
    state = _state_filter(call)
    frame = allocations.list_allocations(
        call.ctx,
        call.actor,
        pool_id,
        feature,
        include_removing=call.query_flag("include_removing") or state == "removing",
    )
    if state is not None:
        frame = frame[frame["state"] == state]
    return paged_frame(call, frame)


def _allocation_row(call: Call, pool_id: int, allocation_id: int) -> dict:
    frame = allocations.list_allocations(call.ctx, call.actor, pool_id, include_removing=True)
    return first_record(frame, "allocation", allocation_id)


def get_allocation(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    allocation_id = call.path_id("allocation_id", "allocation")
    return Reply(200, _allocation_row(call, pool_id, allocation_id))


def allocate(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    body = body_fields(call, ALLOCATION_FIELDS, required=("feature_name", "host_type", "host_id"))
    allocation_id = allocations.allocate(
        call.ctx,
        call.actor,
        pool_id,
        _feature(body["feature_name"], body.get("feature_version")),
        body["host_type"],
        body["host_id"],
        body.get("count", 1),
        body.get("description", ""),
        starts_on=body.get("starts_on"),
        ends_on=body.get("ends_on"),
    )
    headers = {"Location": f"{call.url}/{allocation_id}"}
    return Reply(201, _allocation_row(call, pool_id, allocation_id), headers=headers)


def update_allocation(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    allocation_id = call.path_id("allocation_id", "allocation")
    body = body_fields(call, ("count", "description", "ends_on"))
    if "ends_on" in body and body["ends_on"] is None:
        raise ValidationError("ends_on: give the new last day as YYYY-MM-DD", field="ends_on")
    allocations.update_allocation(
        call.ctx,
        call.actor,
        pool_id,
        allocation_id,
        description=body.get("description"),
        count=body.get("count"),
        ends_on=body.get("ends_on"),
    )
    return Reply(200, _allocation_row(call, pool_id, allocation_id))


def remove_allocation(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    allocation_id = call.path_id("allocation_id", "allocation")
    allocations.remove_allocation(call.ctx, call.actor, pool_id, allocation_id)
    return Reply(204)


def retry_allocation(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    allocation_id = call.path_id("allocation_id", "allocation")
    allocations.retry_allocation(call.ctx, call.actor, pool_id, allocation_id)
    return Reply(200, _allocation_row(call, pool_id, allocation_id))


def _row_change(index: int, item: object) -> AllocationChange:
    if not isinstance(item, dict):
        raise ValidationError(f"allocations[{index}] must be an object", field="allocations")
    unknown = [name for name in item if name not in ALLOCATION_FIELDS]
    if unknown:
        raise ValidationError(
            f"allocations[{index}] has an unknown field '{shown(unknown[0])}'",
            field="allocations",
        )
    return AllocationChange(
        "add",
        row=index,
        feature_name=item.get("feature_name"),
        feature_version=item.get("feature_version"),
        host_type=item.get("host_type"),
        host_id=item.get("host_id"),
        count=item.get("count", 1),
        description=item.get("description", ""),
        starts_on=item.get("starts_on"),
        ends_on=item.get("ends_on"),
    )


def _result(index: int, line: int | None, result: RowResult) -> dict[str, Any]:
    name = api_field(result.field)
    return {
        "index": index,
        "line": line,
        "ok": result.ok,
        "allocation_id": result.allocation_id if result.ok else None,
        "message": result.message,
        "errors": [] if result.ok or name is None else [{"field": name, "message": result.message}],
    }


def _refused_line(index: int, row: bulk.BulkRow) -> dict[str, Any]:
    message = "; ".join(row.problems)
    return {
        "index": index,
        "line": row.line,
        "ok": False,
        "allocation_id": None,
        "message": message,
        "errors": [{"field": "csv", "message": message}],
    }


def _bulk_rows(call: Call, pool_id: int, items: object, feature: FeatureKey | None) -> list:
    if not isinstance(items, list):
        raise ValidationError("allocations must be a list", field="allocations")
    if len(items) > bulk.MAX_ROWS:
        raise ValidationError(f"give at most {bulk.MAX_ROWS:,} rows", field="allocations")
    changes = [_row_change(i, item) for i, item in enumerate(items)]
    outcome = allocations.apply_allocation_changes(
        call.ctx, call.actor, pool_id, changes, feature=feature
    )
    return [_result(i, None, r) for i, r in enumerate(outcome)]


def _bulk_csv(call: Call, pool_id: int, body: dict, feature: FeatureKey | None) -> list:
    text = body["csv"]
    if not isinstance(text, str):
        raise ValidationError("csv must be text", field="csv")
    parsed = bulk.parse_bulk_allocations(
        text,
        default_host_type=body.get("default_host_type", "ETHERNET"),
        default_count=body.get("default_count", 1),
    )
    if parsed.refused:
        raise ValidationError("; ".join(parsed.problems), field="csv")
    outcome = iter(
        allocations.apply_allocation_changes(
            call.ctx, call.actor, pool_id, parsed.changes, feature=feature
        )
    )
    return [
        _result(i, row.line, next(outcome)) if row.ok else _refused_line(i, row)
        for i, row in enumerate(parsed.rows)
    ]


def bulk_allocate(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    body = body_fields(call, BULK_FIELDS)
    name = body.get("feature_name")
    feature = None if name is None else _feature(name, body.get("feature_version"))
    if ("allocations" in body) == ("csv" in body):
        raise ValidationError("give either allocations or csv", field="allocations")
    if "csv" in body:
        results = _bulk_csv(call, pool_id, body, feature)
    else:
        results = _bulk_rows(call, pool_id, body["allocations"], feature)
    created = sum(1 for r in results if r["ok"])
    return Reply(200, {"created": created, "refused": len(results) - created, "results": results})


def extend_allocations(call: Call) -> Reply:
    pool_id = call.path_id("pool_id", "pool")
    body = body_fields(call, ("ids", "ends_on"), required=("ids", "ends_on"))
    if not isinstance(body["ids"], list) or not body["ids"]:
        raise ValidationError("ids: give the allocation ids to extend as a list", field="ids")
    if len(body["ids"]) > bulk.MAX_ROWS:
        raise ValidationError(f"ids: give at most {bulk.MAX_ROWS:,} ids", field="ids")
    try:
        ids = record_ids(body["ids"], "allocation")
    except ValidationError as exc:
        raise ValidationError(f"ids: {exc.message}", field="ids") from None
    outcome = allocations.extend_allocations(call.ctx, call.actor, pool_id, ids, body["ends_on"])
    results = [_result(i, None, r) for i, r in enumerate(outcome)]
    extended = sum(1 for r in results if r["ok"])
    return Reply(
        200, {"extended": extended, "refused": len(results) - extended, "results": results}
    )


def allocation_states(call: Call) -> Reply:
    raw = call.query_text("ids") or ""
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if not parts:
        raise ValidationError("ids: give allocation ids, comma-separated", field="ids")
    if len(parts) > MAX_STATE_IDS:
        raise ValidationError(f"ids: at most {MAX_STATE_IDS:,} at a time", field="ids")
    try:
        ids = record_ids(parts, "allocation")
    except ValidationError as exc:
        raise ValidationError(exc.message, field="ids") from None
    frame = allocations.allocation_states(call.ctx, call.actor, ids)
    return Reply(200, {"items": records(frame)})


def _page(name: str, what: str) -> Success:
    return Success(200, f"A page of {what}.", ref(name))


_SEARCH = Param(
    "search", "query", {"type": "string", "maxLength": 100}, "Pool, VLM or manager name part."
)
_CONFIRMED = Param(
    "confirmed_allocations",
    "query",
    {"type": "integer", "minimum": 0},
    "The pool's allocation count as you read it; refused (409) if it changed since.",
    required=True,
)
_FEATURE_NAME = Param("feature_name", "query", {"type": "string"}, "Only this feature.")
_FEATURE_VERSION = Param(
    "feature_version", "query", {"type": "string"}, "The feature's version (with feature_name)."
)
_STATE = Param(
    "state",
    "query",
    {"type": "string", "enum": [s.value for s in AllocationState]},
    "Only allocations in this state.",
)
_INCLUDE_REMOVING = Param(
    "include_removing",
    "query",
    {"type": "boolean", "default": False},
    "Also list removed allocations still being taken off the server.",
)
_IDS = Param(
    "ids",
    "query",
    {"type": "string", "pattern": "^[0-9]+(,[0-9]+)*$"},
    f"Allocation ids, comma-separated (at most {MAX_STATE_IDS:,}).",
    required=True,
)
_ALLOCATION_PATH = (POOL_ID, ALLOCATION_ID)
_READ_PROBLEMS = (401, 403, 404, 422)
_WRITE_PROBLEMS = (400, 401, 403, 404, 409, 422)

OPERATIONS = (
    Operation(
        "GET",
        "/pools",
        "listPools",
        "Pools with quantity, allocated and available",
        "pools",
        list_pools,
        _page("PoolPage", "pools"),
        description=POOL_READERS,
        params=(_SEARCH, *PAGE_PARAMS),
    ),
    Operation(
        "POST",
        "/pools",
        "createPool",
        "Carve a pool out of a VLM, with a quantity per feature",
        "pools",
        create_pool,
        Success(201, "The new pool.", ref("Pool")),
        description=ADMINS + " Quantities are split over the VLM's servers (most room first).",
        body=ref("NewPool"),
        problems=_WRITE_PROBLEMS,
    ),
    Operation(
        "GET",
        "/pools/{pool_id}",
        "getPool",
        "One pool",
        "pools",
        get_pool,
        Success(200, "The pool.", ref("Pool")),
        description=POOL_READERS,
        params=(POOL_ID,),
        problems=_READ_PROBLEMS,
    ),
    Operation(
        "PATCH",
        "/pools/{pool_id}",
        "updatePool",
        "Change a pool's name, manager, description or quantities",
        "pools",
        update_pool,
        Success(200, "The pool as changed.", ref("Pool")),
        description=ADMINS,
        params=(POOL_ID,),
        body=ref("PoolChange"),
        problems=_WRITE_PROBLEMS,
    ),
    Operation(
        "DELETE",
        "/pools/{pool_id}",
        "deletePool",
        "Delete a pool and its allocations",
        "pools",
        delete_pool,
        Success(204, "Deleted; its reservations leave the servers."),
        description=ADMINS,
        params=(POOL_ID, _CONFIRMED),
        problems=(401, 403, 404, 409, 422),
    ),
    Operation(
        "GET",
        "/pools/{pool_id}/features",
        "listPoolFeatures",
        "A pool's features: quantity, allocated, available, pending, failed",
        "pools",
        pool_features,
        _page("PoolFeaturePage", "pool features"),
        description=POOL_READERS,
        params=(POOL_ID, *PAGE_PARAMS),
        problems=_READ_PROBLEMS,
    ),
    Operation(
        "GET",
        "/pools/{pool_id}/allocations",
        "listAllocations",
        "A pool's allocations with their state (oldest first)",
        "allocations",
        list_allocations,
        _page("AllocationPage", "allocations"),
        description=POOL_READERS,
        params=(POOL_ID, _FEATURE_NAME, _FEATURE_VERSION, _STATE, _INCLUDE_REMOVING, *PAGE_PARAMS),
        problems=_READ_PROBLEMS,
    ),
    Operation(
        "POST",
        "/pools/{pool_id}/allocations",
        "allocate",
        "Allocate licenses of a pool feature to a device or user",
        "allocations",
        allocate,
        Success(201, "The new allocation, pending until the server has it.", ref("Allocation")),
        description=POOL_WRITERS
        + " The reservation reaches the license server within about a second: poll the "
        "allocation until its state is applied (or failed, with last_error).",
        params=(POOL_ID,),
        body=ref("NewAllocation"),
        problems=_WRITE_PROBLEMS,
    ),
    Operation(
        "POST",
        "/pools/{pool_id}/allocations/bulk",
        "bulkAllocate",
        "Allocate many rows at once, with a result per row",
        "allocations",
        bulk_allocate,
        Success(200, "One result per row; good rows are written together.", ref("BulkResult")),
        description=POOL_WRITERS,
        params=(POOL_ID,),
        body=ref("BulkAllocations"),
        problems=_WRITE_PROBLEMS,
    ),
    Operation(
        "POST",
        "/pools/{pool_id}/allocations/extend",
        "extendAllocations",
        "Give allocations a new last day, with a result per allocation",
        "allocations",
        extend_allocations,
        Success(200, "One result per id; the good ones are written together.", ref("ExtendResult")),
        description=POOL_WRITERS,
        params=(POOL_ID,),
        body=ref("ExtendAllocations"),
        problems=_WRITE_PROBLEMS,
    ),
    Operation(
        "GET",
        "/pools/{pool_id}/allocations/{allocation_id}",
        "getAllocation",
        "One allocation with its state and last error",
        "allocations",
        get_allocation,
        Success(200, "The allocation.", ref("Allocation")),
        description=POOL_READERS,
        params=_ALLOCATION_PATH,
        problems=_READ_PROBLEMS,
    ),
    Operation(
        "PATCH",
        "/pools/{pool_id}/allocations/{allocation_id}",
        "updateAllocation",
        "Change an allocation's count, description or end day (extend it)",
        "allocations",
        update_allocation,
        Success(200, "The allocation as changed.", ref("Allocation")),
        description=POOL_WRITERS,
        params=_ALLOCATION_PATH,
        body=ref("AllocationChange"),
        problems=_WRITE_PROBLEMS,
    ),
    Operation(
        "DELETE",
        "/pools/{pool_id}/allocations/{allocation_id}",
        "removeAllocation",
        "Remove an allocation (its reservation leaves the server)",
        "allocations",
        remove_allocation,
        Success(204, "Removed."),
        description=POOL_WRITERS,
        params=_ALLOCATION_PATH,
        problems=(401, 403, 404, 409, 422),
    ),
    Operation(
        "POST",
        "/pools/{pool_id}/allocations/{allocation_id}/retry",
        "retryAllocation",
        "Send a failed allocation to the server again",
        "allocations",
        retry_allocation,
        Success(200, "The allocation, pending again.", ref("Allocation")),
        description=POOL_WRITERS,
        params=_ALLOCATION_PATH,
        problems=(401, 403, 404, 409, 422),
    ),
    Operation(
        "GET",
        "/allocations/states",
        "getAllocationStates",
        "The state and last error of given allocations",
        "allocations",
        allocation_states,
        Success(200, "The visible ones among the given ids.", ref("AllocationStates")),
        description="Every role; ids the token's user may not see are left out.",
        params=(_IDS,),
    ),
)
