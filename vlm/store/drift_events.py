"""The history of drift events and repairs (what VLM found changed on a server, and fixed)."""

from __future__ import annotations

import pandas as pd

from vlm.store.database import Database


def drift_event_history(db: Database, server_id: int | None, limit: int) -> pd.DataFrame:
    """The newest drift events first (every server when server_id is None)."""
    where = "" if server_id is None else "WHERE e.server_id = $sid"
    params: dict[str, object] = {"limit": limit}
    if server_id is not None:
        params["sid"] = server_id
    return db.query_df(
        f"""
        SELECT e.happened_at, s.name AS server, e.kind, e.host_type, e.host_id,
               e.feature_name, e.feature_version, e.count, e.group_name, e.detail
        FROM drift_events e LEFT JOIN license_servers s ON s.id = e.server_id
        {where}
        ORDER BY e.happened_at DESC, e.id DESC
        LIMIT $limit
        """,
        params,
    )
