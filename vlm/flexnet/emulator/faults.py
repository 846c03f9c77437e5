"""Fault injection: latency, error answers, dropped connections and lost write responses.

Random decisions come from one seeded generator. A lost write response means the request is
executed (and committed when it succeeds) but the connection is then closed without an answer,
as when a network fails after the server did its work.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from vlm.flexnet.emulator.common import EmulatorError

MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass
class Faults:
    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    error_statuses: tuple[int, ...] = (500, 503)
    seed: int = 0
    lose_write_responses: int = 0
    lose_write_rate: float = 0.0
    slow_paths: tuple[str, ...] = ()
    error_paths: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "latency_ms": self.latency_ms,
            "error_rate": self.error_rate,
            "drop_rate": self.drop_rate,
            "error_statuses": list(self.error_statuses),
            "seed": self.seed,
            "lose_write_responses": self.lose_write_responses,
            "lose_write_rate": self.lose_write_rate,
            "slow_paths": list(self.slow_paths),
            "error_paths": list(self.error_paths),
        }

    @property
    def active(self) -> bool:
        return bool(
            self.latency_ms
            or self.error_rate
            or self.drop_rate
            or self.lose_write_responses
            or self.lose_write_rate
        )

    def slows(self, path: str) -> bool:
        """True when latency applies to `path` (every path unless `slow_paths` names some)."""
        return not self.slow_paths or any(part in path for part in self.slow_paths)

    def fails(self, path: str) -> bool:
        """True when error_rate applies to `path` (every path unless `error_paths` names some)."""
        return not self.error_paths or any(part in path for part in self.error_paths)


@dataclass(frozen=True)
class FaultDecision:
    """What to do to one API request: delay, then drop the connection or answer `status`,
    or execute it and lose the response (`lose_counted`: it used one of `lose_write_responses`).
    """

    latency_s: float = 0.0
    drop: bool = False
    status: int | None = None
    lose_response: bool = False
    lose_counted: bool = False


def is_write(method: str, path: str) -> bool:
    """A mutating API request (POST/PUT/PATCH/DELETE), never /authorize."""
    return method.upper() in MUTATING_METHODS and not path.rstrip("/").endswith("/authorize")


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
            lose_write_responses=_count(
                body.get("lose_write_responses", current.lose_write_responses)
            ),
            lose_write_rate=_rate(body.get("lose_write_rate", current.lose_write_rate)),
            slow_paths=_paths(body.get("slow_paths", current.slow_paths), "slow_paths"),
            error_paths=_paths(body.get("error_paths", current.error_paths), "error_paths"),
        )
        if "seed" in body:
            self._rng = random.Random(self.settings.seed)
        return self.settings.to_json()

    def clear(self) -> None:
        self.settings = Faults()
        self._rng = random.Random(0)

    def decide(self, method: str = "GET", path: str = "") -> FaultDecision:
        """Draw (seeded) what happens to the next API request."""
        faults = self.settings
        if not faults.active:
            return FaultDecision()
        latency = faults.latency_ms / 1000.0 if faults.slows(path) else 0.0
        if faults.drop_rate and self._rng.random() < faults.drop_rate:
            return FaultDecision(latency_s=latency, drop=True)
        if faults.error_rate and faults.fails(path) and self._rng.random() < faults.error_rate:
            return FaultDecision(latency, status=self._rng.choice(faults.error_statuses))
        if is_write(method, path):
            return self._decide_write(latency)
        return FaultDecision(latency_s=latency)

    def _decide_write(self, latency: float) -> FaultDecision:
        faults = self.settings
        if faults.lose_write_responses > 0:
            faults.lose_write_responses -= 1
            return FaultDecision(latency, lose_response=True, lose_counted=True)
        if faults.lose_write_rate and self._rng.random() < faults.lose_write_rate:
            return FaultDecision(latency, lose_response=True)
        return FaultDecision(latency_s=latency)

    def refund(self, decision: FaultDecision) -> None:
        """Give back the lost response a request used without being executed (401/403)."""
        if decision.lose_counted:
            self.settings.lose_write_responses += 1


def _rate(value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise EmulatorError(400, "rates must be between 0 and 1")
    return rate


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise EmulatorError(400, "lose_write_responses must be a non-negative integer")
    return value


def _paths(value: Any, name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise EmulatorError(400, f"{name} must be a list of path substrings")
    if not all(isinstance(part, str) and part for part in value):
        raise EmulatorError(400, f"{name} must hold non-empty strings")
    return tuple(value)
