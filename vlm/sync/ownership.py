"""The reconciler's pure rules: a host's plan, whether a group is VLM's for that host and
already matches the plan, and the verdict on each allocation after a host's operations.

No I/O here: the reconciler feeds these rules what it read and did, so they are tested (and
mutation-tested) directly.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

import pandas as pd

from vlm.domain import AllocationState
from vlm.flexnet import HostId, ReservationEntry, ReservationGroup
from vlm.store.frames import frame
from vlm.store.reservations import OUTCOME_DTYPES

Key = tuple[str, str]
PENDING = AllocationState.PENDING.value
APPLIED = AllocationState.APPLIED.value
REMOVING = AllocationState.REMOVING.value
EXPIRING = AllocationState.EXPIRING.value  # taken off like a removal, then kept as expired
DISABLED = AllocationState.DISABLED.value
HELD = (APPLIED, DISABLED)


@dataclass(frozen=True)
class AllocRow:
    id: int
    key: Key
    count: int
    state: str
    due: bool


@dataclass
class HostPlan:
    """Desired and last known actual state of one host's group on one server."""

    host_type: str
    host_id: str
    group_name: str
    actual: ReservationGroup | None
    batch_name: str | None = None  # actual is the host's reservation in this batch group
    rows: list[AllocRow] = field(default_factory=list)
    want: dict[Key, int] = field(default_factory=dict)
    applied: dict[Key, int] = field(default_factory=dict)
    skip: set[Key] = field(default_factory=set)

    @property
    def host(self) -> HostId:
        return HostId(self.host_type, self.host_id)

    @property
    def key(self) -> tuple[str, str, str]:
        """Tells the plans of one pass apart (a host may have a plan per group holding it)."""
        return (self.batch_name or self.group_name, self.host_type.upper(), self.host_id)

    @property
    def wanted(self) -> bool:
        return bool(self.want or self.skip)

    def add(self, row: AllocRow) -> None:
        self.rows.append(row)

    def settle(self) -> None:
        """Compute want/applied/skip: keys with a backed-off pending row are left alone."""
        self.skip = {r.key for r in self.rows if r.state == PENDING and not r.due}
        for r in self.rows:
            if r.state in (PENDING, *HELD) and r.key not in self.skip:
                self.want[r.key] = self.want.get(r.key, 0) + r.count
                if r.state in HELD:
                    self.applied[r.key] = self.applied.get(r.key, 0) + r.count


@dataclass
class HostOutcome:
    """The state of a host's group after its operations (`known` False if uncertain)."""

    group: ReservationGroup | None
    known: bool = True
    refused: dict[Key, str] = field(default_factory=dict)
    error: str | None = None
    operations: int = 0


def same_host(a: HostId, b: HostId) -> bool:
    return a.type.upper() == b.type.upper() and a.value == b.value


def host_key(host: HostId) -> tuple[str, str]:
    """Equal for two host ids exactly when same_host says they are the same host."""
    return (host.type.upper(), host.value)


def is_sane(group: ReservationGroup, host: HostId) -> bool:
    """A VLM group holds exactly one reservation, for the host its name stands for."""
    return len(group.reservations) == 1 and same_host(group.reservations[0].host_id, host)


def entries_by_key(group: ReservationGroup | None) -> dict[Key, list[ReservationEntry]]:
    found: dict[Key, list[ReservationEntry]] = defaultdict(list)
    for reservation in group.reservations if group else ():
        for entry in reservation.entries:
            found[(entry.feature_name, entry.feature_version)].append(entry)
    return found


def held_counts(group: ReservationGroup | None) -> dict[Key, int]:
    return {key: sum(e.count for e in es) for key, es in entries_by_key(group).items()}


def in_sync(plan: HostPlan) -> bool:
    """True when the last known group already matches the plan (no request needed)."""
    group = plan.actual
    if not plan.wanted:
        return group is None
    if group is None:
        return not plan.want
    if not is_sane(group, plan.host):
        return False
    held = entries_by_key(group)
    for key, count in plan.want.items():
        if [e.count for e in held.get(key, [])] != [count]:
            return False
    return all(key in plan.want or key in plan.skip for key in held)


def frees_only(plan: HostPlan) -> bool:
    """True when the host's operations only release licenses (run before the others)."""
    if not plan.wanted:
        return True
    if plan.actual is None or not is_sane(plan.actual, plan.host):
        return False
    held = held_counts(plan.actual)
    return all(held.get(key, 0) >= count for key, count in plan.want.items())


def with_entries(
    group: ReservationGroup, add: Iterable[ReservationEntry] = (), drop: int | None = None
) -> ReservationGroup:
    """The group's single reservation with entries added and/or one entry id removed."""
    reservation = group.reservations[0]
    kept = tuple(e for e in reservation.entries if drop is None or e.id != drop)
    return replace(group, reservations=(replace(reservation, entries=kept + tuple(add)),))


@dataclass
class Verdicts:
    """Allocation updates of one pass: (id, count, state seen, message) rows and deletions."""

    applied: list[tuple] = field(default_factory=list)
    failed: list[tuple] = field(default_factory=list)
    retry: list[tuple] = field(default_factory=list)
    removed: list[int] = field(default_factory=list)

    def judge(self, plan: HostPlan, outcome: HostOutcome) -> None:
        held = held_counts(outcome.group) if outcome.known else None
        rows_by_key: dict[Key, list[AllocRow]] = defaultdict(list)
        for row in plan.rows:
            rows_by_key[row.key].append(row)
        for key, rows in rows_by_key.items():
            if key not in plan.skip:
                have = None if held is None else held.get(key, 0)
                self._judge_key(plan, outcome, key, rows, have)

    def _judge_key(
        self,
        plan: HostPlan,
        outcome: HostOutcome,
        key: Key,
        rows: list[AllocRow],
        have: int | None,
    ) -> None:
        want = plan.want.get(key, 0)
        refusal = outcome.refused.get(key)
        for row in rows:
            item = (row.id, row.count, row.state, refusal)
            if row.state in (REMOVING, EXPIRING):
                if have is not None and have <= want:
                    self.removed.append(row.id)
            elif refusal is not None:
                lost = have is not None and have < plan.applied.get(key, 0)
                if row.state == PENDING or lost:
                    self.failed.append(item)
            elif have == want:
                if row.state == PENDING:
                    self.applied.append(item)
            elif row.state == PENDING:
                message = outcome.error or "not yet held by the server"
                self.retry.append((row.id, row.count, row.state, message))

    @property
    def empty(self) -> bool:
        return not (self.applied or self.failed or self.retry or self.removed)

    def frames(self) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
        return (
            frame(self.applied, OUTCOME_DTYPES),
            frame(self.failed, OUTCOME_DTYPES),
            frame(self.retry, OUTCOME_DTYPES),
        )
