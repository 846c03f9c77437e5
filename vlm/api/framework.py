"""The shape of an endpoint and of a request as its handler sees it: `Operation` (method, path,
handler, and what the OpenAPI document says about it), `Call` (context, acting user, parsed
path, query and body), paginated lists and body field checks. Handlers are plain functions
from a Call to a Reply; vlm/api/dispatch.py runs them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pandas as pd

from vlm.api.replies import JSON, Reply, records
from vlm.context import ServiceContext
from vlm.domain import ValidationError, bounded_int, clean_text, record_id, shown
from vlm.services.tokens import TokenActor

DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
QUERY_TEXT_MAX_LENGTH = 1_000


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
