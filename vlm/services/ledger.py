"""In-memory ledger of one pool during a write: portions, allocations, architecture.md §3 rule 3."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vlm.domain import (
    AllocationState,
    Conflict,
    FeatureKey,
    NotFound,
    ValidationError,
    normalize_host_id,
    parse_host_type,
    record_id,
    shown,
    validate_count,
    validate_description,
)
from vlm.store import allocations as store


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
    """The pool's portions and live allocations, updated as each change is accepted."""

    pool_id: int
    portions: dict[int, Portion]
    allocations: dict[int, dict[str, Any]]
    hosts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    inserts: list[dict[str, Any]] = field(default_factory=list)
    updates: dict[int, dict[str, Any]] = field(default_factory=dict)
    deletes: set[int] = field(default_factory=set)
    removals: set[int] = field(default_factory=set)

    @classmethod
    def load(cls, cur, pool_id: int) -> PoolLedger:
        """The pool as stored now; a portion is over-committed when all pools' portions of its
        server feature exceed what that server has for VLM (total less reserved outside VLM)."""
        portions = {
            sf: Portion(sf, server_id, server, (name, version), quantity, pooled > total - others)
            for sf, server_id, server, name, version, quantity, pooled, total, others in (
                store.ledger_portions(cur, pool_id)
            )
        }
        allocations = {a["id"]: a for a in store.live_allocations(cur, pool_id)}
        ledger = cls(pool_id, portions, allocations)
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
    ) -> dict[str, Any]:
        htype = parse_host_type(host_type)
        hid = normalize_host_id(htype, host_id)
        number = validate_count(count)
        text = validate_description(description)
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
            "state": AllocationState.PENDING.value,
            "created_by": actor,
        }
        self._occupy(alloc)
        self.inserts.append(alloc)
        return alloc

    def edit(
        self, allocation_id: object, *, count: object = None, description: object = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        alloc = self._get(allocation_id)
        before = dict(alloc)
        changes: dict[str, Any] = {}
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
                changes["state"] = AllocationState.PENDING.value
        if not changes:
            return before, before
        alloc.update(changes)
        self.updates.setdefault(alloc["id"], {}).update(changes)
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
        if alloc["state"] == AllocationState.FAILED.value:
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
