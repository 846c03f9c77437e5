"""One alert evaluation pass over the whole estate: a rule of every kind (the admin's) and a
pool subscription of every manager, evaluated against 200,000 allocations and 10,000 server
features; the first pass fires what holds, the timed passes find every alert already open."""

from __future__ import annotations

from bench.context import BenchContext
from bench.measure import Row, sample
from vlm.alerting.evaluate import evaluate_alerts
from vlm.alerting.kinds import KINDS
from vlm.domain import Actor, Role
from vlm.services import alerts

LIMIT_S = 0.5
ADMIN = Actor("admin", Role.ADMIN)


def _rules(bench: BenchContext) -> int:
    """The admin's rule of every kind at its default threshold, and a subscription of every
    manager to the pools they manage (thresholds low enough that many alerts are open)."""
    for kind in KINDS.values():
        alerts.create_rule(bench.ctx, ADMIN, name=kind.label, kind=kind.key, threshold=kind.default)
    managers = [str(r[0]) for r in bench.ctx.db.query("SELECT DISTINCT manager FROM pools")]
    for manager in managers:
        alerts.create_rule(
            bench.ctx,
            Actor(manager, Role.MANAGER),
            name="my pools",
            kind="pool_nearly_full",
            threshold=1,
        )
    return len(KINDS) + len(managers)


def run(bench: BenchContext) -> list[Row]:
    rules = _rules(bench)
    first = evaluate_alerts(bench.ctx)
    samples = sample(lambda: evaluate_alerts(bench.ctx), bench.repeats)
    return [
        Row(
            f"alert evaluation pass, {rules} rules over the estate",
            samples,
            target=f"< {LIMIT_S * 1000:g} ms",
            limit=LIMIT_S,
            note=f"{first.fired:,} alerts fired by the first pass, then none",
        )
    ]
