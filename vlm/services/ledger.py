"""In-memory ledger of one pool during a write: portions, allocations, architecture.md §3 rule 3."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from vlm.domain import (
    ENDED_STATES,
    AllocationState,
    Conflict,
    FeatureKey,
    NotFound,
    ValidationError,
    normalize_host_id,
    parse_day,
    parse_host_type,
    record_id,
    shown,
    validate_count,
    validate_description,
)
from vlm.store import allocations as store
from vlm.store.pools import pool_durations

SCHEDULED = AllocationState.SCHEDULED.value
PENDING = AllocationState.PENDING.value


@dataclass
class Portion:
    server_feature_id: int
    server_id: int
    server_name: str
    feature: FeatureKey
    quantity: int
    over_committed: bool
    allocated: int = 0

    @property
    def room(self) -> int:
        return self.quantity - self.allocated


@dataclass
class PoolLedger:
    """The pool's portions and live allocations, updated as each change is accepted.

    Time boxes (docs/architecture.md, "Time-boxed allocations"): an allocation holds its license
    from its start day (none: from its creation) through its end day, inclusive; its duration is
    end - start + 1 days, at most the pool's maximum; the pool's default (else its maximum) fills
    a new allocation's missing end. Scheduled allocations count against the pool like active
    ones; ended ones (expiring, expired) do not and cannot be changed.
    """

    pool_id: int
    portions: dict[int, Portion]
    allocations: dict[int, dict[str, Any]]
    today: date = field(default_factory=date.today)
    default_days: int | None = None
    max_days: int | None = None
    ended: set[int] = field(default_factory=set)
    hosts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    deletes: set[int] = field(default_factory=set)
    removals: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, cur, pool_id: int, today: date | None = None) -> PoolLedger:
        """The pool as stored now; a portion is over-committed when all pools' portions of its
        server feature exceed what that server has for VLM (total less reserved outside VLM)."""
        portions = {
            sf: Portion(sf, server_id, server, (name, version), quantity, pooled > total - others)
            for sf, server_id, server, name, version, quantity, pooled, total, others in (
                store.ledger_portions(cur, pool_id)
            )
        }
        rows = store.live_allocations(cur, pool_id)
        allocations = {a["id"]: a for a in rows if a["state"] not in ENDED_STATES}
        default_days, max_days = pool_durations(cur, pool_id)
        ledger = cls(pool_id, portions, allocations, today or date.today(), default_days, max_days)
        ledger.ended = {a["id"] for a in rows if a["state"] in ENDED_STATES}
        for alloc in allocations.values():
            ledger._occupy(alloc)
        return ledger

    def _occupy(self, alloc: dict[str, Any]) -> None:
        portion = self.portions.get(alloc["server_feature_id"])
        if portion is not None:
            portion.allocated += alloc["count"]
        self.hosts[self._host_key(alloc)] = alloc["id"]

    def _release(self, alloc: dict[str, Any]) -> None:
        portion = self.portions.get(alloc["server_feature_id"])
        if portion is not None:
            portion.allocated -= alloc["count"]
        self.hosts.pop(self._host_key(alloc), None)

    @staticmethod
    def _host_key(alloc: dict[str, Any]) -> tuple[str, str, str, str]:
        return (
            alloc["feature_name"],
            alloc["feature_version"],
            alloc["host_type"],
            alloc["host_id"],
        )

    def features(self) -> set[FeatureKey]:
        return {p.feature for p in self.portions.values()}

    def _get(self, allocation_id: object) -> dict[str, Any]:
        try:
            key = record_id(allocation_id, "allocation")
        except ValidationError:
            raise NotFound(f"allocation '{shown(allocation_id)}' does not exist") from None
        if key in self.ended:
            raise Conflict(
                f"allocation {key} has expired: it stays as history and cannot be changed "
                "(allocate the host again instead)",
                field="ends_on",
            )
        alloc = self.allocations.get(key)
        if alloc is None or key in self.deletes or key in self.removals:
            raise NotFound(f"allocation {allocation_id} is not in this pool")
        return alloc

    def _place(self, feature: FeatureKey, count: int) -> Portion:
        """The portion with the most room that fits count (rule 3), refusing over-committed ones."""
        candidates = [p for p in self.portions.values() if p.feature == feature]
        if not candidates:
            raise NotFound(
                f"feature {feature[0]} {feature[1]} is not in this pool", field="feature"
            )
        healthy = [p for p in candidates if not p.over_committed]
        fitting = [p for p in healthy if p.room >= count]
        if fitting:
            return sorted(fitting, key=lambda p: (-p.room, p.server_name))[0]
        available = sum(max(p.room, 0) for p in healthy)
        if not healthy:
            raise Conflict(
                f"{feature[0]} {feature[1]} is over-committed on its server(s); "
                "no new allocations until an admin resolves it",
                field="count",
            )
        if available >= count:
            largest = max(p.room for p in healthy)
            raise ValidationError(
                f"no single license server has room for {count}; the largest free block is "
                f"{largest} (allocate in smaller counts)",
                field="count",
            )
        raise ValidationError(
            f"only {available} of {feature[0]} {feature[1]} left in this pool, {count} requested",
            field="count",
        )

    def add(
        self,
        feature: FeatureKey,
        host_type: object,
        host_id: object,
        count: object,
        description: object,
        actor: str,
        starts_on: object = None,
        ends_on: object = None,
    ) -> dict[str, Any]:
        htype = parse_host_type(host_type)
        hid = normalize_host_id(htype, host_id)
        number = validate_count(count)
        text = validate_description(description)
        start = parse_day(starts_on, "starts_on")
        end = parse_day(ends_on, "ends_on")
        first_day = start or self.today
        filled = self.default_days or self.max_days
        if end is None and filled is not None:
            end = first_day + timedelta(days=filled - 1)
        if end is not None:
            self._check_window(first_day, end)
        key = (feature[0], feature[1], htype.value, hid)
        if key in self.hosts:
            raise Conflict(
                f"{htype.value} {hid} already holds {feature[0]} {feature[1]} in this pool",
                field="host_id",
            )
        portion = self._place(feature, number)
        alloc = {
            "id": -(len(self.inserts) + 1),
            "server_feature_id": portion.server_feature_id,
            "feature_name": feature[0],
            "feature_version": feature[1],
            "host_type": htype.value,
            "host_id": hid,
            "count": number,
            "description": text,
            "state": SCHEDULED if start is not None and start > self.today else PENDING,
            "created_by": actor,
            "starts_on": start,
            "ends_on": end,
        }
        self._occupy(alloc)
        self.inserts.append(alloc)
        return alloc

    def _check_window(self, first_day: date, end: date) -> None:
        """An end day: not already past nor before the first day, within the pool's maximum."""
        if end < self.today:
            raise ValidationError(f"the end date {end} has already passed", field="ends_on")
        if end < first_day:
            raise ValidationError(
                f"the end date {end} is before the start date {first_day}", field="ends_on"
            )
        if self.max_days is not None and (end - first_day).days + 1 > self.max_days:
            latest = first_day + timedelta(days=self.max_days - 1)
            raise ValidationError(
                f"this pool allows at most {self.max_days} day(s) per allocation: "
                f"end on {latest} at the latest",
                field="ends_on",
            )

    @staticmethod
    def first_day(alloc: dict[str, Any]) -> date:
        """The day an allocation holds its license from: its start, else its creation day."""
        return alloc["starts_on"] or alloc["created_on"]

    def edit(
        self,
        allocation_id: object,
        *,
        count: object = None,
        description: object = None,
        ends_on: object = None,
        starts_on: object = None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        alloc = self._get(allocation_id)
        before = dict(alloc)
        changes: dict[str, Any] = {}
        start = parse_day(starts_on, "starts_on")
        if start is not None and start != alloc["starts_on"]:
            raise ValidationError(
                "the start date cannot be changed once allocated (remove the row and allocate "
                "again)",
                field="starts_on",
            )
        end = parse_day(ends_on, "ends_on")
        if end is not None and end != alloc["ends_on"]:
            self._check_window(self.first_day(alloc), end)
            changes["ends_on"] = end
        if description is not None:
            text = validate_description(description)
            if text != alloc["description"]:
                changes["description"] = text
        if count is not None:
            number = validate_count(count)
            if number != alloc["count"]:
                portion = self.portions.get(alloc["server_feature_id"])
                growth = number - alloc["count"]
                if portion is None:
                    raise Conflict("this allocation's server portion is gone", field="count")
                if growth > 0 and portion.over_committed:
                    raise Conflict(
                        f"{portion.feature[0]} is over-committed on {portion.server_name}; "
                        "counts cannot grow",
                        field="count",
                    )
                if growth > portion.room:
                    raise ValidationError(
                        f"only {portion.room} more can be given on {portion.server_name}, "
                        f"{growth} more requested",
                        field="count",
                    )
                portion.allocated += growth
                changes["count"] = number
                if alloc["state"] != SCHEDULED:
                    changes["state"] = AllocationState.PENDING.value
        if not changes:
            return before, before
        alloc.update(changes)
        self.updates.setdefault(alloc["id"], {}).update(changes)
        return before, dict(alloc)

    def extend(
        self, allocation_id: object, ends_on: object
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Give an allocation a new end day (within the pool's maximum from its first day)."""
        alloc = self._get(allocation_id)
        end = parse_day(ends_on, "ends_on")
        if end is None:
            raise ValidationError("give the new end date", field="ends_on")
        self._check_window(self.first_day(alloc), end)
        before = dict(alloc)
        if end == alloc["ends_on"]:
            return before, before
        alloc["ends_on"] = end
        self.updates.setdefault(alloc["id"], {})["ends_on"] = end
        return before, dict(alloc)

    def retry(self, allocation_id: object) -> tuple[dict[str, Any], dict[str, Any]]:
        alloc = self._get(allocation_id)
        before = dict(alloc)
        if alloc["state"] != AllocationState.FAILED.value:
            raise ValidationError("only failed allocations can be retried", field="state")
        alloc["state"] = AllocationState.PENDING.value
        self.updates.setdefault(alloc["id"], {}).update(state=AllocationState.PENDING.value)
        return before, dict(alloc)

    def remove(self, allocation_id: object) -> dict[str, Any]:
        alloc = self._get(allocation_id)
        self._release(alloc)
        if alloc["state"] in (AllocationState.FAILED.value, SCHEDULED):
            self.deletes.add(alloc["id"])
        else:
            self.removals.add(alloc["id"])
        self.updates.pop(alloc["id"], None)
        return dict(alloc)

    def server_ids(self) -> set[int]:
        """Servers whose desired reservations this ledger's pending writes change."""
        touched = {a["server_feature_id"] for a in self.inserts}
        touched |= {self.allocations[i]["server_feature_id"] for i in self.removals}
        touched |= {
            self.allocations[i]["server_feature_id"]
            for i, c in self.updates.items()
            if "state" in c
        }
        return {self.portions[sf].server_id for sf in touched if sf in self.portions}
