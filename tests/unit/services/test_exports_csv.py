"""CSV written by DuckDB matches what pandas writes for the same rows, formulas neutralised."""

from __future__ import annotations

import csv
import io

import pandas as pd

from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.services import allocations, exports, pools, vlms
from vlm.store import reports as store_reports

TEXT = ["plain", "=SUM(A1)", "+1", "-2", "@x", "\tlead", "a,b", 'say "hi"', "two\nlines", "", None]


def _frame() -> pd.DataFrame:
    n = len(TEXT)
    return pd.DataFrame(
        {
            "text": TEXT,
            "number": range(n),
            "maybe": pd.array([None if i % 3 == 0 else i for i in range(n)], dtype="Int64"),
            "ratio": [float("nan") if i % 4 == 0 else i / 4 for i in range(n)],
            "flag": [i % 2 == 0 for i in range(n)],
            "when": pd.to_datetime([f"2026-01-{i + 1:02d} 0{i % 10}:15:30" for i in range(n)]),
            "padded": [f" {i} " for i in range(n)],
        }
    )


def _reference_neutralise(frame: pd.DataFrame) -> pd.DataFrame:
    """What the CSV writers must do, written with pandas: quote-prefix risky text cells."""
    safe = frame.copy()
    for position in range(safe.shape[1]):
        series = safe.iloc[:, position]
        if pd.api.types.is_string_dtype(series) or series.dtype == object:
            text = series.astype("string")
            risky = text.str.contains(exports.FORMULA_PATTERN, regex=True, na=False)
            safe.isetitem(position, text.where(~risky, "'" + text))
    return safe


def test_frame_csv_is_what_pandas_writes() -> None:
    frame = _frame()
    expected = _reference_neutralise(frame).to_csv(index=False).encode("utf-8")
    assert exports.to_csv_bytes(frame) == expected


def test_frame_csv_neutralises_every_formula_start() -> None:
    parsed = pd.read_csv(io.BytesIO(exports.to_csv_bytes(_frame())), keep_default_na=False)
    risky = {"=SUM(A1)", "+1", "-2", "@x", "\tlead"}
    for original, written in zip(TEXT, parsed["text"], strict=True):
        assert written == (f"'{original}" if original in risky else original or "")


def test_odd_column_names_become_text_headers() -> None:
    frame = pd.DataFrame([[1, "=x"]], columns=[0, "a"])
    assert exports.to_csv_bytes(frame) == b"0,a\n1,'=x\n"


def test_duplicate_column_names_keep_both_columns_with_numbered_headers() -> None:
    """Before: to_csv_bytes crashed ('DataFrame' object has no attribute 'dtype')."""
    frame = pd.DataFrame(
        [["a", "=b", "c", 1, "@e"]], columns=["name", "name", "Name", "n", "name (2)"]
    )
    text = exports.to_csv_bytes(frame).decode()
    assert text == "name,name (2),Name (3),n,name (2) (2)\na,'=b,c,1,'@e\n"
    parsed = pd.read_csv(io.StringIO(text))
    assert list(parsed.columns) == ["name", "name (2)", "Name (3)", "n", "name (2) (2)"]


def test_unique_headers_number_repeats_regardless_of_case() -> None:
    assert exports.unique_headers(["a", "A", "a", "", 0, "0"]) == [
        "a",
        "A (2)",
        "a (3)",
        "column 4",
        "0",
        "0 (2)",
    ]


FORMULA_CELLS = {
    "=1+1": True,
    "+1": True,
    "-1": True,
    "@SUM(A1)": True,
    "\tx": True,
    "\rx": True,
    " =1+1": True,
    "  +1": True,
    "\n=1+1": True,
    "\r\n@x": True,
    "\t\t-2": True,
    "\xa0=1": True,
    "a=1": False,
    " plain": False,
    "\nplain": False,
    "": False,
}


def _cells(csv_bytes: bytes) -> list[str]:
    """The first column of CSV bytes, header dropped (a real CSV reader: quotes, CR, LF)."""
    rows = list(csv.reader(io.StringIO(csv_bytes.decode("utf-8"), newline="")))
    return [row[0] for row in rows[1:]]


def test_every_formula_start_is_neutralised_also_after_leading_whitespace(ctx) -> None:
    """= + - @ tab and CR, and any of = + - @ after blanks or a newline, in both CSV writers."""
    cells = list(FORMULA_CELLS)
    frame = pd.DataFrame({"cell": cells, "i": range(len(cells))})
    values = ", ".join(f"({i}, ?)" for i in range(len(cells)))
    sql = f"SELECT cell, i FROM (VALUES {values}) AS t(i, cell) ORDER BY i"
    for written in (
        _cells(exports.to_csv_bytes(frame)),
        _cells(exports.query_csv(ctx, sql, cells)),
    ):
        for original, cell in zip(cells, written, strict=True):
            risky = FORMULA_CELLS[original]
            assert cell == (f"'{original}" if risky else original), repr(original)


def test_allocations_csv_from_sql_equals_the_frame_export(ctx) -> None:
    add_people(ctx)
    add_server(ctx, "east", {("cad", "1.0"): 10, ("viz", "2"): 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    mine = pools.create_pool(ctx, ADMIN, vlm_id, "mine", "bob", {("cad", "1.0"): 6})
    other = pools.create_pool(ctx, ADMIN, vlm_id, "other", "carol", {("viz", "2"): 6})
    for pool_id, feature in ((other, ("viz", "2")), (mine, ("cad", "1.0"))):
        for host, text in (("u1", "=HYPERLINK(1)"), ("u2", "a, b"), ("u3", "")):
            allocations.allocate(ctx, ADMIN, pool_id, feature, "USER", host, 1, text)
    for actor in (ADMIN, MANAGER):
        frame = exports.allocations_export(ctx, actor)
        assert exports.allocations_csv(ctx, actor) == exports.to_csv_bytes(frame)


def test_count_preview_and_csv_of_a_query(ctx) -> None:
    add_people(ctx)
    add_server(ctx, "east", {(f"f{i}", "1"): 10 for i in range(5)})
    sql, params = "SELECT id, feature_name FROM server_features WHERE total > ?", [1]
    assert exports.query_count(ctx, sql, params) == 5
    assert len(exports.query_preview(ctx, sql, params, 2)) == 2
    text = exports.query_csv(ctx, sql + " ORDER BY id", params).decode()
    assert text.splitlines()[0] == "id,feature_name" and len(text.splitlines()) == 6


def test_counting_drops_only_a_final_order_by() -> None:
    base = "SELECT a FROM t WHERE b IN (SELECT c FROM u ORDER BY c)"
    assert store_reports.without_final_order_by(base + " ORDER BY a, t.b DESC") == base
    assert store_reports.without_final_order_by(base) == base
    assert (
        store_reports.without_final_order_by(base + " ORDER BY a LIMIT 5")
        == base + " ORDER BY a LIMIT 5"
    )
    assert (
        store_reports.without_final_order_by("SELECT 1 ORDER BY lower(x)")
        == "SELECT 1 ORDER BY lower(x)"
    )
