"""In-memory state of the FlexNet License Server emulator (no HTTP here).

`EmulatorState` is a thread-safe facade composing focused parts: the feature table and usage
figures (features.py), reservation groups and their rules (reservations.py), simulated clients
(clients.py), users and JWTs (tokens.py) and fault injection (faults.py). fixtures.py describes
the fixture format. Names other modules import from here are re-exported.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import secrets
import string
import threading
from collections import Counter
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from typing import Any

from vlm.flexnet.emulator import info
from vlm.flexnet.emulator.clients import Client, ClientPool, Holding
from vlm.flexnet.emulator.common import (
    EmulatorError,
    FeatureKey,
    HostKey,
    TimeSource,
    iso_utc,
    parse_date,
)
from vlm.flexnet.emulator.faults import FaultDecision, FaultInjector, Faults
from vlm.flexnet.emulator.features import (
    PERMANENT,
    UNLIMITED,
    FeatureTable,
    Slice,
    fill,
    split,
    summarize,
)
from vlm.flexnet.emulator.fixtures import (
    DEFAULT_INSTANCE_ID,
    FixtureSource,
    read_fixture,
    resolve_date,
    server_host_ids,
    slice_from_fixture,
)
from vlm.flexnet.emulator.reservations import (
    ACTIVE,
    DISABLED,
    Entry,
    Group,
    Reservation,
    ReservationBook,
)
from vlm.flexnet.emulator.tokens import (
    ALL_ROLES,
    ROLE_ADMIN,
    ROLE_DROPCLIENT,
    ROLE_READ,
    ROLE_RESERVATIONS,
    Account,
    Principal,
    TokenIssuer,
    bearer_token,
    load_users,
    verify,
)

__all__ = [
    "ACTIVE",
    "ALL_ROLES",
    "DEFAULT_INSTANCE_ID",
    "DISABLED",
    "PERMANENT",
    "ROLE_ADMIN",
    "ROLE_DROPCLIENT",
    "ROLE_READ",
    "ROLE_RESERVATIONS",
    "UNLIMITED",
    "Client",
    "EmulatorError",
    "EmulatorState",
    "Entry",
    "FaultDecision",
    "Faults",
    "FeatureKey",
    "FixtureSource",
    "Group",
    "Holding",
    "HostKey",
    "Principal",
    "Reservation",
    "Slice",
    "fill",
    "iso_utc",
    "parse_date",
    "read_fixture",
    "resolve_date",
    "split",
]


@dataclass(frozen=True)
class Checkpoint:
    """What `EmulatorState.checkpoint` kept: features, reservations, clients and identity."""

    parts: tuple[Any, ...]
    instance_id: str
    server_host_ids: list[Any]
    started_at: str
    fixture: dict[str, Any]


class EmulatorState:
    """Everything an emulated license server knows; every public method is thread-safe."""

    instance_id: str
    server_host_ids: list[Any]

    def __init__(
        self,
        fixture: FixtureSource = None,
        *,
        security: bool = True,
        admin_password: str = "admin",
        token_lifetime: int = 86400,
    ) -> None:
        self._lock = threading.RLock()
        # rendered answers of unchanged state (GET /features, /reservationgroups): dropped by
        # every change (see _changing), kept per calendar day (which slices are active)
        self._answers: dict[Hashable, tuple[dt.date, bytes]] = {}
        self.security = security
        self.admin_password = admin_password
        self.token_lifetime = token_lifetime
        self._time = TimeSource()
        self._faults = FaultInjector()
        self._tokens = TokenIssuer(self._time)
        self.authorize_calls = 0
        self.request_counts: Counter[str] = Counter()
        self.delayed_counts: Counter[str] = Counter()
        self.lost_response_counts: Counter[str] = Counter()
        self.restarts = 0
        self.started_at = iso_utc(self._time.now())
        self._initial_fixture = read_fixture(fixture)
        self.load_fixture(self._initial_fixture)

    # -- the parts' state, as attributes -----------------------------------------------------

    @property
    def clock(self) -> Callable[[], float]:
        return self._time.clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        with self._changing():
            self._time.clock = clock

    @property
    def today_override(self) -> dt.date | None:
        return self._time.today_override

    @today_override.setter
    def today_override(self, day: dt.date | None) -> None:
        with self._changing():
            self._time.today_override = day

    @property
    def faults(self) -> Faults:
        return self._faults.settings

    @faults.setter
    def faults(self, faults: Faults) -> None:
        self._faults.settings = faults

    @property
    def model_definition(self) -> bool:
        """True while named pools are loaded: reservation writes answer 409."""
        return self._reservations.model_definition

    @model_definition.setter
    def model_definition(self, loaded: bool) -> None:
        with self._changing():
            self._reservations.model_definition = loaded

    @property
    def users(self) -> dict[str, Account]:
        return self._tokens.users

    @property
    def slices(self) -> dict[int, Slice]:
        return self._features.slices

    @property
    def slices_by_key(self) -> dict[FeatureKey, list[Slice]]:
        return self._features.slices_by_key

    @property
    def reserved(self) -> Counter[FeatureKey]:
        return self._features.reserved

    @property
    def assigned(self) -> Counter[FeatureKey]:
        return self._features.assigned

    @property
    def shared(self) -> Counter[FeatureKey]:
        return self._features.shared

    @property
    def groups(self) -> dict[int, Group]:
        return self._reservations.groups

    @property
    def group_ids_by_name(self) -> dict[str, int]:
        return self._reservations.group_ids_by_name

    @property
    def reservation_by_host(self) -> dict[HostKey, Reservation]:
        return self._reservations.reservation_by_host

    @property
    def reservations_by_id(self) -> dict[int, Reservation]:
        return self._reservations.reservations_by_id

    @property
    def entries_by_key(self) -> dict[FeatureKey, dict[int, tuple[Reservation, Entry]]]:
        return self._reservations.entries_by_key

    @property
    def clients(self) -> dict[HostKey, Client]:
        return self._clients.clients

    @property
    def holders(self) -> dict[FeatureKey, dict[HostKey, None]]:
        return self._clients.holders

    # -- rendered answers of unchanged state -------------------------------------------------

    @contextlib.contextmanager
    def _changing(self) -> Iterator[None]:
        """Hold the lock for a change of state; every rendered answer is dropped when it ends
        (also when it failed half-way), so the next GET renders the state anew."""
        with self._lock:
            try:
                yield
            finally:
                self._answers.clear()

    def rendered_answer(self, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """render()'s bytes, kept under key until the state changes or the day does (an
        unchanged server answers a repeated GET without building and serialising it again)."""
        with self._lock:
            today = self.today()
            found = self._answers.get(key)
            if found is not None and found[0] == today:
                return found[1]
            body = render()
            self._answers[key] = (today, body)
            return body

    # -- loading / resetting ---------------------------------------------------------------

    def today(self) -> dt.date:
        return self._time.today()

    def reset(self) -> None:
        """Back to the fixture the emulator started with; clears faults, tokens and counters."""
        with self._changing():
            self._faults.clear()
            self._tokens.rotate()
            self.authorize_calls = 0
            self.request_counts.clear()
            self.delayed_counts.clear()
            self.lost_response_counts.clear()
            self.restarts = 0
            self.started_at = iso_utc(self._time.now())
            self.load_fixture(self._initial_fixture)

    def checkpoint(self) -> Checkpoint:
        """The features, reservation groups, clients and identity as they are now, deep-copied,
        for `rollback` (tests that share one emulator start each from the same state)."""
        with self._lock:
            return Checkpoint(
                self._copy_parts((self._features, self._reservations, self._clients)),
                self.instance_id,
                list(self.server_host_ids),
                self.started_at,
                self._current_fixture,
            )

    def rollback(self, checkpoint: Checkpoint) -> None:
        """Back to `checkpoint` (reusable: its parts are copied again); faults are cleared."""
        with self._changing():
            self._faults.clear()
            self._features, self._reservations, self._clients = self._copy_parts(checkpoint.parts)
            self.instance_id = checkpoint.instance_id
            self.server_host_ids = list(checkpoint.server_host_ids)
            self.started_at = checkpoint.started_at
            self._current_fixture = checkpoint.fixture

    def _copy_parts(self, parts: tuple[Any, ...]) -> tuple[Any, ...]:
        """A deep copy whose callbacks still reach this state and its clock (not copies)."""
        return copy.deepcopy(parts, {id(self): self, id(self._time): self._time})

    def restart(
        self,
        *,
        new_instance_id: bool = False,
        keep_reservations: bool = False,
        restore: Any = None,
    ) -> dict[str, Any]:
        """The server restarts in place: features (current counts) and users stay; clients,
        tokens and the start time are new.

        Reservation groups are gone and ids start again at 1, unless `keep_reservations` (a
        persistent server). `restore` loads the `reservationGroups` of a fixture (or of a state
        dump) as a restore from backup would, with ids from 1. `new_instance_id` gives the
        server a fresh `serverInstanceID`.
        """
        if restore is not None and keep_reservations:
            raise EmulatorError(400, "restore and keep_reservations exclude each other")
        with self._changing():
            if keep_reservations:
                self._drop_all_clients()
            else:
                self._empty_reservations(restore)
            self._clients = ClientPool(self._features, self._reservations, self._time)
            self._tokens.rotate()
            if new_instance_id:
                self.instance_id = fresh_instance_id(self.instance_id)
            self.started_at = iso_utc(self._time.now())
            self.restarts += 1
            return {"instanceId": self.instance_id, "startedAt": self.started_at}

    def _drop_all_clients(self) -> None:
        for client in list(self._clients.clients.values()):
            self._clients.drop(client.id)

    def _empty_reservations(self, restore: Any) -> None:
        """A new, empty reservation book (ids from 1), filled from `restore` when given."""
        previous_book, previous_usage = self._reservations, usage_copy(self._features)
        locked = self.model_definition
        set_usage(self._features, (Counter(), Counter(), Counter()))
        self._reservations = ReservationBook(self._features, self._time, self._release_excess)
        try:
            for body in restore_groups(restore):
                self._reservations.create_group(body, "127.0.0.1")
        except EmulatorError as exc:
            self._reservations = previous_book
            set_usage(self._features, previous_usage)
            raise EmulatorError(400, f"Invalid restore: {exc.message}") from exc
        self.model_definition = locked

    def replace_fixture(self, fixture: Any) -> None:
        """Load a new fixture; on any error the previous one is restored and 400 raised."""
        with self._changing():
            previous = self._current_fixture
            try:
                if not isinstance(fixture, dict):
                    raise ValueError("fixture must be a JSON object")
                self.load_fixture(fixture)
            except (EmulatorError, KeyError, TypeError, ValueError) as exc:
                self.load_fixture(previous)
                message = exc.message if isinstance(exc, EmulatorError) else repr(exc)
                raise EmulatorError(400, f"Invalid fixture: {message}") from exc

    def load_fixture(self, fixture: dict[str, Any]) -> None:
        """Replace features, groups, clients and users with the fixture's."""
        with self._changing():
            self._current_fixture = fixture
            self._clear()
            self.instance_id = str(fixture.get("instanceId") or DEFAULT_INSTANCE_ID)
            self.server_host_ids = server_host_ids(fixture)
            self.model_definition = False
            self._tokens.users = load_users(fixture.get("users") or [], self.admin_password)
            for raw in fixture.get("features") or []:
                self._add_slice(raw)
            for body in fixture.get("reservationGroups") or []:
                self.create_group(body)
            for checkout in fixture.get("checkouts") or []:
                self.checkout(checkout)
            self.model_definition = bool(fixture.get("modelDefinition", False))

    def _clear(self) -> None:
        """Empty features, reservations and clients, with ids starting again at 1."""
        self._features = FeatureTable(self._time)
        self._reservations = ReservationBook(self._features, self._time, self._release_excess)
        self._clients = ClientPool(self._features, self._reservations, self._time)

    def _release_excess(self, key: FeatureKey) -> None:
        self._clients.release_excess(key)

    def _add_slice(self, raw: dict[str, Any]) -> Slice:
        today = self.today()
        item = slice_from_fixture(raw, self._features.next_id(), today, self._time.now)
        self._features.add(item)
        return item

    # -- authentication --------------------------------------------------------------------

    def authorize(self, user: Any, password: Any) -> dict[str, str]:
        """POST /authorize: a signed HS512 JWT and its ISO expiry, or 401."""
        with self._lock:
            self.authorize_calls += 1
            return self._tokens.issue(
                user, password, issuer=self.instance_id, lifetime=self.token_lifetime
            )

    def authenticate(self, authorization: str | None, role: str) -> Principal | None:
        """Check a bearer header for `role`: 401 if missing/expired/invalid, 403 if role absent."""
        if not self.security:
            return None
        token = bearer_token(authorization)
        with self._lock:
            secret = self._tokens.secret
        return verify(token, secret, role)

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far (a new signing key)."""
        with self._lock:
            self._tokens.rotate()

    # -- faults ----------------------------------------------------------------------------

    def set_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if body.get("expire_tokens"):
                self.expire_tokens()
            return self._faults.configure(body)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def decide_fault(self, method: str = "GET", path: str = "") -> FaultDecision:
        """Draw (seeded) what happens to the next API request."""
        with self._lock:
            return self._faults.decide(method, path)

    def refund_fault(self, decision: FaultDecision) -> None:
        """A request that was to lose its response was refused unexecuted: give it back."""
        with self._lock:
            self._faults.refund(decision)

    def count_request(self, method: str, path: str) -> None:
        with self._lock:
            self.request_counts[f"{method} {path}"] += 1

    def count_delayed(self, method: str, path: str) -> None:
        """Record a request that was held back by the latency fault."""
        with self._lock:
            self.delayed_counts[f"{method} {path}"] += 1

    def count_lost_response(self, method: str, path: str) -> None:
        """Record a request that was executed but whose response was lost."""
        with self._lock:
            self.lost_response_counts[f"{method} {path}"] += 1

    # -- server info -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return info.health(self.instance_id, self.security)

    def version(self) -> dict[str, str]:
        return info.version()

    def host_ids(self) -> dict[str, Any]:
        return {"hostids": list(self.server_host_ids)}

    # -- features --------------------------------------------------------------------------

    def list_features(self, active_only: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            return self._features.rows(active_only)

    def get_feature(self, feature_id: int) -> dict[str, Any]:
        with self._lock:
            return self._features.row(feature_id)

    def feature_clients(self, feature_id: int) -> list[dict[str, Any]]:
        """GET /features/{id}/clients: the clients whose usage is attributed to that slice."""
        with self._lock:
            item = self._features.get(feature_id)
            return self._clients.feature_rows(item, self.server_host_ids[0])

    def feature_summaries(self) -> dict[str, dict[str, dict[str, int]]]:
        """GET /features/summaries: {name: {expiry: {totalCount, totalUsed, totalReserved}}}."""
        return summarize(self.list_features(active_only=False))

    def capacity(self, key: FeatureKey, *, reservable_only: bool = False) -> int:
        """Sum of active counted slice counts (UNLIMITED if an active slice is uncounted)."""
        return self._features.capacity(key, reservable_only=reservable_only)

    def set_feature_count(self, name: str, version: str, count: int) -> dict[str, Any]:
        """Set the active counted total of a feature; entries that no longer fit get DISABLED."""
        with self._changing():
            self._features.set_count(name, version, count)
            self._reservations.rebalance((name, version))
            return {"featureName": name, "featureVersion": version, "count": count}

    # -- reservation groups ----------------------------------------------------------------

    def list_groups(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return self._reservations.list_groups(name)

    def get_group(self, group_id: int) -> dict[str, Any]:
        with self._lock:
            return self._reservations.get_group(group_id)

    def list_reservations(self, group_id: int, hostid: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return self._reservations.list_reservations(group_id, hostid)

    def get_reservation(self, group_id: int, reservation_id: int) -> dict[str, Any]:
        with self._lock:
            return self._reservations.get_reservation(group_id, reservation_id)

    def list_entries(self, group_id: int, reservation_id: int) -> list[dict[str, Any]]:
        with self._lock:
            return self._reservations.list_entries(group_id, reservation_id)

    def create_group(self, body: Any, ip_address: str = "127.0.0.1") -> dict[str, Any]:
        """POST /reservationgroups: all-or-nothing creation of a group, its hosts and entries."""
        with self._changing():
            return self._reservations.create_group(body, ip_address)

    def add_entries(self, group_id: int, reservation_id: int, body: Any) -> list[dict[str, Any]]:
        """POST …/entries: add entries to an existing reservation (all-or-nothing)."""
        with self._changing():
            return self._reservations.add_entries(group_id, reservation_id, body)

    def delete_entry(self, group_id: int, reservation_id: int, entry_id: int) -> None:
        with self._changing():
            self._reservations.delete_entry(group_id, reservation_id, entry_id)

    def delete_reservation(self, group_id: int, reservation_id: int) -> None:
        with self._changing():
            self._reservations.delete_reservation(group_id, reservation_id)

    def delete_group(self, group_id: int) -> None:
        with self._changing():
            self._reservations.delete_group(group_id)

    # -- simulated clients -----------------------------------------------------------------

    def checkout(self, body: dict[str, Any]) -> dict[str, Any]:
        """Serve `count` of a feature to a host: its reservations first, then the shared pool."""
        with self._changing():
            return self._clients.checkout(body, self.server_host_ids[0])

    def checkin(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return counts (all when `count` is absent): shared first, then reserved."""
        with self._changing():
            return self._clients.checkin(body, self.server_host_ids[0])

    def drop_client(self, client_id: int) -> None:
        with self._changing():
            self._clients.drop(client_id)

    def list_clients(self) -> list[dict[str, Any]]:
        with self._lock:
            return self._clients.rows(self.server_host_ids[0])

    # -- dump ------------------------------------------------------------------------------

    def dump(self) -> dict[str, Any]:
        """GET /_emulator/state: the whole state as JSON."""
        with self._lock:
            return {
                "instanceId": self.instance_id,
                "security": self.security,
                "tokenLifetime": self.token_lifetime,
                "today": self.today().isoformat(),
                "modelDefinition": self.model_definition,
                "features": self.list_features(),
                "reservationGroups": self.list_groups(),
                "clients": self.list_clients(),
                "startedAt": self.started_at,
                "faults": self.faults.to_json(),
                "stats": {
                    "authorizeCalls": self.authorize_calls,
                    "requests": dict(self.request_counts),
                    "delayed": dict(self.delayed_counts),
                    "lostResponses": dict(self.lost_response_counts),
                    "restarts": self.restarts,
                },
            }

    def groups_snapshot(self) -> dict[int, dict[str, Any]]:
        """Every group as a deep JSON-like copy: id -> {name, reservations: [{id, host,
        entries: [{id, feature, version, count, state}]}]} (to compare before and after)."""
        with self._lock:
            return {group.id: group_snapshot(group) for group in self._reservations.groups.values()}

    def iter_entries(self) -> Iterator[tuple[Group, Reservation, Entry]]:
        """Every reservation entry with its group and reservation (for tests)."""
        with self._lock:
            yield from self._reservations.iter_entries()


def group_snapshot(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "reservations": [
            {
                "id": reservation.id,
                "host": {"type": reservation.host[0], "value": reservation.host[1]},
                "entries": [
                    {
                        "id": entry.id,
                        "feature": entry.name,
                        "version": entry.version,
                        "count": entry.count,
                        "state": entry.state,
                    }
                    for entry in reservation.entries.values()
                ],
            }
            for reservation in group.reservations.values()
        ],
    }


Usage = tuple[Counter[FeatureKey], Counter[FeatureKey], Counter[FeatureKey]]


def usage_copy(features: FeatureTable) -> Usage:
    """A copy of the reserved, assigned and shared counters of every feature."""
    return Counter(features.reserved), Counter(features.assigned), Counter(features.shared)


def set_usage(features: FeatureTable, usage: Usage) -> None:
    """Put `usage` into the feature table's counters (in place: other parts hold them)."""
    for counter, values in zip(
        (features.reserved, features.assigned, features.shared), usage, strict=True
    ):
        counter.clear()
        counter.update(values)


def restore_groups(restore: Any) -> list[Any]:
    """The reservation groups of a backup: a fixture or state dump with `reservationGroups`."""
    if restore is None:
        return []
    if not isinstance(restore, dict):
        raise EmulatorError(400, "restore must be a fixture object with reservationGroups")
    groups = restore.get("reservationGroups") or []
    if not isinstance(groups, list):
        raise EmulatorError(400, "restore reservationGroups must be an array")
    return groups


def fresh_instance_id(current: str) -> str:
    """A new 12-character upper-case alphanumeric server instance id, unlike `current`."""
    alphabet = string.ascii_uppercase + string.digits
    while True:
        candidate = "".join(secrets.choice(alphabet) for _ in range(12))
        if candidate != current:
            return candidate
