"""The scale report: estates scaled from a base size, and the figures at each size."""

from __future__ import annotations

import json
import math

import pytest

from bench.runner import run_backends
from bench.scale import FIGURES, SUPER_LINEAR, ScalePoint, growth, scale_lines
from bench.sizes import FULL, TINY, scaled


def test_the_full_estate_doubles_to_the_issues_2x_and_shrinks_to_a_quarter() -> None:
    double = scaled(FULL, 2)
    assert (double.servers, double.allocations, double.snapshot_rows) == (40, 400_000, 43_200_000)
    quarter = scaled(FULL, 0.25)
    assert quarter.servers % 2 == 0
    assert quarter.server_features == FULL.server_features // 4
    assert (quarter.allocations, quarter.big_pool_rows) == (50_000, 2_500)
    assert scaled(FULL, 1) is FULL


def _point(factor: float, seconds: float) -> ScalePoint:
    return ScalePoint(factor, scaled(TINY, factor), 100, dict.fromkeys(FIGURES, seconds))


@pytest.mark.parametrize(("at_2x", "flagged"), [(1.9, False), (SUPER_LINEAR + 0.2, True)])
def test_growth_from_1x_to_2x_is_flagged_when_super_linear(at_2x, flagged) -> None:
    points = [_point(1.0, 1.0), _point(2.0, at_2x)]
    assert growth(points, FIGURES[0]) == pytest.approx(at_2x)
    table = scale_lines(points)
    assert sum("super-linear**" in line for line in table) == (len(FIGURES) if flagged else 0)


def test_make_bench_writes_the_scale_report_after_the_scenarios(tmp_path) -> None:
    output = tmp_path / "latest.md"
    run_backends(
        TINY,
        only=["reconcile"],
        cache_root=tmp_path / "cache",
        output=output,
        log=lambda _: None,
        scale=True,
    )
    text = output.read_text(encoding="utf-8")
    assert text.index("reconciler steady state") < text.index("## Scale (DuckDB)")
    rows = [line for line in text.splitlines() if line.startswith("| ") and "×" in line]
    assert [r.split(" | ")[0].lstrip("| ") for r in rows[-len(FIGURES) :]] == list(FIGURES)
    raw = json.loads(output.with_suffix(".json").read_text(encoding="utf-8"))
    assert [p["factor"] for p in raw["scale"]] == [0.25, 0.5, 1.0, 2.0]
    assert [p["allocations"] for p in raw["scale"]] == [75, 150, 300, 600]
    for point in raw["scale"]:
        assert all(math.isfinite(v) and v > 0 for v in point["medians"].values()), point
