"""Run the scenarios on one estate and write the report."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import report
from bench.context import BenchContext
from bench.estate import CACHE_ROOT, ensure_estate, open_context, point_servers, working_copy
from bench.fleet import Fleet
from bench.measure import Row
from bench.sizes import EstateSize

IN_PROCESS = ("inventory", "apply", "reconcile", "dashboard", "export")
ISOLATED = ("pages",)
SCENARIOS = IN_PROCESS + ISOLATED
Log = Callable[[str], None]


def _run_in_process(bench: BenchContext, names: Sequence[str], log: Log) -> list[Row]:
    rows: list[Row] = []
    for name in names:
        module = importlib.import_module(f"bench.scenarios.{name}")
        started = time.perf_counter()
        log(f"scenario {name} …")
        found = module.run(bench)
        log(f"scenario {name}: {time.perf_counter() - started:.1f} s")
        for line in report.table_lines(found)[2:]:
            log("  " + line)
        rows.extend(found)
    return rows


def run_benchmarks(
    size: EstateSize,
    *,
    only: Sequence[str] | None = None,
    cache_root: Path = CACHE_ROOT,
    output: Path | None = report.RESULTS_DIR / "latest.md",
    log: Log = print,
) -> list[Row]:
    """Every selected scenario on the cached estate of `size`; writes the report to output."""
    started = time.perf_counter()
    chosen = [name for name in SCENARIOS if only is None or name in only]
    estate = ensure_estate(size, cache_root, log)
    db_path = working_copy(estate, estate.directory / "work")
    rows: list[Row] = []
    with Fleet(estate.fixture_dir) as fleet:
        ctx = open_context(db_path)
        try:
            point_servers(ctx, fleet.urls)
            bench = BenchContext(size, estate, db_path, ctx, fleet.urls, log)
            rows += _run_in_process(bench, [n for n in chosen if n in IN_PROCESS], log)
        finally:
            ctx.db.close()
        if "pages" in chosen:
            from bench.scenarios import pages

            rows += pages.run(size, estate, db_path, fleet.urls, log)
    meta = estate.meta
    context = {
        "size": size.name,
        "repeats": size.repeats,
        "estate": (
            f"{size.servers} servers × {size.features_per_server} features, {size.vlms} VLMs, "
            f"{size.pools:,} pools, {meta['allocations']:,} allocations, "
            f"{meta['snapshots']:,} utilization snapshots ({size.history_days} days), "
            f"generated {meta['generated_at']} in {meta['generation_seconds']} s"
        ),
        "duration": f"{time.perf_counter() - started:.0f} s for this run",
    }
    if output is not None:
        report.write(rows, context, output)
        log(f"report written to {output}")
    log("\n".join(report.table_lines(rows)))
    return rows
