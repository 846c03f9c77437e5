"""The served OpenAPI 3.1 document validates and describes every route the API serves, with
its parameters, bodies, responses and bearer auth; the reference page renders all of it."""

from __future__ import annotations

import re

import httpx
from openapi_spec_validator import validate

from vlm.api import OPERATIONS, api_routes


def _served_paths() -> set[str]:
    """Every path the mounted router serves (the catch-all 404 route aside)."""
    mount = api_routes()[0]
    return {route.path for route in mount.routes if "{rest:path}" not in route.path}


def test_the_document_validates_and_covers_every_route(api) -> None:
    response = httpx.get(f"{api.url}/openapi.json", timeout=30)
    assert response.status_code == 200
    document = response.json()

    validate(document)

    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == _served_paths()
    described = {(p, m.upper()) for p, ops in document["paths"].items() for m in ops}
    assert described == {(op.path, op.method) for op in OPERATIONS}
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"


def test_every_operation_says_what_it_takes_and_answers(api) -> None:
    document = httpx.get(f"{api.url}/openapi.json", timeout=30).json()
    for path, methods in document["paths"].items():
        for method, op in methods.items():
            names = {p["name"] for p in op["parameters"]}
            assert set(re.findall(r"{(\w+)}", path)) <= names, (method, path)
            assert op["summary"] and op["operationId"]
            statuses = set(op["responses"])
            assert statuses & {"200", "201", "204"}, (method, path)
            if op.get("security") != []:
                assert {"401", "503"} <= statuses, (method, path)
                problem = op["responses"]["401"]["content"]["application/problem+json"]
                assert problem["schema"] == {"$ref": "#/components/schemas/Problem"}
            if method in {"post", "patch", "delete"}:
                assert "Idempotency-Key" in names, (method, path)
            if method in {"post", "patch"} and "requestBody" in op:
                assert op["requestBody"]["content"]["application/json"]["schema"]


def test_the_reference_page_needs_no_token_and_lists_every_operation(api) -> None:
    response = httpx.get(f"{api.url}/docs", timeout=30)

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    assert "<script" not in page and "<link" not in page
    for op in OPERATIONS:
        assert f'id="{op.operation_id}"' in page
        assert f"/api/v1{op.path}" in page
    assert 'id="schema-Allocation"' in page and "Idempotency-Key" in page
