"""Result rows of the benchmark table and the timing helpers that fill them."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Row:
    """One line of the results table: samples of a time (s) or a size (MB) plus the verdict."""

    scenario: str
    samples: tuple[float, ...]
    unit: str = "s"
    target: str = ""
    limit: float | None = None
    ratio: float | None = None
    ratio_limit: float | None = None
    ratio_label: str = ""
    note: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def met(self) -> bool | None:
        """True/False against the target (limit on the median, limit on the ratio); None if none."""
        checks = []
        if self.limit is not None:
            checks.append(self.median < self.limit)
        if self.ratio_limit is not None and self.ratio is not None:
            checks.append(self.ratio <= self.ratio_limit)
        return all(checks) if checks else None

    def to_dict(self) -> dict[str, object]:
        return {
            "scenario": self.scenario,
            "unit": self.unit,
            "median": self.median,
            "min": self.low,
            "max": self.high,
            "samples": list(self.samples),
            "ratio": self.ratio,
            "ratio_label": self.ratio_label,
            "target": self.target,
            "met": self.met,
            "note": self.note,
            **self.extra,
        }


def timed(fn: Callable[[], object]) -> float:
    """Seconds one call of fn takes."""
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def sample(
    fn: Callable[[], object],
    repeats: int,
    *,
    warmup: int = 1,
    before: Callable[[], object] | None = None,
    after: Callable[[], object] | None = None,
) -> tuple[float, ...]:
    """Time fn `repeats` times after `warmup` untimed calls; before/after run untimed."""
    results: list[float] = []
    for index in range(warmup + repeats):
        if before is not None:
            before()
        elapsed = timed(fn)
        if after is not None:
            after()
        if index >= warmup:
            results.append(elapsed)
    return tuple(results)


def ratio(samples: tuple[float, ...], baseline: tuple[float, ...]) -> float:
    """Median over median."""
    return statistics.median(samples) / statistics.median(baseline)
