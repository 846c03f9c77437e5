"""Schemathesis against the served OpenAPI document, over real HTTP with an admin token: valid
and invalid input for every operation; no answer may be a server error (5xx), and every answer
must be one the document declares (status, content type, body schema, headers).

It runs on its own API, database and emulated servers, since it deletes and renames what it
finds. Schemathesis's pytest plugin does not run under pytest 9, so each operation is a
parametrized test that draws cases from the operation's own Hypothesis strategy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ADMIN, api_database, serve_api
from tests.conftest import BACKENDS
from vlm.api import OPERATIONS

EXAMPLES = 10
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
FUZZED = [(op.path, op.method) for op in OPERATIONS]
# an operation without parameters or body has no invalid input to draw
FUZZED_INVALID = [(op.path, op.method) for op in OPERATIONS if op.params or op.body or op.writes]
CASES = [(p, m, GenerationMode.POSITIVE) for p, m in FUZZED] + [
    (p, m, GenerationMode.NEGATIVE) for p, m in FUZZED_INVALID
]


@pytest.fixture(scope="module", params=BACKENDS)
def fuzzed_api(request, tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    with (
        api_database(request, tmp_path_factory, request.param, "fuzzed") as target,
        serve_api(target) as running,
    ):
        yield running.url, {"Authorization": f"Bearer {running.token(ADMIN)}"}


@pytest.fixture(scope="module")
def api_schema(fuzzed_api):
    """The document as the server serves it, loaded by schemathesis."""
    url, _ = fuzzed_api
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


def _failures(operation, mode: GenerationMode, url: str, headers: dict) -> list[str]:
    """Every drawn case of this operation whose answer failed a check, with what failed."""
    found: list[str] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def call(case) -> None:
        try:
            case.call_and_validate(base_url=url, headers=headers, timeout=30, checks=CHECKS)
        except FailureGroup as failures:
            found.extend(
                f"{case.method} {case.formatted_path}: {f.title}" for f in failures.exceptions
            )

    call()
    return found


@pytest.mark.parametrize(
    ("path", "method", "mode"), CASES, ids=[f"{g.value} {m} {p}" for p, m, g in CASES]
)
def test_every_answer_is_declared_and_none_is_a_server_error(
    api_schema, fuzzed_api, path: str, method: str, mode: GenerationMode
) -> None:
    url, headers = fuzzed_api
    operation = api_schema[path][method]
    assert _failures(operation, mode, url, headers) == []
