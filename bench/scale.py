"""The scale report: how the reconciler's steady pass, a cold inventory sync, the manager's
Allocations grid and the Dashboard grow with the estate (0.25×, 0.5×, 1× and 2× its size).

Each size gets its own cached estate (bench.sizes.scaled), a fresh working copy and its own
emulators. The report prints each figure's median at every size and the growth from 1× to 2×:
about 2 is linear, more is super-linear and is flagged.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench.estate import CACHE_ROOT, ensure_estate
from bench.fleet import Fleet
from bench.report import format_value
from bench.runner import bench_context, working_database
from bench.scenarios import inventory, pages, reconcile
from bench.sizes import EstateSize, scaled

FACTORS = (0.25, 0.5, 1.0, 2.0)
REPEATS = 3  # timed runs per figure and size (after a warm-up); the medians are reported
# growth from 1x to 2x above this counts as super-linear (2 is linear; the rest is noise)
SUPER_LINEAR = 2.4
STEADY, COLD, GRID, DASHBOARD = (
    "reconciler steady pass, whole estate",
    "inventory sync of every server, cold",
    "Allocations page, manager's large grid (repeat render)",
    "Dashboard page (repeat render)",
)
FIGURES = (STEADY, COLD, GRID, DASHBOARD)
Log = Callable[[str], None]


@dataclass(frozen=True)
class ScalePoint:
    """The figures (median seconds) measured on one estate size."""

    factor: float
    size: EstateSize
    allocations: int
    medians: dict[str, float]


def measure_point(size: EstateSize, factor: float, cache_root: Path, log: Log) -> ScalePoint:
    """Every figure of the report on the estate of this size (DuckDB)."""
    estate = ensure_estate(size, cache_root, log)
    work_dir = estate.directory / "work"
    with working_database(estate, "duckdb", log) as database, Fleet(estate.fixture_dir) as fleet:
        with bench_context(size, estate, database, fleet.urls, log) as bench:
            steady = reconcile.run(bench)[0]
            cold = inventory.cold_sync_samples(bench)
        spec = {**pages.worker_spec(size, database), "only": ["dashboard"]}
        rendered = pages.render_in_worker(spec, work_dir)
    medians = {
        STEADY: steady.median,
        COLD: statistics.median(cold),
        GRID: statistics.median(rendered["grid"]["samples"]),
        DASHBOARD: statistics.median(rendered["pages"]["Dashboard"]["samples"]),
    }
    allocations = int(estate.meta["allocations"])
    figures = ", ".join(f"{k}: {format_value(v, 's')}" for k, v in medians.items())
    log(f"scale {factor:g}×: {figures}")
    return ScalePoint(factor, size, allocations, medians)


def run_scale(
    base: EstateSize,
    factors: Sequence[float] = FACTORS,
    *,
    cache_root: Path = CACHE_ROOT,
    log: Log = print,
) -> list[ScalePoint]:
    """The scale points of base at each factor, smallest first."""
    repeats = min(base.repeats, REPEATS)
    return [
        measure_point(replace(scaled(base, f), repeats=repeats), f, cache_root, log)
        for f in sorted(factors)
    ]


def growth(points: Sequence[ScalePoint], figure: str) -> float | None:
    """The figure at 2× over the figure at 1× (None without both sizes)."""
    by_factor = {p.factor: p.medians[figure] for p in points}
    if 1.0 not in by_factor or 2.0 not in by_factor or by_factor[1.0] <= 0:
        return None
    return by_factor[2.0] / by_factor[1.0]


def _count(rows: int) -> str:
    return f"{rows / 1e6:.1f}M" if rows >= 1_000_000 else f"{rows:,}"


def _verdict(value: float | None) -> str:
    if value is None:
        return ""
    return "**super-linear**" if value > SUPER_LINEAR else "linear or better"


def scale_lines(points: Sequence[ScalePoint]) -> list[str]:
    """The markdown section of the scale report."""
    sizes = " | ".join(
        f"{p.factor:g}× ({p.size.servers} servers, {p.allocations:,} allocations, "
        f"{_count(p.size.snapshot_rows)} snapshots)"
        for p in points
    )
    lines = [
        "## Scale (DuckDB)",
        "",
        f"Medians of {REPEATS} runs on estates of 0.25× to 2× the size; growth is the 2× figure "
        "over the 1× figure "
        f"(2 is linear; above {SUPER_LINEAR:g} is flagged super-linear).",
        "",
        f"| figure | {sizes} | growth 1× → 2× | |",
        "|---|" + "---:|" * len(points) + "---:|---|",
    ]
    for figure in FIGURES:
        cells = " | ".join(format_value(p.medians[figure], "s") for p in points)
        grown = growth(points, figure)
        shown = "" if grown is None else f"{grown:.2f}×"
        lines.append(f"| {figure} | {cells} | {shown} | {_verdict(grown)} |")
    return lines


def scale_dicts(points: Sequence[ScalePoint]) -> list[dict[str, object]]:
    """The raw figures for the report's JSON."""
    return [
        {
            "factor": p.factor,
            "size": p.size.name,
            "servers": p.size.servers,
            "allocations": p.allocations,
            "snapshots": p.size.snapshot_rows,
            "medians": p.medians,
        }
        for p in points
    ]
