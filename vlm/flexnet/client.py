"""Synchronous httpx client for the FlexNet Embedded License Server (LLS/CLS) REST API.

See docs/architecture.md §9. Only documented behaviour is relied upon: writes succeed on
any 2xx or 410, error bodies are treated as opaque text (the Spring `message` field is used when
present), and feature rows are slices that are summed per name and version.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import json
import os
import ssl
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from vlm.flexnet.errors import (
    AuthenticationError,
    FlexNetError,
    NotFoundError,
    RefusedError,
    TransientError,
)
from vlm.flexnet.group_answer import GroupsAnswer, decode_inline_groups
from vlm.flexnet.models import (
    FeatureSlice,
    FeatureTotal,
    Reservation,
    ReservationEntry,
    ReservationGroup,
    parse_count,
    sum_raw_feature_slices,
)
from vlm.flexnet.usage import Sighting, lists_features, sightings_of_clients, sightings_of_feature

TOKEN_REFRESH_MARGIN = 60.0
FALLBACK_TOKEN_LIFETIME = 300.0
RETRY_BACKOFF = (0.2, 0.5, 1.0)

Params = Mapping[str, str] | None


class FlexNetClient:
    """Client of one license server instance; thread-safe, keeps connections alive."""

    def __init__(
        self,
        base_url: str,
        *,
        instance: str = "~",
        username: str | None = None,
        password: str | None = None,
        verify: bool | str = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        retries: int = 2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.instance = instance
        self.api_root = f"{self.base_url}/api/1.0/instances/{instance}"
        self._username = username
        self._password = password or ""
        self._retries = max(0, retries)
        self._http = httpx.Client(
            verify=_ssl_verify(verify),
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )
        self._token_lock = threading.Lock()
        self._token: str | None = None
        self._token_expires = 0.0

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> FlexNetClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- reads -----------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """GET /health (never authenticated); returns the inner "LLS" object."""
        body = self._get_json("/health", authenticated=False)
        if isinstance(body, dict) and isinstance(body.get("LLS"), dict):
            return body["LLS"]
        if isinstance(body, dict):
            return body
        raise FlexNetError("unexpected /health body")

    def feature_slices(self, active_only: bool = False) -> list[FeatureSlice]:
        params = {"activeOnly": "true"} if active_only else None
        rows = self._get_list("/features", params)
        return [FeatureSlice.from_json(row) for row in rows if isinstance(row, dict)]

    def feature_totals(self, active_only: bool = True) -> list[FeatureTotal]:
        return self.fingerprinted_feature_totals(active_only)[0] or []

    def fingerprinted_feature_totals(
        self, active_only: bool = True, unless: str | None = None
    ) -> tuple[list[FeatureTotal] | None, str]:
        """Feature totals and a fingerprint of the server's answer; the totals are None (the
        answer not even parsed) when its fingerprint equals `unless`."""
        params = {"activeOnly": "true"} if active_only else None
        rows, fingerprint = self._fingerprinted_list("/features", params, unless)
        return (None if rows is None else sum_raw_feature_slices(rows)), fingerprint

    def clients(self) -> list[dict[str, Any]]:
        return [row for row in self._get_list("/clients") if isinstance(row, dict)]

    def fingerprinted_usage(self, unless: str | None = None) -> tuple[set[Sighting] | None, str]:
        """Which hosts hold which features now, and a fingerprint of GET /clients; None (the
        answer not parsed) when the fingerprint equals `unless`. A server whose client rows do
        not list their features is asked per feature slice in use (GET /features/{id}/clients);
        its fingerprint is then left empty, so that it is asked again on every pull."""
        rows, fingerprint = self._fingerprinted_list("/clients", None, unless)
        if rows is None:
            return None, fingerprint
        if lists_features(rows):
            return sightings_of_clients(rows), fingerprint
        seen: set[Sighting] = set()
        for item in self.feature_slices(active_only=True):
            if item.id and item.used > 0:
                answer = self._get_list(f"/features/{item.id}/clients")
                seen |= sightings_of_feature(item.name, item.version, answer)
        return seen, ""

    def reservation_groups(self, name: str | None = None) -> list[ReservationGroup]:
        """Groups (with reservations only if the server lists them inline)."""
        return [ReservationGroup.from_json(raw) for raw in self._raw_groups(name)]

    def reservation_groups_with_reservations(self) -> list[ReservationGroup]:
        """Every group with its reservations; fetches per group only when not listed inline."""
        return [ReservationGroup.from_json(raw) for raw in self.raw_reservation_groups()]

    def raw_reservation_groups(self) -> list[dict[str, Any]]:
        """Every group as JSON with its reservations inline (fetched per group when absent)."""
        return self.fingerprinted_reservation_groups()[0] or []

    def fingerprinted_reservation_groups(
        self, unless: str | None = None
    ) -> tuple[list[dict[str, Any]] | None, str | None]:
        """Every group as JSON with its reservations inline, and a fingerprint of the server's
        answer (None when reservations had to be fetched group by group). The groups are None
        (the answer not even parsed) when the fingerprint equals `unless`."""
        body, fingerprint = self._fingerprinted_list("/reservationgroups", None, unless)
        if body is None:
            return None, fingerprint
        return self._with_reservations(body, fingerprint)

    def fingerprinted_group_answer(
        self, unless: str | None = None
    ) -> tuple[GroupsAnswer | None, str | None]:
        """fingerprinted_reservation_groups, decoded into typed records where the answer allows
        (vlm.flexnet.group_answer), else as JSON objects."""
        body, fingerprint = self.group_answer_bytes()
        if unless is not None and fingerprint == unless:
            return None, fingerprint
        return self.decode_group_answer(body, fingerprint)

    def group_answer_bytes(self) -> tuple[bytes, str]:
        """GET /reservationgroups: the answer's bytes, not parsed, and their fingerprint."""
        response = self._request("GET", "/reservationgroups")
        return response.content, _fingerprint(response.content)

    def decode_group_answer(self, body: bytes, fingerprint: str) -> tuple[GroupsAnswer, str | None]:
        """A group_answer_bytes answer decoded (typed records where it allows, else JSON objects
        with the reservations asked for group by group where not inline, and no fingerprint)."""
        docs = decode_inline_groups(body)
        if docs is not None:
            return GroupsAnswer(docs=docs), fingerprint
        path = "/reservationgroups"
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise FlexNetError(f"invalid JSON from {self.api_root}{path}") from exc
        groups, inline = self._with_reservations(_expect_list(parsed, path), fingerprint)
        return GroupsAnswer(raw=groups), inline

    def _with_reservations(
        self, body: list[Any], fingerprint: str
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The groups of an answer, each with its reservations (asked for group by group where
        not listed inline, and the fingerprint is then None)."""
        groups = [row for row in body if isinstance(row, dict)]
        inline: str | None = fingerprint
        for raw in groups:
            group_id = parse_count(raw.get("id"))
            if not _has_inline_reservations(raw) and group_id is not None:
                path = f"/reservationgroups/{group_id}/reservations"
                raw["reservations"] = [r for r in self._get_list(path) if isinstance(r, dict)]
                inline = None
        return groups, inline

    def reservations(self, group_id: int, hostid: str | None = None) -> list[Reservation]:
        params = {"hostid": hostid} if hostid is not None else None
        rows = self._get_list(f"/reservationgroups/{group_id}/reservations", params)
        return [Reservation.from_json(row) for row in rows if isinstance(row, dict)]

    # -- writes (never retried here: the caller decides) -------------------------------------

    def create_reservation_group(self, group: ReservationGroup) -> ReservationGroup:
        """POST the group; returns it with server ids (re-read by name if the echo lacks them)."""
        response = self._request("POST", "/reservationgroups", body=group.to_json(), write=True)
        created = _echoed_group(response)
        if created is not None:
            return created
        return self._reread_group(group.name)

    def add_entries(
        self, group_id: int, reservation_id: int, entries: Sequence[ReservationEntry]
    ) -> None:
        path = f"/reservationgroups/{group_id}/reservations/{reservation_id}/entries"
        self._request("POST", path, body=[e.to_json() for e in entries], write=True)

    def delete_entry(self, group_id: int, reservation_id: int, entry_id: int) -> None:
        path = f"/reservationgroups/{group_id}/reservations/{reservation_id}/entries/{entry_id}"
        self._request("DELETE", path, write=True)

    def delete_reservation(self, group_id: int, reservation_id: int) -> None:
        self._request(
            "DELETE", f"/reservationgroups/{group_id}/reservations/{reservation_id}", write=True
        )

    def delete_group(self, group_id: int) -> None:
        self._request("DELETE", f"/reservationgroups/{group_id}", write=True)

    # -- helpers for groups ----------------------------------------------------------------

    def _raw_groups(self, name: str | None) -> list[dict[str, Any]]:
        params = {"name": name} if name is not None else None
        rows = [
            row for row in self._get_list("/reservationgroups", params) if isinstance(row, dict)
        ]
        if name is not None:
            rows = [row for row in rows if row.get("name") == name]
        return rows

    def _reread_group(self, name: str) -> ReservationGroup:
        for raw in self._raw_groups(name):
            group = ReservationGroup.from_json(raw)
            if group.id is None:
                continue
            if not _has_inline_reservations(raw):
                group = replace(group, reservations=tuple(self.reservations(group.id)))
            return group
        raise FlexNetError(f"reservation group {name!r} was created but cannot be read back")

    # -- HTTP plumbing ---------------------------------------------------------------------

    def _get_json(self, path: str, params: Params = None, *, authenticated: bool = True) -> Any:
        response = self._request("GET", path, params=params, authenticated=authenticated)
        return _json_body(response)

    def _fingerprinted_list(
        self, path: str, params: Params, unless: str | None
    ) -> tuple[list[Any] | None, str]:
        """GET a JSON array and the SHA-256 fingerprint of its bytes; None for the array when
        the fingerprint equals `unless`."""
        response, fingerprint = self._fingerprinted_response(path, params, unless)
        if response is None:
            return None, fingerprint
        return _expect_list(_json_body(response), path), fingerprint

    def _fingerprinted_response(
        self, path: str, params: Params, unless: str | None
    ) -> tuple[httpx.Response | None, str]:
        """GET path and the SHA-256 fingerprint of the answer's bytes; None for the response
        when the fingerprint equals `unless`."""
        response = self._request("GET", path, params=params)
        fingerprint = _fingerprint(response.content)
        if unless is not None and fingerprint == unless:
            return None, fingerprint
        return response, fingerprint

    def _get_list(self, path: str, params: Params = None) -> list[Any]:
        return _expect_list(self._get_json(path, params), path)

    def _request(
        self,
        method: str,
        path: str,
        *,
        params: Params = None,
        body: Any = None,
        write: bool = False,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send with auth; GETs are retried on transient failures, writes never are."""
        attempts = 1 if write else self._retries + 1
        for attempt in range(attempts):
            try:
                response = self._send_authenticated(method, path, params, body, authenticated)
                return _check(response, write=write)
            except TransientError:
                if attempt + 1 >= attempts:
                    raise
                time.sleep(RETRY_BACKOFF[min(attempt, len(RETRY_BACKOFF) - 1)])
        raise AssertionError("unreachable")

    def _send_authenticated(
        self, method: str, path: str, params: Params, body: Any, authenticated: bool
    ) -> httpx.Response:
        if not authenticated or self._username is None:
            return self._send(method, path, params, body, None)
        token = self._current_token()
        response = self._send(method, path, params, body, token)
        if response.status_code != 401:
            return response
        self._drop_token(token)
        response = self._send(method, path, params, body, self._current_token())
        if response.status_code == 401:
            raise AuthenticationError(_server_message(response), 401)
        return response

    def _send(
        self, method: str, path: str, params: Params, body: Any, token: str | None
    ) -> httpx.Response:
        url = f"{self.api_root}{path}"
        headers = {"Authorization": f"Bearer {token}"} if token else None
        try:
            return self._http.request(
                method,
                url,
                params=params,
                json=body,
                headers=headers,
            )
        except httpx.TransportError as exc:
            detail = str(exc) or type(exc).__name__
            raise TransientError(f"{method} {url} failed: {detail}") from exc

    # -- token handling --------------------------------------------------------------------

    def _current_token(self) -> str:
        with self._token_lock:
            if self._token is not None and time.time() < self._token_expires - TOKEN_REFRESH_MARGIN:
                return self._token
            self._token, self._token_expires = self._login()
            return self._token

    def _drop_token(self, token: str) -> None:
        with self._token_lock:
            if self._token == token:
                self._token = None

    def _login(self) -> tuple[str, float]:
        credentials = {"user": self._username, "password": self._password}
        response = self._send("POST", "/authorize", None, credentials, None)
        status = response.status_code
        if status == 429 or status >= 500:
            raise TransientError(_server_message(response), status)
        if status != 200:
            raise AuthenticationError(_server_message(response), status)
        body = _json_body(response)
        token = body.get("token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthenticationError("login answer carries no token", status)
        return token, _token_expiry(body.get("expires"), token)


def _ssl_verify(verify: bool | str) -> ssl.SSLContext:
    """The TLS context for httpx: on or off (shared, see _shared_tls_context), or a string naming
    a CA bundle file or directory (read at each client, so a renewed bundle is picked up)."""
    if isinstance(verify, bool):
        return _shared_tls_context(
            verify, os.environ.get("SSL_CERT_FILE"), os.environ.get("SSL_CERT_DIR")
        )
    try:
        if Path(verify).is_dir():
            return ssl.create_default_context(capath=verify)
        return ssl.create_default_context(cafile=verify)
    except (OSError, ssl.SSLError) as exc:
        raise FlexNetError(f"cannot load CA certificates from {verify}: {exc}") from exc


@functools.cache
def _shared_tls_context(
    verify: bool, cert_file: str | None, cert_dir: str | None
) -> ssl.SSLContext:
    """httpx's own context for verify on or off (certifi's bundle, or SSL_CERT_FILE/DIR), made
    once per process: building one loads the whole CA bundle, about 30 ms, which every new
    client paid. A context may be shared by many clients and threads. The certificate
    variables are part of the key, so setting them still takes effect."""
    return httpx.create_ssl_context(verify=verify)


def _check(response: httpx.Response, *, write: bool) -> httpx.Response:
    """Return the response if successful, else raise the matching FlexNetError."""
    status = response.status_code
    if 200 <= status < 300 or (write and status == 410):
        return response
    message = _server_message(response)
    if status in (401, 403):
        raise AuthenticationError(message, status)
    if status in (404, 410):
        raise NotFoundError(message, status)
    if status == 429 or status >= 500:
        raise TransientError(message, status)
    if 400 <= status < 500:
        raise RefusedError(message, status)
    raise FlexNetError(message, status)


def _server_message(response: httpx.Response) -> str:
    """The `message` of a JSON error body, else the raw text, else the reason phrase."""
    text = response.text.strip()
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str) and body["message"]:
        return body["message"]
    return text or response.reason_phrase or f"HTTP {response.status_code}"


def _fingerprint(body: bytes) -> str:
    """The SHA-256 of an answer's bytes (hardware-accelerated: half of blake2b's time here)."""
    return hashlib.sha256(body).hexdigest()


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise FlexNetError(
            f"invalid JSON from {response.request.url}", response.status_code
        ) from exc


def _expect_list(body: Any, path: str) -> list[Any]:
    if not isinstance(body, list):
        raise FlexNetError(f"expected a JSON array from {path}, got {type(body).__name__}")
    return body


def _has_inline_reservations(raw: Mapping[str, Any]) -> bool:
    """True when the group lists non-empty reservations that each carry their entries."""
    reservations = raw.get("reservations")
    if not isinstance(reservations, list) or not reservations:
        return False
    return all(isinstance(r, dict) and "reservationEntries" in r for r in reservations)


def _echoed_group(response: httpx.Response) -> ReservationGroup | None:
    """The created group from the POST answer, if it carries ids for all its parts."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("id") is None:
        return None
    group = ReservationGroup.from_json(body)
    if group.id is None or not isinstance(body.get("reservations"), list):
        return None
    for reservation in group.reservations:
        if reservation.id is None or any(e.id is None for e in reservation.entries):
            return None
    return group


def _token_expiry(expires: Any, token: str) -> float:
    """Epoch seconds when the token expires: from `expires`, else the JWT `exp` claim."""
    if isinstance(expires, str):
        try:
            moment = dt.datetime.fromisoformat(expires.strip())
        except ValueError:
            moment = None
        if moment is not None:
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=dt.UTC)
            return moment.timestamp()
    exp = _jwt_claim(token, "exp")
    if isinstance(exp, int | float):
        return float(exp)
    return time.time() + FALLBACK_TOKEN_LIFETIME


def _jwt_claim(token: str, claim: str) -> Any:
    """Read a claim from an unverified JWT payload (None if the token is not a JWT)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    payload = parts[1] + "=" * (-len(parts[1]) % 4)
    try:
        return json.loads(base64.urlsafe_b64decode(payload)).get(claim)
    except (ValueError, AttributeError):
        return None
