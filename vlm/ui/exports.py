"""The Export page's datasets, and which roles may download each."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from vlm.domain import Role
from vlm.services import exports
from vlm.ui.session import PageContext

UTILIZATION_DAYS = 90


@dataclass(frozen=True)
class Export:
    title: str
    file_name: str
    description: str
    roles: frozenset[Role]
    loader: Callable[[PageContext], pd.DataFrame]

    def load(self, page: PageContext) -> pd.DataFrame:
        return self.loader(page)


EXPORTS = (
    Export(
        "Pools",
        "pools",
        "Every pool you may see with each feature: quantity, allocated, available, failed.",
        frozenset(Role),
        lambda p: exports.pools_with_features(p.ctx, p.actor),
    ),
    Export(
        "Allocations",
        "allocations",
        "Every allocation of those pools: host, count, description, state, server.",
        frozenset(Role),
        lambda p: exports.allocations_export(p.ctx, p.actor),
    ),
    Export(
        "Server features",
        "server-features",
        "Each license server feature: total, used, reserved, pooled, poolable, expiry.",
        frozenset({Role.ADMIN, Role.ANALYST}),
        lambda p: exports.server_features_export(p.ctx, p.actor),
    ),
    Export(
        "Utilization history",
        "utilization-history",
        f"Change-only utilization snapshots of the last {UTILIZATION_DAYS} days.",
        frozenset({Role.ADMIN, Role.ANALYST}),
        lambda p: exports.utilization_export(p.ctx, p.actor, UTILIZATION_DAYS),
    ),
)


def available_exports(page: PageContext) -> list[Export]:
    return [e for e in EXPORTS if page.actor.role in e.roles]
