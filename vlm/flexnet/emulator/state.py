"""In-memory state and rules of the FlexNet License Server emulator (no HTTP here).

Fixture JSON format (every key optional)::

    {
      "instanceId": "LLSEAST00001",            # accepted in URLs in place of "~"
      "serverHostIds": [{"type": "ETHERNET", "value": "0050569A0001"}],
      "modelDefinition": false,                 # true: named pools loaded, reservation writes 409
      "features": [
        {"featureName": "cad_solver", "featureVersion": "2024.1", "featureCount": 10,
         "expiry": "permanent" | "YYYY-MM-DD" | "+20d" | "-3d" | "+2w" | "+1y" | "today",
         "starts": "-30d", "issued": "-30d",    # same date forms; absent = no restriction
         "vendor": "acme", "featureId": "FID-...",
         "concurrent": true, "uncounted": false, "metered": false,
         "type": "CONCURRENT" | "METERED" | "UNCOUNTED",   # derived from the flags if absent
         "...": "any other field is copied verbatim into the feature rows"}
      ],
      "reservationGroups": [ <body of POST /reservationgroups>, ... ],
      "checkouts": [{"hostid": {"type": "ETHERNET", "value": "..."}, "featureName": "...",
                     "featureVersion": "...", "count": 2, "hostName": "ws-01", "user": "joe"}],
      "users": [{"user": "viewer", "password": "pw", "roles": "ROLE_READ"}]
    }

The same name+version listed several times gives several slices. A non-numeric `featureCount`
is served verbatim (to exercise client parsing) and counts as 0. Relative dates resolve
against the day the fixture is loaded. The admin user always exists with every role.

Accounting per feature (name, version), spread over its active slices in order so that, per
slice, used = sharedUsed + assignedReserved and unassignedReserved = reserved - assignedReserved:
`reserved` is the sum of ACTIVE reservation entries; entries that no longer fit the feature's
count are marked DISABLED (newest first) and re-enabled (oldest first) when counts return.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jwt

ROLE_READ = "ROLE_READ"
ROLE_RESERVATIONS = "ROLE_RESERVATIONS"
ROLE_DROPCLIENT = "ROLE_DROPCLIENT"
ROLE_ADMIN = "ROLE_ADMIN"
ALL_ROLES = (ROLE_ADMIN, ROLE_DROPCLIENT, ROLE_READ, ROLE_RESERVATIONS, "ROLE_OFFLINE")
ACTIVE = "ACTIVE"
DISABLED = "DISABLED"
PERMANENT = "permanent"
DEFAULT_INSTANCE_ID = "EMULATOR0001"
UNLIMITED = 1 << 62

FeatureKey = tuple[str, str]
HostKey = tuple[str, str]
FixtureSource = dict[str, Any] | str | Path | None
T = TypeVar("T")

_RELATIVE_DATE = re.compile(r"^([+-])(\d+)([dwy])$")
_UNIT_DAYS = {"d": 1, "w": 7, "y": 365}


class EmulatorError(Exception):
    """A request the emulator refuses; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


# -- fixture helpers -----------------------------------------------------------------------


def read_fixture(source: FixtureSource) -> dict[str, Any]:
    """A fixture as a dict: given directly, or read from a JSON file; None means empty."""
    if source is None:
        return {}
    if isinstance(source, dict):
        return source
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"fixture {source} must be a JSON object")
    return data


def resolve_date(value: Any, today: dt.date) -> str | None:
    """Turn "+20d", "-1w", "+1y" or "today" into YYYY-MM-DD; other strings pass unchanged."""
    if value is None:
        return None
    text = str(value).strip()
    if text.lower() == "today":
        return today.isoformat()
    match = _RELATIVE_DATE.match(text.lower())
    if not match:
        return text
    sign, amount, unit = match.groups()
    days = int(amount) * _UNIT_DAYS[unit] * (-1 if sign == "-" else 1)
    return (today + dt.timedelta(days=days)).isoformat()


def parse_date(value: str | None) -> dt.date | None:
    if not value:
        return None
    try:
        return dt.date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


def iso_utc(moment: float) -> str:
    """Epoch seconds as `2023-12-19T05:39:28.850Z`."""
    stamp = dt.datetime.fromtimestamp(moment, tz=dt.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.") + f"{stamp.microsecond // 1000:03d}Z"


def fill(total: int, caps: list[int]) -> list[int]:
    """Spread `total` over `caps` in order; whatever does not fit lands on the last one."""
    return [sum(part for _, part in bucket) for bucket in split([(None, total)], caps)]


def split(amounts: Iterable[tuple[T, int]], caps: list[int]) -> list[list[tuple[T, int]]]:
    """Spread labelled amounts over buckets with capacities `caps`, filling them in order."""
    buckets: list[list[tuple[T, int]]] = [[] for _ in caps]
    if not caps:
        return buckets
    room = [max(0, c) for c in caps]
    index = 0
    for label, amount in amounts:
        while amount > 0:
            while index < len(caps) - 1 and room[index] <= 0:
                index += 1
            take = amount if index == len(caps) - 1 else min(amount, room[index])
            buckets[index].append((label, take))
            room[index] -= take
            amount -= take
    return buckets


# -- records -------------------------------------------------------------------------------


@dataclass
class Slice:
    """One feature row (a slice) as loaded from the fixture."""

    id: int
    name: str
    version: str
    count_raw: Any
    count: int
    concurrent: bool
    uncounted: bool
    metered: bool
    type: str
    expiry: str
    starts: str | None
    issued: str | None
    feature_id: str
    vendor: str
    received_time: str
    extra: dict[str, Any]

    @property
    def key(self) -> FeatureKey:
        return (self.name, self.version)

    @property
    def counted(self) -> bool:
        return not self.uncounted

    @property
    def reservable(self) -> bool:
        return self.concurrent and not self.uncounted and not self.metered

    def is_active(self, today: dt.date) -> bool:
        start = parse_date(self.starts)
        if start is not None and start > today:
            return False
        if self.expiry.lower() == PERMANENT:
            return True
        end = parse_date(self.expiry)
        return end is None or end >= today


@dataclass
class Entry:
    id: int
    name: str
    version: str
    count: int
    state: str = ACTIVE

    @property
    def key(self) -> FeatureKey:
        return (self.name, self.version)


@dataclass
class Reservation:
    id: int
    group_id: int
    host: HostKey
    entries: dict[int, Entry] = field(default_factory=dict)
    assigned: dict[FeatureKey, dict[HostKey, int]] = field(default_factory=dict)

    def active_count(self, key: FeatureKey) -> int:
        return sum(e.count for e in self.entries.values() if e.key == key and e.state == ACTIVE)

    def assigned_count(self, key: FeatureKey) -> int:
        return sum(self.assigned.get(key, {}).values())


@dataclass
class Group:
    id: int
    name: str
    creation_date: str
    ip_address: str
    reservations: dict[int, Reservation] = field(default_factory=dict)


@dataclass
class Holding:
    """What one client holds of one feature: reserved units per reservation id, plus shared."""

    reserved_from: dict[int, int] = field(default_factory=dict)
    shared: int = 0

    @property
    def reserved(self) -> int:
        return sum(self.reserved_from.values())

    @property
    def total(self) -> int:
        return self.reserved + self.shared


@dataclass
class Client:
    id: int
    host: HostKey
    host_name: str
    user: str | None
    correlation_id: str
    update_time: float
    holdings: dict[FeatureKey, Holding] = field(default_factory=dict)


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "drop_rate": self.drop_rate,
            "error_statuses": list(self.error_statuses),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one API request: delay, then drop the connection or answer `status`."""

    latency_s: float = 0.0
    drop: bool = False
    status: int | None = None


@dataclass(frozen=True)
class Principal:
    user: str
    roles: frozenset[str]


# -- the state -----------------------------------------------------------------------------


class EmulatorState:
    """Everything an emulated license server knows; every public method is thread-safe."""

    def __init__(
        self,
        fixture: FixtureSource = None,
        *,
        security: bool = True,
        admin_password: str = "admin",
        token_lifetime: int = 86400,
    ) -> None:
        self._lock = threading.RLock()
        self.security = security
        self.admin_password = admin_password
        self.token_lifetime = token_lifetime
        self.today_override: dt.date | None = None
        self.clock: Callable[[], float] = time.time
        self.faults = Faults()
        self._rng = random.Random(0)
        self._secret = secrets.token_bytes(64)
        self.authorize_calls = 0
        self.request_counts: Counter[str] = Counter()
        self._initial_fixture = read_fixture(fixture)
        self.load_fixture(self._initial_fixture)

    # -- loading / resetting ---------------------------------------------------------------

    def today(self) -> dt.date:
        return self.today_override or dt.date.today()

    def reset(self) -> None:
        """Back to the fixture the emulator started with; clears faults, tokens and counters."""
        with self._lock:
            self.faults = Faults()
            self._rng = random.Random(0)
            self._secret = secrets.token_bytes(64)
            self.authorize_calls = 0
            self.request_counts.clear()
            self.load_fixture(self._initial_fixture)

    def replace_fixture(self, fixture: Any) -> None:
        """Load a new fixture; on any error the previous one is restored and 400 raised."""
        with self._lock:
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
        with self._lock:
            self._current_fixture = fixture
            self._clear()
            self.instance_id = str(fixture.get("instanceId") or DEFAULT_INSTANCE_ID)
            self.server_host_ids = list(fixture.get("serverHostIds") or [])
            if not self.server_host_ids:
                self.server_host_ids = [{"type": "ETHERNET", "value": "0050569A0001"}]
            self.model_definition = False
            self._load_users(fixture.get("users") or [])
            for raw in fixture.get("features") or []:
                self._add_slice(raw)
            for body in fixture.get("reservationGroups") or []:
                self.create_group(body)
            for checkout in fixture.get("checkouts") or []:
                self.checkout(checkout)
            self.model_definition = bool(fixture.get("modelDefinition", False))

    def _clear(self) -> None:
        self._slice_ids = itertools.count(1)
        self._group_ids = itertools.count(1)
        self._reservation_ids = itertools.count(1)
        self._entry_ids = itertools.count(1)
        self._client_ids = itertools.count(1)
        self.slices: dict[int, Slice] = {}
        self.slices_by_key: dict[FeatureKey, list[Slice]] = {}
        self.groups: dict[int, Group] = {}
        self.group_ids_by_name: dict[str, int] = {}
        self.reservation_by_host: dict[HostKey, Reservation] = {}
        self.reservations_by_id: dict[int, Reservation] = {}
        self.entries_by_key: dict[FeatureKey, dict[int, tuple[Reservation, Entry]]] = {}
        self.reserved: Counter[FeatureKey] = Counter()
        self.clients: dict[HostKey, Client] = {}
        self.holders: dict[FeatureKey, dict[HostKey, None]] = {}
        self.assigned: Counter[FeatureKey] = Counter()
        self.shared: Counter[FeatureKey] = Counter()

    def _load_users(self, users: list[dict[str, Any]]) -> None:
        self.users: dict[str, tuple[str, frozenset[str]]] = {}
        for user in users:
            roles = user.get("roles") or ROLE_READ
            if isinstance(roles, str):
                roles = [r.strip() for r in roles.split(",") if r.strip()]
            self.users[str(user["user"])] = (str(user.get("password", "")), frozenset(roles))
        self.users["admin"] = (self.admin_password, frozenset(ALL_ROLES))

    def _add_slice(self, raw: dict[str, Any]) -> Slice:
        today = self.today()
        sid = next(self._slice_ids)
        metered = bool(raw.get("metered", False))
        uncounted = bool(raw.get("uncounted", False))
        concurrent = bool(raw.get("concurrent", not metered))
        count_raw = raw.get("featureCount", 0)
        count = _whole_number(count_raw)
        kind = "METERED" if metered else "UNCOUNTED" if uncounted else "CONCURRENT"
        known = {
            "featureName", "featureVersion", "featureCount", "metered", "uncounted",
            "concurrent", "type", "expiry", "starts", "issued", "featureId", "vendor",
        }  # fmt: skip
        item = Slice(
            id=sid,
            name=str(raw["featureName"]),
            version=str(raw.get("featureVersion", "1.0")),
            count_raw=count_raw,
            count=0 if uncounted else count,
            concurrent=concurrent,
            uncounted=uncounted,
            metered=metered,
            type=str(raw.get("type") or kind),
            expiry=resolve_date(raw.get("expiry"), today) or PERMANENT,
            starts=resolve_date(raw.get("starts"), today),
            issued=resolve_date(raw.get("issued", raw.get("starts")), today),
            feature_id=str(raw.get("featureId") or f"FID-{sid:06d}"),
            vendor=str(raw.get("vendor", "demo")),
            received_time=iso_utc(self.clock()),
            extra={k: v for k, v in raw.items() if k not in known},
        )
        self.slices[sid] = item
        self.slices_by_key.setdefault(item.key, []).append(item)
        return item

    # -- authentication --------------------------------------------------------------------

    def authorize(self, user: Any, password: Any) -> dict[str, str]:
        """POST /authorize: a signed HS512 JWT and its ISO expiry, or 401."""
        with self._lock:
            self.authorize_calls += 1
            account = self.users.get(str(user)) if isinstance(user, str) else None
            if account is None or account[0] != password:
                raise EmulatorError(401, "Bad credentials")
            now = self.clock()
            expires = now + self.token_lifetime
            claims = {
                "sub": user,
                "iss": self.instance_id,
                "iat": int(now),
                "exp": int(expires),
                "roles": ",".join(sorted(account[1])),
                "xsrfToken": str(uuid.uuid4()),
            }
            token = jwt.encode(claims, self._secret, algorithm="HS512")
            return {"expires": iso_utc(int(expires)), "token": token}

    def authenticate(self, authorization: str | None, role: str) -> Principal | None:
        """Check a bearer header for `role`: 401 if missing/expired/invalid, 403 if role absent."""
        if not self.security:
            return None
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise EmulatorError(401, "Full authentication is required to access this resource")
        with self._lock:
            secret = self._secret
        try:
            claims = jwt.decode(
                token.strip(),
                secret,
                algorithms=["HS512"],
                options={"require": ["exp", "sub"]},
                leeway=0,
            )
        except jwt.ExpiredSignatureError as exc:
            raise EmulatorError(401, "JWT token has expired") from exc
        except jwt.InvalidTokenError as exc:
            raise EmulatorError(401, "Invalid JWT token") from exc
        roles = frozenset(r.strip() for r in str(claims.get("roles", "")).split(",") if r)
        if role not in roles:
            raise EmulatorError(403, "Access is denied")
        return Principal(user=str(claims["sub"]), roles=roles)

    def expire_tokens(self) -> None:
        """Invalidate every token issued so far (a new signing key)."""
        with self._lock:
            self._secret = secrets.token_bytes(64)

    # -- faults ----------------------------------------------------------------------------

    def set_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if body.get("expire_tokens"):
                self.expire_tokens()
            statuses = body.get("error_statuses", self.faults.error_statuses)
            self.faults = Faults(
                latency_ms=float(body.get("latency_ms", self.faults.latency_ms)),
                error_rate=_rate(body.get("error_rate", self.faults.error_rate)),
                drop_rate=_rate(body.get("drop_rate", self.faults.drop_rate)),
                error_statuses=tuple(int(s) for s in statuses) or (500, 503),
                seed=int(body.get("seed", self.faults.seed)),
            )
            if "seed" in body:
                self._rng = random.Random(self.faults.seed)
            return self.faults.to_json()

    def clear_faults(self) -> None:
        with self._lock:
            self.faults = Faults()
            self._rng = random.Random(0)

    def decide_fault(self) -> FaultDecision:
        """Draw (seeded) what happens to the next API request."""
        with self._lock:
            faults = self.faults
            if not (faults.latency_ms or faults.error_rate or faults.drop_rate):
                return FaultDecision()
            latency = faults.latency_ms / 1000.0
            if faults.drop_rate and self._rng.random() < faults.drop_rate:
                return FaultDecision(latency_s=latency, drop=True)
            if faults.error_rate and self._rng.random() < faults.error_rate:
                return FaultDecision(latency, status=self._rng.choice(faults.error_statuses))
            return FaultDecision(latency_s=latency)

    def count_request(self, method: str, path: str) -> None:
        with self._lock:
            self.request_counts[f"{method} {path}"] += 1

    # -- server info -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        return {
            "LLS": {
                "version": "2024.09.0",
                "buildDate": "2024-09-30",
                "buildVersion": "287413",
                "branch": "emulator",
                "gitHash": "0000000",
                "patch": "0",
                "fneBuildVersion": "2024.09",
                "serverInstanceID": self.instance_id,
                "database": {"connectionCheck": "success"},
                "security": "enabled" if self.security else "disabled",
                "httpAuth": "enabled",
                "licensingSecurityJSON": "disabled",
                "diskspace": {"status": "UP"},
            }
        }

    def version(self) -> dict[str, str]:
        return {"version": "2024.09.0", "build": "287413"}

    def host_ids(self) -> dict[str, Any]:
        return {"hostids": list(self.server_host_ids)}

    # -- features --------------------------------------------------------------------------

    def list_features(self, active_only: bool = False) -> list[dict[str, Any]]:
        with self._lock:
            today = self.today()
            rows: list[dict[str, Any]] = []
            for key, members in self.slices_by_key.items():
                usage = self._slice_usage(key, today)
                for item in members:
                    if not active_only or item.is_active(today):
                        rows.append(self._slice_json(item, usage.get(item.id)))
            rows.sort(key=lambda row: row["id"])
            return rows

    def get_feature(self, feature_id: int) -> dict[str, Any]:
        with self._lock:
            item = self._slice(feature_id)
            return self._slice_json(item, self._slice_usage(item.key, self.today()).get(item.id))

    def feature_clients(self, feature_id: int) -> list[dict[str, Any]]:
        """GET /features/{id}/clients: the clients whose usage is attributed to that slice."""
        with self._lock:
            item = self._slice(feature_id)
            per_client = self._client_usage(item.key, self.today()).get(item.id, {})
            rows = []
            for host, (use, reserved) in per_client.items():
                client = self.clients[host]
                rows.append(
                    {
                        "id": client.id,
                        "useCount": use,
                        "usageKind": "RESERVED" if reserved else "SHARED",
                        "reservedCount": reserved,
                        "client": self._client_core_json(client),
                    }
                )
            return rows

    def feature_summaries(self) -> dict[str, dict[str, dict[str, int]]]:
        """GET /features/summaries: {name: {expiry: {totalCount, totalUsed, totalReserved}}}."""
        summary: dict[str, dict[str, dict[str, int]]] = {}
        for row in self.list_features(active_only=False):
            bucket = summary.setdefault(row["featureName"], {}).setdefault(
                row["expiry"], {"totalCount": 0, "totalUsed": 0, "totalReserved": 0}
            )
            count = row["featureCount"]
            bucket["totalCount"] += count if isinstance(count, int) else 0
            bucket["totalUsed"] += row["used"]
            bucket["totalReserved"] += row["reserved"]
        return summary

    def capacity(self, key: FeatureKey, *, reservable_only: bool = False) -> int:
        """Sum of active counted slice counts (UNLIMITED if an active slice is uncounted)."""
        today = self.today()
        total = 0
        for item in self.slices_by_key.get(key, []):
            if not item.is_active(today) or (reservable_only and not item.reservable):
                continue
            if item.uncounted:
                return UNLIMITED
            total += item.count
        return total

    def _slice(self, feature_id: int) -> Slice:
        item = self.slices.get(feature_id)
        if item is None:
            raise EmulatorError(404, f"Feature {feature_id} not found")
        return item

    def _usage_targets(self, key: FeatureKey, today: dt.date) -> tuple[list[Slice], list[int]]:
        """The slices usage is attributed to (active ones, else all) and their capacities."""
        members = self.slices_by_key.get(key, [])
        targets = [s for s in members if s.is_active(today)] or members
        return targets, [UNLIMITED if s.uncounted else s.count for s in targets]

    def _slice_usage(self, key: FeatureKey, today: dt.date) -> dict[int, tuple[int, int, int]]:
        """Per slice id: (reserved, assignedReserved, sharedUsed)."""
        targets, caps = self._usage_targets(key, today)
        if not targets:
            return {}
        reserved = fill(self.reserved[key], caps)
        assigned = fill(self.assigned[key], reserved)
        shared = fill(self.shared[key], [c - r for c, r in zip(caps, reserved, strict=True)])
        return {
            s.id: (r, a, sh)
            for s, r, a, sh in zip(targets, reserved, assigned, shared, strict=True)
        }

    def _client_usage(
        self, key: FeatureKey, today: dt.date
    ) -> dict[int, dict[HostKey, tuple[int, int]]]:
        """Per slice id, per client host: (useCount, reservedCount), consistent with usage."""
        targets, caps = self._usage_targets(key, today)
        if not targets:
            return {}
        reserved = fill(self.reserved[key], caps)
        holders = [(h, self.clients[h].holdings[key]) for h in self.holders.get(key, {})]
        by_reserved = split(((h, hold.reserved) for h, hold in holders), reserved)
        free = [c - r for c, r in zip(caps, reserved, strict=True)]
        by_shared = split(((h, hold.shared) for h, hold in holders), free)
        result: dict[int, dict[HostKey, tuple[int, int]]] = {}
        for item, res_part, shared_part in zip(targets, by_reserved, by_shared, strict=True):
            rows: dict[HostKey, tuple[int, int]] = {}
            for host, amount in res_part:
                use, res = rows.get(host, (0, 0))
                rows[host] = (use + amount, res + amount)
            for host, amount in shared_part:
                use, res = rows.get(host, (0, 0))
                rows[host] = (use + amount, res)
            result[item.id] = rows
        return result

    def _slice_json(self, item: Slice, usage: tuple[int, int, int] | None) -> dict[str, Any]:
        reserved, assigned, shared = usage or (0, 0, 0)
        row: dict[str, Any] = dict(item.extra)
        row.update(
            {
                "id": item.id,
                "featureName": item.name,
                "featureVersion": item.version,
                "featureCount": item.count_raw,
                "used": shared + assigned,
                "reserved": reserved,
                "assignedReserved": assigned,
                "unassignedReserved": reserved - assigned,
                "sharedUsed": shared,
                "overdraftCount": 0,
                "overdraftUsedCount": 0,
                "uncappedOverdraft": False,
                "uncounted": item.uncounted,
                "concurrent": item.concurrent,
                "metered": item.metered,
                "meteredReusable": False,
                "meteredUndoInterval": 0,
                "type": item.type,
                "featureKind": "NORMAL",
                "expiry": item.expiry,
                "starts": item.starts,
                "issued": item.issued,
                "receivedTime": item.received_time,
                "featureId": item.feature_id,
                "vendor": item.vendor,
                "issuer": "Emulated back office",
                "notice": "",
                "borrowInterval": 0,
                "renewInterval": 0,
            }
        )
        return row

    def set_feature_count(self, name: str, version: str, count: int) -> dict[str, Any]:
        """Set the active counted total of a feature; entries that no longer fit get DISABLED."""
        with self._lock:
            key = (name, version)
            today = self.today()
            targets = [
                s for s in self.slices_by_key.get(key, []) if s.is_active(today) and s.counted
            ]
            if not targets:
                raise EmulatorError(404, f"No active counted feature '{name}' version '{version}'")
            if count < 0:
                raise EmulatorError(400, "count must be >= 0")
            delta = count - sum(s.count for s in targets)
            for item in reversed(targets):
                change = delta if delta > 0 else max(delta, -item.count)
                item.count += change
                item.count_raw = item.count
                delta -= change
                if delta == 0:
                    break
            self._rebalance(key)
            return {"featureName": name, "featureVersion": version, "count": count}

    # -- reservation groups: reads ---------------------------------------------------------

    def list_groups(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            if name is not None:
                gid = self.group_ids_by_name.get(name)
                return [] if gid is None else [self._group_json(self.groups[gid])]
            return [self._group_json(g) for g in self.groups.values()]

    def get_group(self, group_id: int) -> dict[str, Any]:
        with self._lock:
            return self._group_json(self._group(group_id))

    def list_reservations(self, group_id: int, hostid: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            group = self._group(group_id)
            return [
                self._reservation_json(r)
                for r in group.reservations.values()
                if hostid is None or _host_matches(r.host, hostid)
            ]

    def get_reservation(self, group_id: int, reservation_id: int) -> dict[str, Any]:
        with self._lock:
            return self._reservation_json(self._reservation(group_id, reservation_id))

    def list_entries(self, group_id: int, reservation_id: int) -> list[dict[str, Any]]:
        with self._lock:
            reservation = self._reservation(group_id, reservation_id)
            return [_entry_json(e) for e in reservation.entries.values()]

    def _group(self, group_id: int) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise EmulatorError(404, f"Reservation group {group_id} not found")
        return group

    def _reservation(self, group_id: int, reservation_id: int) -> Reservation:
        reservation = self._group(group_id).reservations.get(reservation_id)
        if reservation is None:
            raise EmulatorError(404, f"Reservation {reservation_id} not found in group {group_id}")
        return reservation

    def _group_json(self, group: Group) -> dict[str, Any]:
        return {
            "id": group.id,
            "name": group.name,
            "creationDate": group.creation_date,
            "ipAddress": group.ip_address,
            "reservations": [self._reservation_json(r) for r in group.reservations.values()],
        }

    def _reservation_json(self, reservation: Reservation) -> dict[str, Any]:
        return {
            "id": reservation.id,
            "hostId": {"type": reservation.host[0], "value": reservation.host[1]},
            "reservationEntries": [_entry_json(e) for e in reservation.entries.values()],
        }

    # -- reservation groups: writes --------------------------------------------------------

    def create_group(self, body: Any, ip_address: str = "127.0.0.1") -> dict[str, Any]:
        """POST /reservationgroups: all-or-nothing creation of a group, its hosts and entries."""
        with self._lock:
            self._check_reservations_allowed()
            if not isinstance(body, dict):
                raise EmulatorError(400, "Request body must be a reservation group object")
            name = body.get("name")
            if not isinstance(name, str) or not name.strip():
                raise EmulatorError(400, "Reservation group name is required")
            if name in self.group_ids_by_name:
                raise EmulatorError(409, f"Reservation group '{name}' already exists")
            raw_reservations = body.get("reservations") or []
            if not isinstance(raw_reservations, list):
                raise EmulatorError(400, "'reservations' must be an array")
            planned = [self._parse_reservation(raw) for raw in raw_reservations]
            self._check_hosts_free([host for host, _ in planned])
            self._check_counts(entry for _, entries in planned for entry in entries)
            return self._group_json(self._insert_group(name, planned, ip_address))

    def add_entries(self, group_id: int, reservation_id: int, body: Any) -> list[dict[str, Any]]:
        """POST …/entries: add entries to an existing reservation (all-or-nothing)."""
        with self._lock:
            self._check_reservations_allowed()
            reservation = self._reservation(group_id, reservation_id)
            if not isinstance(body, list):
                raise EmulatorError(400, "Request body must be an array of reservation entries")
            planned = [_parse_entry(raw) for raw in body]
            self._check_counts(planned)
            return [_entry_json(self._insert_entry(reservation, *e)) for e in planned]

    def delete_entry(self, group_id: int, reservation_id: int, entry_id: int) -> None:
        with self._lock:
            self._check_reservations_allowed()
            reservation = self._reservation(group_id, reservation_id)
            entry = reservation.entries.get(entry_id)
            if entry is None:
                raise EmulatorError(404, f"Reservation entry {entry_id} not found")
            self._remove_entry(reservation, entry)
            self._rebalance(entry.key)

    def delete_reservation(self, group_id: int, reservation_id: int) -> None:
        with self._lock:
            self._check_reservations_allowed()
            self._drop_reservation(self._reservation(group_id, reservation_id))

    def delete_group(self, group_id: int) -> None:
        with self._lock:
            self._check_reservations_allowed()
            group = self._group(group_id)
            for reservation in list(group.reservations.values()):
                self._drop_reservation(reservation)
            del self.groups[group.id]
            del self.group_ids_by_name[group.name]

    def _check_reservations_allowed(self) -> None:
        if self.model_definition:
            raise EmulatorError(
                409, "Reservations cannot be used while a model definition (named pools) is loaded"
            )

    def _parse_reservation(self, raw: Any) -> tuple[HostKey, list[tuple[str, str, int]]]:
        if not isinstance(raw, dict):
            raise EmulatorError(400, "Each reservation must be an object")
        host = raw.get("hostId")
        if not isinstance(host, dict):
            raise EmulatorError(400, "Each reservation needs a hostId {type, value}")
        kind, value = host.get("type"), host.get("value")
        if not isinstance(kind, str) or not kind or not isinstance(value, str) or not value:
            raise EmulatorError(400, "hostId needs non-empty 'type' and 'value'")
        entries = raw.get("reservationEntries") or []
        if not isinstance(entries, list):
            raise EmulatorError(400, "'reservationEntries' must be an array")
        return (kind, value), [_parse_entry(e) for e in entries]

    def _check_hosts_free(self, hosts: list[HostKey]) -> None:
        seen: set[HostKey] = set()
        for host in hosts:
            label = f"{host[0]} {host[1]}"
            if host in seen:
                raise EmulatorError(409, f"Host id {label} appears more than once in the group")
            seen.add(host)
            existing = self.reservation_by_host.get(host)
            if existing is not None:
                group_name = self.groups[existing.group_id].name
                raise EmulatorError(
                    409, f"Host id {label} is already reserved in group '{group_name}'"
                )

    def _check_counts(self, entries: Iterable[tuple[str, str, int]]) -> None:
        """400 for unknown / non-reservable features; 409 when counts would be exceeded."""
        requested: Counter[FeatureKey] = Counter()
        for name, version, count in entries:
            requested[(name, version)] += count
        for (name, version), count in requested.items():
            members = self.slices_by_key.get((name, version))
            if not members:
                raise EmulatorError(400, f"Unknown feature '{name}' version '{version}'")
            if not any(s.reservable for s in members):
                raise EmulatorError(
                    400,
                    f"Feature '{name}' version '{version}' cannot be reserved: "
                    "only concurrent counted features can be reserved",
                )
            available = self.capacity((name, version), reservable_only=True)
            available -= self.reserved[(name, version)]
            if count > available:
                raise EmulatorError(
                    409,
                    f"Insufficient unreserved count for feature '{name}' version '{version}': "
                    f"requested {count}, available {max(available, 0)}",
                )

    def _insert_group(
        self, name: str, planned: list[tuple[HostKey, list[tuple[str, str, int]]]], ip: str
    ) -> Group:
        group = Group(next(self._group_ids), name, iso_utc(self.clock()), ip)
        self.groups[group.id] = group
        self.group_ids_by_name[name] = group.id
        for host, entries in planned:
            reservation = Reservation(next(self._reservation_ids), group.id, host)
            group.reservations[reservation.id] = reservation
            self.reservation_by_host[host] = reservation
            self.reservations_by_id[reservation.id] = reservation
            for entry in entries:
                self._insert_entry(reservation, *entry)
        return group

    def _insert_entry(self, reservation: Reservation, name: str, version: str, count: int) -> Entry:
        entry = Entry(next(self._entry_ids), name, version, count)
        reservation.entries[entry.id] = entry
        self.entries_by_key.setdefault(entry.key, {})[entry.id] = (reservation, entry)
        self.reserved[entry.key] += count
        return entry

    def _remove_entry(self, reservation: Reservation, entry: Entry) -> None:
        del reservation.entries[entry.id]
        del self.entries_by_key[entry.key][entry.id]
        if entry.state == ACTIVE:
            self.reserved[entry.key] -= entry.count

    def _drop_reservation(self, reservation: Reservation) -> None:
        keys = {e.key for e in reservation.entries.values()} | set(reservation.assigned)
        for entry in list(reservation.entries.values()):
            self._remove_entry(reservation, entry)
        del self.groups[reservation.group_id].reservations[reservation.id]
        del self.reservation_by_host[reservation.host]
        del self.reservations_by_id[reservation.id]
        for key in keys:
            self._rebalance(key)

    def _rebalance(self, key: FeatureKey) -> None:
        """Disable newest entries while over capacity, re-enable oldest that fit again."""
        capacity = self.capacity(key, reservable_only=True)
        entries = self.entries_by_key.get(key, {})
        for _, entry in reversed(list(entries.values())):
            if self.reserved[key] <= capacity:
                break
            if entry.state == ACTIVE:
                entry.state = DISABLED
                self.reserved[key] -= entry.count
        for _, entry in entries.values():
            if entry.state == DISABLED and self.reserved[key] + entry.count <= capacity:
                entry.state = ACTIVE
                self.reserved[key] += entry.count
        self._release_excess_assignments(key)

    def _release_excess_assignments(self, key: FeatureKey) -> None:
        """Reserved units a client holds beyond its reservation's active entries become shared."""
        for host in list(self.holders.get(key, {})):
            holding = self.clients[host].holdings[key]
            for rid in list(holding.reserved_from):
                reservation = self.reservations_by_id.get(rid)
                allowed = reservation.active_count(key) if reservation else 0
                taken = reservation.assigned_count(key) if reservation else holding.reserved
                excess = min(holding.reserved_from[rid], taken - allowed)
                if excess > 0:
                    self._move_to_shared(host, key, rid, excess, reservation)

    def _move_to_shared(
        self, host: HostKey, key: FeatureKey, rid: int, amount: int, res: Reservation | None
    ) -> None:
        holding = self.clients[host].holdings[key]
        holding.reserved_from[rid] -= amount
        if not holding.reserved_from[rid]:
            del holding.reserved_from[rid]
        holding.shared += amount
        self.assigned[key] -= amount
        self.shared[key] += amount
        if res is not None:
            per_host = res.assigned.get(key, {})
            per_host[host] = per_host.get(host, 0) - amount
            if per_host.get(host, 0) <= 0:
                per_host.pop(host, None)

    # -- simulated clients -----------------------------------------------------------------

    def checkout(self, body: dict[str, Any]) -> dict[str, Any]:
        """Serve `count` of a feature to a host: its reservations first, then the shared pool."""
        with self._lock:
            host, key, count = _parse_usage(body, require_count=True)
            today = self.today()
            if key not in self.slices_by_key:
                raise EmulatorError(404, f"Unknown feature '{key[0]}' version '{key[1]}'")
            capacity = self.capacity(key)
            if capacity == 0 and not any(s.is_active(today) for s in self.slices_by_key[key]):
                raise EmulatorError(409, f"Feature '{key[0]}' version '{key[1]}' is not active")
            user = body.get("user")
            plan = self._plan_reserved(host, user, key, count)
            shared_needed = count - sum(plan.values())
            shared_free = capacity - self.shared[key] - self.reserved[key]
            if capacity != UNLIMITED and shared_needed > shared_free:
                raise EmulatorError(
                    409,
                    f"No license available for '{key[0]}' version '{key[1]}': requested "
                    f"{count}, available {sum(plan.values()) + max(shared_free, 0)}",
                )
            client = self._client(host, body, user)
            self._grant(client, key, plan, shared_needed)
            return self._client_json(client)

    def checkin(self, body: dict[str, Any]) -> dict[str, Any]:
        """Return counts (all when `count` is absent): shared first, then reserved."""
        with self._lock:
            host, key, count = _parse_usage(body, require_count=False)
            client = self.clients.get(host)
            holding = client.holdings.get(key) if client else None
            if client is None or holding is None:
                raise EmulatorError(404, f"Host {host[0]} {host[1]} holds no '{key[0]}'")
            self._release(client, key, holding.total if count is None else count)
            return self._client_json(client) if host in self.clients else {}

    def drop_client(self, client_id: int) -> None:
        with self._lock:
            client = next((c for c in self.clients.values() if c.id == client_id), None)
            if client is None:
                raise EmulatorError(404, f"Client {client_id} not found")
            for key in list(client.holdings):
                self._release(client, key, client.holdings[key].total)
            self.clients.pop(client.host, None)

    def list_clients(self) -> list[dict[str, Any]]:
        with self._lock:
            return [self._client_json(c) for c in self.clients.values()]

    def _plan_reserved(
        self, host: HostKey, user: Any, key: FeatureKey, count: int
    ) -> dict[int, int]:
        """Reserved units to take per reservation id (device reservation, then user's)."""
        candidates = [self.reservation_by_host.get(host)]
        if isinstance(user, str) and user:
            candidates.append(self.reservation_by_host.get(("USER", user)))
        plan: dict[int, int] = {}
        remaining = count
        for reservation in candidates:
            if reservation is None or remaining <= 0:
                continue
            free = reservation.active_count(key) - reservation.assigned_count(key)
            take = min(remaining, max(free, 0))
            if take:
                plan[reservation.id] = take
                remaining -= take
        return plan

    def _client(self, host: HostKey, body: dict[str, Any], user: Any) -> Client:
        client = self.clients.get(host)
        if client is None:
            client = Client(
                id=next(self._client_ids),
                host=host,
                host_name=str(body.get("hostName") or f"host-{host[1][-6:].lower()}"),
                user=user if isinstance(user, str) else None,
                correlation_id=str(uuid.uuid4()),
                update_time=self.clock(),
            )
            self.clients[host] = client
        client.update_time = self.clock()
        return client

    def _grant(self, client: Client, key: FeatureKey, plan: dict[int, int], shared: int) -> None:
        holding = client.holdings.setdefault(key, Holding())
        self.holders.setdefault(key, {})[client.host] = None
        for rid, amount in plan.items():
            holding.reserved_from[rid] = holding.reserved_from.get(rid, 0) + amount
            reservation = self.reservations_by_id.get(rid)
            if reservation is not None:
                per_host = reservation.assigned.setdefault(key, {})
                per_host[client.host] = per_host.get(client.host, 0) + amount
            self.assigned[key] += amount
        holding.shared += shared
        self.shared[key] += shared

    def _release(self, client: Client, key: FeatureKey, count: int) -> None:
        holding = client.holdings[key]
        from_shared = min(count, holding.shared)
        holding.shared -= from_shared
        self.shared[key] -= from_shared
        remaining = count - from_shared
        for rid in list(holding.reserved_from):
            if remaining <= 0:
                break
            amount = min(remaining, holding.reserved_from[rid])
            self._move_to_shared(client.host, key, rid, amount, self.reservations_by_id.get(rid))
            holding.shared -= amount
            self.shared[key] -= amount
            remaining -= amount
        if holding.total == 0:
            del client.holdings[key]
            self.holders[key].pop(client.host, None)
        if not client.holdings:
            del self.clients[client.host]

    def _client_core_json(self, client: Client) -> dict[str, Any]:
        hostid = {"hostidType": client.host[0], "hostidValue": client.host[1]}
        server = self.server_host_ids[0]
        return {
            "id": client.id,
            "hostid": hostid,
            "requestHostid": hostid,
            "serverHostid": {"hostidType": server["type"], "hostidValue": server["value"]},
            "correlationId": client.correlation_id,
            "collectedHostIds": f"{client.host[0]}={client.host[1]}",
            "hostType": "FLX_CLIENT",
            "machineType": "PHYSICAL",
            "updateTime": iso_utc(client.update_time),
            "expiry": iso_utc(client.update_time + 86400),
            "trusted": True,
            "requestOperation": "REQUEST",
            "servedStatus": "NORMAL",
        }

    def _client_json(self, client: Client) -> dict[str, Any]:
        row = self._client_core_json(client)
        row["hostName"] = client.host_name
        if client.user:
            row["user"] = client.user
        row["features"] = [
            {
                "featureName": key[0],
                "featureVersion": key[1],
                "count": holding.total,
                "reservedCount": holding.reserved,
                "expiry": self._key_expiry(key),
            }
            for key, holding in client.holdings.items()
        ]
        return row

    def _key_expiry(self, key: FeatureKey) -> str:
        today = self.today()
        active = [s.expiry for s in self.slices_by_key.get(key, []) if s.is_active(today)]
        return active[0] if active else PERMANENT

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
                "faults": self.faults.to_json(),
                "stats": {
                    "authorizeCalls": self.authorize_calls,
                    "requests": dict(self.request_counts),
                },
            }

    def iter_entries(self) -> Iterator[tuple[Group, Reservation, Entry]]:
        """Every reservation entry with its group and reservation (for tests)."""
        with self._lock:
            for group in self.groups.values():
                for reservation in group.reservations.values():
                    for entry in reservation.entries.values():
                        yield group, reservation, entry


# -- parsing helpers -----------------------------------------------------------------------


def _whole_number(value: Any) -> int:
    """An int count from an int or a digit string; anything else counts as 0."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return 0


def _rate(value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise EmulatorError(400, "rates must be between 0 and 1")
    return rate


def _entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "featureName": entry.name,
        "featureVersion": entry.version,
        "featureCount": entry.count,
        "state": entry.state,
    }


def _parse_entry(raw: Any) -> tuple[str, str, int]:
    if not isinstance(raw, dict):
        raise EmulatorError(400, "Each reservation entry must be an object")
    name, version, count = (
        raw.get("featureName"),
        raw.get("featureVersion"),
        raw.get("featureCount"),
    )
    if not isinstance(name, str) or not name:
        raise EmulatorError(400, "Reservation entry needs a featureName")
    if not isinstance(version, str) or not version:
        raise EmulatorError(400, f"Reservation entry for '{name}' needs a featureVersion")
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0:
        raise EmulatorError(400, f"featureCount for '{name}' must be a positive integer")
    return name, version, count


def _parse_usage(body: Any, *, require_count: bool) -> tuple[HostKey, FeatureKey, int | None]:
    if not isinstance(body, dict):
        raise EmulatorError(400, "body must be an object")
    host = body.get("hostid") or body.get("hostId")
    if not isinstance(host, dict):
        raise EmulatorError(400, "hostid {type, value} is required")
    kind = host.get("type", host.get("hostidType"))
    value = host.get("value", host.get("hostidValue"))
    name, version = body.get("featureName"), body.get("featureVersion")
    if not all(isinstance(v, str) and v for v in (kind, value, name, version)):
        raise EmulatorError(400, "hostid, featureName and featureVersion are required")
    count = body.get("count", 1 if require_count else None)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count <= 0):
        raise EmulatorError(400, "count must be a positive integer")
    return (str(kind), str(value)), (str(name), str(version)), count


def _host_matches(host: HostKey, query: str) -> bool:
    """`?hostid=` matches the value alone, or TYPE:VALUE / TYPE/VALUE."""
    text = query.strip()
    if text == host[1]:
        return True
    for sep in (":", "/"):
        kind, _, value = text.partition(sep)
        if value and kind.upper() == host[0].upper() and value == host[1]:
            return True
    return False
