"""Moving a DuckDB installation to PostgreSQL: every table copied with COPY in one transaction on
the target, the id sequences moved on, and each table verified (row count and a checksum of every
column) before the transaction commits; a difference rolls the whole copy back."""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import psycopg
import pyarrow
import pyarrow.csv

from vlm.store.database import database_locked
from vlm.store.postgres import GENERATION_SEQUENCE, WRITE_LOCK_KEY, PgCursor, PostgresDatabase

BATCH_ROWS = 100_000
SKIPPED_TABLES = frozenset({"schema_migrations"})  # the target's own migrations wrote it

Progress = Callable[[str], None]

_NEXTVAL = re.compile(r"nextval\('([^']+)'")
_CSV_OPTIONS = pyarrow.csv.WriteOptions(include_header=False, quoting_style="needed")

_SOURCE_COLUMNS = """
    SELECT c.table_name, c.column_name, c.data_type, c.column_default
    FROM information_schema.columns AS c
    JOIN information_schema.tables AS t
      ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE'
    ORDER BY c.table_name, c.ordinal_position
"""
_TARGET_COLUMNS = """
    SELECT c.table_name, c.column_name
    FROM information_schema.columns AS c
    JOIN information_schema.tables AS t
      ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE'
    ORDER BY c.table_name, c.ordinal_position
"""
_SOURCE_SEQUENCES = (
    "SELECT sequence_name, COALESCE(last_value, 0) FROM duckdb_sequences() "
    "WHERE schema_name = 'main' ORDER BY sequence_name"
)
_TARGET_SEQUENCES = (
    "SELECT sequence_name FROM information_schema.sequences "
    "WHERE sequence_schema = current_schema()"
)
_VERSIONS = "SELECT version FROM schema_migrations"

_INTEGER_TYPES = frozenset(
    {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT"}
    | {"UTINYINT", "USMALLINT", "UINTEGER", "UBIGINT", "UHUGEINT"}
)
_NAN = "CAST('NaN' AS DOUBLE PRECISION)"
_MD5_NUMBER = {
    "duckdb": "CAST(('0x' || substr(md5({c}), 1, 15)) AS BIGINT)",
    "postgres": "CAST(CAST('x' || lpad(substr(md5({c}), 1, 15), 16, '0') AS BIT(64)) AS BIGINT)",
}
_EPOCH_MICROSECONDS = {
    "duckdb": "epoch_us({c})",
    "postgres": "CAST(EXTRACT(EPOCH FROM {c}) * 1000000 AS BIGINT)",
}


class MoveRefusedError(RuntimeError):
    """The move did not start, and nothing was written to the target."""


class MoveFailedError(RuntimeError):
    """The copy failed part way; its transaction was rolled back, so the target holds nothing."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    default: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    rows: int


@dataclass(frozen=True)
class Figure:
    """One number computed alike on both engines: a row count, a sum, a checksum."""

    label: str
    duckdb: str
    postgres: str
    exact: bool = True

    def sql(self, dialect: str) -> str:
        return self.duckdb if dialect == "duckdb" else self.postgres


@dataclass(frozen=True)
class TableCheck:
    """What verification found for one table."""

    table: str
    source_rows: int
    target_rows: int
    figures: int
    differences: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass(frozen=True)
class MoveReport:
    """The tables copied and verified, the sequences moved on, and whether the copy was kept."""

    checks: tuple[TableCheck, ...]
    sequences: dict[str, int]
    kept: bool

    @property
    def ok(self) -> bool:
        return self.kept and all(check.ok for check in self.checks)

    def lines(self) -> list[str]:
        """The report as a fixed-width table, then the sequences and any differences."""
        width = max([len("table"), *(len(c.table) for c in self.checks)])
        lines = [
            f"{'table':<{width}}  {'source rows':>12}  {'target rows':>12}  {'checks':>6}  result"
        ]
        for check in self.checks:
            lines.append(
                f"{check.table:<{width}}  {check.source_rows:>12,}  {check.target_rows:>12,}  "
                f"{check.figures:>6}  {'ok' if check.ok else 'DIFFERS'}"
            )
        moved = ", ".join(f"{name} {value}" for name, value in sorted(self.sequences.items()))
        lines.append(f"sequences moved on: {moved or 'none'}")
        lines.extend(f"difference: {d}" for check in self.checks for d in check.differences)
        return lines


def quoted(name: str) -> str:
    """An identifier quoted for both engines."""
    return '"' + name.replace('"', '""') + '"'


def open_source(path: str) -> duckdb.DuckDBPyConnection:
    """The DuckDB installation, read-only; DatabaseLockedError while the app holds the file."""
    if not Path(path).is_file():
        raise MoveRefusedError(f"there is no DuckDB database at {path}")
    try:
        return duckdb.connect(path, read_only=True)
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise database_locked(path) from exc
        raise MoveRefusedError(f"cannot open {path} as a DuckDB database: {exc}") from None


def source_tables(source: duckdb.DuckDBPyConnection) -> list[Table]:
    """Every table of the source (but schema_migrations) with its columns and row count."""
    columns: dict[str, list[Column]] = {}
    for table, name, kind, default in source.execute(_SOURCE_COLUMNS).fetchall():
        columns.setdefault(table, []).append(Column(name, kind, default))
    return [
        Table(
            name, tuple(cols), source.execute(f"SELECT COUNT(*) FROM {quoted(name)}").fetchone()[0]
        )
        for name, cols in columns.items()
        if name not in SKIPPED_TABLES
    ]


def _versions(rows: list[tuple]) -> set[int]:
    return {int(row[0]) for row in rows}


def source_versions(source: duckdb.DuckDBPyConnection) -> set[int]:
    """The migrations applied to the source; refused when it is no VLM database."""
    try:
        return _versions(source.execute(_VERSIONS).fetchall())
    except duckdb.CatalogException:
        raise MoveRefusedError(
            "the source is not a VLM database (it has no schema_migrations)"
        ) from None


def _schema_problems(tables: list[Table], target_columns: dict[str, set[str]]) -> list[str]:
    problems = []
    for table in tables:
        missing = [
            c.name for c in table.columns if c.name not in target_columns.get(table.name, ())
        ]
        if table.name not in target_columns:
            problems.append(f"the target has no table {table.name}")
        elif missing:
            problems.append(f"the target's {table.name} lacks {', '.join(missing)}")
    return problems


def check_schemas(
    source: duckdb.DuckDBPyConnection, target: PostgresDatabase, tables: list[Table]
) -> None:
    """Refuse unless source and target are at the same migration and hold the same columns."""
    have, want = source_versions(source), _versions(target.query(_VERSIONS))
    if have != want:
        if max(have, default=0) < max(want, default=0):
            raise MoveRefusedError(
                f"the source is at schema version {max(have, default=0)}, this VLM at "
                f"{max(want, default=0)}: start this VLM version on the source once (it upgrades "
                "the file), stop it, then move it"
            )
        raise MoveRefusedError(
            f"the source (schema versions {sorted(have)}) does not match this VLM "
            f"({sorted(want)}): move it with the VLM version that wrote it"
        )
    target_columns: dict[str, set[str]] = {}
    for table, column in target.query(_TARGET_COLUMNS):
        target_columns.setdefault(table, set()).add(column)
    problems = _schema_problems(tables, target_columns)
    if problems:
        raise MoveRefusedError("; ".join(problems))


def sequence_positions(source: duckdb.DuckDBPyConnection, tables: list[Table]) -> dict[str, int]:
    """Where each id sequence must stand: its last value in the source, at least the highest id
    of a column it numbers."""
    positions = {name: int(last) for name, last in source.execute(_SOURCE_SEQUENCES).fetchall()}
    for table in tables:
        for column in table.columns:
            match = _NEXTVAL.search(column.default or "")
            if match:
                highest = source.execute(
                    f"SELECT COALESCE(MAX({quoted(column.name)}), 0) FROM {quoted(table.name)}"
                ).fetchone()[0]
                positions[match.group(1)] = max(positions.get(match.group(1), 0), int(highest))
    return positions


def check_sequences(target: PostgresDatabase, positions: dict[str, int]) -> None:
    """Refuse unless the target has every sequence the source numbers its rows with."""
    missing = sorted(set(positions) - {row[0] for row in target.query(_TARGET_SEQUENCES)})
    if missing:
        raise MoveRefusedError(f"the target has no sequence {', '.join(missing)}")


def occupied_tables(cur: psycopg.Cursor, tables: list[str]) -> list[str]:
    """The tables among these that hold at least one row."""
    return [
        name
        for name in tables
        if cur.execute(f"SELECT EXISTS (SELECT 1 FROM {quoted(name)})").fetchone()[0]
    ]


def _csv(batch: pyarrow.RecordBatch) -> bytes:
    """A batch as PostgreSQL's CSV: every string quoted, so only a NULL is an empty field."""
    out = io.BytesIO()
    pyarrow.csv.write_csv(batch, out, _CSV_OPTIONS)
    return out.getvalue()


def copy_table(
    source: duckdb.DuckDBPyConnection, cur: psycopg.Cursor, table: Table, progress: Progress
) -> int:
    """Stream one table into the target with COPY, in batches; return the rows copied."""
    names = ", ".join(quoted(c.name) for c in table.columns)
    copied = 0
    with (
        source.cursor() as reading,
        cur.copy(f"COPY {quoted(table.name)} ({names}) FROM STDIN (FORMAT csv)") as copy,
    ):
        selected = reading.sql(f"SELECT {names} FROM {quoted(table.name)}")
        for batch in selected.to_arrow_reader(BATCH_ROWS):
            copy.write(_csv(batch))
            copied += batch.num_rows
            if copied < table.rows:
                progress(f"{table.name}: {copied:,} of {table.rows:,} rows")
    progress(f"{table.name}: {copied:,} rows copied")
    return copied


def move_sequences(cur: psycopg.Cursor, positions: dict[str, int]) -> dict[str, int]:
    """Set each used sequence so the target's next id follows the source's; return those set."""
    moved = {name: value for name, value in positions.items() if value >= 1}
    for name, value in moved.items():
        PgCursor(cur).execute("SELECT setval(CAST(? AS regclass), ?)", [name, value])
    return moved


def column_figures(column: Column) -> list[Figure]:
    """The numbers that must agree for one column: values present, and a sum fitting its type."""
    c = quoted(column.name)
    kind = column.type.upper()
    figures = [Figure(f"{column.name} values", f"COUNT({c})", f"COUNT({c})")]
    if kind in _INTEGER_TYPES:
        figures.append(Figure(f"{column.name} sum", f"SUM({c})", f"SUM({c})"))
    elif kind in {"FLOAT", "REAL", "DOUBLE"} or kind.startswith("DECIMAL"):
        number = f"SUM({c}) FILTER (WHERE {c} <> {_NAN})"
        figures.append(Figure(f"{column.name} sum", number, number, exact=False))
        nans = f"COUNT(*) FILTER (WHERE {c} = {_NAN})"
        figures.append(Figure(f"{column.name} NaNs", nans, nans))
    elif kind == "BOOLEAN":
        trues = f"COUNT(*) FILTER (WHERE {c})"
        figures.append(Figure(f"{column.name} trues", trues, trues))
    elif kind.startswith("TIMESTAMP") or kind == "DATE":
        moment = f"CAST({c} AS TIMESTAMP)" if kind == "DATE" else c
        figures.append(
            Figure(
                f"{column.name} microseconds",
                f"SUM({_EPOCH_MICROSECONDS['duckdb'].format(c=moment)})",
                f"SUM({_EPOCH_MICROSECONDS['postgres'].format(c=c)})",
            )
        )
    elif kind == "VARCHAR":
        length = f"SUM(LENGTH({c}))"
        figures.append(Figure(f"{column.name} characters", length, length))
        figures.append(
            Figure(
                f"{column.name} md5 checksum",
                f"SUM({_MD5_NUMBER['duckdb'].format(c=c)})",
                f"SUM({_MD5_NUMBER['postgres'].format(c=c)})",
            )
        )
    return figures


def table_figures(table: Table) -> list[Figure]:
    figures = [Figure("rows", "COUNT(*)", "COUNT(*)")]
    for column in table.columns:
        figures.extend(column_figures(column))
    return figures


def figures_sql(table: Table, dialect: str) -> str:
    """One scan of the table computing every figure."""
    selected = ", ".join(f.sql(dialect) for f in table_figures(table))
    return f"SELECT {selected} FROM {quoted(table.name)}"


def _agree(source: Any, target: Any, exact: bool) -> bool:
    if source is None or target is None:
        return source is None and target is None
    if exact:
        return source == target
    return math.isclose(float(source), float(target), rel_tol=1e-9, abs_tol=1e-9)


def compare_table(table: Table, source: tuple, target: tuple) -> TableCheck:
    """The figures of both sides side by side; every disagreement named."""
    figures = table_figures(table)
    differences = tuple(
        f"{table.name} {figure.label}: source {mine}, target {theirs}"
        for figure, mine, theirs in zip(figures, source, target, strict=True)
        if not _agree(mine, theirs, figure.exact)
    )
    return TableCheck(table.name, int(source[0]), int(target[0]), len(figures), differences)


def verify_tables(
    source: duckdb.DuckDBPyConnection, cur: psycopg.Cursor, tables: list[Table]
) -> list[TableCheck]:
    """Compare row counts and per-column sums and checksums of every table on both sides."""
    return [
        compare_table(
            table,
            source.execute(figures_sql(table, "duckdb")).fetchone(),
            cur.execute(figures_sql(table, "postgres")).fetchone(),
        )
        for table in tables
    ]


def _lock_writes(cur: psycopg.Cursor) -> None:
    """Take the write lock every VLM replica takes, so no replica writes during the move."""
    PgCursor(cur).execute("SELECT pg_advisory_xact_lock(?)", [WRITE_LOCK_KEY])


def _finish(cur: psycopg.Cursor, positions: dict[str, int]) -> dict[str, int]:
    """Move the sequences and the write generation on: neither rolls back, so this comes last."""
    moved = move_sequences(cur, positions)
    cur.execute(f"SELECT nextval('{GENERATION_SEQUENCE}')")
    return moved


def move_database(
    source: duckdb.DuckDBPyConnection, target: PostgresDatabase, progress: Progress
) -> MoveReport:
    """Copy every table of source into the migrated, empty target in one transaction and verify
    it; the transaction commits only when every table agrees."""
    tables = source_tables(source)
    check_schemas(source, target, tables)
    target_tables = sorted({name for name, _ in target.query(_TARGET_COLUMNS)} - SKIPPED_TABLES)
    positions = sequence_positions(source, tables)
    check_sequences(target, positions)
    with target.connection() as conn, conn.transaction() as transaction, conn.cursor() as cur:
        _lock_writes(cur)
        occupied = occupied_tables(cur, target_tables)
        if occupied:
            raise MoveRefusedError(
                f"the target already holds rows in {', '.join(occupied)}: "
                "move only into an empty database"
            )
        for table in tables:
            copy_table(source, cur, table, progress)
        progress(f"verifying {len(tables)} tables")
        checks = tuple(verify_tables(source, cur, tables))
        if not all(check.ok for check in checks):
            raise psycopg.Rollback(transaction)
        return MoveReport(checks, _finish(cur, positions), kept=True)
    return MoveReport(checks, {}, kept=False)


def _scrubbed(text: str, url: str) -> str:
    """An error message with the URL's password (should a driver repeat it) replaced by ***."""
    password = urlsplit(url).password
    return text.replace(password, "***") if password else text


@contextmanager
def _opened(source_path: str, target_url: str) -> Iterator[tuple[Any, PostgresDatabase]]:
    from vlm.store import open_database

    source = open_source(source_path)
    try:
        target = open_database(target_url)
        try:
            yield source, target
        finally:
            target.close()
    finally:
        source.close()


def move_installation(source_path: str, target_url: str, progress: Progress) -> MoveReport:
    """Open the DuckDB file read-only and the PostgreSQL target (migrating it), then move."""
    try:
        with _opened(source_path, target_url) as (source, target):
            return move_database(source, target, progress)
    except (psycopg.Error, duckdb.Error) as exc:
        raise MoveFailedError(_scrubbed(f"{type(exc).__name__}: {exc}", target_url)) from None
