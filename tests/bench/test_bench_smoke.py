"""Every benchmark scenario on a tiny estate: the report has every row, with figures."""

from __future__ import annotations

import json
import math

from bench.runner import run_benchmarks
from bench.sizes import TINY

EXPECTED = (
    "inventory sync",
    "baseline: bare HTTP fetch",
    "apply 20 new allocations",
    "baseline: 20 sequential requests",
    "ms later (a server on the LAN)",
    "cold after a restart",
    "cold after every mirror was rewritten",
    "one allocation saved",
    "reconciler steady state",
    "trend of one pool",
    "utilization of one server",
    "CSV export of all",
    "page render: Dashboard",
    "page render: Allocations",
    "page render: Sign in",
    "-row grid",
    "peak RSS of the app process",
)


def test_every_scenario_reports_numbers(tmp_path) -> None:
    output = tmp_path / "latest.md"
    rows = run_benchmarks(TINY, cache_root=tmp_path / "cache", output=output, log=lambda _: None)
    names = [row.scenario for row in rows]
    for expected in EXPECTED:
        assert any(expected in name for name in names), (expected, names)
    for row in rows:
        assert row.samples and all(math.isfinite(v) and v > 0 for v in row.samples), row
        assert row.ratio is None or (math.isfinite(row.ratio) and row.ratio > 0), row
    text = output.read_text(encoding="utf-8")
    assert "cores (nproc)" in text and "GB memory" in text
    assert text.count("\n| ") == len(rows) + 1
    raw = json.loads(output.with_suffix(".json").read_text(encoding="utf-8"))
    assert len(raw["rows"]) == len(rows)
