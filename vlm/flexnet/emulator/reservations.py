"""Reservation groups, their reservations and entries, and the rules for changing them.

Writes are refused (409) while a model definition is loaded. Creation is all-or-nothing: a host
id may be reserved once across all groups, and requested counts must fit the unreserved
capacity of concurrent counted features. `reserved` is the sum of ACTIVE entries; entries that
no longer fit the feature's count are marked DISABLED (newest first) and re-enabled (oldest
first) when counts return.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from vlm.flexnet.emulator.common import EmulatorError, FeatureKey, HostKey, TimeSource, iso_utc
from vlm.flexnet.emulator.features import FeatureTable

ACTIVE = "ACTIVE"
DISABLED = "DISABLED"

EntrySpec = tuple[str, str, int]
ReservationSpec = tuple[HostKey, list[EntrySpec]]


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


class ReservationBook:
    """Every reservation group, indexed by id and name, reservations by host id and by id.

    `after_rebalance(key)` runs at the end of every rebalance of a feature's entries.
    """

    def __init__(
        self,
        features: FeatureTable,
        time: TimeSource,
        after_rebalance: Callable[[FeatureKey], None],
    ) -> None:
        self._features = features
        self._time = time
        self._after_rebalance = after_rebalance
        self._group_ids = itertools.count(1)
        self._reservation_ids = itertools.count(1)
        self._entry_ids = itertools.count(1)
        self.model_definition = False
        self.groups: dict[int, Group] = {}
        self.group_ids_by_name: dict[str, int] = {}
        self.reservation_by_host: dict[HostKey, Reservation] = {}
        self.reservations_by_id: dict[int, Reservation] = {}
        self.entries_by_key: dict[FeatureKey, dict[int, tuple[Reservation, Entry]]] = {}

    # -- reads -----------------------------------------------------------------------------

    def list_groups(self, name: str | None = None) -> list[dict[str, Any]]:
        if name is not None:
            gid = self.group_ids_by_name.get(name)
            return [] if gid is None else [group_json(self.groups[gid])]
        return [group_json(g) for g in self.groups.values()]

    def list_reservations(self, group_id: int, hostid: str | None = None) -> list[dict[str, Any]]:
        group = self.group(group_id)
        return [
            reservation_json(r)
            for r in group.reservations.values()
            if hostid is None or host_matches(r.host, hostid)
        ]

    def get_group(self, group_id: int) -> dict[str, Any]:
        return group_json(self.group(group_id))

    def get_reservation(self, group_id: int, reservation_id: int) -> dict[str, Any]:
        return reservation_json(self.reservation(group_id, reservation_id))

    def list_entries(self, group_id: int, reservation_id: int) -> list[dict[str, Any]]:
        return [entry_json(e) for e in self.reservation(group_id, reservation_id).entries.values()]

    def group(self, group_id: int) -> Group:
        group = self.groups.get(group_id)
        if group is None:
            raise EmulatorError(404, f"Reservation group {group_id} not found")
        return group

    def reservation(self, group_id: int, reservation_id: int) -> Reservation:
        reservation = self.group(group_id).reservations.get(reservation_id)
        if reservation is None:
            raise EmulatorError(404, f"Reservation {reservation_id} not found in group {group_id}")
        return reservation

    def iter_entries(self) -> Iterator[tuple[Group, Reservation, Entry]]:
        for group in self.groups.values():
            for reservation in group.reservations.values():
                for entry in reservation.entries.values():
                    yield group, reservation, entry

    # -- writes ----------------------------------------------------------------------------

    def create_group(self, body: Any, ip_address: str) -> dict[str, Any]:
        """POST /reservationgroups: all-or-nothing creation of a group, its hosts and entries."""
        self._check_writable()
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
        planned = [parse_reservation(raw) for raw in raw_reservations]
        self._check_hosts_free([host for host, _ in planned])
        self._check_counts(entry for _, entries in planned for entry in entries)
        return group_json(self._insert_group(name, planned, ip_address))

    def add_entries(self, group_id: int, reservation_id: int, body: Any) -> list[dict[str, Any]]:
        """POST …/entries: add entries to an existing reservation (all-or-nothing)."""
        self._check_writable()
        reservation = self.reservation(group_id, reservation_id)
        if not isinstance(body, list):
            raise EmulatorError(400, "Request body must be an array of reservation entries")
        planned = [parse_entry(raw) for raw in body]
        self._check_counts(planned)
        return [entry_json(self._insert_entry(reservation, *e)) for e in planned]

    def delete_entry(self, group_id: int, reservation_id: int, entry_id: int) -> None:
        self._check_writable()
        reservation = self.reservation(group_id, reservation_id)
        entry = reservation.entries.get(entry_id)
        if entry is None:
            raise EmulatorError(404, f"Reservation entry {entry_id} not found")
        self._remove_entry(reservation, entry)
        self.rebalance(entry.key)

    def delete_reservation(self, group_id: int, reservation_id: int) -> None:
        self._check_writable()
        self._drop_reservation(self.reservation(group_id, reservation_id))

    def delete_group(self, group_id: int) -> None:
        self._check_writable()
        group = self.group(group_id)
        for reservation in list(group.reservations.values()):
            self._drop_reservation(reservation)
        del self.groups[group.id]
        del self.group_ids_by_name[group.name]

    def rebalance(self, key: FeatureKey) -> None:
        """Disable newest entries while over capacity, re-enable oldest that fit again."""
        reserved = self._features.reserved
        capacity = self._features.capacity(key, reservable_only=True)
        entries = self.entries_by_key.get(key, {})
        for _, entry in reversed(list(entries.values())):
            if reserved[key] <= capacity:
                break
            if entry.state == ACTIVE:
                entry.state = DISABLED
                reserved[key] -= entry.count
        for _, entry in entries.values():
            if entry.state == DISABLED and reserved[key] + entry.count <= capacity:
                entry.state = ACTIVE
                reserved[key] += entry.count
        self._after_rebalance(key)

    # -- rules and bookkeeping -------------------------------------------------------------

    def _check_writable(self) -> None:
        if self.model_definition:
            raise EmulatorError(
                409, "Reservations cannot be used while a model definition (named pools) is loaded"
            )

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

    def _check_counts(self, entries: Iterable[EntrySpec]) -> None:
        """400 for unknown / non-reservable features; 409 when counts would be exceeded."""
        requested: Counter[FeatureKey] = Counter()
        for name, version, count in entries:
            requested[(name, version)] += count
        for (name, version), count in requested.items():
            members = self._features.slices_by_key.get((name, version))
            if not members:
                raise EmulatorError(400, f"Unknown feature '{name}' version '{version}'")
            if not any(s.reservable for s in members):
                raise EmulatorError(
                    400,
                    f"Feature '{name}' version '{version}' cannot be reserved: "
                    "only concurrent counted features can be reserved",
                )
            available = self._features.capacity((name, version), reservable_only=True)
            available -= self._features.reserved[(name, version)]
            if count > available:
                raise EmulatorError(
                    409,
                    f"Insufficient unreserved count for feature '{name}' version '{version}': "
                    f"requested {count}, available {max(available, 0)}",
                )

    def _insert_group(self, name: str, planned: list[ReservationSpec], ip: str) -> Group:
        group = Group(next(self._group_ids), name, iso_utc(self._time.now()), ip)
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
        self._features.reserved[entry.key] += count
        return entry

    def _remove_entry(self, reservation: Reservation, entry: Entry) -> None:
        del reservation.entries[entry.id]
        del self.entries_by_key[entry.key][entry.id]
        if entry.state == ACTIVE:
            self._features.reserved[entry.key] -= entry.count

    def _drop_reservation(self, reservation: Reservation) -> None:
        keys = {e.key for e in reservation.entries.values()} | set(reservation.assigned)
        for entry in list(reservation.entries.values()):
            self._remove_entry(reservation, entry)
        del self.groups[reservation.group_id].reservations[reservation.id]
        del self.reservation_by_host[reservation.host]
        del self.reservations_by_id[reservation.id]
        for key in keys:
            self.rebalance(key)


# -- parsing and JSON ----------------------------------------------------------------------


def parse_reservation(raw: Any) -> ReservationSpec:
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
    return (kind, value), [parse_entry(e) for e in entries]


def parse_entry(raw: Any) -> EntrySpec:
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


def host_matches(host: HostKey, query: str) -> bool:
    """`?hostid=` matches the value alone, or TYPE:VALUE / TYPE/VALUE."""
    text = query.strip()
    if text == host[1]:
        return True
    for sep in (":", "/"):
        kind, _, value = text.partition(sep)
        if value and kind.upper() == host[0].upper() and value == host[1]:
            return True
    return False


def group_json(group: Group) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "creationDate": group.creation_date,
        "ipAddress": group.ip_address,
        "reservations": [reservation_json(r) for r in group.reservations.values()],
    }


def reservation_json(reservation: Reservation) -> dict[str, Any]:
    return {
        "id": reservation.id,
        "hostId": {"type": reservation.host[0], "value": reservation.host[1]},
        "reservationEntries": [entry_json(e) for e in reservation.entries.values()],
    }


def entry_json(entry: Entry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "featureName": entry.name,
        "featureVersion": entry.version,
        "featureCount": entry.count,
        "state": entry.state,
    }
