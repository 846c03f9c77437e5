"""Endpoints for exports (CSV or JSON, scoped to what the role may see) and the audit log."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from vlm.api.framework import (
    PAGE_PARAMS,
    Call,
    Operation,
    Param,
    Success,
    paged_open_ended,
)
from vlm.api.replies import CSV, JSON, Reply, records
from vlm.api.schemas import UTILIZATION_DAYS, ref
from vlm.domain import DAYS_MAX, ValidationError, shown
from vlm.services import audit, exports

FORMATS = ("csv", "json")
DEFAULT_DAYS = 90
EVERY_ROLE = "Every role, scoped like the Export page: managers get their own pools only."
ESTATE_READERS = "Admins and analysts; managers are refused (403)."


def _format(call: Call) -> str:
    chosen = call.query_text("format") or "csv"
    if chosen not in FORMATS:
        raise ValidationError(
            f"format '{shown(chosen)}' is not one of {', '.join(FORMATS)}", field="format"
        )
    return chosen


def _csv(data: bytes, name: str) -> Reply:
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv"'}
    return Reply(200, raw=data, media_type=CSV, headers=headers)


def _json(frame: pd.DataFrame) -> Reply:
    return Reply(200, {"items": records(frame), "total": len(frame)})


def _export(
    name: str,
    frame: Callable[[Call], pd.DataFrame],
    csv: Callable[[Call], bytes] | None = None,
) -> Callable[[Call], Reply]:
    """A handler answering a dataset as CSV (written by DuckDB when csv is given) or JSON."""

    def handler(call: Call) -> Reply:
        if _format(call) == "json":
            return _json(frame(call))
        if csv is not None:
            return _csv(csv(call), name)
        return _csv(exports.to_csv_bytes(frame(call)), name)

    return handler


def _days(call: Call) -> int:
    days = call.query_int("days", DEFAULT_DAYS, minimum=1, maximum=DAYS_MAX)
    assert days is not None
    return days


export_allocations = _export(
    "allocations",
    lambda call: exports.allocations_export(call.ctx, call.actor),
    lambda call: exports.allocations_csv(call.ctx, call.actor),
)
export_pools = _export("pools", lambda call: exports.pools_with_features(call.ctx, call.actor))
export_server_features = _export(
    "server-features", lambda call: exports.server_features_export(call.ctx, call.actor)
)
export_utilization = _export(
    "utilization-history",
    lambda call: exports.utilization_export(call.ctx, call.actor, _days(call)),
    lambda call: exports.utilization_csv(call.ctx, call.actor, _days(call)),
)


def audit_entries(call: Call) -> Reply:
    def fetch(count: int) -> pd.DataFrame:
        return audit.audit_log(
            call.ctx,
            call.actor,
            user=call.query_text("actor"),
            action=call.query_text("action"),
            target=call.query_text("target"),
            limit=count,
        )

    return paged_open_ended(call, fetch)


FORMAT = Param(
    "format",
    "query",
    {"type": "string", "enum": list(FORMATS), "default": "csv"},
    "csv (formula-safe, machine column names) or json.",
)
DAYS = Param("days", "query", UTILIZATION_DAYS, "How many days of history.")


def _export_success(what: str) -> Success:
    return Success(200, f"{what} as CSV or JSON.", ref("ExportRows"), media_types=(CSV, JSON))


def _text_filter(name: str, description: str) -> Param:
    return Param(name, "query", {"type": "string", "maxLength": 200}, description)


OPERATIONS = (
    Operation(
        "GET",
        "/exports/allocations",
        "exportAllocations",
        "Every visible allocation",
        "exports",
        export_allocations,
        _export_success("Allocations"),
        description=EVERY_ROLE,
        params=(FORMAT,),
    ),
    Operation(
        "GET",
        "/exports/pools",
        "exportPools",
        "Every visible pool with each feature's figures",
        "exports",
        export_pools,
        _export_success("Pool features"),
        description=EVERY_ROLE,
        params=(FORMAT,),
    ),
    Operation(
        "GET",
        "/exports/server-features",
        "exportServerFeatures",
        "Every license server feature with its figures",
        "exports",
        export_server_features,
        _export_success("Server features"),
        description=ESTATE_READERS,
        params=(FORMAT,),
    ),
    Operation(
        "GET",
        "/exports/utilization",
        "exportUtilization",
        "Change-only utilization history of the last days",
        "exports",
        export_utilization,
        _export_success("Utilization snapshots"),
        description=ESTATE_READERS,
        params=(FORMAT, DAYS),
    ),
    Operation(
        "GET",
        "/audit",
        "listAuditEntries",
        "The audit log, newest first",
        "audit",
        audit_entries,
        Success(
            200, "A page of audit entries (total is null: not counted).", ref("AuditEntryPage")
        ),
        description="Admins only.",
        params=(
            _text_filter("actor", "Only changes by this user."),
            _text_filter("action", "Only this action, e.g. allocation.add."),
            _text_filter("target", "Target type or id contains this."),
            *PAGE_PARAMS,
        ),
    ),
)
