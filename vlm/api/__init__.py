"""The REST API (/api/v1): Starlette routes over the services, personal access tokens, OpenAPI.

`api_routes()` is what server.py hands to `st.App(routes=…)`; the handlers find the process's
runtime with `vlm.runtime.current_runtime()` and call the same services as the pages.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from starlette.routing import BaseRoute, Mount

from vlm.api import alerts, estate, exports, harvesting, pools, requests
from vlm.api.dispatch import METHODS, path_route
from vlm.api.framework import Call, Operation, Success
from vlm.api.openapi import API_PREFIX, openapi_document, reference_page
from vlm.api.replies import Reply, problem
from vlm.api.schemas import ref

HTML = "text/html; charset=utf-8"
_RESOURCE_OPERATIONS: tuple[Operation, ...] = (
    *estate.OPERATIONS,
    *pools.OPERATIONS,
    *exports.OPERATIONS,
    *alerts.OPERATIONS,
    *harvesting.OPERATIONS,
    *requests.OPERATIONS,
)


def health(call: Call) -> Reply:
    """Ok once the server's lifespan installed the runtime."""
    if call.ctx is None:
        return Reply(503, {"status": "starting"})
    return Reply(200, {"status": "ok"})


def openapi_json(call: Call) -> Reply:
    return Reply(200, document())


def docs_page(call: Call) -> Reply:
    return Reply(200, raw=reference().encode(), media_type=HTML)


def _meta(path: str, operation_id: str, summary: str, handler: Any, success: Success) -> Operation:
    return Operation(
        "GET", path, operation_id, summary, "meta", handler, success, problems=(), public=True
    )


META_OPERATIONS = (
    _meta(
        "/openapi.json",
        "getOpenApi",
        "This OpenAPI 3.1 document",
        openapi_json,
        Success(200, "The document.", {"type": "object"}),
    ),
    _meta(
        "/docs",
        "getReference",
        "A readable reference page of this document",
        docs_page,
        Success(200, "An HTML page.", {"type": "string"}, media_types=(HTML,)),
    ),
    _meta(
        "/health",
        "getHealth",
        "Whether the API is serving (no token needed)",
        health,
        Success(200, "Serving.", ref("Health")),
    ),
)
OPERATIONS: tuple[Operation, ...] = (*_RESOURCE_OPERATIONS, *META_OPERATIONS)


@functools.cache
def document() -> dict[str, Any]:
    """The OpenAPI document of every operation (built once)."""
    return openapi_document(OPERATIONS)


@functools.cache
def reference() -> str:
    """The reference page (rendered once)."""
    return reference_page(document())


def _not_found(call: Call) -> Reply:
    return problem(404, "no such endpoint; see /api/v1/docs")


def _routes(operations: Sequence[Operation]) -> list[BaseRoute]:
    by_path: dict[str, dict[str, Operation]] = {}
    for op in operations:
        by_path.setdefault(op.path, {})[op.method] = op
    routes: list[BaseRoute] = [path_route(path, ops) for path, ops in by_path.items()]
    fallback = Operation(
        "GET", "/{rest:path}", "notFound", "", "meta", _not_found, Success(404, ""), public=True
    )
    routes.append(_across_lines(path_route("/{rest:path}", {m: fallback for m in METHODS})))
    return routes


def _across_lines(route: BaseRoute) -> BaseRoute:
    """The route's `path` parts match line breaks too (Starlette's `.*` stops at one), so a
    path holding an encoded newline still reaches the API and its problem answers."""
    pattern = getattr(route, "path_regex", None)
    if pattern is not None:
        route.path_regex = re.compile(pattern.pattern, re.DOTALL)  # type: ignore[attr-defined]
    return route


def api_routes() -> list[BaseRoute]:
    """The API mounted at /api/v1, for st.App(routes=…) or any Starlette app."""
    return [_across_lines(Mount(API_PREFIX, routes=_routes(OPERATIONS)))]
