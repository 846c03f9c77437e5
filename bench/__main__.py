"""`python -m bench [--size full|small|tiny] [--only SCENARIO ...] [--output PATH]`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from bench.report import RESULTS_DIR
from bench.runner import SCENARIOS, run_benchmarks
from bench.sizes import SIZES


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--size", choices=sorted(SIZES), default=os.environ.get("BENCH_SIZE", "full")
    )
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these scenarios")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "latest.md")
    args = parser.parse_args()
    run_benchmarks(SIZES[args.size], only=args.only, output=args.output)


if __name__ == "__main__":
    main()
