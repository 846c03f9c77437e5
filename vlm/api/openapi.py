"""The OpenAPI 3.1 document, built from the operations themselves, and a readable reference
page rendered from it (static HTML: no scripts, no CDN)."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Sequence
from typing import Any

from vlm.api.framework import Operation, Param
from vlm.api.replies import JSON, PROBLEM, TITLES
from vlm.api.schemas import COMPONENTS, ref

API_PREFIX = "/api/v1"
VERSION = "1.0.0"
IDEMPOTENCY_KEY = Param(
    "Idempotency-Key",
    "header",
    {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    "Any unique text (a UUID): a retry with the same key and body replays the first "
    "response instead of running again; the same key with another body is refused (422).",
)
TAGS = (
    ("me", "The token's user."),
    ("servers", "Physical license servers, read-only."),
    ("drift", "Where a license server differs from what VLM wants, and its history."),
    ("vlms", "Virtual License Managers over chosen server features."),
    ("pools", "Virtual pools carved out of a VLM, each with a manager."),
    ("allocations", "Licenses of a pool given to device or user ids, and their states."),
    ("exports", "Whole datasets as CSV or JSON."),
    ("alerts", "Alerts raised by alert rules, their acknowledgement, and the rules."),
    ("harvesting", "Reserved seats nobody uses: the idle report, their release, prices, policy."),
    ("requests", "Managers ask for more of a feature for a pool; admins decide."),
    ("audit", "Who changed what."),
    ("meta", "This document, its reference page and a health check."),
)
INTRODUCTION = """\
The REST API of VLM, the Virtual License Manager. It calls the same services as the web app,
with the same rules, permissions, audit rows and push to the license servers.

**Authentication.** Create a personal access token on the Profile page and send it as
`Authorization: Bearer vlm_…`. A token acts as its user with the user's role as stored now;
a read-only token may only read. Disabling the user stops their tokens at once.

**Errors** are RFC 9457 problem documents (`application/problem+json`) with `title`,
`status`, `detail` and `errors: [{field, message}]` naming the fields at fault.

**Lists** return `{items, total, limit, offset, next}`; follow `next` until it is null.

**Writes** accept an `Idempotency-Key` header: a retried request with the same key and body
replays the first response, so a retried POST never allocates twice.
"""


def _parameter(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.location,
        "required": param.required,
        "description": param.description,
        "schema": dict(param.schema),
    }


def _problem_responses(statuses: Sequence[int]) -> dict[str, Any]:
    content = {PROBLEM: {"schema": ref("Problem")}}
    return {str(status): {"description": TITLES[status], "content": content} for status in statuses}


def _success(op: Operation) -> dict[str, Any]:
    success: dict[str, Any] = {"description": op.success.description}
    if op.success.schema is not None:
        success["content"] = {
            media.split(";")[0]: {
                "schema": {"type": "string"} if media != JSON else op.success.schema
            }
            for media in op.success.media_types
        }
    return success


def _operation(op: Operation) -> dict[str, Any]:
    params = list(op.params) + ([IDEMPOTENCY_KEY] if op.writes and not op.public else [])
    document: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "description": op.description,
        "tags": [op.tag],
        "parameters": [_parameter(p) for p in params],
        "responses": {str(op.success.status): _success(op)},
    }
    if op.public:
        document["security"] = []
    else:
        document["responses"] |= _problem_responses(sorted({*op.problems, 401, 503}))
    if op.body is not None:
        document["requestBody"] = {"required": True, "content": {JSON: {"schema": dict(op.body)}}}
    return document


def openapi_document(operations: Sequence[Operation]) -> dict[str, Any]:
    """The OpenAPI 3.1 document of these operations."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {"title": "VLM REST API", "version": VERSION, "description": INTRODUCTION},
        "servers": [{"url": API_PREFIX}],
        "tags": [{"name": name, "description": text} for name, text in TAGS],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A personal access token (vlm_…) from the Profile page.",
                }
            },
        },
    }


# -- the reference page ----------------------------------------------------------------------

STYLE = """
body{font-family:system-ui,sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem;
color:#1f2430;line-height:1.45}
code,pre{font-family:ui-monospace,monospace;font-size:.9em}
pre{background:#f4f5f7;padding:.75rem;overflow:auto;border-radius:4px}
h2{border-bottom:1px solid #ccd;padding-bottom:.25rem;margin-top:2.5rem}
.op{border:1px solid #dde;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.method{font-weight:700;display:inline-block;min-width:4.5rem}
.m-get{color:#1a7f37}.m-post{color:#0550ae}.m-patch{color:#8250df}.m-delete{color:#cf222e}
table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #dde;padding:.25rem .5rem;
text-align:left;vertical-align:top}
nav a{margin-right:1rem}
"""


def _escape(value: object) -> str:
    return html.escape(str(value))


def _inline(text: str) -> str:
    """Text as HTML with the little markdown the descriptions use: **bold** and `code`."""
    escaped = _escape(" ".join(text.split()))
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", escaped)


def _markdown(text: str) -> str:
    """Paragraphs of inline markdown."""
    paragraphs = [p.strip() for p in text.split("\n\n") if p.strip()]
    return "\n".join(f"<p>{_inline(paragraph)}</p>" for paragraph in paragraphs)


def _schema_name(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    target = schema.get("$ref", "")
    return target.rsplit("/", 1)[-1] if target else json.dumps(schema)


def _schema_link(schema: dict[str, Any] | None) -> str:
    name = _schema_name(schema)
    if name in COMPONENTS:
        return f'<a href="#schema-{_escape(name)}"><code>{_escape(name)}</code></a>'
    return f"<code>{_escape(name)}</code>" if name else ""


def _parameters_table(parameters: list[dict[str, Any]]) -> str:
    if not parameters:
        return ""
    rows = "".join(
        f"<tr><td><code>{_escape(p['name'])}</code></td><td>{_escape(p['in'])}</td>"
        f"<td>{'yes' if p['required'] else ''}</td>"
        f"<td><code>{_escape(json.dumps(p['schema']))}</code></td>"
        f"<td>{_inline(p['description'])}</td></tr>"
        for p in parameters
    )
    header = "<tr><th>Parameter</th><th>In</th><th>Required</th><th>Schema</th><th>About</th></tr>"
    return f"<table>{header}{rows}</table>"


def _responses_table(responses: dict[str, Any]) -> str:
    rows = []
    for status, response in responses.items():
        content = response.get("content", {})
        kinds = ", ".join(
            f"{_escape(media)} {_schema_link(body.get('schema'))}"
            for media, body in content.items()
        )
        rows.append(
            f"<tr><td>{_escape(status)}</td><td>{_escape(response['description'])}</td>"
            f"<td>{kinds}</td></tr>"
        )
    return (
        "<table><tr><th>Status</th><th>Meaning</th><th>Body</th></tr>" + "".join(rows) + "</table>"
    )


def _operation_html(path: str, method: str, op: dict[str, Any]) -> str:
    body = op.get("requestBody", {}).get("content", {}).get(JSON, {}).get("schema")
    auth = "no token needed" if op.get("security") == [] else "bearer token"
    return (
        f'<div class="op" id="{_escape(op["operationId"])}">'
        f'<div><span class="method m-{method}">{method.upper()}</span>'
        f"<code>{_escape(API_PREFIX + path)}</code> — {_escape(op['summary'])}</div>"
        f"<p>{_inline(op['description'])} <em>({auth})</em></p>"
        + _parameters_table(op["parameters"])
        + (f"<p>Body: {_schema_link(body)}</p>" if body else "")
        + _responses_table(op["responses"])
        + "</div>"
    )


def reference_page(document: dict[str, Any]) -> str:
    """The document as one readable HTML page: operations by tag, then the schemas."""
    by_tag: dict[str, list[str]] = {}
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            by_tag.setdefault(op["tags"][0], []).append(_operation_html(path, method, op))
    sections = []
    for tag in document["tags"]:
        if tag["name"] in by_tag:
            sections.append(
                f'<h2 id="tag-{_escape(tag["name"])}">{_escape(tag["name"])}</h2>'
                f"<p>{_inline(tag['description'])}</p>" + "".join(by_tag[tag["name"]])
            )
    schemas = "".join(
        f'<h3 id="schema-{_escape(name)}">{_escape(name)}</h3>'
        f"<pre>{_escape(json.dumps(schema, indent=2))}</pre>"
        for name, schema in document["components"]["schemas"].items()
    )
    nav = "".join(
        f'<a href="#tag-{_escape(t["name"])}">{_escape(t["name"])}</a>' for t in document["tags"]
    )
    info = document["info"]
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{_escape(info['title'])}</title><style>{STYLE}</style></head><body>"
        f"<h1>{_escape(info['title'])} <small>{_escape(info['version'])}</small></h1>"
        f"<nav>{nav}<a href='{API_PREFIX}/openapi.json'>openapi.json</a></nav>"
        + _markdown(info["description"])
        + "".join(sections)
        + f"<h2 id='schemas'>Schemas</h2>{schemas}</body></html>"
    )
