"""One alert pass: where each enabled rule holds now, an alert fires when its condition starts
and clears when it stops (never again while it lasts), and each fire or clear queues one message
per destination of its rule. A rule disabled or deleted clears its alerts without a message."""

from __future__ import annotations

import time
from collections.abc import Collection, Hashable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

import duckdb

from vlm.alerting.kinds import KINDS
from vlm.context import ServiceContext
from vlm.domain import Role
from vlm.store import alerts as store

K = TypeVar("K", bound=Hashable)
MINUTE_KINDS = {"server_unreachable", "allocations_failing"}
AGE_DAY_KINDS = {"allocations_idle"}  # measured against the moment N days ago
AHEAD_DAY_KINDS = {"allocation_ending"}  # measured against the day N days ahead
FIRED, CLEARED = "fired", "cleared"


@dataclass(frozen=True)
class Holding:
    """A rule's condition holding for one subject now, as its alert will read."""

    rule_id: int
    subject: str
    pool_id: int | None
    title: str
    detail: str


@dataclass(frozen=True)
class AlertPass:
    fired: int
    cleared: int
    open: int
    messages: int
    seconds: float


def transitions(open_keys: Collection[K], holding_keys: Collection[K]) -> tuple[list[K], list[K]]:
    """What to fire (holding, not open yet) and what to clear (open, no longer holding)."""
    holding, opened = set(holding_keys), set(open_keys)
    return [k for k in holding_keys if k not in opened], [k for k in open_keys if k not in holding]


def expiry_date(text: object) -> date | None:
    """The day a feature expires ('2027-03-31', '2027-03-31T00:00:00', '31-mar-2027'); None
    when it does not ('permanent', '0', blank) or the server's text is not a date."""
    value = str(text or "").strip()
    for candidate, pattern in ((value[:10], "%Y-%m-%d"), (value, "%d-%b-%Y")):
        try:
            return datetime.strptime(candidate, pattern).date()
        except ValueError:
            continue
    return None


def _title(kind: str, name: str, value: float, threshold: float) -> str:
    if kind == "pool_nearly_full":
        return f"Pool {name} is {value:.0f}% allocated"
    if kind == "feature_nearly_exhausted":
        return f"{name} is {value:.0f}% in use or reserved"
    if kind == "server_unreachable":
        return f"License server {name} has been failing for over {threshold:g} minute(s)"
    if kind == "over_committed":
        return f"{name} is over-committed by {value:.0f}"
    if kind == "drift":
        return f"{name}: {value:.0f} drift finding(s)"
    if kind == "allocations_idle":
        return f"{name}: {value:.0f} allocation(s) not used for {threshold:g} day(s)"
    if kind == "allocation_ending":
        return f"Pool {name}: {value:.0f} allocation(s)"
    return f"{name}: {value:.0f} allocation(s) refused for over {threshold:g} minute(s)"


class PassReads:
    """What one pass reads once and shares between its rules: each kind's rows per threshold,
    every manager's pools, every feature's expiry day."""

    def __init__(self, ctx: ServiceContext, now: datetime) -> None:
        self.ctx, self.now = ctx, now
        self._rows: dict[tuple[str, float], list[tuple]] = {}
        self._managed: dict[str, set[int]] | None = None
        self._expiries: list[tuple[int, str, str, date]] | None = None

    def rows(self, kind: str, threshold: float) -> list[tuple]:
        """(subject, pool_id, name, value, figures) where a rule of kind and threshold holds."""
        key = (kind, threshold)
        if key not in self._rows:
            parameter: object = threshold
            if kind in MINUTE_KINDS:
                parameter = self.now - timedelta(minutes=threshold)
            elif kind in AGE_DAY_KINDS:
                parameter = self.now - timedelta(days=threshold)
            elif kind in AHEAD_DAY_KINDS:
                parameter = self.now.date() + timedelta(days=int(threshold))
            self._rows[key] = store.holding(self.ctx.db, kind, parameter)
        return self._rows[key]

    def managed(self, manager: str) -> set[int]:
        if self._managed is None:
            self._managed = store.pools_by_manager(self.ctx.db)
        return self._managed.get(manager, set())

    def expiries(self) -> list[tuple[int, str, str, date]]:
        """(feature id, name, the server's text, the day) of every feature that expires."""
        if self._expiries is None:
            self._expiries = [
                (int(i), str(name), str(text), day)
                for i, name, text in store.expiring_features(self.ctx.db)
                if (day := expiry_date(text)) is not None
            ]
        return self._expiries


def _expiring(reads: PassReads, rule_id: int, threshold: float) -> list[Holding]:
    today = reads.now.date()
    found = []
    for feature_id, name, text, day in reads.expiries():
        left = (day - today).days
        if left > threshold:
            continue
        title = (
            f"{name} expires in {left} day(s), on {day:%Y-%m-%d}"
            if left >= 0
            else f"{name} expired {-left} day(s) ago, on {day:%Y-%m-%d}"
        )
        detail = f"the server reports expiry {text}"
        found.append(Holding(rule_id, f"expiry:{feature_id}", None, title, detail))
    return found


def _pools_watched(reads: PassReads, rule: dict[str, Any], role: Role) -> set[int] | None:
    """The pools a pool-kind rule watches: its pool, or all; for a manager's rule only pools
    they manage now (a pool handed over leaves their subscription)."""
    pool_id = None if rule["pool_id"] is None else int(rule["pool_id"])
    if role is Role.ADMIN:
        return None if pool_id is None else {pool_id}
    own = reads.managed(str(rule["owner"]))
    return own if pool_id is None else own & {pool_id}


def rule_holds(reads: PassReads, rule: dict[str, Any], role: Role) -> list[Holding]:
    """Where one rule's condition holds now."""
    kind, threshold = str(rule["kind"]), float(rule["threshold"])
    rule_id = int(rule["id"])
    if not KINDS[kind].pool_scoped and role is not Role.ADMIN:
        return []
    if kind == "feature_expiring":
        return _expiring(reads, rule_id, threshold)
    pools = _pools_watched(reads, rule, role) if KINDS[kind].pool_scoped else None
    return [
        Holding(
            rule_id,
            str(subject),
            None if pool_id is None else int(pool_id),
            _title(kind, str(name), float(value), threshold),
            str(figures or ""),
        )
        for subject, pool_id, name, value, figures in reads.rows(kind, threshold)
        if pools is None or int(pool_id) in pools
    ]


def _messages(rule: dict[str, Any], alert_id: int, event: str, title: str, body: str) -> list:
    labels = [x for x in str(rule["destination_labels"] or "").split("\n") if x]
    return [(rule["id"], alert_id, event, i, label, title, body) for i, label in enumerate(labels)]


def evaluate_alerts(ctx: ServiceContext, now: datetime | None = None) -> AlertPass:
    """Fire and clear every rule's alerts for the state of the database now."""
    started = time.perf_counter()
    now = now or datetime.now()
    rules = {int(r["id"]): r for r in store.enabled_rules(ctx.db)}
    roles = store.owner_roles(ctx.db)
    reads = PassReads(ctx, now)
    holding: dict[tuple[int, str], Holding] = {}
    for rule in rules.values():
        role = roles.get(str(rule["owner"]))
        if role is None:
            continue
        for found in rule_holds(reads, rule, role):
            holding[(found.rule_id, found.subject)] = found

    seen_open = store.open_alerts(ctx.db)
    if not any(transitions(list(seen_open), list(holding))):
        # nothing starts or stops: no write, so the pages' caches stay valid
        return AlertPass(0, 0, len(seen_open), 0, time.perf_counter() - started)

    def write(cur: duckdb.DuckDBPyConnection) -> tuple[int, int, int, int]:
        open_alerts = store.open_alerts(ctx.db)
        fire, clear = transitions(list(open_alerts), list(holding))
        messages = []
        for key in fire:
            found = holding[key]
            alert_id = store.insert_alert(
                cur, found.rule_id, found.subject, found.title, found.detail, found.pool_id, now
            )
            messages += _messages(rules[found.rule_id], alert_id, FIRED, found.title, found.detail)
        for key in clear:
            closed = store.clear_alert(cur, open_alerts[key], now)
            rule = rules.get(key[0])
            if rule is not None:
                title = f"Cleared: {closed['title']}"
                messages += _messages(rule, open_alerts[key], CLEARED, title, closed["detail"])
        store.insert_deliveries(cur, messages)
        return len(fire), len(clear), len(open_alerts) + len(fire) - len(clear), len(messages)

    fired, cleared, still_open, messages = ctx.db.write(write)
    return AlertPass(fired, cleared, still_open, messages, time.perf_counter() - started)
