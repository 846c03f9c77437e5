"""JSON Schemas (OpenAPI 3.1 components) of what the API reads and answers."""

from __future__ import annotations

from typing import Any

from vlm.alerting.kinds import KINDS
from vlm.domain import (
    COUNT_MAX,
    DAYS_MAX,
    DESCRIPTION_MAX_LENGTH,
    FEATURE_NAME_MAX_LENGTH,
    HOST_ID_MAX_LENGTH,
    ID_MAX,
    NAME_MAX_LENGTH,
    QUANTITY_MAX,
    AllocationState,
    HostType,
    Role,
)

Schema = dict[str, Any]

INT: Schema = {"type": "integer"}
NULL_INT: Schema = {"type": ["integer", "null"]}
NUMBER: Schema = {"type": ["number", "null"]}
TEXT: Schema = {"type": "string"}
NULL_TEXT: Schema = {"type": ["string", "null"]}
BOOL: Schema = {"type": "boolean"}
TIME: Schema = {"type": "string", "format": "date-time"}
NULL_TIME: Schema = {"type": ["string", "null"], "format": "date-time"}
NULL_DAY: Schema = {"type": ["string", "null"], "format": "date"}
DURATION_DAYS: Schema = {"type": ["integer", "null"], "minimum": 1, "maximum": DAYS_MAX}
ID: Schema = {"type": "integer", "minimum": 1, "maximum": ID_MAX}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(properties: dict[str, Schema], required: list[str] | None = None, **extra: Any) -> Schema:
    """An object schema; every listed property is required unless `required` says otherwise."""
    names = list(properties) if required is None else required
    return {"type": "object", "properties": properties, "required": names, **extra}


def page_of(item: str) -> Schema:
    """A page of a list: items, total (null when not counted), limit, offset, next URL."""
    return obj(
        {
            "items": {"type": "array", "items": ref(item)},
            "total": NULL_INT,
            "limit": INT,
            "offset": INT,
            "next": {"type": ["string", "null"], "description": "URL of the next page"},
        }
    )


def text(max_length: int, **extra: Any) -> Schema:
    return {"type": "string", "maxLength": max_length, **extra}


FIELD_ERROR = obj({"field": TEXT, "message": TEXT})
PROBLEM = obj(
    {
        "type": TEXT,
        "title": TEXT,
        "status": INT,
        "detail": TEXT,
        "errors": {"type": "array", "items": ref("FieldError")},
    },
    description="An RFC 9457 problem document; `errors` names the fields at fault.",
)
ME = obj(
    {
        "username": TEXT,
        "role": {"type": "string", "enum": [r.value for r in Role]},
        "read_only": BOOL,
        "token_id": INT,
    }
)
HEALTH = obj({"status": {"type": "string", "enum": ["ok", "starting"]}})

SERVER = obj(
    {
        "id": INT,
        "name": TEXT,
        "base_url": TEXT,
        "instance": TEXT,
        "username": NULL_TEXT,
        "verify_tls": BOOL,
        "description": NULL_TEXT,
        "status": TEXT,
        "last_sync_at": NULL_TIME,
        "last_success_at": NULL_TIME,
        "last_error": NULL_TEXT,
        "last_latency_ms": NUMBER,
        "features": INT,
        "total": INT,
        "used": INT,
        "available": INT,
    }
)
SERVER_FEATURE = obj(
    {
        "server_feature_id": INT,
        "server_id": INT,
        "server_name": TEXT,
        "feature_name": TEXT,
        "feature_version": TEXT,
        "total": INT,
        "used": INT,
        "reserved_by_others": INT,
        "pooled": INT,
        "poolable": INT,
        "deficit": INT,
        "can_pool": BOOL,
        "license_kind": TEXT,
        "expiry": NULL_TEXT,
        "present": BOOL,
        "vlm_id": NULL_INT,
        "vlm_name": NULL_TEXT,
    }
)
DRIFT_ITEM = obj(
    {
        "server_id": INT,
        "kind": TEXT,
        "host_type": NULL_TEXT,
        "host_id": NULL_TEXT,
        "feature_name": NULL_TEXT,
        "feature_version": NULL_TEXT,
        "expected": NULL_INT,
        "actual": NULL_INT,
        "deficit": NULL_INT,
        "detail": NULL_TEXT,
    }
)
DRIFT_EVENT = obj(
    {
        "happened_at": TIME,
        "server": NULL_TEXT,
        "group": TEXT,
        "kind": TEXT,
        "host_type": NULL_TEXT,
        "host_id": NULL_TEXT,
        "feature_name": NULL_TEXT,
        "feature_version": NULL_TEXT,
        "count": NULL_INT,
        "group_name": NULL_TEXT,
        "detail": NULL_TEXT,
    }
)
VLM = obj(
    {
        "id": INT,
        "name": TEXT,
        "vlm_type": TEXT,
        "description": NULL_TEXT,
        "created_at": TIME,
        "created_by": TEXT,
        "servers": NULL_TEXT,
        "pools": INT,
        "features": INT,
        "total": INT,
        "pooled": INT,
        "allocated": INT,
        "available": INT,
        "deficit": INT,
    }
)
VLM_FEATURE = obj(
    {
        "vlm_id": INT,
        "vlm_name": TEXT,
        "feature_name": TEXT,
        "feature_version": TEXT,
        "total": INT,
        "reserved_by_others": INT,
        "pooled": INT,
        "allocated": INT,
        "available": INT,
        "deficit": INT,
    }
)
POOL = obj(
    {
        "id": INT,
        "name": TEXT,
        "vlm_id": INT,
        "vlm_name": TEXT,
        "manager": TEXT,
        "description": NULL_TEXT,
        "features": INT,
        "quantity": INT,
        "allocated": INT,
        "available": INT,
        "allocations": INT,
        "failed": INT,
        "over_committed": BOOL,
        "created_at": TIME,
        "default_duration_days": {
            **DURATION_DAYS,
            "description": "fills the end of a new allocation given none (null: no default)",
        },
        "max_duration_days": {
            **DURATION_DAYS,
            "description": "the most days an allocation may hold its license, start and end "
            "days included (null: no maximum)",
        },
    }
)
POOL_FEATURE = obj(
    {
        "pool_id": INT,
        "pool_name": TEXT,
        "feature_name": TEXT,
        "feature_version": TEXT,
        "quantity": INT,
        "allocated": INT,
        "available": INT,
        "allocations": INT,
        "pending": INT,
        "failed": INT,
        "over_committed": BOOL,
    }
)
STATE: Schema = {
    "type": "string",
    "enum": [s.value for s in AllocationState],
    "description": "pending: not on the license server yet; applied: reserved there; failed: "
    "the server refused it (last_error says why; retry it); removing: deleted in VLM, "
    "still on the server; disabled: on the server, but the server disabled the entry; "
    "scheduled: its start day has not come (counted in the pool, not on the server yet); "
    "expiring: its end day has passed, being taken off the server; expired: off the server, "
    "kept as history.",
}
ALLOCATION = obj(
    {
        "id": INT,
        "pool_id": INT,
        "pool_name": TEXT,
        "feature_name": TEXT,
        "feature_version": TEXT,
        "host_type": {"type": "string", "enum": [t.value for t in HostType]},
        "host_id": TEXT,
        "count": INT,
        "description": NULL_TEXT,
        "state": STATE,
        "last_error": NULL_TEXT,
        "server_name": TEXT,
        "created_at": TIME,
        "created_by": TEXT,
        "updated_at": TIME,
        "applied_at": NULL_TIME,
        "starts_on": {**NULL_DAY, "description": "first day it holds its license (null: now)"},
        "ends_on": {**NULL_DAY, "description": "last day it holds its license (null: no end)"},
        "phase": {"type": "string", "enum": ["scheduled", "active", "expired"]},
    }
)
ALLOCATION_STATE = obj({"id": INT, "state": STATE, "last_error": NULL_TEXT})
ALLOCATION_STATES = obj({"items": {"type": "array", "items": ref("AllocationState")}})
AUDIT_ENTRY = obj(
    {
        "id": INT,
        "happened_at": TIME,
        "actor": TEXT,
        "action": TEXT,
        "target_type": TEXT,
        "target_id": TEXT,
        "before": {**NULL_TEXT, "description": "the target before, as JSON text"},
        "after": {**NULL_TEXT, "description": "the target after, as JSON text"},
    }
)
EXPORT_ROWS = obj(
    {
        "items": {"type": "array", "items": {"type": "object"}},
        "total": INT,
    }
)

ALERT = obj(
    {
        "id": INT,
        "rule_id": INT,
        "rule_name": NULL_TEXT,
        "kind": NULL_TEXT,
        "subject": TEXT,
        "title": TEXT,
        "detail": TEXT,
        "pool_id": NULL_INT,
        "opened_at": TIME,
        "cleared_at": NULL_TIME,
        "acknowledged_by": NULL_TEXT,
        "acknowledged_at": NULL_TIME,
    }
)
ALERT_KIND = {"type": "string", "enum": list(KINDS)}
ALERT_RULE = obj(
    {
        "id": INT,
        "name": TEXT,
        "kind": ALERT_KIND,
        "threshold": {"type": "number"},
        "pool_id": NULL_INT,
        "owner": TEXT,
        "destination_labels": {"type": "string", "description": "masked, one per line"},
        "enabled": BOOL,
        "created_at": TIME,
        "pool_name": NULL_TEXT,
    }
)
NEW_ALERT_RULE = obj(
    {
        "name": text(NAME_MAX_LENGTH, minLength=1),
        "kind": ALERT_KIND,
        "threshold": {"type": "number", "description": "in the kind's unit (see the docs)"},
        "pool_id": {**ID, "description": "a pool kind for one pool only"},
        "destinations": {"type": "string", "description": "apprise URLs, one per line"},
        "enabled": BOOL,
    },
    required=["name", "kind"],
)
FEATURE_NAME = text(FEATURE_NAME_MAX_LENGTH, minLength=1)
FEATURE_VERSION = text(FEATURE_NAME_MAX_LENGTH, default="")
IDLE_ALLOCATION = obj(
    {
        "id": INT,
        "pool_id": INT,
        "pool": TEXT,
        "vlm": TEXT,
        "manager": TEXT,
        "server": TEXT,
        "feature_name": TEXT,
        "feature_version": TEXT,
        "host_type": TEXT,
        "host_id": TEXT,
        "count": INT,
        "description": TEXT,
        "held_since": TIME,
        "last_seen": {**NULL_TIME, "description": "last seen using the feature; null: never"},
        "idle_since": TIME,
        "seat_price": NUMBER,
        "seat_cost": NUMBER,
        "idle_warned_at": NULL_TIME,
    }
)
IDLE_RELEASE_REQUEST = obj(
    {
        "allocation_ids": {"type": "array", "items": ID, "minItems": 1},
        "days": {"type": "integer", "minimum": 1, "maximum": DAYS_MAX},
    },
    required=["allocation_ids"],
)
IDLE_RELEASE = obj(
    {
        "released": {"type": "array", "items": INT},
        "refused": {
            "type": "array",
            "items": obj({"allocation_id": NULL_INT, "message": TEXT}),
        },
    }
)
HARVEST_POLICY = obj(
    {
        "enabled": BOOL,
        "warn_after_days": NULL_INT,
        "release_after_days": NULL_INT,
        "updated_by": NULL_TEXT,
        "updated_at": NULL_TIME,
    }
)
HARVEST_POLICY_CHANGE = obj(
    {
        "enabled": BOOL,
        "warn_after_days": {"type": "integer", "minimum": 1, "maximum": DAYS_MAX},
        "release_after_days": {"type": "integer", "minimum": 1, "maximum": DAYS_MAX},
    }
)
SEAT_PRICE = obj(
    {
        "feature_name": TEXT,
        "feature_version": TEXT,
        "seat_price": {"type": "number"},
        "updated_by": TEXT,
        "updated_at": TIME,
    }
)
SEAT_PRICE_CHANGE = obj(
    {
        "feature_name": FEATURE_NAME,
        "feature_version": FEATURE_VERSION,
        "seat_price": {"type": ["number", "null"], "minimum": 0, "maximum": 1e9},
    },
    required=["feature_name", "seat_price"],
)
HOST_TYPE: Schema = {"type": "string", "enum": [t.value for t in HostType]}
NEW_VLM = obj(
    {
        "name": text(NAME_MAX_LENGTH, minLength=1),
        "server_feature_ids": {"type": "array", "items": ID, "minItems": 1},
        "description": text(DESCRIPTION_MAX_LENGTH),
        "vlm_type": {"type": "string", "enum": ["FlexNet Embedded"]},
    },
    required=["name", "server_feature_ids"],
)
VLM_CHANGE = obj(
    {
        "name": text(NAME_MAX_LENGTH, minLength=1),
        "server_feature_ids": {"type": "array", "items": ID, "minItems": 1},
        "description": text(DESCRIPTION_MAX_LENGTH),
    },
    required=[],
    description="Only the fields given change; server_feature_ids replaces the exposed set.",
)
QUANTITY = obj(
    {
        "feature_name": FEATURE_NAME,
        "feature_version": FEATURE_VERSION,
        "quantity": {"type": "integer", "minimum": 0, "maximum": QUANTITY_MAX},
    },
    required=["feature_name", "quantity"],
)
QUANTITIES: Schema = {"type": "array", "items": ref("FeatureQuantity")}
NEW_POOL = obj(
    {
        "vlm_id": ID,
        "name": text(NAME_MAX_LENGTH, minLength=1),
        "manager": text(NAME_MAX_LENGTH, minLength=1),
        "quantities": QUANTITIES,
        "description": text(DESCRIPTION_MAX_LENGTH),
        "default_duration_days": DURATION_DAYS,
        "max_duration_days": DURATION_DAYS,
    },
    required=["vlm_id", "name", "manager", "quantities"],
)
POOL_CHANGE = obj(
    {
        "name": text(NAME_MAX_LENGTH, minLength=1),
        "manager": text(NAME_MAX_LENGTH, minLength=1),
        "quantities": QUANTITIES,
        "description": text(DESCRIPTION_MAX_LENGTH),
        "default_duration_days": DURATION_DAYS,
        "max_duration_days": DURATION_DAYS,
    },
    required=[],
    description="Only the fields given change; a quantity never goes below what is allocated. "
    "Give both durations together (null clears one); existing allocations keep their dates.",
)
ALLOCATION_FIELDS: dict[str, Schema] = {
    "feature_name": FEATURE_NAME,
    "feature_version": FEATURE_VERSION,
    "host_type": HOST_TYPE,
    "host_id": text(HOST_ID_MAX_LENGTH, minLength=1),
    "count": {"type": "integer", "minimum": 1, "maximum": COUNT_MAX, "default": 1},
    "description": text(DESCRIPTION_MAX_LENGTH),
    "starts_on": {
        **NULL_DAY,
        "description": "YYYY-MM-DD, the first day it holds its license; a later day than today "
        "makes it scheduled (null: now)",
    },
    "ends_on": {
        **NULL_DAY,
        "description": "YYYY-MM-DD, the last day it holds its license (null: the pool's default "
        "duration, else its maximum, else no end)",
    },
}
NEW_ALLOCATION = obj(ALLOCATION_FIELDS, required=["feature_name", "host_type", "host_id"])
ALLOCATION_CHANGE = obj(
    {
        "count": ALLOCATION_FIELDS["count"],
        "description": ALLOCATION_FIELDS["description"],
        "ends_on": {
            **NULL_DAY,
            "description": "a new last day (extend or shorten), within the pool's maximum "
            "duration from the allocation's first day",
        },
    },
    required=[],
)
BULK_ROW = obj(ALLOCATION_FIELDS, required=["host_type", "host_id"])
BULK_ALLOCATIONS = obj(
    {
        "allocations": {"type": "array", "items": ref("BulkRow"), "maxItems": 10_000},
        "csv": {
            "type": "string",
            "description": "CSV text with a header (host_id, host_type, count, description, "
            "feature_name, feature_version, starts_on, ends_on), as the Allocations page's bulk "
            "add reads it.",
        },
        "feature_name": FEATURE_NAME,
        "feature_version": FEATURE_VERSION,
        "default_host_type": HOST_TYPE,
        "default_count": ALLOCATION_FIELDS["count"],
    },
    required=[],
    description="Give `allocations` or `csv`. `feature_name`/`feature_version` apply to rows "
    "without their own; the default_* fields to CSV rows without a host type or count.",
)
BULK_ROW_RESULT = obj(
    {
        "index": INT,
        "line": NULL_INT,
        "ok": BOOL,
        "allocation_id": NULL_INT,
        "message": TEXT,
        "errors": {"type": "array", "items": ref("FieldError")},
    }
)
BULK_RESULT = obj(
    {
        "created": INT,
        "refused": INT,
        "results": {"type": "array", "items": ref("BulkRowResult")},
    }
)
EXTEND_ALLOCATIONS = obj(
    {
        "ids": {
            "type": "array",
            "items": ID,
            "minItems": 1,
            "maxItems": 10_000,
            "description": "the allocations of this pool to give the new last day",
        },
        "ends_on": {
            "type": "string",
            "format": "date",
            "description": "YYYY-MM-DD, the new last day (inclusive), within the pool's maximum "
            "duration from each allocation's first day",
        },
    },
    description="Each allocation is extended (or shortened) and audited as allocation.extend, "
    "or refused with its reason (expired, not in the pool, beyond the maximum duration).",
)
EXTEND_RESULT = obj(
    {
        "extended": INT,
        "refused": INT,
        "results": {"type": "array", "items": ref("BulkRowResult")},
    }
)

REQUEST_STATE: Schema = {
    "type": "string",
    "enum": ["open", "approved", "partly approved", "declined", "withdrawn"],
}
QUANTITY_REQUEST = obj(
    {
        "id": INT,
        "pool_id": INT,
        "pool_name": TEXT,
        "vlm_name": TEXT,
        "manager": TEXT,
        "feature_name": TEXT,
        "feature_version": TEXT,
        "quantity": INT,
        "reason": TEXT,
        "requested_by": TEXT,
        "requested_at": TIME,
        "state": REQUEST_STATE,
        "granted": NULL_INT,
        "decided_by": NULL_TEXT,
        "decided_at": NULL_TIME,
        "decision_reason": NULL_TEXT,
        "pool_quantity": {**INT, "description": "the pool's quantity of the feature now"},
        "vlm_available": {
            **INT,
            "description": "what the pool's VLM could still pool of the feature now",
        },
    }
)
NEW_QUANTITY_REQUEST = obj(
    {
        "pool_id": ID,
        "feature_name": FEATURE_NAME,
        "feature_version": FEATURE_VERSION,
        "quantity": {"type": "integer", "minimum": 1, "maximum": QUANTITY_MAX},
        "reason": text(DESCRIPTION_MAX_LENGTH, minLength=1),
    },
    required=["pool_id", "feature_name", "quantity", "reason"],
)
QUANTITY_DECISION = obj(
    {
        "decision": {"type": "string", "enum": ["approve", "partial", "decline"]},
        "granted": {
            "type": "integer",
            "minimum": 1,
            "maximum": QUANTITY_MAX,
            "description": "for partial: how many to grant, fewer than asked",
        },
        "reason": text(DESCRIPTION_MAX_LENGTH, description="required to decline"),
    },
    required=["decision"],
)

COMPONENTS: dict[str, Schema] = {
    "FieldError": FIELD_ERROR,
    "Problem": PROBLEM,
    "Me": ME,
    "Health": HEALTH,
    "Server": SERVER,
    "ServerPage": page_of("Server"),
    "ServerFeature": SERVER_FEATURE,
    "ServerFeaturePage": page_of("ServerFeature"),
    "DriftItem": DRIFT_ITEM,
    "DriftItemPage": page_of("DriftItem"),
    "DriftEvent": DRIFT_EVENT,
    "DriftEventPage": page_of("DriftEvent"),
    "Vlm": VLM,
    "VlmPage": page_of("Vlm"),
    "VlmFeature": VLM_FEATURE,
    "VlmFeaturePage": page_of("VlmFeature"),
    "NewVlm": NEW_VLM,
    "VlmChange": VLM_CHANGE,
    "Pool": POOL,
    "PoolPage": page_of("Pool"),
    "PoolFeature": POOL_FEATURE,
    "PoolFeaturePage": page_of("PoolFeature"),
    "FeatureQuantity": QUANTITY,
    "NewPool": NEW_POOL,
    "PoolChange": POOL_CHANGE,
    "Allocation": ALLOCATION,
    "AllocationPage": page_of("Allocation"),
    "AllocationState": ALLOCATION_STATE,
    "AllocationStates": ALLOCATION_STATES,
    "NewAllocation": NEW_ALLOCATION,
    "AllocationChange": ALLOCATION_CHANGE,
    "BulkRow": BULK_ROW,
    "BulkAllocations": BULK_ALLOCATIONS,
    "BulkRowResult": BULK_ROW_RESULT,
    "BulkResult": BULK_RESULT,
    "ExtendAllocations": EXTEND_ALLOCATIONS,
    "ExtendResult": EXTEND_RESULT,
    "Alert": ALERT,
    "AlertPage": page_of("Alert"),
    "AlertRule": ALERT_RULE,
    "AlertRulePage": page_of("AlertRule"),
    "NewAlertRule": NEW_ALERT_RULE,
    "IdleAllocation": IDLE_ALLOCATION,
    "IdleAllocationPage": page_of("IdleAllocation"),
    "IdleReleaseRequest": IDLE_RELEASE_REQUEST,
    "IdleRelease": IDLE_RELEASE,
    "HarvestPolicy": HARVEST_POLICY,
    "HarvestPolicyChange": HARVEST_POLICY_CHANGE,
    "SeatPrice": SEAT_PRICE,
    "SeatPricePage": page_of("SeatPrice"),
    "SeatPriceChange": SEAT_PRICE_CHANGE,
    "QuantityRequest": QUANTITY_REQUEST,
    "QuantityRequestPage": page_of("QuantityRequest"),
    "NewQuantityRequest": NEW_QUANTITY_REQUEST,
    "QuantityDecision": QUANTITY_DECISION,
    "AuditEntry": AUDIT_ENTRY,
    "AuditEntryPage": page_of("AuditEntry"),
    "ExportRows": EXPORT_ROWS,
}
UTILIZATION_DAYS: Schema = {"type": "integer", "minimum": 1, "maximum": DAYS_MAX, "default": 90}
