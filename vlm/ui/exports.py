"""The Export page's datasets, which roles may download each, and how each is fetched.

Large datasets (allocations, utilization history) are counted and previewed in SQL and their
CSV is written by DuckDB only when the download is clicked, so the page never loads them whole.
Counts, small frames and headers are kept until the next write (vlm.ui.memo).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import Actor, Role
from vlm.services import allocations, exports, reports
from vlm.ui.local_time import is_timestamp_column, server_zone, user_zone, zone_label
from vlm.ui.memo import per_generation
from vlm.ui.session import PageContext
from vlm.ui.widgets import for_people, label

UTILIZATION_DAYS = 90
PREVIEW_ROWS = 200
Query = tuple[str, list[object]]


@dataclass(frozen=True)
class Export:
    """A dataset given either as a (small) frame or as a (possibly large) SQL query."""

    title: str
    file_name: str
    description: str
    roles: frozenset[Role]
    frame: Callable[[ServiceContext, Actor], pd.DataFrame] | None = None
    query: Callable[[Actor], Query] | None = None
    counter: Callable[[ServiceContext, Actor], int] | None = None

    def count(self, page: PageContext) -> int:
        hour = datetime.now().replace(minute=0, second=0, microsecond=0)  # windows move hourly
        return per_generation(
            page, f"export: count {self.file_name}", lambda: self._count(page), hour
        )

    def _count(self, page: PageContext) -> int:
        if self.counter is not None:
            return self.counter(page.ctx, page.actor)
        if self.query is not None:
            return exports.query_count(page.ctx, *self.query(page.actor))
        return len(self._frame(page))

    def preview(self, page: PageContext) -> pd.DataFrame:
        if self.query is not None:
            sql, params = self.query(page.actor)
            return exports.query_preview(page.ctx, sql, params, PREVIEW_ROWS)
        return self._frame(page).head(PREVIEW_ROWS)

    def csv(self, page: PageContext) -> Callable[[], bytes]:
        """The CSV for people (readable headers, times in the user's zone), built when the
        download is clicked (in Streamlit's download thread)."""
        ctx = page.ctx
        if self.query is not None:
            sql, params = self.query(page.actor)
            headers = self._query_headers(page, sql, params)
            return lambda: exports.query_csv(ctx, sql, params, headers)
        shown = per_generation(
            page,
            f"export: for people {self.file_name}",
            lambda: for_people(self._frame(page)),
            zone_label(user_zone()),
        )
        return lambda: exports.to_csv_bytes(shown)

    def raw_csv(self, page: PageContext) -> Callable[[], bytes]:
        """The CSV with the machine column names and stored times, for scripts."""
        ctx, actor = page.ctx, page.actor
        if self.query is not None:
            sql, params = self.query(actor)
            return lambda: exports.query_csv(ctx, sql, params)
        frame = self.frame
        assert frame is not None
        return lambda: exports.to_csv_bytes(frame(ctx, actor))

    def _query_headers(self, page: PageContext, sql: str, params: list[object]) -> dict[str, str]:
        """Readable headers of a query's columns; its times stay in the server's zone."""
        zone = zone_label(server_zone())

        def read() -> dict[str, str]:
            empty = exports.query_preview(page.ctx, sql, params, 0)
            return {
                str(c): f"{label(str(c))} ({zone})"
                if is_timestamp_column(empty[c])
                else label(str(c))
                for c in empty.columns
            }

        return per_generation(page, f"export: headers {self.file_name}", read, zone)

    def _frame(self, page: PageContext) -> pd.DataFrame:
        frame = self.frame
        assert frame is not None
        return per_generation(
            page, f"export: frame {self.file_name}", lambda: frame(page.ctx, page.actor)
        )


EXPORTS = (
    Export(
        "Pools",
        "pools",
        "Every pool you may see with each feature: quantity, allocated, available, failed.",
        frozenset(Role),
        frame=exports.pools_with_features,
    ),
    Export(
        "Allocations",
        "allocations",
        "Every allocation of those pools: host, count, description, state, server.",
        frozenset(Role),
        query=allocations.visible_allocations_query,
    ),
    Export(
        "Server features",
        "server-features",
        "Each license server feature: total, used, reserved, pooled, poolable, expiry.",
        frozenset({Role.ADMIN, Role.ANALYST}),
        frame=exports.server_features_export,
    ),
    Export(
        "Utilization history",
        "utilization-history",
        f"Change-only utilization snapshots of the last {UTILIZATION_DAYS} days.",
        frozenset({Role.ADMIN, Role.ANALYST}),
        query=lambda actor: reports.utilization_history_query(actor, UTILIZATION_DAYS),
        counter=lambda ctx, actor: reports.utilization_history_count(ctx, actor, UTILIZATION_DAYS),
    ),
)


def available_exports(page: PageContext) -> list[Export]:
    return [e for e in EXPORTS if page.actor.role in e.roles]
