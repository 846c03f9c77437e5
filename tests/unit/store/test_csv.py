"""CSV written by DuckDB: parameters reach the query, ENUM cells are neutralised like text, and a
temporary folder with a quote in its path still works."""

from __future__ import annotations

import tempfile

import duckdb
import pandas as pd
import pytest

from vlm.store import csv as csv_store
from vlm.store.csv import (
    first_char_ranges,
    formula_safe_sql,
    write_csv,
    write_formula_safe_csv,
    write_frame_csv,
)

PATTERN = r"^[=+\-@]"
FIRST = ("=", "+", "-", "@")
BLANKS_PATTERN = r"^[ \t\n\r\f\v\xa0]*[=+\-@]|^[\t\r]"
BLANKS_FIRST = ("=", "+", "-", "@", " ", "\t", "\n", "\r", "\f", "\v", "\xa0")


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
    monkeypatch.setattr(csv_store, "scratch_dir", lambda: None)
    assert write_csv(cur, """SELECT id FROM cells ORDER BY id""") == b"id\n1\n2\n3\n"
    assert list(folder.iterdir()) == []


def test_the_csv_is_written_in_dev_shm_only_when_it_has_plenty_of_room(monkeypatch, tmp_path):
    monkeypatch.setattr(csv_store, "SHM_DIR", str(tmp_path))
    monkeypatch.setattr(csv_store, "SHM_MIN_FREE", 1)
    assert csv_store.scratch_dir() == str(tmp_path)
    monkeypatch.setattr(csv_store, "SHM_MIN_FREE", 1 << 62)
    assert csv_store.scratch_dir() is None
    monkeypatch.setattr(csv_store, "SHM_DIR", str(tmp_path / "missing"))
    assert csv_store.scratch_dir() is None


def test_a_csv_that_does_not_fit_in_dev_shm_is_written_to_the_temp_folder(cur, monkeypatch):
    folders: list[str | None] = []
    real = csv_store._copy_to_file

    def copy(cur, sql, params, folder):
        folders.append(folder)
        if folder is not None:
            raise duckdb.IOException("No space left on device")
        return real(cur, sql, params, folder)

    monkeypatch.setattr(csv_store, "scratch_dir", lambda: "/dev/shm")
    monkeypatch.setattr(csv_store, "_copy_to_file", copy)
    assert write_csv(cur, """SELECT id FROM cells ORDER BY id""") == b"id\n1\n2\n3\n"
    assert folders == ["/dev/shm", None]


def test_the_first_characters_become_few_ranges_without_letters_or_digits() -> None:
    assert first_char_ranges(BLANKS_FIRST) == [("\t", "."), ("=", "A"), ("\xa0", "\xa1")]
    assert first_char_ranges(("'",)) == [("'", "(")]
    assert formula_safe_sql([("c", "VARCHAR")], "SELECT 1", "^'", ("'",)).count("''''") == 2


def test_a_large_sorted_query_keeps_its_order_when_neutralised() -> None:
    """More rows than one row group, on two threads: every row comes out in the query's order
    (DuckDB once planned the check of the first character as a join that did not keep it)."""
    con = duckdb.connect(":memory:", config={"threads": 2})
    try:
        con.execute(
            """CREATE TABLE rows AS SELECT (i * 7919) % 130000 AS k, 'a ' || (i % 1000) AS a,
            'b ' || (i % 1000) AS b, CASE WHEN i % 97 = 0 THEN '=' || i END AS risky
            FROM range(130000) AS r(i)"""
        )
        sql = """SELECT k, a, b, risky FROM rows ORDER BY k"""
        written = write_formula_safe_csv(con, sql, (), BLANKS_PATTERN, BLANKS_FIRST)
    finally:
        con.close()
    lines = written.decode().splitlines()
    assert [int(line.split(",")[0]) for line in lines[1:]] == list(range(130000))
    assert lines[1] == "0,a 0,b 0,'=0"
