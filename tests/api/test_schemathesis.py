"""Schemathesis against the served OpenAPI document, over real HTTP with an admin token: valid
and invalid input for every operation, and no answer may be a server error (5xx).

It runs on its own API, database and emulated servers, since it deletes and renames what it
finds. Schemathesis's pytest plugin does not run under pytest 9, so each operation is a
parametrized test that draws cases from the operation's own Hypothesis strategy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode

from tests.api.conftest import ADMIN, serve_api
from vlm.api import OPERATIONS

EXAMPLES = 10
FUZZED = [(op.path, op.method) for op in OPERATIONS]
# an operation without parameters or body has no invalid input to draw
FUZZED_INVALID = [(op.path, op.method) for op in OPERATIONS if op.params or op.body or op.writes]
CASES = [(p, m, GenerationMode.POSITIVE) for p, m in FUZZED] + [
    (p, m, GenerationMode.NEGATIVE) for p, m in FUZZED_INVALID
]


@pytest.fixture(scope="module")
def fuzzed_api(tmp_path_factory) -> Iterator[tuple[str, dict[str, str]]]:
    with serve_api(tmp_path_factory.mktemp("fuzzed") / "vlm.duckdb") as running:
        yield running.url, {"Authorization": f"Bearer {running.token(ADMIN)}"}


@pytest.fixture(scope="module")
def api_schema(fuzzed_api):
    """The document as the server serves it, loaded by schemathesis."""
    url, _ = fuzzed_api
    return schemathesis.openapi.from_url(f"{url}/openapi.json")


def _server_errors(operation, mode: GenerationMode, url: str, headers: dict) -> list[str]:
    """Every drawn case of this operation whose answer was a 5xx, as 'status request body'."""
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
        response = case.call(base_url=url, headers=headers, timeout=30)
        if response.status_code >= 500:
            request = response.request
            found.append(f"{response.status_code} {request.method} {request.url} {request.body!r}")

    call()
    return found


@pytest.mark.parametrize(
    ("path", "method", "mode"), CASES, ids=[f"{g.value} {m} {p}" for p, m, g in CASES]
)
def test_no_operation_answers_with_a_server_error(
    api_schema, fuzzed_api, path: str, method: str, mode: GenerationMode
) -> None:
    url, headers = fuzzed_api
    operation = api_schema[path][method]
    assert _server_errors(operation, mode, url, headers) == []
