"""The reconciler's steady state: a pass over the whole estate when nothing has to change."""

from __future__ import annotations

from bench.context import BenchContext
from bench.measure import Row, sample
from vlm.sync.clients import ClientCache
from vlm.sync.reconciler import reconcile_all

LIMIT_S = 1.0


def run(bench: BenchContext) -> list[Row]:
    cache = ClientCache(bench.ctx)
    operations: list[int] = []

    def one_pass() -> None:
        reports = reconcile_all(bench.ctx, client_cache=cache)
        errors = [r.error for r in reports if r.error]
        if errors:
            raise RuntimeError(f"reconcile failed: {errors[0]}")
        operations.append(sum(r.operations for r in reports))

    server_cpu: list[float] = []
    cpu_at_start: list[float] = []

    try:
        samples = sample(
            one_pass,
            bench.repeats,
            before=lambda: cpu_at_start.append(bench.emulator_cpu()),
            after=lambda: server_cpu.append(bench.emulator_cpu() - cpu_at_start[-1]),
        )
    finally:
        cache.close_all()
    allocations = bench.ctx.db.scalar("SELECT COUNT(*) FROM allocations")
    return [
        Row(
            f"reconciler steady state, whole estate ({allocations:,} allocations)",
            samples,
            target=f"< {LIMIT_S:g} s per pass",
            limit=LIMIT_S,
            note=(
                f"{max(operations[-bench.repeats :])} server writes per timed pass; the warm-up "
                f"pass made {operations[0]}"
            ),
        ),
        Row(
            "  the emulated servers' own CPU time during a pass (one process answers all "
            f"{len(bench.urls)}: no pass can end sooner on this machine)",
            tuple(server_cpu[-bench.repeats :]),
        ),
    ]
