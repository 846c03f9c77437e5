"""Bulk allocation from pasted or uploaded CSV text: parse rows into changes with row numbers."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

from vlm.services.allocations import AllocationChange

KNOWN_COLUMNS = {"host_type", "host_id", "count", "description", "feature_name", "feature_version"}


@dataclass(frozen=True)
class ParsedBulk:
    changes: list[AllocationChange]
    problems: list[str]


def parse_bulk_allocations(
    text: str, *, default_host_type: str = "ETHERNET", default_count: int = 1
) -> ParsedBulk:
    """Accept a CSV with a header (host_id[,host_type,count,description,…]) or one id per line."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return ParsedBulk([], ["nothing to import: the text is empty"])
    first = [c.strip().lower() for c in next(csv.reader([lines[0]]))]
    if "host_id" in first:
        unknown = sorted(set(first) - KNOWN_COLUMNS)
        problems = [f"ignored unknown column(s): {', '.join(unknown)}"] if unknown else []
        rows = list(csv.DictReader(io.StringIO("\n".join(lines[1:])), fieldnames=first))
    else:
        problems = []
        rows = [{"host_id": line.split(",")[0].strip()} for line in lines]
    changes = [
        AllocationChange(
            "add",
            row=index,
            feature_name=(row.get("feature_name") or "").strip() or None,
            feature_version=(row.get("feature_version") or "").strip() or None,
            host_type=(row.get("host_type") or "").strip() or default_host_type,
            host_id=row.get("host_id"),
            count=(row.get("count") or "").strip() or default_count,
            description=row.get("description") or "",
        )
        for index, row in enumerate(rows, start=2 if "host_id" in first else 1)
    ]
    return ParsedBulk(changes, problems)
