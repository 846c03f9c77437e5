"""CSV written by DuckDB itself: a query's rows become file bytes without a DataFrame."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb

Params = Sequence[Any] | Mapping[str, Any]


def describe(
    cur: duckdb.DuckDBPyConnection, sql: str, params: Params = ()
) -> list[tuple[str, str]]:
    """(name, DuckDB type) of every column the query returns."""
    description = cur.execute(f"SELECT * FROM ({sql}) LIMIT 0", params).description or []
    return [(str(column[0]), str(column[1])) for column in description]


def write_csv(cur: duckdb.DuckDBPyConnection, sql: str, params: Params = ()) -> bytes:
    """The query's rows as UTF-8 CSV with a header (quotes only where needed, NULL empty)."""
    with tempfile.TemporaryDirectory(prefix="vlm-csv-") as directory:
        path = Path(directory) / "rows.csv"
        target = str(path).replace("'", "''")
        cur.execute(f"COPY ({sql}) TO '{target}' (FORMAT csv, HEADER)", params)
        return path.read_bytes()
