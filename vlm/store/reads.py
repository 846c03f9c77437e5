"""The reads both database engines offer, over a `_cursor()` each engine provides."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any

import pandas as pd

from vlm.store.csv import Params, describe, write_csv


class CursorReads:
    """Reads on the open write's cursor of this thread, else on a fresh cursor (see `_cursor`)."""

    def _cursor(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def query_df(self, sql: str, params: Params = ()) -> pd.DataFrame:
        """Run a read and return a fully fetched DataFrame."""
        with self._cursor() as cur:
            return cur.execute(sql, params).df()

    def query(self, sql: str, params: Params = ()) -> list[tuple]:
        """Run a read and return all rows as tuples."""
        with self._cursor() as cur:
            return cur.execute(sql, params).fetchall()

    def query_dicts(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        """Run a read and return rows as dicts keyed by column name."""
        with self._cursor() as cur:
            result = cur.execute(sql, params)
            names = [d[0] for d in result.description or []]
            return [dict(zip(names, row, strict=True)) for row in result.fetchall()]

    def query_csv(self, sql: str, params: Params = ()) -> bytes:
        """Run a read and return its rows as CSV bytes written by the engine (store/csv.py)."""
        with self._cursor() as cur:
            return write_csv(cur, sql, params)

    def describe(self, sql: str, params: Params = ()) -> list[tuple[str, str]]:
        """(name, DuckDB-style type) of the columns a query returns, without running it fully."""
        with self._cursor() as cur:
            return describe(cur, sql, params)

    def scalar(self, sql: str, params: Params = ()) -> Any:
        rows = self.query(sql, params)
        return rows[0][0] if rows else None
