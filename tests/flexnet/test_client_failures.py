"""FlexNetClient failure paths over loopback HTTP: echo-less creates, groups listed without
their reservations, token expiry, and answers no license server should give.

Where the emulator cannot answer that way, a transport forwards every request to the real
emulator and rewrites only the body of the answers a test names; answers no server gives at all
come from a small Starlette app served with the emulator's own uvicorn helpers."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from vlm.flexnet import (
    AuthenticationError,
    FlexNetClient,
    FlexNetError,
    HostId,
    Reservation,
    ReservationEntry,
    ReservationGroup,
)
from vlm.flexnet.client import TOKEN_REFRESH_MARGIN
from vlm.flexnet.emulator import RunningEmulator
from vlm.flexnet.emulator.server import _bind, _config
from vlm.sync.mirror import raw_mirror_rows

GROUPS_PATH = "/api/1.0/instances/~/reservationgroups"
Rewrite = Callable[[httpx.Request, Any], Any]


def _group(name: str, mac: str, *entries: tuple[str, str, int]) -> ReservationGroup:
    reservation = Reservation(
        HostId("ETHERNET", mac), tuple(ReservationEntry(f, v, c) for f, v, c in entries)
    )
    return ReservationGroup(None, name, (reservation,))


class RewritingTransport(httpx.BaseTransport):
    """Sends every request to the real server, then lets `rewrite` replace a JSON answer's body
    (it returns the body unchanged for answers it leaves alone)."""

    def __init__(self, rewrite: Rewrite) -> None:
        self._inner = httpx.HTTPTransport()
        self._rewrite = rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self._inner.handle_request(request)
        raw = response.read()
        if not raw:
            return response
        body = self._rewrite(request, json.loads(raw))
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.Response(response.status_code, content=content, request=request)

    def close(self) -> None:
        self._inner.close()


def _client_with(emulator: RunningEmulator, rewrite: Rewrite) -> FlexNetClient:
    return FlexNetClient(
        emulator.url,
        username="admin",
        password="admin",
        timeout=5,
        transport=RewritingTransport(rewrite),
    )


def _is_create(request: httpx.Request) -> bool:
    return request.method == "POST" and request.url.path == GROUPS_PATH


def _is_group_list(request: httpx.Request) -> bool:
    return request.method == "GET" and request.url.path == GROUPS_PATH


def _without_ids(body: Any) -> Any:
    """The created group as echoed, minus the ids of its reservations' entries."""
    for reservation in body["reservations"]:
        for entry in reservation["reservationEntries"]:
            entry.pop("id", None)
    return body


def _without_reservations(body: Any) -> Any:
    for group in body:
        group.pop("reservations", None)
    return body


def _without_entry_lists(body: Any) -> Any:
    for group in body:
        for reservation in group.get("reservations", []):
            reservation.pop("reservationEntries", None)
    return body


def _ids_on_server(emulator: RunningEmulator, name: str) -> tuple:
    """(group id, ((reservation id, ((entry id, feature, count), ...)), ...)) from the server."""
    [(gid, group)] = [
        (gid, g) for gid, g in emulator.state.groups_snapshot().items() if g["name"] == name
    ]
    return gid, tuple(
        (r["id"], tuple((e["id"], e["feature"], e["count"]) for e in r["entries"]))
        for r in group["reservations"]
    )


def _ids_of(group: ReservationGroup) -> tuple:
    return group.id, tuple(
        (r.id, tuple((e.id, e.feature_name, e.count) for e in r.entries))
        for r in group.reservations
    )


# -- a create whose answer does not echo the group ---------------------------------------------

ECHOES: dict[str, Callable[[Any], Any]] = {
    "empty_object": lambda body: {},
    "name_only": lambda body: {"name": body["name"]},
    "no_entry_ids": _without_ids,
    "not_json": lambda body: b"created",
}


@pytest.mark.parametrize("echo", list(ECHOES))
def test_a_create_without_an_echo_rereads_the_group_by_name_for_its_ids(
    emulator: RunningEmulator, echo: str
) -> None:
    def rewrite(request: httpx.Request, body: Any) -> Any:
        return ECHOES[echo](body) if _is_create(request) else body

    group = _group("echo-less", "AA01", ("solver", "1.0", 2), ("mesher", "3.2", 1))
    with _client_with(emulator, rewrite) as flex:
        created = flex.create_reservation_group(group)

    assert _ids_of(created) == _ids_on_server(emulator, "echo-less")
    assert created.reservations[0].host_id == HostId("ETHERNET", "AA01")
    assert emulator.state.request_counts["POST /api/1.0/reservationgroups"] == 1
    assert emulator.state.request_counts["GET /api/1.0/reservationgroups"] == 1


def test_a_reread_listing_no_reservations_fetches_those_of_the_group(
    emulator: RunningEmulator,
) -> None:
    def rewrite(request: httpx.Request, body: Any) -> Any:
        if _is_create(request):
            return {}
        return _without_reservations(body) if _is_group_list(request) else body

    with _client_with(emulator, rewrite) as flex:
        created = flex.create_reservation_group(_group("bare", "AA02", ("solver", "1.0", 3)))

    gid, reservations = _ids_on_server(emulator, "bare")
    assert _ids_of(created) == (gid, reservations)
    assert emulator.state.request_counts[f"GET /api/1.0/reservationgroups/{gid}/reservations"] == 1


def test_a_created_group_that_cannot_be_read_back_is_a_plain_flexnet_error(
    emulator: RunningEmulator,
) -> None:
    def rewrite(request: httpx.Request, body: Any) -> Any:
        if _is_create(request):
            return {}
        return [] if _is_group_list(request) else body

    with _client_with(emulator, rewrite) as flex, pytest.raises(FlexNetError) as caught:
        flex.create_reservation_group(_group("unseen", "AA03", ("solver", "1.0", 1)))

    assert type(caught.value) is FlexNetError
    assert emulator.state.list_groups("unseen") != []
    assert emulator.state.request_counts["POST /api/1.0/reservationgroups"] == 1


# -- groups listed without their reservations ----------------------------------------------------


@pytest.mark.parametrize(
    "strip", [_without_reservations, _without_entry_lists], ids=["no_reservations", "no_entries"]
)
def test_groups_listed_without_reservations_are_completed_group_by_group(
    client: FlexNetClient, emulator: RunningEmulator, strip: Callable[[Any], Any]
) -> None:
    client.create_reservation_group(_group("team-b", "BB01", ("solver", "1.0", 2)))
    client.create_reservation_group(_group("team-c", "CC01", ("mesher", "3.2", 1)))
    inline = client.reservation_groups_with_reservations()
    ids = [g.id for g in inline]

    def rewrite(request: httpx.Request, body: Any) -> Any:
        return strip(body) if _is_group_list(request) else body

    with _client_with(emulator, rewrite) as flex:
        completed = flex.reservation_groups_with_reservations()
        raw, fingerprint = flex.fingerprinted_reservation_groups()
        answer, answer_fingerprint = flex.fingerprinted_group_answer()

    assert [_ids_of(g) for g in completed] == [_ids_of(g) for g in inline]
    assert raw is not None and fingerprint is None
    assert answer is not None and answer.docs is None and answer_fingerprint is None
    assert raw_mirror_rows(1, answer.raw or [], "team-") == raw_mirror_rows(1, raw, "team-")
    per_group = Counter(
        {k: n for k, n in emulator.state.request_counts.items() if k.endswith("/reservations")}
    )
    assert per_group == {f"GET /api/1.0/reservationgroups/{gid}/reservations": 3 for gid in ids}


# -- token expiry --------------------------------------------------------------------------------


def test_a_write_refused_for_an_expired_token_is_sent_once_more_after_one_login(
    client: FlexNetClient, emulator: RunningEmulator, http: httpx.Client
) -> None:
    client.clients()
    http.post("/_emulator/faults", json={"expire_tokens": True}).raise_for_status()

    created = client.create_reservation_group(_group("after-expiry", "DD01", ("solver", "1.0", 1)))

    assert _ids_of(created) == _ids_on_server(emulator, "after-expiry")
    assert emulator.state.authorize_calls == 2
    assert emulator.state.request_counts["POST /api/1.0/reservationgroups"] == 2
    assert [g["name"] for g in emulator.state.list_groups()] == ["preexisting", "after-expiry"]


@pytest.mark.parametrize(
    ("seconds_left", "logins"),
    [(TOKEN_REFRESH_MARGIN / 2, 3), (TOKEN_REFRESH_MARGIN * 2, 1)],
    ids=["within_margin", "beyond_margin"],
)
def test_a_token_is_renewed_before_it_expires_never_after_a_401(
    emulator: RunningEmulator,
    monkeypatch: pytest.MonkeyPatch,
    seconds_left: float,
    logins: int,
) -> None:
    """The emulator's clock is set back so each token it issues expires in `seconds_left`."""
    lifetime = emulator.state.token_lifetime
    monkeypatch.setattr(emulator.state, "clock", lambda: time.time() - lifetime + seconds_left)

    with FlexNetClient(emulator.url, username="admin", password="admin", timeout=5) as flex:
        answers = [flex.clients() for _ in range(3)]

    assert answers == [[], [], []]
    assert emulator.state.authorize_calls == logins
    assert emulator.state.request_counts["GET /api/1.0/clients"] == 3


# -- answers no license server should give ---------------------------------------------------------


class OddServer:
    """A loopback HTTP server answering each (method, path) with a body a test sets."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.requests: Counter[str] = Counter()
        app = Starlette(routes=[Route("/{path:path}", self._answer, methods=["GET", "POST"])])
        self._running = RunningEmulator(
            None,  # type: ignore[arg-type]  # no emulator state: only its serving helpers
            uvicorn.Server(_config(app, log_config=None)),
            _bind("127.0.0.1", 0),
        )
        self.url = self._running.url

    async def _answer(self, request: Request) -> Response:
        path = request.url.path.removeprefix("/api/1.0/instances/~")
        self.requests[f"{request.method} {path}"] += 1
        status, body = self.answers.get((request.method, path), (200, b"{}"))
        return Response(body, status_code=status, media_type="application/json")

    def answer(self, method: str, path: str, body: Any, status: int = 200) -> None:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[(method, path)] = (status, raw)

    def __enter__(self) -> OddServer:
        self._running.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._running.stop()


def _signing_in(odd: OddServer) -> FlexNetClient:
    return FlexNetClient(odd.url, username="admin", password="admin", timeout=5)


@pytest.fixture(scope="module")
def _odd_server() -> Iterator[OddServer]:
    with OddServer() as server:
        yield server


@pytest.fixture
def odd(_odd_server: OddServer) -> OddServer:
    _odd_server.answers.clear()
    _odd_server.requests.clear()
    return _odd_server


@pytest.mark.parametrize(
    "login",
    [{"expires": "2099-01-01T00:00:00.000Z"}, {"token": ""}, {"token": 7}, ["token"]],
    ids=["no_token", "empty_token", "number_token", "array"],
)
def test_a_login_answer_without_a_token_is_an_authentication_error(
    odd: OddServer, login: Any
) -> None:
    odd.answer("POST", "/authorize", login)

    with _signing_in(odd) as flex, pytest.raises(AuthenticationError):
        flex.clients()

    assert odd.requests == {"POST /authorize": 1}


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda flex: flex.health(), "/health"),
        (lambda flex: flex.feature_slices(), "/features"),
        (lambda flex: flex.fingerprinted_reservation_groups(), "/reservationgroups"),
        (lambda flex: flex.clients(), "/clients"),
    ],
    ids=["health", "features", "groups", "clients"],
)
@pytest.mark.parametrize("raw", [b"{not json", b""], ids=["garbled", "empty"])
def test_an_answer_that_is_not_json_is_a_flexnet_error_and_not_retried(
    odd: OddServer, call: Callable[[FlexNetClient], Any], path: str, raw: bytes
) -> None:
    odd.answer("GET", path, raw)

    with FlexNetClient(odd.url, timeout=5) as flex, pytest.raises(FlexNetError) as caught:
        call(flex)

    assert type(caught.value) is FlexNetError
    assert odd.requests == {f"GET {path}": 1}


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda flex: flex.feature_slices(), "/features"),
        (lambda flex: flex.fingerprinted_feature_totals(), "/features"),
        (lambda flex: flex.reservation_groups(), "/reservationgroups"),
        (lambda flex: flex.reservations(1), "/reservationgroups/1/reservations"),
        (lambda flex: flex.clients(), "/clients"),
    ],
    ids=["features", "feature_totals", "groups", "reservations", "clients"],
)
@pytest.mark.parametrize(
    "body", [{"items": []}, "[]", 3, None], ids=["object", "string", "number", "null"]
)
def test_a_non_array_where_an_array_is_expected_is_a_flexnet_error(
    odd: OddServer, call: Callable[[FlexNetClient], Any], path: str, body: Any
) -> None:
    odd.answer("GET", path, body)

    with FlexNetClient(odd.url, timeout=5) as flex, pytest.raises(FlexNetError) as caught:
        call(flex)

    assert type(caught.value) is FlexNetError
    assert odd.requests == {f"GET {path}": 1}


def test_a_login_answer_that_is_not_json_is_a_flexnet_error(odd: OddServer) -> None:
    odd.answer("POST", "/authorize", b"<html>login</html>")

    with _signing_in(odd) as flex, pytest.raises(FlexNetError) as caught:
        flex.clients()

    assert type(caught.value) is FlexNetError
    assert odd.requests == {"POST /authorize": 1}
