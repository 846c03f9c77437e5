"""Bulk allocation from pasted or uploaded CSV text: a header, then one checked row per record.

How a file is read (issue #7 item 12):
- The csv module reads records from `io.StringIO(text, newline="")`, so a quoted field may hold
  the delimiter and newlines, and a U+2028/U+2029 never splits a record. A leading byte-order
  mark is dropped.
- The delimiter is `,`, `;` or tab: the one under which the first line reads as a header naming
  a host-id column. When several do (a one-column file reads the same under all three),
  csv.Sniffer over a sample chooses among them, and `,` when it cannot tell.
- The first non-blank line must be that header (names are matched without regard to case,
  spaces, `_` and `-`; see COLUMN_ALIASES). Without one the whole file is refused with the
  expected header line. A header is never data.
- Every data record is checked on its own and its problems name the line it starts on: host
  type, host id for its type, count (whole number, at least 1; `NaN`, `inf`, `1e400`, `0`, `-1`,
  `2.5` are refused), description, start and end day (YYYY-MM-DD, optional), more fields than
  the header (a short row leaves its last
  columns empty, so they take the defaults), a host listed twice. U+2028, U+2029 and
  control characters are refused in every field (not normalised: what is stored is what the
  user typed); a quoted description may hold newlines (CRLF and CR read as LF) and tabs.
- Parsing writes nothing. `import_bulk` writes the good rows of a parsed file, in one
  transaction, and nothing at all when the file was refused.
"""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from vlm.context import ServiceContext
from vlm.domain import (
    Actor,
    FeatureKey,
    ValidationError,
    VlmError,
    normalize_host_id,
    parse_day,
    parse_host_type,
    validate_count,
    validate_description,
)
from vlm.services.allocations import AllocationChange, RowResult, apply_allocation_changes

DELIMITERS = (",", ";", "\t")
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
EXPECTED_HEADER = "host_id,host_type,count,description"
MAX_ROWS = 10_000
FEATURE_TEXT_MAX_LENGTH = 256
_SNIFF_SAMPLE = 64 * 1024
_SHOWN = 40
T = TypeVar("T")

COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "host_id": ("host id", "hostid", "host_id", "host", "device id", "user id"),
    "host_type": ("host type", "hosttype", "type", "host_type"),
    "count": ("count", "quantity", "qty"),
    "description": ("description", "desc", "comment"),
    "feature_name": ("feature", "feature name", "feature_name"),
    "feature_version": ("feature version", "feature_version", "version"),
    "starts_on": ("starts on", "start", "start date", "from"),
    "ends_on": ("ends on", "end", "end date", "until"),
}
COLUMNS = tuple(COLUMN_ALIASES)
_WHOLE_NUMBER = re.compile(r"^\+?[0-9]{1,15}(\.0*)?$")
_REFUSED_CATEGORIES = {"Cc", "Cs", "Zl", "Zp"}  # control, lone surrogate, line/paragraph separator
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_KEPT_IN_DESCRIPTION = {"\n", "\t"}


def _header_key(name: str) -> str:
    """A header cell as compared with the aliases: lower case, without spaces, `_` and `-`."""
    return re.sub(r"[\s_\-]+", "", name.strip().lower())


_ALIAS_TO_COLUMN = {
    _header_key(alias): column for column, aliases in COLUMN_ALIASES.items() for alias in aliases
}


@dataclass(frozen=True)
class BulkRow:
    """One data record: where it starts, its fields by column, its change or its problems."""

    line: int
    cells: dict[str, str]
    problems: tuple[str, ...] = ()
    change: AllocationChange | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class ParsedBulk:
    """A parsed file: its columns and rows, or the file-level reason it was refused."""

    columns: tuple[str, ...] = ()
    rows: tuple[BulkRow, ...] = ()
    problems: tuple[str, ...] = ()
    refused: bool = False
    delimiter: str | None = None

    @property
    def changes(self) -> list[AllocationChange]:
        """The changes of the good rows, in file order (nothing when the file was refused)."""
        if self.refused:
            return []
        return [r.change for r in self.rows if r.ok and r.change is not None]

    @property
    def good_rows(self) -> int:
        return len(self.changes)

    @property
    def bad_rows(self) -> int:
        return 0 if self.refused else len(self.rows) - self.good_rows


def _refuse(message: str) -> ParsedBulk:
    return ParsedBulk(problems=(message,), refused=True)


def _shown(text: str) -> str:
    """A field made safe to quote in a message: escaped and cut short."""
    escaped = text.encode("unicode_escape").decode("ascii") if not text.isprintable() else text
    return escaped if len(escaped) <= _SHOWN else escaped[:_SHOWN] + "…"


def _reader(text: str, delimiter: str):
    return csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)


def _first_record(text: str, delimiter: str) -> list[str]:
    """The first record with a non-blank field, read with delimiter."""
    for record in _reader(text, delimiter):
        if any(cell.strip() for cell in record):
            return record
    return []


def _header_columns(record: Sequence[str]) -> list[str | None]:
    """The column each header cell names, None for a name that is no known column."""
    return [_ALIAS_TO_COLUMN.get(_header_key(cell)) for cell in record]


def _choose_delimiter(text: str) -> str | None:
    """The delimiter under which the first line is a header with a host-id column, or None."""
    readable = [d for d in DELIMITERS if "host_id" in _header_columns(_first_record(text, d))]
    if len(readable) <= 1:
        return readable[0] if readable else None
    try:
        sniffed = csv.Sniffer().sniff(text[:_SNIFF_SAMPLE], delimiters="".join(readable))
    except csv.Error:
        return readable[0]
    return sniffed.delimiter if sniffed.delimiter in readable else readable[0]


def _no_header_message(text: str) -> str:
    first = next((line for line in io.StringIO(text, newline="") if line.strip()), "")
    return (
        "no header row found: the first line must name the columns, for example "
        f'"{EXPECTED_HEADER}" (host_id is required; host_type, count, description, '
        "feature, feature_version, starts_on and ends_on are optional). "
        f'The first line reads "{_shown(first.strip())}".'
    )


def _header_problems(record: Sequence[str], columns: Sequence[str | None]) -> list[str]:
    """File-level notes about the header: duplicate columns refuse, unknown ones are ignored."""
    seen: dict[str, str] = {}
    for cell, column in zip(record, columns, strict=True):
        if column is None:
            continue
        if column in seen:
            raise ValidationError(
                f"the header names the column {column} twice "
                f'("{seen[column]}" and "{cell.strip()}")'
            )
        seen[column] = cell.strip()
    unknown = [
        f'"{_shown(cell.strip())}"' if cell.strip() else f"column {index} (no name)"
        for index, (cell, column) in enumerate(zip(record, columns, strict=True), start=1)
        if column is None
    ]
    return [f"ignored unknown column(s): {', '.join(unknown)}"] if unknown else []


def _bad_character(text: str, *, multiline: bool) -> str | None:
    """The first control, format or line-separator character in text, as U+XXXX."""
    for ch in text:
        if multiline and ch in _KEPT_IN_DESCRIPTION:
            continue
        if unicodedata.category(ch) in _REFUSED_CATEGORIES or ch in _BIDI_CONTROLS:
            return f"U+{ord(ch):04X}"
    return None


def _character_problems(cells: dict[str, str]) -> list[str]:
    problems = []
    for column, value in cells.items():
        bad = _bad_character(value, multiline=column == "description")
        if bad is not None:
            what = column.replace("_", " ")
            problems.append(f"{what} contains a control or line-separator character ({bad})")
    return problems


def _count(text: str, default: int) -> int:
    """The count of a row: the default when empty, else a whole number of at least 1."""
    value = text.strip()
    if not value:
        return default
    if not _WHOLE_NUMBER.match(value) or int(value.split(".")[0]) < 1:
        raise ValidationError(
            f"count must be a whole number ≥ 1, got '{_shown(value)}'", field="count"
        )
    return validate_count(int(value.split(".")[0]))


def _feature(cells: dict[str, str]) -> tuple[str | None, str | None]:
    """The row's own feature (name, version), or (None, None) to use the page's feature."""
    name = cells.get("feature_name", "").strip()
    version = cells.get("feature_version", "").strip()
    if not name:
        if version:
            raise ValidationError("a feature version needs a feature name", field="feature")
        return None, None
    if len(name) > FEATURE_TEXT_MAX_LENGTH or len(version) > FEATURE_TEXT_MAX_LENGTH:
        raise ValidationError(
            f"feature name or version is longer than {FEATURE_TEXT_MAX_LENGTH} characters",
            field="feature",
        )
    return name, version


def _attempt(problems: list[str], check: Callable[..., T], *args: object) -> T | None:
    """check(*args), or None with its message added to problems."""
    try:
        return check(*args)
    except VlmError as exc:
        problems.append(exc.message)
        return None


def _check_row(
    line: int, cells: dict[str, str], default_host_type: str, default_count: int
) -> tuple[AllocationChange | None, list[str]]:
    """The change a row asks for, or every problem it has."""
    problems = _character_problems(cells)
    if problems:
        return None, problems
    typed = cells.get("host_type", "").strip() or default_host_type
    host_type = _attempt(problems, parse_host_type, typed)
    host_id = None
    if host_type is not None:
        host_id = _attempt(problems, normalize_host_id, host_type, cells.get("host_id", ""))
    count = _attempt(problems, _count, cells.get("count", ""), default_count)
    description = _attempt(problems, validate_description, cells.get("description", ""))
    feature = _attempt(problems, _feature, cells)
    starts_on = _attempt(problems, parse_day, cells.get("starts_on", ""), "starts_on")
    ends_on = _attempt(problems, parse_day, cells.get("ends_on", ""), "ends_on")
    if problems or host_type is None or feature is None:
        return None, problems
    change = AllocationChange(
        "add",
        row=line,
        feature_name=feature[0],
        feature_version=feature[1],
        host_type=host_type.value,
        host_id=host_id,
        count=count,
        description=description,
        starts_on=starts_on,
        ends_on=ends_on,
    )
    return change, []


def _record_cells(record: Sequence[str], columns: Sequence[str | None]) -> dict[str, str]:
    """A record's fields by column; a short record leaves its last columns empty.

    Line breaks inside a quoted description become plain newlines (CRLF and CR as LF).
    """
    cells = {
        column: cell for column, cell in zip(columns, record, strict=False) if column is not None
    }
    if "description" in cells:
        cells["description"] = cells["description"].replace("\r\n", "\n").replace("\r", "\n")
    return cells


def _shape_problem(record: Sequence[str], cells: dict[str, str], width: int) -> str | None:
    """Why a record does not fit the header: more fields, or a delimiter in a one-column file."""
    if any(cell.strip() for cell in record[width:]):
        return (
            f"the row has {len(record)} fields but the header names {width}; "
            "quote a field that holds the delimiter"
        )
    if width == 1:
        held = next((d for d in DELIMITERS if d in cells.get("host_id", "")), None)
        if held is not None:
            return (
                f"the field holds a {DELIMITER_NAMES[held]} but the header names one column; "
                "name every column in the header"
            )
    return None


def _duplicate_key(change: AllocationChange) -> tuple:
    return (change.feature_name, change.feature_version, change.host_type, change.host_id)


def parse_bulk_allocations(
    text: str, *, default_host_type: str = "ETHERNET", default_count: int = 1
) -> ParsedBulk:
    """Read CSV text into checked rows; see the module docstring for the rules."""
    text = (text or "").removeprefix("\ufeff")
    if not text.strip():
        return _refuse("nothing to import: the text is empty")
    try:
        validate_count(default_count)
        parse_host_type(default_host_type)
        return _parse(text, default_host_type, default_count)
    except ValidationError as exc:
        return _refuse(exc.message)
    except csv.Error as exc:
        return _refuse(f"the file cannot be read as CSV: {exc}")


def _parse(text: str, default_host_type: str, default_count: int) -> ParsedBulk:
    delimiter = _choose_delimiter(text)
    if delimiter is None:
        return _refuse(_no_header_message(text))
    reader = _reader(text, delimiter)
    header: list[str] | None = None
    columns: list[str | None] = []
    notes: list[str] = []
    rows: list[BulkRow] = []
    seen: dict[tuple, int] = {}
    previous_end = 0
    for record in reader:
        line, previous_end = previous_end + 1, reader.line_num
        if not any(cell.strip() for cell in record):
            continue
        if header is None:
            header, columns = record, _header_columns(record)
            notes = _header_problems(record, columns)
            continue
        if len(rows) == MAX_ROWS:
            return _refuse(f"the file has more than {MAX_ROWS:,} rows; split it into smaller files")
        rows.append(_row(line, record, columns, default_host_type, default_count, seen))
    if not rows:
        return _refuse("nothing to import: the file has a header but no data rows")
    return ParsedBulk(
        columns=tuple(c for c in columns if c is not None),
        rows=tuple(rows),
        problems=tuple(notes),
        delimiter=delimiter,
    )


def _row(
    line: int,
    record: Sequence[str],
    columns: Sequence[str | None],
    default_host_type: str,
    default_count: int,
    seen: dict[tuple, int],
) -> BulkRow:
    """Check one data record; seen maps each good row's host key to its line (duplicates)."""
    cells = _record_cells(record, columns)
    shape_problem = _shape_problem(record, cells, len(columns))
    if shape_problem is not None:
        return BulkRow(line, cells, (shape_problem,))
    change, problems = _check_row(line, cells, default_host_type, default_count)
    if change is None:
        return BulkRow(line, cells, tuple(problems))
    key = _duplicate_key(change)
    if key in seen:
        return BulkRow(
            line, cells, (f"line {seen[key]} lists {change.host_type} {change.host_id} already",)
        )
    seen[key] = line
    return BulkRow(line, cells, (), change)


def import_bulk(
    ctx: ServiceContext,
    actor: Actor,
    pool_id: int,
    parsed: ParsedBulk,
    *,
    feature: FeatureKey | None = None,
) -> list[RowResult]:
    """Allocate the good rows of a parsed file in one transaction; a refused file writes nothing."""
    if parsed.refused:
        raise ValidationError(parsed.problems[0] if parsed.problems else "the file was refused")
    changes = parsed.changes
    if not changes:
        raise ValidationError("no row of the file can be imported; fix the rows shown")
    return apply_allocation_changes(ctx, actor, pool_id, changes, feature=feature)
