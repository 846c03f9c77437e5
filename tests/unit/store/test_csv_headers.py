"""The people's CSV of an export query: columns chosen, renamed and ordered by the store."""

from __future__ import annotations

import pytest

from vlm.store import Database
from vlm.store.csv import with_headers

ROWS = """SELECT * FROM (VALUES (1, 'cad', '=1+1'), (2, 'cam', 'fine'))
    AS t(id, "feature name", note) ORDER BY id"""


@pytest.fixture
def db(fresh_db) -> Database:
    database = fresh_db
    yield database
    database.close()


def test_columns_are_renamed_in_the_order_given(db):
    sql = with_headers(ROWS, {"note": "Note (UTC)", "id": "Id"})
    frame = db.query_df(sql)
    assert frame.columns.tolist() == ["Note (UTC)", "Id"]
    assert frame.values.tolist() == [["=1+1", 1], ["fine", 2]]


def test_odd_names_and_headers_are_quoted_not_run(db):
    headers = {"feature name": 'The "feature"', "id": "x) AS y; DROP TABLE users; --"}
    frame = db.query_df(with_headers(ROWS, headers))
    assert frame.columns.tolist() == ['The "feature"', "x) AS y; DROP TABLE users; --"]
    assert frame.values.tolist() == [["cad", 1], ["cam", 2]]
    assert db.scalar("""SELECT COUNT(*) FROM users""") == 0


def test_parameters_pass_through(db):
    sql = with_headers("""SELECT ? AS a, ? AS b""", {"b": "B", "a": "A"})
    assert db.query(sql, ["x", "y"]) == [("y", "x")]
