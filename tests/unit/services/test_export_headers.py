"""The people's CSV of an export query: headers chosen by the page, cells still formula-safe."""

from __future__ import annotations

import csv
import io

from tests.unit.store.test_csv_headers import ROWS
from vlm.services import exports


def test_the_people_csv_is_formula_safe_with_their_headers(ctx):
    data = exports.query_csv(ctx, ROWS, [], {"id": "Id", "note": 'Note, "quoted"'})
    rows = list(csv.reader(io.StringIO(data.decode())))
    assert rows == [["Id", 'Note, "quoted"'], ["1", "'=1+1"], ["2", "fine"]]
    assert exports.query_csv(ctx, ROWS, []).decode().splitlines()[0] == "id,feature name,note"
