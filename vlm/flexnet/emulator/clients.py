"""Simulated clients: checkouts served from reservations first, then from the shared pool."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from typing import Any

from vlm.flexnet.emulator.common import EmulatorError, FeatureKey, HostKey, TimeSource, iso_utc
from vlm.flexnet.emulator.features import UNLIMITED, FeatureTable, Slice
from vlm.flexnet.emulator.reservations import Reservation, ReservationBook


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


class ClientPool:
    """Clients by host id, the hosts holding each feature, and the checkout/checkin rules.

    Methods that answer with client rows take `server`, the server host id they report.
    """

    def __init__(
        self, features: FeatureTable, reservations: ReservationBook, time: TimeSource
    ) -> None:
        self._features = features
        self._reservations = reservations
        self._time = time
        self._client_ids = itertools.count(1)
        self.clients: dict[HostKey, Client] = {}
        self.holders: dict[FeatureKey, dict[HostKey, None]] = {}

    def checkout(self, body: dict[str, Any], server: dict[str, Any]) -> dict[str, Any]:
        """Serve `count` of a feature to a host: its reservations first, then the shared pool."""
        features = self._features
        host, key, count = parse_usage(body, require_count=True)
        today = self._time.today()
        if key not in features.slices_by_key:
            raise EmulatorError(404, f"Unknown feature '{key[0]}' version '{key[1]}'")
        capacity = features.capacity(key)
        if capacity == 0 and not any(s.is_active(today) for s in features.slices_by_key[key]):
            raise EmulatorError(409, f"Feature '{key[0]}' version '{key[1]}' is not active")
        user = body.get("user")
        plan = self._plan_reserved(host, user, key, count)
        shared_needed = count - sum(plan.values())
        shared_free = capacity - features.shared[key] - features.reserved[key]
        if capacity != UNLIMITED and shared_needed > shared_free:
            raise EmulatorError(
                409,
                f"No license available for '{key[0]}' version '{key[1]}': requested "
                f"{count}, available {sum(plan.values()) + max(shared_free, 0)}",
            )
        client = self._client(host, body, user)
        self._grant(client, key, plan, shared_needed)
        return self._client_json(client, server)

    def checkin(self, body: dict[str, Any], server: dict[str, Any]) -> dict[str, Any]:
        """Return counts (all when `count` is absent): shared first, then reserved."""
        host, key, count = parse_usage(body, require_count=False)
        client = self.clients.get(host)
        holding = client.holdings.get(key) if client else None
        if client is None or holding is None:
            raise EmulatorError(404, f"Host {host[0]} {host[1]} holds no '{key[0]}'")
        self._release(client, key, holding.total if count is None else count)
        return self._client_json(client, server) if host in self.clients else {}

    def drop(self, client_id: int) -> None:
        client = next((c for c in self.clients.values() if c.id == client_id), None)
        if client is None:
            raise EmulatorError(404, f"Client {client_id} not found")
        for key in list(client.holdings):
            self._release(client, key, client.holdings[key].total)
        self.clients.pop(client.host, None)

    def rows(self, server: dict[str, Any]) -> list[dict[str, Any]]:
        return [self._client_json(c, server) for c in self.clients.values()]

    def feature_rows(self, item: Slice, server: dict[str, Any]) -> list[dict[str, Any]]:
        """GET /features/{id}/clients: the clients whose usage is attributed to that slice."""
        key = item.key
        holdings = [(host, self.clients[host].holdings[key]) for host in self.holders.get(key, {})]
        holders = [(host, holding.reserved, holding.shared) for host, holding in holdings]
        usage = self._features.client_usage(key, self._time.today(), holders)
        rows = []
        for host, (use, reserved) in usage.get(item.id, {}).items():
            client = self.clients[host]
            rows.append(
                {
                    "id": client.id,
                    "useCount": use,
                    "usageKind": "RESERVED" if reserved else "SHARED",
                    "reservedCount": reserved,
                    "client": client_core_json(client, server),
                }
            )
        return rows

    def release_excess(self, key: FeatureKey) -> None:
        """Reserved units a client holds beyond its reservation's active entries become shared."""
        for host in list(self.holders.get(key, {})):
            holding = self.clients[host].holdings[key]
            for rid in list(holding.reserved_from):
                reservation = self._reservations.reservations_by_id.get(rid)
                allowed = reservation.active_count(key) if reservation else 0
                taken = reservation.assigned_count(key) if reservation else holding.reserved
                excess = min(holding.reserved_from[rid], taken - allowed)
                if excess > 0:
                    self._move_to_shared(host, key, rid, excess, reservation)

    def _plan_reserved(
        self, host: HostKey, user: Any, key: FeatureKey, count: int
    ) -> dict[int, int]:
        """Reserved units to take per reservation id (device reservation, then user's)."""
        by_host = self._reservations.reservation_by_host
        candidates = [by_host.get(host)]
        if isinstance(user, str) and user:
            candidates.append(by_host.get(("USER", user)))
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
                update_time=self._time.now(),
            )
            self.clients[host] = client
        client.update_time = self._time.now()
        return client

    def _grant(self, client: Client, key: FeatureKey, plan: dict[int, int], shared: int) -> None:
        holding = client.holdings.setdefault(key, Holding())
        self.holders.setdefault(key, {})[client.host] = None
        for rid, amount in plan.items():
            holding.reserved_from[rid] = holding.reserved_from.get(rid, 0) + amount
            reservation = self._reservations.reservations_by_id.get(rid)
            if reservation is not None:
                per_host = reservation.assigned.setdefault(key, {})
                per_host[client.host] = per_host.get(client.host, 0) + amount
            self._features.assigned[key] += amount
        holding.shared += shared
        self._features.shared[key] += shared

    def _release(self, client: Client, key: FeatureKey, count: int) -> None:
        shared = self._features.shared
        holding = client.holdings[key]
        from_shared = min(count, holding.shared)
        holding.shared -= from_shared
        shared[key] -= from_shared
        remaining = count - from_shared
        for rid in list(holding.reserved_from):
            if remaining <= 0:
                break
            amount = min(remaining, holding.reserved_from[rid])
            reservation = self._reservations.reservations_by_id.get(rid)
            self._move_to_shared(client.host, key, rid, amount, reservation)
            holding.shared -= amount
            shared[key] -= amount
            remaining -= amount
        if holding.total == 0:
            del client.holdings[key]
            self.holders[key].pop(client.host, None)
        if not client.holdings:
            del self.clients[client.host]

    def _move_to_shared(
        self, host: HostKey, key: FeatureKey, rid: int, amount: int, res: Reservation | None
    ) -> None:
        holding = self.clients[host].holdings[key]
        holding.reserved_from[rid] -= amount
        if not holding.reserved_from[rid]:
            del holding.reserved_from[rid]
        holding.shared += amount
        self._features.assigned[key] -= amount
        self._features.shared[key] += amount
        if res is not None:
            per_host = res.assigned.get(key, {})
            per_host[host] = per_host.get(host, 0) - amount
            if per_host.get(host, 0) <= 0:
                per_host.pop(host, None)

    def _client_json(self, client: Client, server: dict[str, Any]) -> dict[str, Any]:
        row = client_core_json(client, server)
        row["hostName"] = client.host_name
        if client.user:
            row["user"] = client.user
        row["features"] = [
            {
                "featureName": key[0],
                "featureVersion": key[1],
                "count": holding.total,
                "reservedCount": holding.reserved,
                "expiry": self._features.key_expiry(key),
            }
            for key, holding in client.holdings.items()
        ]
        return row


def client_core_json(client: Client, server: dict[str, Any]) -> dict[str, Any]:
    """A client row without its name, user and features (as nested in feature usage)."""
    hostid = {"hostidType": client.host[0], "hostidValue": client.host[1]}
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


def parse_usage(body: Any, *, require_count: bool) -> tuple[HostKey, FeatureKey, int | None]:
    """(host, feature, count) from a checkout/checkin body; 400 when malformed."""
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
