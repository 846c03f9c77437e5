"""Fault injection: latency, error answers and dropped connections drawn from a seeded RNG."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from vlm.flexnet.emulator.common import EmulatorError


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    seed: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "drop_rate": self.drop_rate,
            "error_statuses": list(self.error_statuses),
            "seed": self.seed,
        }


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one API request: delay, then drop the connection or answer `status`."""

    latency_s: float = 0.0
    drop: bool = False
    status: int | None = None


class FaultInjector:
    """The current fault settings and the random generator decisions are drawn from."""

    def __init__(self) -> None:
        self.settings = Faults()
        self._rng = random.Random(0)

    def configure(self, body: dict[str, Any]) -> dict[str, Any]:
        """Change the settings named in `body` (others keep their value); reseed on `seed`."""
        current = self.settings
        statuses = body.get("error_statuses", current.error_statuses)
        self.settings = Faults(
            latency_ms=float(body.get("latency_ms", current.latency_ms)),
            error_rate=_rate(body.get("error_rate", current.error_rate)),
            drop_rate=_rate(body.get("drop_rate", current.drop_rate)),
            error_statuses=tuple(int(s) for s in statuses) or (500, 503),
            seed=int(body.get("seed", current.seed)),
        )
        if "seed" in body:
            self._rng = random.Random(self.settings.seed)
        return self.settings.to_json()

    def clear(self) -> None:
        self.settings = Faults()
        self._rng = random.Random(0)

    def decide(self) -> FaultDecision:
        """Draw (seeded) what happens to the next API request."""
        faults = self.settings
        if not (faults.latency_ms or faults.error_rate or faults.drop_rate):
            return FaultDecision()
        latency = faults.latency_ms / 1000.0
        if faults.drop_rate and self._rng.random() < faults.drop_rate:
            return FaultDecision(latency_s=latency, drop=True)
        if faults.error_rate and self._rng.random() < faults.error_rate:
            return FaultDecision(latency, status=self._rng.choice(faults.error_statuses))
        return FaultDecision(latency_s=latency)


def _rate(value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise EmulatorError(400, "rates must be between 0 and 1")
    return rate
