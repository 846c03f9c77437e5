"""CSV export with spreadsheet formula injection neutralised (docs/architecture.md §8).

CSV is written by the database: straight from SQL for the big exports (no DataFrame at all), and
from a registered DataFrame for any table a page shows. Text cells that a spreadsheet would
run as a formula get a leading single quote: those starting with = + - @ (also after leading
whitespace or a newline), a tab or a carriage return. Empty text is written like NULL (an empty
cell) and booleans as True/False, as pandas writes them. Repeated headers get a number.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from vlm.context import ServiceContext
from vlm.domain import Actor
from vlm.services import allocations, pools, reports, servers
from vlm.store import csv as csv_store
from vlm.store import reports as store
from vlm.store.csv import Params

# A formula sign, possibly after blanks or line breaks, or a leading tab / carriage return.
# The same pattern runs in Python's re, DuckDB's RE2 and PostgreSQL's ARE (all read its escapes).
FORMULA_PATTERN = r"^[ \t\n\r\f\v\xa0]*[=+\-@]|^[\t\r]"
_FORMULA_FIRST = ("=", "+", "-", "@", " ", "\t", "\n", "\r", "\f", "\v", "\xa0")


def unique_headers(columns: object) -> list[str]:
    """Column names as text, unique regardless of case: name, name (2), name (3) …"""
    taken: set[str] = set()
    headers: list[str] = []
    for position, column in enumerate(columns, start=1):  # type: ignore[call-overload]
        base = str(column) or f"column {position}"
        header, copy = base, 1
        while header.lower() in taken:
            copy += 1
            header = f"{base} ({copy})"
        taken.add(header.lower())
        headers.append(header)
    return headers


def safe_csv_sql(columns: list[tuple[str, str]], sql: str, dialect: str = "duckdb") -> str:
    """The query wrapped so that its text cells are formula-safe (row order kept) on the
    dialect's engine."""
    return csv_store.formula_safe_sql(columns, sql, FORMULA_PATTERN, _FORMULA_FIRST, dialect)


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV, safe to open in a spreadsheet; repeated headers are numbered."""
    headers = unique_headers(frame.columns)
    if headers != list(frame.columns):
        frame = frame.set_axis(headers, axis=1)
    return csv_store.write_frame_csv(frame, FORMULA_PATTERN, _FORMULA_FIRST)


def query_count(ctx: ServiceContext, sql: str, params: Params) -> int:
    """How many rows a query returns (without fetching or sorting them)."""
    return store.row_count(ctx.db, sql, params)


def query_preview(ctx: ServiceContext, sql: str, params: Params, limit: int) -> pd.DataFrame:
    """The query's first rows only."""
    return store.first_rows(ctx.db, sql, params, limit)


def query_csv(
    ctx: ServiceContext, sql: str, params: Params, headers: Mapping[str, str] | None = None
) -> bytes:
    """A query's rows as formula-safe CSV, written by DuckDB straight from SQL; given headers
    (column name -> header), with only those columns, renamed, in that order."""
    if headers is not None:
        sql = csv_store.with_headers(sql, headers)
    safe = safe_csv_sql(ctx.db.describe(sql, params), sql, ctx.db.dialect)
    return ctx.db.query_csv(safe, params)


def pools_with_features(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    return pools.pool_features(ctx, actor)


def allocations_export(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    return allocations.visible_allocations(ctx, actor)


def allocations_csv(ctx: ServiceContext, actor: Actor) -> bytes:
    """Every allocation the actor may see as formula-safe CSV, written straight from SQL."""
    return query_csv(ctx, *allocations.visible_allocations_query(actor))


def server_features_export(ctx: ServiceContext, actor: Actor) -> pd.DataFrame:
    return servers.server_features(ctx, actor)


def utilization_export(ctx: ServiceContext, actor: Actor, days: int = 90) -> pd.DataFrame:
    return reports.utilization_history(ctx, actor, days)


def utilization_csv(ctx: ServiceContext, actor: Actor, days: int = 90) -> bytes:
    """The utilization history of the last days as CSV, written straight from SQL."""
    return query_csv(ctx, *reports.utilization_history_query(actor, days))
