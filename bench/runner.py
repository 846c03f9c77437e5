"""Run the scenarios on one estate, on DuckDB and/or PostgreSQL, and write the report."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from bench import report
from bench.context import BenchContext
from bench.estate import (
    CACHE_ROOT,
    Estate,
    ensure_estate,
    open_context,
    point_servers,
    working_copy,
)
from bench.fleet import Fleet
from bench.measure import Row
from bench.postgres import BenchPostgres
from bench.sizes import EstateSize

IN_PROCESS = ("inventory", "apply", "reconcile", "dashboard", "export", "alerts", "harvesting")
ISOLATED = ("pages",)
SCENARIOS = IN_PROCESS + ISOLATED
BACKENDS = ("duckdb", "postgres")
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


@contextmanager
def working_database(estate: Estate, backend: str, log: Log) -> Iterator[str]:
    """A private copy of the estate on the backend: a DuckDB file, or a PostgreSQL database on
    the benchmark's own server (its data folder kept next to the estate)."""
    if backend == "duckdb":
        yield str(working_copy(estate, estate.directory / "work"))
        return
    with BenchPostgres(estate.directory / "postgres", log) as server:
        server.ensure_estate(estate)
        yield server.working_copy()


@contextmanager
def bench_context(
    size: EstateSize, estate: Estate, database: str, urls: dict[str, str], log: Log
) -> Iterator[BenchContext]:
    """What the in-process scenarios get: the working database, its servers pointed at the
    emulators at urls; the database is closed afterwards."""
    ctx = open_context(database)
    try:
        point_servers(ctx, urls)
        yield BenchContext(size, estate, database, ctx, urls, log)
    finally:
        ctx.db.close()


def run_backend(
    size: EstateSize, estate: Estate, backend: str, chosen: Sequence[str], log: Log
) -> list[Row]:
    """The chosen scenarios on one backend, on a fresh working copy of the estate."""
    log(f"backend {backend}")
    work_dir = estate.directory / "work"
    work_dir.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with working_database(estate, backend, log) as database, Fleet(estate.fixture_dir) as fleet:
        with bench_context(size, estate, database, fleet.urls, log) as bench:
            rows += _run_in_process(bench, [n for n in chosen if n in IN_PROCESS], log)
        if "pages" in chosen:
            from bench.scenarios import pages

            rows += pages.run(size, estate, database, work_dir, fleet.urls, log)
    return rows


def _context(size: EstateSize, estate: Estate, backends: Sequence[str], seconds: float) -> dict:
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
        "backends": {name: report.describe_backend(name) for name in backends},
        "duration": f"{seconds:.0f} s for this run",
    }
    return context


def run_backends(
    size: EstateSize,
    backends: Sequence[str] = ("duckdb",),
    *,
    only: Sequence[str] | None = None,
    cache_root: Path = CACHE_ROOT,
    output: Path | None = report.RESULTS_DIR / "latest.md",
    log: Log = print,
    scale: bool = False,
) -> dict[str, list[Row]]:
    """Every selected scenario on each backend over the cached estate of `size`; writes one
    report with the backends side by side to output, followed by the scale report (bench.scale)
    when scale is set."""
    from bench import scale as scaling

    started = time.perf_counter()
    chosen = [name for name in SCENARIOS if only is None or name in only]
    estate = ensure_estate(size, cache_root, log)
    results = {backend: run_backend(size, estate, backend, chosen, log) for backend in backends}
    points = scaling.run_scale(size, cache_root=cache_root, log=log) if scale else []
    sections = scaling.scale_lines(points) if points else []
    context = _context(size, estate, backends, time.perf_counter() - started)
    if output is not None:
        extra = {"scale": scaling.scale_dicts(points)} if points else None
        report.write(results, context, output, sections, extra)
        log(f"report written to {output}")
    log(report.render_tables(results))
    if sections:
        log("\n".join(sections))
    return results


def run_benchmarks(
    size: EstateSize,
    *,
    backend: str = "duckdb",
    only: Sequence[str] | None = None,
    cache_root: Path = CACHE_ROOT,
    output: Path | None = report.RESULTS_DIR / "latest.md",
    log: Log = print,
) -> list[Row]:
    """Every selected scenario on one backend; writes the report to output."""
    results = run_backends(
        size, (backend,), only=only, cache_root=cache_root, output=output, log=log
    )
    return results[backend]
