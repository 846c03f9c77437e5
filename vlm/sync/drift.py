"""Drift between what VLM allocates and what the servers hold, and over-committed features.

Kinds (one row each):

* ``missing``  - pending/applied allocations of a host+feature, nothing in VLM's group for it;
* ``extra``    - an entry in a VLM-owned group that no pending/applied allocation wants;
* ``changed``  - both exist but the server's count differs from the allocated sum;
* ``host_held_elsewhere`` - a host id VLM allocates (pending, applied or failed) is held by a
  reservation group VLM does not own (the detail names the group);
* ``over_committed`` - pool portions of a server feature exceed total - reserved_by_others
  (``deficit`` says by how much). Nothing is ever deleted because of it.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from vlm.context import ServiceContext
from vlm.sync import store_queries as q

KINDS = ("missing", "extra", "changed", "host_held_elsewhere", "over_committed")
REPORT_COLUMNS = [
    "server_id",
    "kind",
    "host_type",
    "host_id",
    "feature_name",
    "feature_version",
    "expected",
    "actual",
    "deficit",
    "detail",
]


def drift_report(ctx: ServiceContext, server_id: int | None = None) -> pd.DataFrame:
    """Current drift of one server (or all), computed from allocations, mirror and portions."""
    return q.drift_rows(ctx.db, server_id)[REPORT_COLUMNS]


def over_committed(ctx: ServiceContext, server_id: int | None = None) -> pd.DataFrame:
    """The over-committed server features with their deficit (empty when all is well)."""
    report = drift_report(ctx, server_id)
    return report[report["kind"] == "over_committed"].reset_index(drop=True)


def store_conflicts(ctx: ServiceContext, server_id: int) -> int:
    """Replace the server's rows in sync_conflicts with its current drift; returns their count."""

    def store(cur: duckdb.DuckDBPyConnection) -> int:
        report = drift_report(ctx, server_id)
        q.replace_conflicts(cur, server_id, report)
        return len(report)

    return ctx.db.write(store)
