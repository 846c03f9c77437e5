"""How an API request runs: bearer token -> actor, body and query parsing, idempotent replay,
service errors as RFC 9457 problem documents, paginated lists, frames as JSON.

Each endpoint is an `Operation` (method, path, handler, and what the OpenAPI document says
about it). The handlers are plain functions that take a `Call` and return a `Reply`; they run
in a worker thread (the services block on DuckDB), never on the event loop the UI shares.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from urllib.parse import urlencode

import numpy as np
import pandas as pd
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vlm.context import ServiceContext
from vlm.domain import (
    Conflict,
    NotFound,
    PermissionDenied,
    ValidationError,
    VlmError,
    bounded_int,
    clean_text,
    record_id,
    shown,
)
from vlm.runtime import current_runtime
from vlm.services import idempotency, tokens
from vlm.services.tokens import InvalidToken, TokenActor

log = logging.getLogger(__name__)

JSON = "application/json"
PROBLEM = "application/problem+json"
CSV = "text/csv; charset=utf-8"
MAX_BODY_BYTES = 5 * 1024 * 1024
DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
QUERY_TEXT_MAX_LENGTH = 1_000
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
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
    "token": "token_id",
    "features": "server_feature_ids",
    "feature": "feature_name",
    "quantity": "quantities",
    "type": "vlm_type",
}


@dataclass(frozen=True)
class Param:
    """A path or query parameter, as the OpenAPI document describes it."""

    name: str
    location: str
    schema: Mapping[str, Any]
    description: str
    required: bool = False


@dataclass(frozen=True)
class Success:
    """The response an operation gives when it works."""

    status: int
    description: str
    schema: Mapping[str, Any] | None = None
    media_types: tuple[str, ...] = (JSON,)


@dataclass(frozen=True)
class Reply:
    """What a handler answers: JSON (body) or raw bytes of a media type."""

    status: int
    body: Any = None
    raw: bytes | None = None
    media_type: str = JSON
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    """One endpoint: how it runs and how the OpenAPI document describes it."""

    method: str
    path: str
    operation_id: str
    summary: str
    tag: str
    handler: Callable[[Call], Reply]
    success: Success
    description: str = ""
    params: tuple[Param, ...] = ()
    body: Mapping[str, Any] | None = None
    problems: tuple[int, ...] = (401, 403, 422)
    public: bool = False

    @property
    def writes(self) -> bool:
        return self.method != "GET"


@dataclass(frozen=True)
class Call:
    """One request as a handler sees it: the context, the acting user and the parsed input."""

    ctx: ServiceContext
    actor: TokenActor
    path: Mapping[str, str]
    query: Mapping[str, str]
    body: Any
    url: str

    def path_id(self, name: str, what: str) -> int:
        """A row id from the path, refused with the parameter's name when it is not one."""
        try:
            return record_id(self.path[name], what)
        except ValidationError as exc:
            raise ValidationError(exc.message, field=name) from None

    def query_int(
        self, name: str, default: int | None, *, minimum: int, maximum: int
    ) -> int | None:
        raw = self.query.get(name)
        if raw is None:
            return default
        return bounded_int(raw, name, minimum=minimum, maximum=maximum)

    def query_text(self, name: str) -> str | None:
        """A query parameter as printable text (control characters are refused)."""
        raw = self.query.get(name)
        if raw is None:
            return None
        return clean_text(raw, name, max_len=QUERY_TEXT_MAX_LENGTH, required=False)

    def query_flag(self, name: str, default: bool = False) -> bool:
        raw = self.query.get(name)
        if raw is None:
            return default
        if raw.lower() in {"true", "1", "yes"}:
            return True
        if raw.lower() in {"false", "0", "no"}:
            return False
        raise ValidationError(f"{name} must be true or false", field=name)

    def json_object(self) -> dict[str, Any]:
        """The body as a JSON object (a problem document names what is wrong otherwise)."""
        if not isinstance(self.body, dict):
            raise ValidationError("the body must be a JSON object", field="body")
        return self.body


@dataclass(frozen=True)
class Incoming:
    """What the event loop read off the request before handing it to a worker thread."""

    method: str
    headers: Mapping[str, str]
    path: Mapping[str, str]
    query: Mapping[str, str]
    query_string: str
    url_path: str
    url: str
    body: bytes


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


def problem_for(error: VlmError) -> Reply:
    """The problem document of a service error: its status by kind, its field and message."""
    status = status_of(error)
    name = api_field(error.field)
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


# -- lists -----------------------------------------------------------------------------------

PAGE_PARAMS = (
    Param(
        "limit",
        "query",
        {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": DEFAULT_LIMIT},
        f"How many items to return (1 to {MAX_LIMIT}).",
    ),
    Param(
        "offset",
        "query",
        {"type": "integer", "minimum": 0, "default": 0},
        "How many items to skip; follow `next` for the following page.",
    ),
)


def page_bounds(call: Call) -> tuple[int, int]:
    limit = call.query_int("limit", DEFAULT_LIMIT, minimum=1, maximum=MAX_LIMIT)
    offset = call.query_int("offset", 0, minimum=0, maximum=2**62)
    assert limit is not None and offset is not None
    return limit, offset


def _next_url(call: Call, limit: int, offset: int) -> str:
    query = {k: v for k, v in call.query.items() if k not in {"limit", "offset"}}
    query |= {"limit": str(limit), "offset": str(offset + limit)}
    return f"{call.url}?{urlencode(query)}"


def _page(
    call: Call,
    items: list[dict[str, Any]],
    total: int | None,
    limit: int,
    offset: int,
    *,
    more: bool | None = None,
) -> Reply:
    """A page of items; `total` is None when counting them all would cost too much."""
    if more is None:
        more = total is not None and offset + limit < total
    body = {
        "items": items,
        "total": total,
        "limit": limit,
        "offset": offset,
        "next": _next_url(call, limit, offset) if more else None,
    }
    return Reply(200, body)


def paged(call: Call, items: Sequence[dict[str, Any]]) -> Reply:
    """One page of a list, with the URL of the next page (null on the last)."""
    limit, offset = page_bounds(call)
    return _page(call, list(items[offset : offset + limit]), len(items), limit, offset)


def paged_frame(call: Call, frame: pd.DataFrame) -> Reply:
    """One page of a frame's rows (only that page is turned into JSON)."""
    limit, offset = page_bounds(call)
    return _page(call, records(frame.iloc[offset : offset + limit]), len(frame), limit, offset)


def paged_open_ended(call: Call, fetch: Callable[[int], pd.DataFrame]) -> Reply:
    """A page of a list that is not counted: fetch(n) returns its first n rows."""
    limit, offset = page_bounds(call)
    frame = fetch(offset + limit + 1)
    shown = records(frame.iloc[offset : offset + limit])
    return _page(call, shown, None, limit, offset, more=len(frame) > offset + limit)


def body_fields(call: Call, allowed: Sequence[str], required: Sequence[str] = ()) -> dict[str, Any]:
    """The body's fields, refusing unknown and missing ones by name."""
    body = call.json_object()
    unknown = [name for name in body if name not in allowed]
    if unknown:
        raise ValidationError(
            f"unknown field '{shown(unknown[0])}'; the fields are {', '.join(allowed)}",
            field=shown(unknown[0]),
        )
    missing = [name for name in required if body.get(name) is None]
    if missing:
        raise ValidationError(f"{missing[0]} is required", field=missing[0])
    return body


# -- running a request -----------------------------------------------------------------------


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


def _parse_body(op: Operation, incoming: Incoming) -> Any:
    if op.body is None or not incoming.body.strip():
        return None
    try:
        return json.loads(incoming.body)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise _BadBody(f"the body is not valid JSON: {exc}") from None


class _BadBody(Exception):
    """The request body cannot be read as JSON."""


def _run(ctx: ServiceContext, actor: TokenActor, op: Operation, incoming: Incoming) -> Reply:
    """Call the handler; a service error becomes its problem document."""
    try:
        body = _parse_body(op, incoming)
        call = Call(ctx, actor, incoming.path, incoming.query, body, incoming.url)
        if op.body is not None and body is None:
            raise ValidationError("a JSON body is required", field="body")
        return op.handler(call)
    except _BadBody as exc:
        return problem(400, str(exc), [("body", str(exc))])
    except VlmError as exc:
        return problem_for(exc)


def _canonical_body(incoming: Incoming) -> bytes:
    """The body as compared for idempotency: JSON re-serialised with sorted keys, else raw."""
    try:
        return json.dumps(json.loads(incoming.body), sort_keys=True).encode()
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return incoming.body


def _stored(reply: Reply) -> idempotency.StoredResponse:
    text = reply.raw.decode() if reply.raw is not None else dumps(reply.body).decode()
    return idempotency.StoredResponse(reply.status, reply.media_type, text)


def _replayed(stored: idempotency.StoredResponse) -> Reply:
    return Reply(
        stored.status,
        raw=stored.body.encode(),
        media_type=stored.content_type,
        headers={"Idempotent-Replayed": "true"},
    )


def _run_once(
    ctx: ServiceContext, actor: TokenActor, op: Operation, incoming: Incoming, key: str
) -> Reply:
    """Run a write at most once per idempotency key; a retry gets the first response."""
    fingerprint = idempotency.request_fingerprint(
        incoming.method, incoming.url_path, incoming.query_string, _canonical_body(incoming)
    )
    earlier = idempotency.begin(ctx, actor, key, fingerprint)
    if earlier is not None:
        return _replayed(earlier)
    try:
        reply = _run(ctx, actor, op, incoming)
    except BaseException:
        idempotency.abandon(ctx, actor, key)
        raise
    if reply.status >= 500:
        idempotency.abandon(ctx, actor, key)
    else:
        idempotency.finish(ctx, actor, key, _stored(reply))
    return reply


def handle(ctx: ServiceContext, op: Operation, incoming: Incoming) -> Reply:
    """Authenticate, refuse read-only tokens on writes, then run (once, given a key)."""
    try:
        actor = tokens.authenticate(ctx, _bearer(incoming.headers))
        if op.writes:
            tokens.require_writable(actor)
        key = incoming.headers.get("idempotency-key")
        if op.writes and key is not None:
            return _run_once(ctx, actor, op, incoming, key)
    except VlmError as exc:
        return problem_for(exc)
    return _run(ctx, actor, op, incoming)


def _public(ctx: ServiceContext | None, op: Operation, incoming: Incoming) -> Reply:
    """An operation that needs no token (the document, its reference page, health)."""
    call = Call(ctx, None, incoming.path, incoming.query, None, incoming.url)  # type: ignore[arg-type]
    return op.handler(call)


async def _read_body(request: Request) -> bytes | None:
    """The request body, or None when it is larger than MAX_BODY_BYTES."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _response(reply: Reply) -> Response:
    content = reply.raw if reply.raw is not None else b""
    if reply.raw is None and reply.body is not None:
        content = dumps(reply.body)
    return Response(content, reply.status, dict(reply.headers), media_type=reply.media_type)


def _incoming(request: Request, body: bytes) -> Incoming:
    return Incoming(
        method=request.method,
        headers={k.lower(): v for k, v in request.headers.items()},
        path={k: str(v) for k, v in request.path_params.items()},
        query=dict(request.query_params),
        query_string=request.url.query,
        url_path=request.url.path,
        url=str(request.url.replace(query="")),
        body=body,
    )


def _safely(run: Callable[[], Reply]) -> Reply:
    """Any failure the handlers did not foresee becomes a 500 problem (and a log entry)."""
    try:
        return run()
    except Exception:
        log.exception("API request failed")
        return problem(500, "the request failed on the server; the error is in its log")


def path_route(path: str, operations: Mapping[str, Operation]) -> Route:
    """One Starlette route for every method of a path; other methods get a 405 problem."""
    allowed = ", ".join(sorted(operations))

    async def endpoint(request: Request) -> Response:
        op = operations.get(request.method)
        if op is None:
            detail = f"{request.method} is not allowed here; use {allowed}"
            return _response(problem(405, detail, headers={"Allow": allowed}))
        body = await _read_body(request)
        if body is None:
            return _response(problem(413, f"the body is larger than {MAX_BODY_BYTES:,} bytes"))
        incoming = _incoming(request, body)
        runtime = current_runtime()
        if op.public:
            ctx = runtime.ctx if runtime is not None else None
            reply = await run_in_threadpool(_safely, lambda: _public(ctx, op, incoming))
        elif runtime is None:
            reply = problem(503, "VLM is starting or stopping; try again in a moment")
        else:
            ctx = runtime.ctx
            reply = await run_in_threadpool(_safely, lambda: handle(ctx, op, incoming))
        return _response(reply)

    return Route(path, endpoint, methods=list(METHODS))
