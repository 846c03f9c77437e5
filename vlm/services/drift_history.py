"""Drift history: every drift event and repair VLM recorded on the license servers."""

from __future__ import annotations

import pandas as pd

from vlm.domain import Actor, ValidationError
from vlm.services.context import ServiceContext
from vlm.services.permissions import require_admin
from vlm.store.drift_events import drift_event_history

MAX_EVENTS = 10_000


def drift_history(
    ctx: ServiceContext, actor: Actor, server_id: int | None = None, limit: int = 1_000
) -> pd.DataFrame:
    """Newest first: restarts, reservations gone missing or disabled, repairs (admins)."""
    require_admin(actor)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS:
        raise ValidationError(f"limit: a whole number from 1 to {MAX_EVENTS}")
    if server_id is not None and (isinstance(server_id, bool) or not isinstance(server_id, int)):
        raise ValidationError("server_id: a whole number")
    return drift_event_history(ctx.db, server_id, limit)
