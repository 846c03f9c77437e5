"""The results tables, one per backend and side by side: printed, and written to
bench/results/latest.md with the machine's figures."""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from bench.measure import Row

RESULTS_DIR = Path(__file__).resolve().parent / "results"
HEADER = ("scenario", "median", "min", "max", "ratio", "target", "met")
BACKEND_TITLES = {"duckdb": "DuckDB", "postgres": "PostgreSQL"}


def machine() -> dict[str, Any]:
    """Cores (as `nproc` counts them), total memory and platform."""
    return {
        "cores": len(os.sched_getaffinity(0)),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def format_value(value: float, unit: str) -> str:
    if unit == "MB":
        return f"{value:,.0f} MB"
    if value >= 10:
        return f"{value:,.1f} s"
    if value >= 1:
        return f"{value:.2f} s"
    return f"{value * 1000:,.1f} ms" if value < 0.1 else f"{value * 1000:,.0f} ms"


def _ratio(row: Row) -> str:
    if row.ratio is None:
        return ""
    return f"{row.ratio:.2f}× {row.ratio_label}".strip()


def _met(row: Row) -> str:
    return {True: "yes", False: "**no**", None: ""}[row.met]


def table_lines(rows: Sequence[Row]) -> list[str]:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---", "---:", "---:", "---:", "---", "---", "---"]) + "|",
    ]
    for row in rows:
        label = row.scenario.strip()
        if row.scenario.startswith("  "):
            label = f"↳ {label}"
        if row.note:
            label = f"{label} ({row.note})"
        cells = [
            label,
            format_value(row.median, row.unit),
            format_value(row.low, row.unit),
            format_value(row.high, row.unit),
            _ratio(row),
            row.target,
            _met(row),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def describe_backend(backend: str) -> str:
    """The engine and how it was set up, for the report."""
    if backend == "duckdb":
        import duckdb

        return f"DuckDB {duckdb.__version__}, one file, opened by the benchmark process"
    from bench.postgres import server_version, settings_summary

    return (
        f"{server_version()}, a server of its own on loopback (estate loaded with "
        f"vlm.store.move, then VACUUM FREEZE ANALYZE; each run on CREATE DATABASE … TEMPLATE); "
        f"{settings_summary()}"
    )


def _title(backend: str) -> str:
    return BACKEND_TITLES.get(backend, backend)


def _by_label(rows: Sequence[Row]) -> dict[str, Row]:
    return {row.scenario.strip(): row for row in rows}


def _labels(results: dict[str, list[Row]]) -> list[str]:
    """Every row's scenario, in the order the first backend to report it ran it."""
    seen: dict[str, None] = {}
    for rows in results.values():
        for row in rows:
            seen.setdefault(row.scenario.strip(), None)
    return list(seen)


def _versus(first: Row | None, other: Row | None) -> str:
    if first is None or other is None or first.median <= 0:
        return ""
    return f"{other.median / first.median:.2f}×"


def comparison_lines(results: dict[str, list[Row]]) -> list[str]:
    """One table, a median and a verdict per backend, and each backend's median over the
    first's."""
    backends = list(results)
    header = ["scenario", "target"]
    align = ["---", "---"]
    for backend in backends:
        header += [_title(backend), "met"]
        align += ["---:", "---"]
    for backend in backends[1:]:
        header.append(f"{_title(backend)} ÷ {_title(backends[0])}")
        align.append("---:")
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    found = {backend: _by_label(rows) for backend, rows in results.items()}
    for label in _labels(results):
        rows = [found[backend].get(label) for backend in backends]
        known = next(row for row in rows if row is not None)
        name = f"↳ {label}" if known.scenario.startswith("  ") else label
        cells = [name, known.target]
        for row in rows:
            cells += ["", ""] if row is None else [format_value(row.median, row.unit), _met(row)]
        cells += [_versus(rows[0], row) for row in rows[1:]]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_tables(results: dict[str, list[Row]]) -> str:
    """The tables alone: one backend's, or the comparison followed by each backend's."""
    if len(results) == 1:
        return "\n".join(table_lines(next(iter(results.values()))))
    lines = ["## Side by side (medians)", "", *comparison_lines(results)]
    for backend, rows in results.items():
        lines += ["", f"## {_title(backend)}", "", *table_lines(rows)]
    return "\n".join(lines)


def render(
    results: dict[str, list[Row]], context: dict[str, Any], sections: Sequence[str] = ()
) -> str:
    """The markdown report: context, machine, backends, the tables, then sections (markdown
    lines, e.g. the scale report)."""
    info = machine()
    lines = [
        "# VLM benchmark results",
        "",
        f"- run: {datetime.now():%Y-%m-%d %H:%M} · estate size **{context.get('size')}** · "
        f"{context.get('repeats')} timed runs per scenario after a warm-up",
        f"- machine: {info['cores']} cores (nproc), {info['memory_gb']} GB memory, "
        f"Python {info['python']}, {info['platform']}",
    ]
    if context.get("estate"):
        lines.append(f"- estate: {context['estate']}")
    for backend, description in context.get("backends", {}).items():
        lines.append(f"- {_title(backend)}: {description}")
    if context.get("duration"):
        lines.append(f"- duration: {context['duration']}")
    lines += ["", render_tables(results), ""]
    if sections:
        lines += [*sections, ""]
    return "\n".join(lines)


def write(
    results: dict[str, list[Row]],
    context: dict[str, Any],
    path: Path,
    sections: Sequence[str] = (),
    extra: dict[str, Any] | None = None,
) -> None:
    """The markdown report at path and the raw figures next to it (.json: `backends` maps each
    backend to its rows; `rows` repeats them when one backend ran; extra adds keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(results, context, sections), encoding="utf-8")
    raw: dict[str, Any] = {
        "context": context,
        "machine": machine(),
        "backends": {name: [r.to_dict() for r in rows] for name, rows in results.items()},
        **(extra or {}),
    }
    if len(results) == 1:
        raw["rows"] = next(iter(raw["backends"].values()))
    path.with_suffix(".json").write_text(json.dumps(raw, indent=2, default=str), encoding="utf-8")
