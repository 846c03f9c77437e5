"""CSV written by DuckDB: parameters reach the query, ENUM cells are neutralised like text, and a
temporary folder with a quote in its path still works."""

from __future__ import annotations

import tempfile

import duckdb
import pandas as pd
import pytest

from vlm.store.csv import write_csv, write_formula_safe_csv, write_frame_csv

PATTERN = r"^[=+\-@]"
FIRST = ("=", "+", "-", "@")


@pytest.fixture
def cur() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:")
    con.execute("CREATE TYPE kind AS ENUM ('plain', '=HYPERLINK(1)', '@sum')")
    con.execute(
        """CREATE TABLE cells AS SELECT * FROM (VALUES
        (1, 'plain'::kind, '=1+1'), (2, '=HYPERLINK(1)'::kind, 'fine'), (3, '@sum'::kind, ''))
        AS t(id, kind, note)"""
    )
    yield con
    con.close()


def test_a_parameterised_query_is_neutralised_with_its_parameters(cur) -> None:
    sql = """SELECT id, kind, note FROM cells WHERE id >= ? ORDER BY id"""
    assert write_formula_safe_csv(cur, sql, [2], PATTERN, FIRST).decode().splitlines() == [
        "id,kind,note",
        "2,'=HYPERLINK(1),fine",
        "3,'@sum,",
    ]


def test_enum_cells_get_the_same_leading_quote_as_text(cur) -> None:
    sql = """SELECT kind, note FROM cells ORDER BY id"""
    assert write_formula_safe_csv(cur, sql, (), PATTERN, FIRST).decode().splitlines() == [
        "kind,note",
        "plain,'=1+1",
        "'=HYPERLINK(1),fine",
        "'@sum,",
    ]


def test_a_categorical_frame_column_is_neutralised(cur) -> None:
    frame = pd.DataFrame({"kind": pd.Categorical(["=2*3", "ok"]), "n": [1, 2]})
    assert write_frame_csv(frame, PATTERN, FIRST).decode().splitlines() == [
        "kind,n",
        "'=2*3,1",
        "ok,2",
    ]


def test_a_temporary_folder_with_a_quote_in_its_path_still_works(cur, tmp_path, monkeypatch):
    folder = tmp_path / "o'brien"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    assert write_csv(cur, """SELECT id FROM cells ORDER BY id""") == b"id\n1\n2\n3\n"
    assert list(folder.iterdir()) == []
