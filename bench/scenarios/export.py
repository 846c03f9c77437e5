"""CSV export of every allocation, against pandas to_csv of the same rows from memory."""

from __future__ import annotations

import statistics

from bench.context import ADMIN, BenchContext
from bench.measure import Row, ratio, sample
from vlm.services import exports

RATE_TARGET = 1_000_000


def run(bench: BenchContext) -> list[Row]:
    ctx = bench.ctx
    frame = exports.allocations_export(ctx, ADMIN)
    rows = len(frame)
    direct = sample(lambda: exports.allocations_csv(ctx, ADMIN), bench.repeats)
    via_frame = sample(
        lambda: exports.to_csv_bytes(exports.allocations_export(ctx, ADMIN)), bench.repeats
    )
    baseline = sample(lambda: frame.to_csv(index=False).encode("utf-8"), bench.repeats)
    rate = rows / statistics.median(direct)
    return [
        Row(
            f"CSV export of all {rows:,} allocations (SQL → CSV)",
            direct,
            target="≥ 1,000,000 rows/s",
            limit=rows / RATE_TARGET,
            ratio=ratio(direct, baseline),
            ratio_label="pandas to_csv from memory",
            note=f"{rate:,.0f} rows/s",
            extra={"rows_per_second": rate},
        ),
        Row(
            "  same export through a DataFrame (query → frame → CSV)",
            via_frame,
            ratio=ratio(via_frame, baseline),
            ratio_label="pandas to_csv from memory",
            note=f"{rows / statistics.median(via_frame):,.0f} rows/s",
        ),
        Row("  baseline: pandas to_csv of the same rows (already in memory)", baseline),
    ]
