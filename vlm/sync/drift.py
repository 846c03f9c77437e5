"""Stored conflicts: the drift report of a server kept in sync_conflicts after each pull and
each pass that changed something (the report itself is vlm.store.drift.drift_report)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from vlm.context import ServiceContext
from vlm.store.drift import (
    drift_inputs,
    drift_report,
    read_drift_inputs,
    replace_conflicts,
    set_conflicts_inputs,
    stored_conflicts,
)


@dataclass(frozen=True)
class InputsAhead:
    """A server's drift inputs read outside a write, and the database generation before it."""

    generation: int
    inputs: str


def read_inputs_ahead(ctx: ServiceContext, server_id: int) -> InputsAhead | None:
    """The server's drift inputs now, to pass to a later store_conflicts (None on PostgreSQL:
    its generation is taken from a sequence before a write commits, so it cannot tell whether
    the read saw a write that had not committed yet). On DuckDB the generation moves after
    each commit, under the write lock."""
    if ctx.db.dialect != "duckdb":
        return None
    generation = ctx.db.generation
    return InputsAhead(generation, read_drift_inputs(ctx.db, server_id))


def store_conflicts(ctx: ServiceContext, server_id: int, ahead: InputsAhead | None = None) -> int:
    """Replace the server's rows in sync_conflicts with its current drift; returns their count.
    When nothing the drift is computed from changed since they were stored, they are kept.

    `ahead` (read_inputs_ahead) stands for the inputs when no write committed since it was
    read; the caller passes it only when its own write has not touched an input yet."""

    def store(cur: duckdb.DuckDBPyConnection) -> int:
        if ahead is not None and ahead.generation == ctx.db.generation:
            inputs = ahead.inputs
        else:
            inputs = drift_inputs(cur, server_id)
        stored_inputs, stored_count = stored_conflicts(cur, server_id)
        if inputs == stored_inputs:
            return stored_count
        report = drift_report(ctx.db, server_id)
        replace_conflicts(cur, server_id, report)
        set_conflicts_inputs(cur, server_id, inputs)
        return len(report)

    return ctx.db.write(store)
