"""Starlette application serving an `EmulatorState` over the FlexNet LLS REST API.

Real API: `/api/1.0/instances/{instance}/...` (instance `~` or the configured id) and the short
form `/api/1.0/...`. Test-only controls live under `/_emulator/` (no auth, never faulted):

* POST   /_emulator/fixture          replace features, groups, clients from a fixture JSON
* POST   /_emulator/reset            back to the start fixture (a new process); clears faults,
                                     tokens and counters
* POST   /_emulator/restart          {new_instance_id, keep_reservations, restore} (all optional):
                                     the server restarts in place. Features (current counts) and
                                     users stay; clients go; every token is invalid; `startedAt`
                                     changes. Groups go and group/reservation/entry ids start
                                     again at 1, unless keep_reservations (a persistent server).
                                     restore: a fixture (or state dump) whose reservationGroups
                                     load with ids from 1, as after a restore from backup.
                                     new_instance_id: a fresh 12-char serverInstanceID in /health.
* POST   /_emulator/features/count   {featureName, featureVersion, count}: entries that no longer
                                     fit turn DISABLED (newest first), and ACTIVE again (oldest
                                     first) when the count returns; `reserved` counts ACTIVE ones
* POST   /_emulator/checkout         {hostid: {type, value}, featureName, featureVersion, count}
* POST   /_emulator/checkin          same body, `count` optional (all)
* POST   /_emulator/faults           {latency_ms, slow_paths, error_rate, error_paths,
                                      drop_rate, error_statuses, seed, lose_write_responses,
                                      lose_write_rate, expire_tokens}; answers the settings
* DELETE /_emulator/faults
* GET    /_emulator/cpu              {"process_cpu_s"}: CPU time the emulator's process has used
                                     (user + system; the benchmark's measure of the server side)
* GET    /_emulator/state            full state dump: instanceId, startedAt, features, every
                                     group with its reservations and entries (id, feature,
                                     version, count, state), clients, faults, stats

GET /features (per activeOnly) and GET /reservationgroups (without `name`) of unchanged state send
the bytes rendered for the last such GET (the same bytes JSONResponse would send); any change of
state (a reservation write, usage, a count, restart, fixture, reset, the clock or day) drops them.
Authentication and faults apply before the handler, so they apply to such an answer too.

Faults apply to /api/ requests only, in this order: `latency_ms` delays a request without
blocking others (only requests whose path, after the instance prefix is removed, contains one
of `slow_paths` when that list is non-empty); `drop_rate` closes the connection before the
request runs; `error_rate` answers one of `error_statuses` (only on paths containing one of
`error_paths` when that list is non-empty); `lose_write_responses` (the next N)
and `lose_write_rate` execute a write (POST/PUT/PATCH/DELETE, never /authorize) to the end,
committing it, then close the connection unanswered (a request refused with 401/403 is answered
and does not use one up). Random draws come from one RNG seeded by `seed`. The faults JSON
reports how many lost responses remain; stats count delayed requests and lost responses.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vlm.flexnet.emulator.state import (
    ROLE_DROPCLIENT,
    ROLE_READ,
    ROLE_RESERVATIONS,
    EmulatorError,
    EmulatorState,
    FaultDecision,
    iso_utc,
)

API = "/api/1.0"
ORIGINAL_PATH = "vlm.original_path"
_INSTANCE_PATH = re.compile(r"^/api/1\.0/instances/([^/]+)(/.*)?$")

Handler = Callable[[Request], Awaitable[Response]]


def error_response(status: int, message: str, path: str) -> JSONResponse:
    """A Spring-like error body: timestamp, status, error, message, path."""
    body = {
        "timestamp": iso_utc(time.time()),
        "status": status,
        "error": HTTPStatus(status).phrase,
        "message": message,
        "path": path,
    }
    return JSONResponse(body, status_code=status)


def _original_path(request: Request) -> str:
    return str(request.scope.get(ORIGINAL_PATH, request.url.path))


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise EmulatorError(400, "Malformed JSON request body") from exc


async def _json_object(request: Request) -> dict[str, Any]:
    body = await _json_body(request)
    if not isinstance(body, dict):
        raise EmulatorError(400, "Request body must be a JSON object")
    return body


def _flag(body: dict[str, Any], name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise EmulatorError(400, f"{name} must be true or false")
    return value


def _int_param(request: Request, name: str) -> int:
    return int(request.path_params[name])


def _json_bytes(content: Any) -> bytes:
    """The body JSONResponse would send for content (the same bytes)."""
    return JSONResponse(content).body


def _rendered(state: EmulatorState, key: tuple[str, ...], build: Callable[[], Any]) -> Response:
    """A 200 JSON answer of build(), rendered once and sent again while the state is unchanged
    (EmulatorState.rendered_answer)."""
    body = state.rendered_answer(key, lambda: _json_bytes(build()))
    return Response(body, media_type="application/json")


class ApiGateway:
    """ASGI wrapper: maps the instance prefix, counts requests and injects faults on /api/."""

    def __init__(self, app: ASGIApp, state: EmulatorState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(f"{API}/"):
            await self.app(scope, receive, send)
            return
        original = scope["path"]
        match = _INSTANCE_PATH.match(original)
        if match:
            instance, rest = match.group(1), match.group(2) or ""
            if instance not in ("~", self.state.instance_id):
                message = f"Unknown license server instance '{instance}'"
                await error_response(404, message, original)(scope, receive, send)
                return
            scope = dict(scope, path=f"{API}{rest}", raw_path=f"{API}{rest}".encode())
        scope[ORIGINAL_PATH] = original
        self.state.count_request(scope["method"], scope["path"])
        await self._serve_with_faults(scope, receive, send)

    async def _serve_with_faults(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Delay, drop, fail or lose the response of the request as the fault settings say."""
        decision = self.state.decide_fault(scope["method"], scope["path"])
        if decision.latency_s:
            self.state.count_delayed(scope["method"], scope["path"])
            receive = await _delay(decision.latency_s, receive)
        if decision.drop:
            await _drop_connection(send)
        elif decision.status is not None:
            message = "Injected fault: service unavailable"
            response = error_response(decision.status, message, scope[ORIGINAL_PATH])
            await response(scope, receive, send)
        elif decision.lose_response:
            await self._execute_and_lose_response(scope, receive, send, decision)
        else:
            await self.app(scope, receive, send)

    async def _execute_and_lose_response(
        self, scope: Scope, receive: Receive, send: Send, decision: FaultDecision
    ) -> None:
        """Run the request to the end (committing it), then close the connection unanswered.

        A request refused by authentication (401/403) was not executed: it is answered normally
        and gives its lost response back.
        """
        held: list[Message] = []

        async def hold(message: Message) -> None:
            held.append(message)

        await self.app(scope, receive, hold)
        if _response_status(held) in (401, 403):
            self.state.refund_fault(decision)
            for message in held:
                await send(message)
            return
        self.state.count_lost_response(scope["method"], scope["path"])
        await _drop_connection(send)


def _response_status(messages: list[Message]) -> int | None:
    for message in messages:
        if message["type"] == "http.response.start":
            return int(message["status"])
    return None


async def _delay(seconds: float, receive: Receive) -> Receive:
    """Wait `seconds` without blocking other requests; stop waiting if the client goes away.

    The request body read meanwhile is replayed by the returned `receive`. A request whose
    client disconnected is still executed (its answer goes nowhere), as a slow server would.
    """
    buffered: list[Message] = []

    async def read_until_disconnect() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            buffered.append(message)

    reader = asyncio.ensure_future(read_until_disconnect())
    done, _ = await asyncio.wait({reader}, timeout=seconds)
    if reader not in done:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader

    async def replay() -> Message:
        if buffered:
            return buffered.pop(0)
        return dict(await receive())

    return replay


async def _drop_connection(send: Send) -> None:
    """Close the TCP connection without answering (the client sees a protocol error)."""
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if transport is None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]}
        )
        return
    transport.close()
    for _ in range(50):
        if getattr(cycle, "disconnected", True):
            return
        await asyncio.sleep(0)


class EmulatorApi:
    """Request handlers; every one delegates to the state and maps errors to HTTP."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        read, write = ROLE_READ, ROLE_RESERVATIONS
        groups = f"{API}/reservationgroups"
        reservation = f"{groups}/{{gid:int}}/reservations/{{rid:int}}"
        return [
            Route(f"{API}/health", self.health, methods=["GET"]),
            Route(f"{API}/authorize", self.authorize, methods=["POST"]),
            Route(f"{API}/version", self._guard(read, self.version), methods=["GET"]),
            Route(f"{API}/hostids", self._guard(read, self.hostids), methods=["GET"]),
            Route(f"{API}/features", self._guard(read, self.features), methods=["GET"]),
            Route(
                f"{API}/features/summaries",
                self._guard(read, self.feature_summaries),
                methods=["GET"],
            ),
            Route(f"{API}/features/{{fid:int}}", self._guard(read, self.feature), methods=["GET"]),
            Route(
                f"{API}/features/{{fid:int}}/clients",
                self._guard(read, self.feature_clients),
                methods=["GET"],
            ),
            Route(f"{API}/clients", self._guard(read, self.clients), methods=["GET"]),
            Route(
                f"{API}/clients/{{cid:int}}",
                self._guard(ROLE_DROPCLIENT, self.drop_client),
                methods=["DELETE"],
            ),
            Route(groups, self._guard(read, self.list_groups), methods=["GET"]),
            Route(groups, self._guard(write, self.create_group), methods=["POST"]),
            Route(f"{groups}/{{gid:int}}", self._guard(read, self.get_group), methods=["GET"]),
            Route(
                f"{groups}/{{gid:int}}", self._guard(write, self.delete_group), methods=["DELETE"]
            ),
            Route(
                f"{groups}/{{gid:int}}/reservations",
                self._guard(read, self.list_reservations),
                methods=["GET"],
            ),
            Route(reservation, self._guard(read, self.get_reservation), methods=["GET"]),
            Route(reservation, self._guard(write, self.delete_reservation), methods=["DELETE"]),
            Route(f"{reservation}/entries", self._guard(read, self.list_entries), methods=["GET"]),
            Route(f"{reservation}/entries", self._guard(write, self.add_entries), methods=["POST"]),
            Route(
                f"{reservation}/entries/{{eid:int}}",
                self._guard(write, self.delete_entry),
                methods=["DELETE"],
            ),
        ]

    def _guard(self, role: str, handler: Handler) -> Handler:
        """Wrap a handler so it first checks the bearer token for `role`."""

        async def guarded(request: Request) -> Response:
            self.state.authenticate(request.headers.get("authorization"), role)
            return await handler(request)

        guarded.__name__ = handler.__name__
        return guarded

    # -- server info and auth --------------------------------------------------------------

    async def health(self, request: Request) -> Response:
        return JSONResponse(self.state.health())

    async def version(self, request: Request) -> Response:
        return JSONResponse(self.state.version())

    async def hostids(self, request: Request) -> Response:
        return JSONResponse(self.state.host_ids())

    async def authorize(self, request: Request) -> Response:
        body = await _json_object(request)
        return JSONResponse(self.state.authorize(body.get("user"), body.get("password")))

    # -- features and clients --------------------------------------------------------------

    async def features(self, request: Request) -> Response:
        active_only = request.query_params.get("activeOnly", "false").lower() == "true"
        return _rendered(
            self.state,
            ("features", str(active_only)),
            lambda: self.state.list_features(active_only=active_only),
        )

    async def feature_summaries(self, request: Request) -> Response:
        return JSONResponse(self.state.feature_summaries())

    async def feature(self, request: Request) -> Response:
        return JSONResponse(self.state.get_feature(_int_param(request, "fid")))

    async def feature_clients(self, request: Request) -> Response:
        return JSONResponse(self.state.feature_clients(_int_param(request, "fid")))

    async def clients(self, request: Request) -> Response:
        return JSONResponse(self.state.list_clients())

    async def drop_client(self, request: Request) -> Response:
        self.state.drop_client(_int_param(request, "cid"))
        return Response(status_code=410)

    # -- reservations ----------------------------------------------------------------------

    async def list_groups(self, request: Request) -> Response:
        name = request.query_params.get("name")
        if name is not None:
            return JSONResponse(self.state.list_groups(name))
        return _rendered(self.state, ("reservationgroups",), self.state.list_groups)

    async def create_group(self, request: Request) -> Response:
        body = await _json_body(request)
        host = request.client.host if request.client else "127.0.0.1"
        return JSONResponse(self.state.create_group(body, ip_address=host), status_code=201)

    async def get_group(self, request: Request) -> Response:
        return JSONResponse(self.state.get_group(_int_param(request, "gid")))

    async def delete_group(self, request: Request) -> Response:
        self.state.delete_group(_int_param(request, "gid"))
        return Response(status_code=410)

    async def list_reservations(self, request: Request) -> Response:
        gid = _int_param(request, "gid")
        hostid = request.query_params.get("hostid")
        return JSONResponse(self.state.list_reservations(gid, hostid))

    async def get_reservation(self, request: Request) -> Response:
        ids = _int_param(request, "gid"), _int_param(request, "rid")
        return JSONResponse(self.state.get_reservation(*ids))

    async def delete_reservation(self, request: Request) -> Response:
        self.state.delete_reservation(_int_param(request, "gid"), _int_param(request, "rid"))
        return Response(status_code=410)

    async def list_entries(self, request: Request) -> Response:
        ids = _int_param(request, "gid"), _int_param(request, "rid")
        return JSONResponse(self.state.list_entries(*ids))

    async def add_entries(self, request: Request) -> Response:
        ids = _int_param(request, "gid"), _int_param(request, "rid")
        created = self.state.add_entries(*ids, await _json_body(request))
        return JSONResponse(created, status_code=201)

    async def delete_entry(self, request: Request) -> Response:
        ids = (_int_param(request, n) for n in ("gid", "rid", "eid"))
        self.state.delete_entry(*ids)
        return Response(status_code=410)


class ControlApi:
    """Test-only `/_emulator/` endpoints (no auth, no faults)."""

    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        base = "/_emulator"
        return [
            Route(f"{base}/state", self.dump, methods=["GET"]),
            Route(f"{base}/cpu", self.cpu, methods=["GET"]),
            Route(f"{base}/reset", self.reset, methods=["POST"]),
            Route(f"{base}/restart", self.restart, methods=["POST"]),
            Route(f"{base}/fixture", self.fixture, methods=["POST"]),
            Route(f"{base}/features/count", self.feature_count, methods=["POST"]),
            Route(f"{base}/checkout", self.checkout, methods=["POST"]),
            Route(f"{base}/checkin", self.checkin, methods=["POST"]),
            Route(f"{base}/faults", self.set_faults, methods=["POST"]),
            Route(f"{base}/faults", self.clear_faults, methods=["DELETE"]),
        ]

    async def dump(self, request: Request) -> Response:
        return JSONResponse(self.state.dump())

    async def cpu(self, request: Request) -> Response:
        return JSONResponse({"process_cpu_s": time.process_time()})

    async def reset(self, request: Request) -> Response:
        self.state.reset()
        return JSONResponse({"reset": True})

    async def restart(self, request: Request) -> Response:
        body = await _json_body(request)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            raise EmulatorError(400, "Request body must be a JSON object")
        unknown = set(body) - {"new_instance_id", "keep_reservations", "restore"}
        if unknown:
            raise EmulatorError(400, f"Unknown restart options: {sorted(unknown)}")
        answer = self.state.restart(
            new_instance_id=_flag(body, "new_instance_id"),
            keep_reservations=_flag(body, "keep_reservations"),
            restore=body.get("restore"),
        )
        return JSONResponse(answer)

    async def fixture(self, request: Request) -> Response:
        self.state.replace_fixture(await _json_body(request))
        dump = self.state.dump()
        counts = {"features": len(dump["features"]), "groups": len(dump["reservationGroups"])}
        return JSONResponse(counts)

    async def feature_count(self, request: Request) -> Response:
        body = await _json_object(request)
        name, version, count = (
            body.get("featureName"),
            body.get("featureVersion"),
            body.get("count"),
        )
        if not isinstance(name, str) or not isinstance(version, str) or not isinstance(count, int):
            raise EmulatorError(400, "featureName, featureVersion and integer count are required")
        return JSONResponse(self.state.set_feature_count(name, version, count))

    async def checkout(self, request: Request) -> Response:
        return JSONResponse(self.state.checkout(await _json_object(request)))

    async def checkin(self, request: Request) -> Response:
        return JSONResponse(self.state.checkin(await _json_object(request)))

    async def set_faults(self, request: Request) -> Response:
        body = await _json_object(request)
        try:
            return JSONResponse(self.state.set_faults(body))
        except (TypeError, ValueError) as exc:
            raise EmulatorError(400, f"Invalid fault settings: {exc}") from exc

    async def clear_faults(self, request: Request) -> Response:
        self.state.clear_faults()
        return Response(status_code=204)


async def _emulator_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EmulatorError)
    return error_response(exc.status, exc.message, _original_path(request))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, exc.detail or "", _original_path(request))


def create_app(state: EmulatorState) -> ASGIApp:
    """The emulator as an ASGI app (Starlette routes wrapped by the API gateway)."""
    app = Starlette(
        routes=[*EmulatorApi(state).routes(), *ControlApi(state).routes()],
        exception_handlers={EmulatorError: _emulator_error, HTTPException: _http_error},
    )
    return ApiGateway(app, state)
