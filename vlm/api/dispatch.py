"""How an API request runs: read the body on the event loop, then in a worker thread (the
services block on DuckDB, and the event loop is the UI's too) authenticate the bearer token,
refuse read-only tokens on writes, replay or claim an Idempotency-Key, call the handler, and
turn a service error into its problem document.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vlm.api.framework import Call, Operation
from vlm.api.replies import Reply, dumps, problem, problem_for
from vlm.context import ServiceContext
from vlm.domain import ValidationError, VlmError
from vlm.runtime import current_runtime
from vlm.services import idempotency, tokens
from vlm.services.tokens import TokenActor

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 5 * 1024 * 1024
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


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


def _bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None


class _BadBody(Exception):
    """The request body cannot be read as JSON."""


def _parse_body(op: Operation, incoming: Incoming) -> Any:
    if op.body is None or not incoming.body.strip():
        return None
    try:
        return json.loads(incoming.body)
    except (ValueError, RecursionError) as exc:  # ValueError: bad JSON, UTF-8 or a huge number
        raise _BadBody(f"the body is not valid JSON: {exc}") from None


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
    except (ValueError, RecursionError):
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
