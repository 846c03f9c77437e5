"""The history of drift events and repairs (what VLM found changed on a server, and fixed)."""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from vlm.store.database import Database


def drift_event_history(
    db: Database,
    server_id: int | None,
    limit: int,
    *,
    kinds: Sequence[str] | None = None,
    within_seconds: int | None = None,
) -> pd.DataFrame:
    """The newest drift events first (every server when server_id is None), only of the given
    kinds (all when None) and only of the last within_seconds (all time when None)."""
    clauses = ["TRUE"]
    params: dict[str, object] = {"limit": limit}
    if server_id is not None:
        clauses.append("e.server_id = $sid")
        params["sid"] = server_id
    if kinds is not None:
        clauses.append("e.kind = ANY($kinds)")
        params["kinds"] = list(kinds)
    if within_seconds is not None:
        clauses.append(
            "e.happened_at >= current_timestamp::TIMESTAMP - INTERVAL '1 second' * $within"
        )
        params["within"] = within_seconds
    return db.query_df(
        f"""
        SELECT e.happened_at, s.name AS server, e.kind, e.host_type, e.host_id,
               e.feature_name, e.feature_version, e.count, e.group_name, e.detail
        FROM drift_events e LEFT JOIN license_servers s ON s.id = e.server_id
        WHERE {" AND ".join(clauses)}
        ORDER BY e.happened_at DESC, e.id DESC
        LIMIT $limit
        """,
        params,
    )
