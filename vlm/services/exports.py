"""CSV export with spreadsheet formula injection neutralised (DESIGN.md §6)."""

from __future__ import annotations

import pandas as pd

from vlm.domain import Actor
from vlm.services import allocations, pools, reports, servers
from vlm.services.context import ServiceContext

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """Prefix text cells that a spreadsheet would run as a formula with a single quote."""
    safe = frame.copy()
    for column in safe.columns:
        series = safe[column]
        if pd.api.types.is_string_dtype(series) or series.dtype == object:
            text = series.astype("string")
            risky = text.str.startswith(_FORMULA_START, na=False)
            if risky.any():
                safe[column] = text.where(~risky, "'" + text)
    return safe


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV, safe to open in a spreadsheet."""
    return neutralise(frame).to_csv(index=False).encode("utf-8")


def pools_with_features(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    return pools.pool_features(ctx, actor)


def allocations_export(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    return allocations.visible_allocations(ctx, actor)


def server_features_export(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    return servers.server_features(ctx, actor)


def utilization_export(ctx: ServiceContext, actor: Actor, days: int = 90) -> pd.DataFrame:
    return reports.utilization_history(ctx, actor, days)
