"""CSV written by DuckDB itself: a query's rows become file bytes without a DataFrame.

The formula-safe forms wrap a query so that text cells a spreadsheet would run as a formula get
a leading single quote. The caller (services/exports.py) gives the rule: the regular expression
of a risky cell and the characters such a cell can start with (a cheap pre-check).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from vlm.store.scratch import scratch_duckdb

Params = Sequence[Any] | Mapping[str, Any]


def describe(
    cur: duckdb.DuckDBPyConnection, sql: str, params: Params = ()
) -> list[tuple[str, str]]:
    """(name, DuckDB type) of every column the query returns."""
    description = (
        cur.execute(f"SELECT * FROM ({sql}) AS described LIMIT 0", params).description or []
    )
    return [(str(column[0]), str(column[1])) for column in description]


def dialect_of(cur: Any) -> str:
    """The engine behind a cursor: PostgreSQL's cursor says so, DuckDB's has no such mark."""
    return getattr(cur, "dialect", "duckdb")


# DuckDB writes a CSV to a file first: memory-backed /dev/shm when it has plenty of room (a
# 36 MB file on the disk-backed temp folder cost ~35 ms more to write and remove), else the
# temp folder, also when a CSV outgrows /dev/shm's room.
SHM_DIR = "/dev/shm"
SHM_MIN_FREE = 1 << 30


def scratch_dir() -> str | None:
    """/dev/shm when it is there, writable and has SHM_MIN_FREE bytes free; else None (the
    temp folder)."""
    try:
        stats = os.statvfs(SHM_DIR)
    except OSError:
        return None
    roomy = stats.f_bavail * stats.f_frsize >= SHM_MIN_FREE
    return SHM_DIR if roomy and os.access(SHM_DIR, os.W_OK | os.X_OK) else None


def write_csv(cur: duckdb.DuckDBPyConnection, sql: str, params: Params = ()) -> bytes:
    """The query's rows as UTF-8 CSV with a header (quotes only where needed, NULL empty),
    written by the engine itself (PostgreSQL's COPY to the client, DuckDB's to a file)."""
    if dialect_of(cur) == "postgres":
        return cur.copy_csv(sql, params)
    folder = scratch_dir()
    try:
        return _copy_to_file(cur, sql, params, folder)
    except duckdb.IOException:
        if folder is None:
            raise
        return _copy_to_file(cur, sql, params, None)


def _copy_to_file(
    cur: duckdb.DuckDBPyConnection, sql: str, params: Params, folder: str | None
) -> bytes:
    """DuckDB's CSV of the query, written to a new file in folder (None: the temp folder)."""
    with tempfile.TemporaryDirectory(prefix="vlm-csv-", dir=folder) as directory:
        path = Path(directory) / "rows.csv"
        target = str(path).replace("'", "''")
        cur.execute(f"COPY ({sql}) TO '{target}' (FORMAT csv, HEADER)", params)
        return path.read_bytes()


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


# Whether text matches a regular expression: DuckDB's RE2 function, PostgreSQL's operator.
REGEX_MATCH = {
    "duckdb": "regexp_matches({text}, '{pattern}')",
    "postgres": "{text} ~ '{pattern}'",
}

# Whether text lies in [lo, hi) byte by byte (UTF-8 keeps the order of code points): DuckDB
# compares text so by default, PostgreSQL in the "C" collation. Plain comparisons keep the
# wrapped query's row order: DuckDB plans a long IN list as a join, which may not.
TEXT_IN_RANGE = {
    "duckdb": "({text} >= '{lo}' AND {text} < '{hi}')",
    "postgres": """({text} COLLATE "C" >= '{lo}' AND {text} COLLATE "C" < '{hi}')""",
}


def first_char_ranges(first_chars: Iterable[str]) -> list[tuple[str, str]]:
    """Half-open ranges [lo, hi) holding every text that starts with one of first_chars: one
    per run of them, runs with no letter or digit between them merged (few texts start with
    those others, and such a text only costs a regular expression that then does not match)."""
    runs: list[list[int]] = []
    for code in sorted({ord(c) for c in first_chars}):
        if runs and not any(chr(c).isalnum() for c in range(runs[-1][1], code)):
            runs[-1][1] = code + 1
        else:
            runs.append([code, code + 1])
    return [(chr(lo), chr(hi)) for lo, hi in runs]


def _literal(text: str) -> str:
    return text.replace("'", "''")


def _starts_risky(text: str, ranges: Sequence[tuple[str, str]], dialect: str) -> str:
    """Whether text starts with a character a risky cell can start with (a cheap pre-check)."""
    tests = (
        TEXT_IN_RANGE[dialect].format(text=text, lo=_literal(lo), hi=_literal(hi))
        for lo, hi in ranges
    )
    return "(" + " OR ".join(tests) + ")"


# A double as DuckDB (and Python's repr) writes it: whole numbers below 1e16 with ".0", and
# nan, inf, -inf; PostgreSQL would write 100, 1e+15 and NaN, Infinity, -Infinity.
POSTGRES_DOUBLE_TEXT = """CASE WHEN {column} = 'NaN' THEN 'nan'
    WHEN {column} = 'Infinity' THEN 'inf' WHEN {column} = '-Infinity' THEN '-inf'
    WHEN {column} = trunc({column}) AND abs({column}) < 1e16
        THEN CAST(CAST({column} AS BIGINT) AS VARCHAR) || '.0'
    ELSE CAST({column} AS VARCHAR) END"""


def _safe_column(
    name: str,
    sql_type: str,
    pattern: str,
    ranges: Sequence[tuple[str, str]],
    dialect: str = "duckdb",
) -> str:
    """A column as written to CSV: risky text quoted, empty text NULL, booleans True/False,
    doubles as DuckDB writes them."""
    column = _identifier(name)
    if sql_type == "VARCHAR" or sql_type.startswith("ENUM"):
        text = f"CAST({column} AS VARCHAR)"
        matches = REGEX_MATCH[dialect].format(text=text, pattern=pattern)
        risky = f"{_starts_risky(text, ranges, dialect)} AND {matches}"
        return f"CASE WHEN {risky} THEN '''' || {text} ELSE NULLIF({text}, '') END AS {column}"
    if sql_type == "BOOLEAN":
        return f"CASE WHEN {column} THEN 'True' WHEN NOT {column} THEN 'False' END AS {column}"
    if sql_type == "DOUBLE" and dialect == "postgres":
        return f"{POSTGRES_DOUBLE_TEXT.format(column=column)} AS {column}"
    return column


def formula_safe_sql(
    columns: Sequence[tuple[str, str]],
    sql: str,
    pattern: str,
    first_chars: Iterable[str],
    dialect: str = "duckdb",
) -> str:
    """The query, whose columns are given as (name, DuckDB type), wrapped so that text cells
    matching pattern get a leading quote (row order kept); dialect is the engine that runs it."""
    ranges = first_char_ranges(first_chars)
    selected = ", ".join(_safe_column(n, t, pattern, ranges, dialect) for n, t in columns)
    return f"""SELECT {selected} FROM ({sql}) AS export_rows"""


def with_headers(sql: str, headers: Mapping[str, str]) -> str:
    """The query with its columns renamed (column name -> header), in the order given."""
    columns = ", ".join(f"{_identifier(c)} AS {_identifier(h)}" for c, h in headers.items())
    return f"""SELECT {columns} FROM ({sql}) AS people_rows"""


def write_formula_safe_csv(
    cur: duckdb.DuckDBPyConnection,
    sql: str,
    params: Params,
    pattern: str,
    first_chars: Iterable[str],
) -> bytes:
    """The query's rows as formula-safe UTF-8 CSV."""
    columns = describe(cur, sql, params)
    safe = formula_safe_sql(columns, sql, pattern, first_chars, dialect_of(cur))
    return write_csv(cur, safe, params)


def write_frame_csv(frame: pd.DataFrame, pattern: str, first_chars: Iterable[str]) -> bytes:
    """A DataFrame's rows as formula-safe UTF-8 CSV, written by a scratch in-memory DuckDB."""
    with scratch_duckdb().cursor() as cur:
        cur.register("export_frame", frame)
        return write_formula_safe_csv(
            cur, """SELECT * FROM export_frame""", (), pattern, first_chars
        )
