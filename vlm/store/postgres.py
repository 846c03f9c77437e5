"""PostgreSQL behind the same Database interface as DuckDB: a psycopg pool, writes serialised
across every replica by a transaction-level advisory lock, and a cursor that speaks the store's
DuckDB-flavoured calls (`?` parameters, `.df()`, `register`, DML row counts)."""

from __future__ import annotations

import csv
import functools
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypeVar

import pandas as pd
import psycopg
from psycopg.types.numeric import NumericLoader
from psycopg_pool import ConnectionPool, PoolTimeout

from vlm.dburl import redact_url
from vlm.store.csv import Params
from vlm.store.reads import CursorReads

T = TypeVar("T")

WRITE_LOCK_KEY = 0x564C4D  # "VLM": one advisory lock serialises every write transaction
GENERATION_SEQUENCE = "vlm_write_generation"

_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|\$(\w+)|\?|%")


@functools.lru_cache(maxsize=2048)
def to_psycopg(sql: str) -> str:
    """DuckDB placeholders (`?`, `$name`) as psycopg's (`%s`, `%(name)s`), literal `%` doubled;
    quoted strings, identifiers and comments are left alone."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "?":
            return "%s"
        if token == "%":
            return "%%"
        if match.group(1) is not None:
            return f"%({match.group(1)})s"
        return token.replace("%", "%%")

    return _TOKENS.sub(replace, sql)


class WholeNumericLoader(NumericLoader):
    """numeric as int when it is whole (SUM of integers), else float, like DuckDB's answers."""

    def load(self, data: Any) -> int | float:
        value: Decimal = super().load(data)
        return int(value) if value == value.to_integral_value() else float(value)


_PANDAS_TO_SQL = {"b": "BOOLEAN", "i": "BIGINT", "u": "BIGINT", "f": "DOUBLE PRECISION"}
_SQL_NAMES = {
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "bpchar": "VARCHAR",
    "bool": "BOOLEAN",
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "float4": "FLOAT",
    "float8": "DOUBLE",
    "numeric": "DECIMAL",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "date": "DATE",
    "interval": "INTERVAL",
    "json": "JSON",
    "jsonb": "JSON",
}
# The dtype DuckDB's .df() gives a column of each type: (without NULLs, with NULLs).
_FRAME_DTYPES = {
    "BOOLEAN": ("bool", "boolean"),
    "SMALLINT": ("int16", "Int16"),
    "INTEGER": ("int32", "Int32"),
    "BIGINT": ("int64", "Int64"),
    "FLOAT": ("float32", "float32"),
    "DOUBLE": ("float64", "float64"),
    "DECIMAL": ("float64", "float64"),
    "TIMESTAMP": ("datetime64[us]", "datetime64[us]"),
    "TIMESTAMP WITH TIME ZONE": ("datetime64[us, UTC]", "datetime64[us, UTC]"),
    "DATE": ("datetime64[us]", "datetime64[us]"),
    "INTERVAL": ("timedelta64[us]", "timedelta64[us]"),
}
_TEXT_TYPES = {"VARCHAR", "JSON"}


def frame_column(values: Sequence[Any], sql_type: str) -> pd.Series:
    """One column of a result as DuckDB's .df() types it: integers and booleans nullable only
    when a NULL is present, text as pandas infers it (object when empty or all NULL)."""
    has_null = any(value is None for value in values)
    if sql_type in _FRAME_DTYPES:
        dtype = _FRAME_DTYPES[sql_type][has_null]
        if dtype.startswith("datetime64[us, "):
            return pd.Series(pd.to_datetime(list(values), utc=True), dtype=dtype)
        return pd.Series(list(values), dtype=dtype)
    if sql_type in _TEXT_TYPES and values and not all(value is None for value in values):
        return pd.Series(list(values))
    return pd.Series(list(values), dtype=object)


def _frame_column_type(series: pd.Series) -> str:
    if pd.api.types.is_datetime64_any_dtype(series):
        return "TIMESTAMP"
    return _PANDAS_TO_SQL.get(series.dtype.kind, "TEXT")


# A frame goes to a temporary table as CSV written by pandas (no Python object per cell): every
# value but a number is quoted, and a missing one is this marker, which no stored text holds.
CSV_NULL = "\x01"


def _frame_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(
        index=False,
        header=False,
        quoting=csv.QUOTE_NONNUMERIC,
        na_rep=CSV_NULL,
        date_format="%Y-%m-%d %H:%M:%S.%f",
        lineterminator="\n",
    )


class DatabaseUnreachableError(RuntimeError):
    """No connection to the PostgreSQL server could be made (the message never shows a password)."""


class PgCursor:
    """A psycopg cursor with the calls the store makes on a DuckDB cursor."""

    dialect = "postgres"

    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cur = cursor

    def execute(self, sql: str, params: Params | None = None) -> PgCursor:
        """Run one statement with parameters, or a script of several without."""
        if not params:
            self._cur.execute(sql.encode())
        elif isinstance(params, dict):
            self._cur.execute(to_psycopg(sql), params)
        else:
            self._cur.execute(to_psycopg(sql), list(params))
        return self

    def executemany(self, sql: str, rows: Sequence[Params]) -> PgCursor:
        self._cur.executemany(to_psycopg(sql), [list(r) for r in rows])
        return self

    @property
    def description(self) -> list[tuple[str, str]] | None:
        """(name, DuckDB-style type name) per column, or None after a statement without rows."""
        if self._cur.description is None:
            return None
        types = self._cur.connection.adapters.types
        described = []
        for column in self._cur.description:
            info = types.get(column.type_code)
            name = info.name if info is not None else "text"
            described.append((column.name, _SQL_NAMES.get(name, name.upper())))
        return described

    def fetchall(self) -> list[tuple]:
        if self._cur.description is None:
            return [(self._cur.rowcount,)]
        return self._cur.fetchall()

    def fetchone(self) -> tuple | None:
        if self._cur.description is None:
            return (self._cur.rowcount,)
        return self._cur.fetchone()

    def df(self) -> pd.DataFrame:
        """The rows as a DataFrame with the dtypes DuckDB's .df() gives the same column types."""
        described = self.description or []
        rows = self._cur.fetchall()
        columns = list(zip(*rows, strict=True)) if rows else [()] * len(described)
        return pd.DataFrame(
            {
                position: frame_column(values, kind)
                for position, ((_, kind), values) in enumerate(zip(described, columns, strict=True))
            }
        ).set_axis([name for name, _ in described], axis=1)

    def register(self, name: str, frame: Any) -> None:
        """Expose a DataFrame (or Arrow table) to SQL as a temporary table for this transaction."""
        if not isinstance(frame, pd.DataFrame):
            frame = frame.to_pandas()
        table = psycopg.sql.Identifier(name)
        columns = psycopg.sql.SQL(", ").join(
            psycopg.sql.SQL("{} {}").format(
                psycopg.sql.Identifier(str(c)), psycopg.sql.SQL(_frame_column_type(frame[c]))
            )
            for c in frame.columns
        )
        self._cur.execute(psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(table))
        self._cur.execute(psycopg.sql.SQL("CREATE TEMP TABLE {} ({})").format(table, columns))
        if frame.empty:
            return
        every_column = psycopg.sql.SQL(", ").join(
            psycopg.sql.Identifier(str(c)) for c in frame.columns
        )
        copy_sql = psycopg.sql.SQL(
            "COPY {} FROM STDIN (FORMAT csv, NULL {}, FORCE_NULL ({}))"
        ).format(table, psycopg.sql.Literal(CSV_NULL), every_column)
        with self._cur.copy(copy_sql) as copy:
            copy.write(_frame_csv(frame))

    def unregister(self, name: str) -> None:
        self._cur.execute(
            psycopg.sql.SQL("DROP TABLE IF EXISTS {}").format(psycopg.sql.Identifier(name))
        )

    def copy_csv(self, sql: str, params: Params) -> bytes:
        """The query's rows as CSV with a header, written by the server's COPY."""
        bound = psycopg.ClientCursor(self._cur.connection).mogrify(
            to_psycopg(sql), params if isinstance(params, dict) else list(params or ())
        )
        out = bytearray()
        with self._cur.copy(f"COPY ({bound}) TO STDOUT (FORMAT csv, HEADER)") as copy:
            for chunk in copy:
                out += chunk
        return bytes(out)


def _configure(conn: psycopg.Connection) -> None:
    conn.adapters.register_loader("numeric", WholeNumericLoader)


class PostgresDatabase(CursorReads):
    """A pool of connections to one PostgreSQL database shared by every VLM replica."""

    dialect = "postgres"

    def __init__(self, url: str, *, min_size: int = 1, max_size: int = 8) -> None:
        self.url = url
        self.path = redact_url(url)
        self._pool = ConnectionPool(
            url,
            min_size=min_size,
            max_size=max_size,
            kwargs={"autocommit": True, "options": "-c timezone=UTC"},
            configure=_configure,
            open=False,
            name="vlm",
        )
        try:
            self._pool.open(wait=True, timeout=15)
        except PoolTimeout:
            self._pool.close()
            raise DatabaseUnreachableError(f"cannot reach the database {self.path}") from None
        self._write_lock = threading.RLock()
        self._local = threading.local()
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", [WRITE_LOCK_KEY])
            conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {GENERATION_SEQUENCE}")

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection]:
        """A pooled connection (autocommit) for work outside the store's calls (locks, LISTEN)."""
        with self._pool.connection() as conn:
            yield conn

    @contextmanager
    def own_connection(self) -> Iterator[psycopg.Connection]:
        """A connection of its own, outside the pool (autocommit), for a lock held across many
        store calls: a pooled one held there would leave those calls fewer to share, and passes
        on many servers at once would wait on each other for the last ones."""
        with psycopg.connect(self.url, autocommit=True, options="-c timezone=UTC") as conn:
            yield conn

    @contextmanager
    def _cursor(self) -> Iterator[PgCursor]:
        cur = getattr(self._local, "write_cursor", None)
        if cur is not None:
            yield cur
            return
        with self._pool.connection() as conn, conn.cursor() as own:
            yield PgCursor(own)

    @property
    def generation(self) -> int:
        """Moves on every committed write by any replica (caches compare it)."""
        with self._cursor() as cur:
            row = cur.execute(f"SELECT last_value FROM {GENERATION_SEQUENCE}").fetchone()
        return int(row[0]) if row else 0

    def write(self, fn: Callable[[PgCursor], T]) -> T:
        """Run fn in one transaction; the advisory lock makes writes of all replicas take turns."""
        with self._write_lock:
            outer = getattr(self._local, "write_cursor", None)
            if outer is not None:
                return fn(outer)
            with self._pool.connection() as conn, conn.transaction(), conn.cursor() as raw:
                cur = PgCursor(raw)
                cur.execute("SELECT pg_advisory_xact_lock(?)", [WRITE_LOCK_KEY])
                cur.execute(f"SELECT nextval('{GENERATION_SEQUENCE}')")
                self._local.write_cursor = cur
                try:
                    return fn(cur)
                finally:
                    self._local.write_cursor = None

    def execute_script(self, sql: str) -> None:
        with self._write_lock, self._pool.connection() as conn:
            conn.execute(sql)

    def close(self) -> None:
        self._pool.close()
