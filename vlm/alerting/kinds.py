"""The kinds of alert rule: what each watches, its threshold's unit and bounds, who may use it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AlertKind:
    """One kind of rule: its threshold is `unit` (between low and high), `default` unless set."""

    key: str
    label: str
    unit: str
    low: float
    high: float
    default: float
    pool_scoped: bool  # about pools: managers may subscribe to it for their own pools


KINDS: dict[str, AlertKind] = {
    kind.key: kind
    for kind in (
        AlertKind("pool_nearly_full", "Pool nearly full", "% allocated", 1, 100, 90, True),
        AlertKind(
            "feature_nearly_exhausted",
            "Feature nearly exhausted on a server",
            "% in use or reserved",
            1,
            100,
            95,
            False,
        ),
        AlertKind(
            "server_unreachable",
            "License server unreachable or failing sync",
            "minutes",
            1,
            10_080,
            15,
            False,
        ),
        AlertKind("feature_expiring", "Feature expiring", "days ahead", 1, 3_650, 30, False),
        AlertKind(
            "over_committed", "Feature over-committed", "licenses short at least", 1, 1e6, 1, False
        ),
        AlertKind("drift", "Drift or conflicts on a server", "findings at least", 1, 1e6, 1, False),
        AlertKind("allocation_ending", "Allocations ending", "days ahead", 1, 3_650, 7, True),
        AlertKind(
            "allocations_failing",
            "Allocations failing",
            "minutes failed",
            1,
            10_080,
            10,
            True,
        ),
        AlertKind(
            "allocations_idle",
            "Reserved seats idle",
            "days not used",
            1,
            3_650,
            30,
            True,
        ),
    )
}
