"""Stored conflicts: the drift report of a server kept in sync_conflicts after each pull and
each pass that changed something (the report itself is vlm.store.drift.drift_report)."""

from __future__ import annotations

import duckdb

from vlm.context import ServiceContext
from vlm.store.drift import (
    drift_inputs,
    drift_report,
    replace_conflicts,
    set_conflicts_inputs,
    stored_conflicts,
)


def store_conflicts(ctx: ServiceContext, server_id: int) -> int:
    """Replace the server's rows in sync_conflicts with its current drift; returns their count.
    When nothing the drift is computed from changed since they were stored, they are kept."""

    def store(cur: duckdb.DuckDBPyConnection) -> int:
        inputs = drift_inputs(cur, server_id)
        stored_inputs, stored_count = stored_conflicts(cur, server_id)
        if inputs == stored_inputs:
            return stored_count
        report = drift_report(ctx.db, server_id)
        replace_conflicts(cur, server_id, report)
        set_conflicts_inputs(cur, server_id, inputs)
        return len(report)

    return ctx.db.write(store)
