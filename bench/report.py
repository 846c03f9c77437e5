"""The results table: printed, and written to bench/results/latest.md with the machine's figures."""

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


def render(rows: Sequence[Row], context: dict[str, Any]) -> str:
    """The markdown report: context, machine, the table."""
    info = machine()
    lines = [
        "# VLM benchmark results",
        "",
        f"- run: {datetime.now():%Y-%m-%d %H:%M} · estate size **{context.get('size')}** · "
        f"{context.get('repeats')} timed runs per scenario after a warm-up",
        f"- machine: {info['cores']} cores (nproc), {info['memory_gb']} GB memory, "
        f"Python {info['python']}, {info['platform']}",
    ]
    for key in ("estate", "duration"):
        if context.get(key):
            lines.append(f"- {key}: {context[key]}")
    lines += ["", *table_lines(rows), ""]
    return "\n".join(lines)


def write(rows: Sequence[Row], context: dict[str, Any], path: Path) -> None:
    """The markdown table at path and the raw figures next to it (.json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(rows, context), encoding="utf-8")
    raw = {"context": context, "machine": machine(), "rows": [r.to_dict() for r in rows]}
    path.with_suffix(".json").write_text(json.dumps(raw, indent=2, default=str), encoding="utf-8")
