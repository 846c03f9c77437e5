"""Feature slices and their usage figures.

Accounting per feature (name, version), spread over its active slices in order so that, per
slice, used = sharedUsed + assignedReserved and unassignedReserved = reserved - assignedReserved.
The reservation book keeps `reserved` (the sum of ACTIVE reservation entries); the client pool
keeps `assigned` and `shared` (units clients hold from reservations and from the shared pool).
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from vlm.flexnet.emulator.common import EmulatorError, FeatureKey, HostKey, TimeSource, parse_date

PERMANENT = "permanent"
UNLIMITED = 1 << 62

T = TypeVar("T")
SliceUsage = tuple[int, int, int]
ClientUsage = dict[HostKey, tuple[int, int]]


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


class FeatureTable:
    """Every slice, indexed by id and by (name, version), with the per-feature usage counters."""

    def __init__(self, time: TimeSource) -> None:
        self._time = time
        self._ids = itertools.count(1)
        self.slices: dict[int, Slice] = {}
        self.slices_by_key: dict[FeatureKey, list[Slice]] = {}
        self.reserved: Counter[FeatureKey] = Counter()
        self.assigned: Counter[FeatureKey] = Counter()
        self.shared: Counter[FeatureKey] = Counter()

    def next_id(self) -> int:
        return next(self._ids)

    def add(self, item: Slice) -> None:
        self.slices[item.id] = item
        self.slices_by_key.setdefault(item.key, []).append(item)

    def get(self, feature_id: int) -> Slice:
        item = self.slices.get(feature_id)
        if item is None:
            raise EmulatorError(404, f"Feature {feature_id} not found")
        return item

    def rows(self, active_only: bool = False) -> list[dict[str, Any]]:
        """GET /features: every slice (or only active ones) with its usage, by id."""
        today = self._time.today()
        rows: list[dict[str, Any]] = []
        for key, members in self.slices_by_key.items():
            usage = self.slice_usage(key, today)
            for item in members:
                if not active_only or item.is_active(today):
                    rows.append(slice_json(item, usage.get(item.id)))
        rows.sort(key=lambda row: row["id"])
        return rows

    def row(self, feature_id: int) -> dict[str, Any]:
        """GET /features/{id}: one slice with its usage."""
        item = self.get(feature_id)
        return slice_json(item, self.slice_usage(item.key, self._time.today()).get(item.id))

    def capacity(self, key: FeatureKey, *, reservable_only: bool = False) -> int:
        """Sum of active counted slice counts (UNLIMITED if an active slice is uncounted)."""
        today = self._time.today()
        total = 0
        for item in self.slices_by_key.get(key, []):
            if not item.is_active(today) or (reservable_only and not item.reservable):
                continue
            if item.uncounted:
                return UNLIMITED
            total += item.count
        return total

    def key_expiry(self, key: FeatureKey) -> str:
        """The expiry of the first active slice of a feature (permanent if none is active)."""
        today = self._time.today()
        active = [s.expiry for s in self.slices_by_key.get(key, []) if s.is_active(today)]
        return active[0] if active else PERMANENT

    def set_count(self, name: str, version: str, count: int) -> None:
        """Set the active counted total, changing the newest slices first (no rebalancing)."""
        key = (name, version)
        today = self._time.today()
        targets = [s for s in self.slices_by_key.get(key, []) if s.is_active(today) and s.counted]
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

    def usage_targets(self, key: FeatureKey, today: dt.date) -> tuple[list[Slice], list[int]]:
        """The slices usage is attributed to (active ones, else all) and their capacities."""
        members = self.slices_by_key.get(key, [])
        targets = [s for s in members if s.is_active(today)] or members
        return targets, [UNLIMITED if s.uncounted else s.count for s in targets]

    def slice_usage(self, key: FeatureKey, today: dt.date) -> dict[int, SliceUsage]:
        """Per slice id: (reserved, assignedReserved, sharedUsed)."""
        targets, caps = self.usage_targets(key, today)
        if not targets:
            return {}
        reserved = fill(self.reserved[key], caps)
        assigned = fill(self.assigned[key], reserved)
        shared = fill(self.shared[key], [c - r for c, r in zip(caps, reserved, strict=True)])
        return {
            s.id: (r, a, sh)
            for s, r, a, sh in zip(targets, reserved, assigned, shared, strict=True)
        }

    def client_usage(
        self, key: FeatureKey, today: dt.date, holders: list[tuple[HostKey, int, int]]
    ) -> dict[int, ClientUsage]:
        """Per slice id, per host: (useCount, reservedCount) from (host, reserved, shared)."""
        targets, caps = self.usage_targets(key, today)
        if not targets:
            return {}
        reserved = fill(self.reserved[key], caps)
        by_reserved = split(((host, held) for host, held, _ in holders), reserved)
        free = [c - r for c, r in zip(caps, reserved, strict=True)]
        by_shared = split(((host, held) for host, _, held in holders), free)
        result: dict[int, ClientUsage] = {}
        for item, res_part, shared_part in zip(targets, by_reserved, by_shared, strict=True):
            rows: ClientUsage = {}
            for host, amount in res_part:
                use, res = rows.get(host, (0, 0))
                rows[host] = (use + amount, res + amount)
            for host, amount in shared_part:
                use, res = rows.get(host, (0, 0))
                rows[host] = (use + amount, res)
            result[item.id] = rows
        return result


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, int]]]:
    """Feature rows as {name: {expiry: {totalCount, totalUsed, totalReserved}}}."""
    summary: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        bucket = summary.setdefault(row["featureName"], {}).setdefault(
            row["expiry"], {"totalCount": 0, "totalUsed": 0, "totalReserved": 0}
        )
        count = row["featureCount"]
        bucket["totalCount"] += count if isinstance(count, int) else 0
        bucket["totalUsed"] += row["used"]
        bucket["totalReserved"] += row["reserved"]
    return summary


def slice_json(item: Slice, usage: SliceUsage | None) -> dict[str, Any]:
    """A slice as the API's feature row."""
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
