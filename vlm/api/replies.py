"""What the API answers: RFC 9457 problem documents built from service errors, and frames
as JSON (times with their UTC offset, blanks as null)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from vlm.domain import Conflict, NotFound, PermissionDenied, VlmError
from vlm.services.tokens import InvalidToken

JSON = "application/json"
PROBLEM = "application/problem+json"
CSV = "text/csv; charset=utf-8"
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid input",
    500: "Internal error",
    503: "Service unavailable",
}
# service field names -> the names the API's bodies, paths and queries use
FIELD_NAMES = {
    "pool": "pool_id",
    "VLM": "vlm_id",
    "vlm": "vlm_id",
    "server": "server_id",
    "allocation": "allocation_id",
    "request": "request_id",
    "token": "token_id",
    "features": "server_feature_ids",
    "feature": "feature_name",
    "quantity": "quantities",
    "type": "vlm_type",
}


@dataclass(frozen=True)
class Reply:
    """What a handler answers: JSON (body) or raw bytes of a media type."""

    status: int
    body: Any = None
    raw: bytes | None = None
    media_type: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)


# -- problem documents ------------------------------------------------------------------------


def problem(
    status: int,
    detail: str,
    errors: Sequence[tuple[str, str]] = (),
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """An RFC 9457 problem document with field-level errors."""
    body = {
        "type": "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "errors": [{"field": name, "message": message} for name, message in errors],
    }
    return Reply(status, body, media_type=PROBLEM, headers=headers or {})


def status_of(error: VlmError) -> int:
    if isinstance(error, InvalidToken):
        return 401
    if isinstance(error, PermissionDenied):
        return 403
    if isinstance(error, NotFound):
        return 404
    if isinstance(error, Conflict):
        return 409
    return 422


def api_field(name: str | None) -> str | None:
    """The API's name for a service's field name."""
    return None if name is None else FIELD_NAMES.get(name, name)


def problem_for(error: VlmError, fields: Mapping[str, str] | None = None) -> Reply:
    """The problem document of a service error: its status by kind, its field and message
    (`fields` names service fields where an endpoint's body differs from FIELD_NAMES)."""
    status = status_of(error)
    name = (fields or {}).get(error.field or "") or api_field(error.field)
    errors = [(name, error.message)] if name else []
    headers = {"WWW-Authenticate": 'Bearer realm="vlm"'} if status == 401 else None
    return problem(status, error.message, errors, headers)


# -- JSON ------------------------------------------------------------------------------------


def plain(value: Any) -> Any:
    """A frame cell as JSON: numbers, text, booleans, null, times with their UTC offset."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or value is pd.NaT or value is pd.NA:
        return None
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, pd.Timestamp):
        value = value.to_pydatetime()
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.astimezone()).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """A frame's rows as JSON-ready dicts."""
    columns = [str(c) for c in frame.columns]
    return [
        {c: plain(v) for c, v in zip(columns, row, strict=True)}
        for row in frame.itertuples(index=False, name=None)
    ]


def first_record(frame: pd.DataFrame, what: str, row_id: int, column: str = "id") -> dict:
    """The frame's row with that id, or NotFound."""
    rows = records(frame[frame[column] == row_id])
    if not rows:
        raise NotFound(f"{what} {row_id} does not exist", field=f"{what}_id")
    return rows[0]


def dumps(body: Any) -> bytes:
    return json.dumps(body, ensure_ascii=False, allow_nan=False, default=plain).encode()
