"""The page worker's memory figures are its own, charged to the phase that caused them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from bench.app_worker import PhaseMemory

MB = 1024 * 1024
ROOT = Path(__file__).resolve().parents[2]
CHILD = (
    "import json; from bench.app_worker import PhaseMemory; m = PhaseMemory(); "
    "print(json.dumps(m.stop()))"
)


def _touch(size: int) -> bytearray:
    block = bytearray(size)
    for offset in range(0, size, 4096):
        block[offset] = 1
    return block


def test_a_worker_does_not_report_its_parents_peak() -> None:
    held = _touch(300 * MB)
    reported = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, check=True
    )
    del held
    peaks = json.loads(reported.stdout)
    assert peaks["start"] < 150 * MB, peaks


def test_each_phase_keeps_its_own_peak() -> None:
    memory = PhaseMemory()
    memory.enter("large")
    block = _touch(200 * MB)
    del block
    memory.enter("small")
    _touch(MB)
    peaks = memory.stop()
    assert peaks["large"] - peaks["small"] >= 150 * MB, peaks
    assert memory.overall == max(peaks.values())
