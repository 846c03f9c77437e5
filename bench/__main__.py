"""`python -m bench [--size full|small|tiny] [--backend duckdb|postgres|both] [--only SCENARIO ...]
[--output PATH] [--scale]`: both runs every scenario on DuckDB, then on PostgreSQL, into one
report; --scale adds the scale report (bench/scale.py)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.report import RESULTS_DIR
from bench.runner import BACKENDS, SCENARIOS, run_backends
from bench.sizes import SIZES


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--size", choices=sorted(SIZES), default=os.environ.get("BENCH_SIZE", "full")
    )
    parser.add_argument(
        "--backend",
        choices=(*BACKENDS, "both"),
        default=os.environ.get("BENCH_BACKEND", "duckdb"),
        help="the database engine(s) to run on (default duckdb)",
    )
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.md")
    parser.add_argument(
        "--scale",
        action="store_true",
        help="add the scale report: key figures at 0.25x, 0.5x, 1x and 2x the estate (DuckDB)",
    )
    args = parser.parse_args()
    backends = BACKENDS if args.backend == "both" else (args.backend,)
    run_backends(SIZES[args.size], backends, only=args.only, output=args.output, scale=args.scale)


if __name__ == "__main__":
    main()
