"""Server-side render time of every page (AppTest) and the app process's peak memory.

Runs bench.app_worker in a fresh process so that the measured process is the app alone: it
opens the estate (a DuckDB file, or a PostgreSQL URL as VLM_DB_URL) through the app's own
runtime, as `streamlit run` would.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.context import BIG_POOL
from bench.estate import Estate, open_context
from bench.measure import Row, ratio
from bench.report import format_value, table_lines
from bench.sizes import EstateSize

PAGE_LIMIT_S = 0.15
PAGE_RATIO_LIMIT = 8.0
COLD_DASHBOARD_LIMIT_S = 0.25
RSS_LIMIT_MB = 600


def worker_spec(size: EstateSize, database: str) -> dict[str, Any]:
    """What the page worker needs: the database, the repeats and the large grid's manager."""
    ctx = open_context(database)
    try:
        manager = ctx.db.scalar(f"SELECT manager FROM pools WHERE name = '{BIG_POOL}'")
    finally:
        ctx.db.close()
    return {"database": database, "repeats": size.repeats, "manager": manager}


def render_in_worker(spec: dict[str, Any], work: Path) -> dict[str, Any]:
    spec_path, out_path, log_path = work / "pages.json", work / "pages-out.json", work / "pages.log"
    spec_path.write_text(json.dumps(spec), encoding="utf-8")
    out_path.unlink(missing_ok=True)
    with log_path.open("w", encoding="utf-8") as log_file:
        code = subprocess.call(
            [sys.executable, "-m", "bench.app_worker", str(spec_path), str(out_path)],
            cwd=Path(__file__).resolve().parents[2],
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    if code != 0 or not out_path.exists():
        tail = log_path.read_text(encoding="utf-8")[-3000:]
        raise RuntimeError(f"the page worker failed (exit {code}):\n{tail}")
    return json.loads(out_path.read_text(encoding="utf-8"))


def _page_row(label: str, figures: dict[str, Any]) -> Row:
    samples = tuple(figures["samples"])
    return Row(
        label,
        samples,
        target=f"< {PAGE_LIMIT_S * 1000:g} ms and ≤ {PAGE_RATIO_LIMIT:g}× bare",
        limit=PAGE_LIMIT_S,
        ratio=ratio(samples, tuple(figures["baseline"])),
        ratio_limit=PAGE_RATIO_LIMIT,
        ratio_label="bare page, same dataframes",
        note=_note(figures),
    )


def _note(figures: dict[str, Any]) -> str:
    notes = [f"largest table {figures['rows']:,} rows"] if figures["rows"] else []
    if len(figures["samples"]) == 1:
        notes.append("slow: timed once")
    else:
        notes.append(f"first run {format_value(figures['first'], 's')}")
    return ", ".join(notes)


def _memory_note(result: dict[str, Any]) -> str:
    """Where the peak came from: the phase (first run, first sync, a page) with the highest
    sampled resident memory, and the figure at the end."""
    mb = 1024 * 1024
    notes = [f"{result['rss_end'] / mb:,.0f} MB at the end"]
    phases: dict[str, int] = result["rss_phases"]
    if phases:
        worst = max(phases, key=lambda phase: phases[phase])
        notes.append(f"highest during {worst}")
    return ", ".join(notes)


def run(
    size: EstateSize,
    estate: Estate,
    database: str,
    work_dir: Path,
    urls: dict[str, str],
    log: Callable[[str], None],
) -> list[Row]:
    log("scenario pages … (separate app process)")
    result = render_in_worker(worker_spec(size, database), work_dir)
    rows = [
        _page_row(f"page render: {title}", figures) for title, figures in result["pages"].items()
    ]
    dashboard = result["pages"]["Dashboard"]
    rows.append(
        Row(
            "  Dashboard, first render on a cold cache (after the first sync's writes)",
            (dashboard["first"],),
            target=f"< {COLD_DASHBOARD_LIMIT_S * 1000:g} ms",
            limit=COLD_DASHBOARD_LIMIT_S,
            note="once",
        )
    )
    grid = result["grid"]
    rows.append(_page_row(f"page render: Allocations, manager, {grid['rows']:,}-row grid", grid))
    rows.append(
        Row(
            "  first run of the app (opens the database, starts the scheduler)",
            (result["first_run_s"],),
            note="once",
        )
    )
    mb = 1024 * 1024
    rows.append(
        Row(
            "peak RSS of the app process, large estate loaded, every page rendered",
            (result["rss_peak"] / mb,),
            unit="MB",
            target=f"< {RSS_LIMIT_MB:,} MB",
            limit=RSS_LIMIT_MB,
            note=_memory_note(result),
        )
    )
    for line in _rows_lines(rows):
        log(line)
    return rows


def _rows_lines(rows: list[Row]) -> list[str]:
    return ["  " + line for line in table_lines(rows)[2:]]
