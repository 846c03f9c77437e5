"""Bulk rows as DataFrames for SQL: typed frames, registering them for a statement, counts.

Bulk data always travels as a registered DataFrame or Arrow table (`INSERT ... SELECT FROM frame`);
a few rows (up to FEW_ROWS) go as parameters of one statement per row (`executemany`), which
costs less than registering them and joining.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa

NOW = "current_timestamp::TIMESTAMP"

# Up to this many rows, one statement per row beats registering them (about 0.5 ms a statement
# on DuckDB against 1-2 ms for registering and joining).
FEW_ROWS = 8


def frame(rows: list[tuple], dtypes: dict[str, str]) -> pd.DataFrame:
    """A DataFrame with fixed column types, also when there are no rows (built column by
    column: about twice as fast as from_records + astype for the mirror's 10,000s of rows)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(dtypes)
    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=dtype)
            for (name, dtype), values in zip(dtypes.items(), columns, strict=True)
        }
    )


def arrow_table(rows: list[tuple], types: dict[str, pa.DataType]) -> pa.Table:
    """The rows (in the order of `types`) as an Arrow table (cheaper to register than a frame)."""
    columns = list(zip(*rows, strict=True)) if rows else [()] * len(types)
    return pa.table(
        {
            name: pa.array(values, kind)
            for (name, kind), values in zip(types.items(), columns, strict=True)
        }
    )


def execute_for_rows(
    cur: duckdb.DuckDBPyConnection,
    rows: Sequence[tuple],
    each: tuple[str, Callable[[tuple], Sequence[Any]]],
    bulk: tuple[str, Sequence[Any], str, dict[str, pa.DataType]],
) -> None:
    """Run a write for the rows: up to FEW_ROWS one statement per row (`each`: its SQL and the
    parameters of a row), more with the rows registered once (`bulk`: its SQL, parameters, the
    table name it reads and the rows' column types)."""
    if not rows:
        return
    if len(rows) <= FEW_ROWS:
        sql, params_of = each
        cur.executemany(sql, [params_of(row) for row in rows])
        return
    sql, params, name, types = bulk
    with registered(cur, name, arrow_table(list(rows), types)):
        cur.execute(sql, params)


@contextmanager
def registered(
    cur: duckdb.DuckDBPyConnection, name: str, df: pd.DataFrame | pa.Table
) -> Iterator[None]:
    """Expose df to SQL as `name` for the duration of the block."""
    cur.register(name, df)
    try:
        yield
    finally:
        cur.unregister(name)


def affected(result: duckdb.DuckDBPyConnection) -> int:
    """The row count a DuckDB INSERT/UPDATE/DELETE reports (0 when it reports none)."""
    rows = result.fetchall()
    return int(rows[0][0]) if rows else 0
