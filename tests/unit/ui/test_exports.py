"""The Export page's query datasets: people's CSV with readable headers, raw CSV with the
machine column names (the relabelling SQL lives in vlm/store/csv.py)."""

from __future__ import annotations

import csv
import io
from types import SimpleNamespace

from tests.conftest import ADMIN
from vlm.ui.exports import EXPORTS
from vlm.ui.local_time import server_zone, zone_label
from vlm.ui.session import PageContext
from vlm.ui.widgets import label


def header(data: bytes) -> list[str]:
    return next(csv.reader(io.StringIO(data.decode())))


def test_query_exports_have_people_and_raw_headers(ctx):
    page = PageContext(SimpleNamespace(ctx=ctx), ADMIN)
    allocations = next(e for e in EXPORTS if e.file_name == "allocations")
    raw = header(allocations.raw_csv(page)())
    people = header(allocations.csv(page)())
    assert raw[:3] == ["vlm_name", "id", "pool_id"] and "created_at" in raw
    zone = zone_label(server_zone())
    expected = [f"{label(c)} ({zone})" if c.endswith("_at") else label(c) for c in raw]
    assert people == expected
    assert people != raw
