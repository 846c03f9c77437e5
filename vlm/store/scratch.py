"""An in-memory DuckDB of this process for SQL over rows already read (DataFrames, Arrow)."""

from __future__ import annotations

import functools

import duckdb


@functools.cache
def scratch_duckdb() -> duckdb.DuckDBPyConnection:
    """The process's scratch DuckDB, in memory; give each use a cursor of its own (a cursor is
    one connection: what it registers is seen by it only)."""
    return duckdb.connect(":memory:", config={"threads": 2})
