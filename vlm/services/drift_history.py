"""Drift history: every drift event and repair VLM recorded on the license servers.

Stored kinds are grouped into four plain words for people:

* found    - VLM found the server changed: a reservation missing or disabled, a restart;
* repaired - VLM re-created what had gone missing;
* conflict - something on the server stands in VLM's way (its group prefix already in use);
* resolved - the drift went away by itself (the server enabled a disabled entry again).

REPORT_GROUPS groups the kinds of the current drift report (vlm.sync.drift) the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import DAYS_MAX, Actor, ValidationError, shown
from vlm.services.permissions import require_admin
from vlm.store.drift_events import drift_event_history

MAX_EVENTS = 10_000
FOUND, REPAIRED, CONFLICT, RESOLVED = "found", "repaired", "conflict", "resolved"
GROUPS = (FOUND, REPAIRED, CONFLICT, RESOLVED)
EVENT_GROUPS = {
    "missing": FOUND,
    "disabled": FOUND,
    "server restarted": FOUND,
    "repaired": REPAIRED,
    "prefix in use": CONFLICT,
    "re-enabled": RESOLVED,
}
REPORT_GROUPS = {
    "missing": FOUND,
    "extra": FOUND,
    "changed": FOUND,
    "disabled_by_server": FOUND,
    "host_held_elsewhere": CONFLICT,
    "over_committed": CONFLICT,
}
HISTORY_COLUMNS = [
    "happened_at",
    "server",
    "group",
    "kind",
    "host_type",
    "host_id",
    "feature_name",
    "feature_version",
    "count",
    "group_name",
    "detail",
]


def _event_group(kind: str) -> str:
    """The plain word for a stored drift event kind (an unknown kind stands for itself)."""
    return EVENT_GROUPS.get(kind, kind)


def _kinds_of(groups: Iterable[str]) -> list[str]:
    """The stored event kinds that make up these groups."""
    wanted = set(groups)
    return sorted(kind for kind, group in EVENT_GROUPS.items() if group in wanted)


def _validated_groups(groups: object) -> list[str] | None:
    if groups is None:
        return None
    if isinstance(groups, str | bytes) or not isinstance(groups, Iterable):
        raise ValidationError("groups: a list of found, repaired, conflict, resolved")
    chosen = list(groups)
    unknown = [g for g in chosen if g not in GROUPS]
    if unknown:
        raise ValidationError(
            f"groups: '{shown(unknown[0])}' is not one of {', '.join(GROUPS)}", field="groups"
        )
    return chosen


def _validated_span(within: object) -> int | None:
    if within is None:
        return None
    if not isinstance(within, timedelta) or not (timedelta(0) < within <= timedelta(days=DAYS_MAX)):
        raise ValidationError(f"within: a time span of up to {DAYS_MAX} days", field="within")
    return max(1, int(within.total_seconds()))


def drift_history(
    ctx: ServiceContext,
    actor: Actor,
    server_id: int | None = None,
    limit: int = 1_000,
    *,
    groups: Iterable[str] | None = None,
    within: timedelta | None = None,
) -> pd.DataFrame:
    """Newest first: restarts, reservations gone missing or disabled, repairs (admins), each
    with its group in plain words; only the given groups and the last `within` when set."""
    require_admin(actor)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_EVENTS:
        raise ValidationError(f"limit: a whole number from 1 to {MAX_EVENTS}")
    if server_id is not None and (isinstance(server_id, bool) or not isinstance(server_id, int)):
        raise ValidationError("server_id: a whole number")
    chosen = _validated_groups(groups)
    span = _validated_span(within)
    kinds = None if chosen is None else _kinds_of(chosen)
    if kinds == []:
        return pd.DataFrame(columns=HISTORY_COLUMNS)
    frame = drift_event_history(ctx.db, server_id, limit, kinds=kinds, within_seconds=span)
    frame.insert(2, "group", frame["kind"].map(_event_group).astype(object))
    return frame[HISTORY_COLUMNS]
