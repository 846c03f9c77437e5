"""The Database interface answers alike on both engines: frame dtypes (also empty and with NULLs),
DML row counts, whole sums as int, formula-safe CSV cells; and PostgreSQL's placeholder rewrite."""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from vlm.services.exports import safe_csv_sql
from vlm.store import Database
from vlm.store.postgres import to_psycopg

TYPED = """SELECT * FROM (VALUES
    (1, TRUE, CAST(2 AS SMALLINT), CAST(3 AS INTEGER), CAST(4 AS BIGINT),
        CAST(1.5 AS DOUBLE PRECISION), CAST(2.25 AS DECIMAL(10, 2)), 'text',
        TIMESTAMP '2026-01-02 03:04:05', DATE '2026-01-02'),
    (2, {second})
) AS t(n, flag, small, whole, big, ratio, amount, label, taken, day) WHERE n <= ? ORDER BY n"""
FULL_ROW = """FALSE, CAST(5 AS SMALLINT), CAST(6 AS INTEGER), CAST(7 AS BIGINT),
    CAST(0.5 AS DOUBLE PRECISION), CAST(1 AS DECIMAL(10, 2)), 'more',
    TIMESTAMP '2026-01-03 00:00:00', DATE '2026-01-03'"""
NULL_ROW = "NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL"


def dtypes(frame) -> dict[str, str]:
    return {name: str(dtype) for name, dtype in frame.dtypes.items()}


@pytest.mark.parametrize(
    ("second", "last_row", "expected"),
    [
        (
            FULL_ROW,
            2,
            {
                "n": "int32",
                "flag": "bool",
                "small": "int16",
                "whole": "int32",
                "big": "int64",
                "ratio": "float64",
                "amount": "float64",
                "label": "str",
                "taken": "datetime64[us]",
                "day": "datetime64[us]",
            },
        ),
        (
            NULL_ROW,
            2,
            {
                "n": "int32",
                "flag": "boolean",
                "small": "Int16",
                "whole": "Int32",
                "big": "Int64",
                "ratio": "float64",
                "amount": "float64",
                "label": "str",
                "taken": "datetime64[us]",
                "day": "datetime64[us]",
            },
        ),
        (
            FULL_ROW,
            0,
            {
                "n": "int32",
                "flag": "bool",
                "small": "int16",
                "whole": "int32",
                "big": "int64",
                "ratio": "float64",
                "amount": "float64",
                "label": "object",
                "taken": "datetime64[us]",
                "day": "datetime64[us]",
            },
        ),
    ],
    ids=["full", "with-nulls", "empty"],
)
def test_frames_have_the_same_dtypes_on_both_engines(
    fresh_db: Database, second: str, last_row: int, expected: dict[str, str]
) -> None:
    frame = fresh_db.query_df(TYPED.format(second=second), [last_row])
    assert dtypes(frame) == expected
    assert len(frame) == last_row


def test_a_null_row_reads_as_missing_values(fresh_db: Database) -> None:
    frame = fresh_db.query_df(TYPED.format(second=NULL_ROW), [2])
    assert frame.iloc[0].tolist()[:8] == [1, True, 2, 3, 4, 1.5, 2.25, "text"]
    assert frame.iloc[1, 1:].isna().all()


def test_an_all_null_text_column_is_object(fresh_db: Database) -> None:
    frame = fresh_db.query_df("SELECT CAST(NULL AS VARCHAR) AS note, 1 AS n")
    assert dtypes(frame) == {"note": "object", "n": "int32"}
    assert frame["note"].tolist() == [None]


def test_dml_answers_its_row_count_and_sums_of_whole_numbers_are_int(fresh_db: Database) -> None:
    def write(cur):
        cur.execute(
            "INSERT INTO license_servers (id, name, base_url) VALUES (1, 'a', 'x'), (2, 'b', 'y')"
        )
        return cur.execute("UPDATE license_servers SET description = 'd'").fetchall()

    assert fresh_db.write(write) == [(2,)]
    total = fresh_db.scalar("SELECT SUM(CAST(id AS BIGINT)) FROM license_servers")
    assert total == 3 and isinstance(total, int)
    assert fresh_db.scalar("SELECT AVG(CAST(id AS DOUBLE PRECISION)) FROM license_servers") == 1.5


CELLS = """SELECT * FROM (VALUES
    (1, CAST(100 AS DOUBLE PRECISION), CAST(0.1 AS DOUBLE PRECISION), TRUE,
        TIMESTAMP '2026-01-02 03:04:05', TIMESTAMP '2026-01-02 03:04:05.12', '=1+1', ''),
    (2, CAST(1e15 AS DOUBLE PRECISION), CAST(1e16 AS DOUBLE PRECISION), FALSE,
        NULL, NULL, 'a,b', 'say "hi"'),
    (3, CAST(-7 AS DOUBLE PRECISION), CAST('NaN' AS DOUBLE PRECISION), NULL,
        NULL, NULL, NULL, ' @x'),
    (4, CAST('Infinity' AS DOUBLE PRECISION), CAST('-Infinity' AS DOUBLE PRECISION), NULL,
        NULL, NULL, 'plain', NULL)
) AS t(n, whole, ratio, flag, taken, fine, formula, note) ORDER BY n"""


def test_formula_safe_csv_writes_every_cell_alike(fresh_db: Database) -> None:
    safe = safe_csv_sql(fresh_db.describe(CELLS), CELLS, fresh_db.dialect)
    assert fresh_db.query_csv(safe).decode().splitlines() == [
        "n,whole,ratio,flag,taken,fine,formula,note",
        "1,100.0,0.1,True,2026-01-02 03:04:05,2026-01-02 03:04:05.12,'=1+1,",
        '2,1000000000000000.0,1e+16,False,,,"a,b","say ""hi"""',
        "3,-7.0,nan,,,,,' @x",
        "4,inf,-inf,,,,plain,",
    ]


def test_placeholders_become_psycopgs_outside_quotes_and_comments() -> None:
    sql = """SELECT '?', "a$b", x % 2 FROM t WHERE a = ? AND b = $name -- ? $c"""
    assert to_psycopg(sql) == (
        """SELECT '?', "a$b", x %% 2 FROM t WHERE a = %s AND b = %(name)s -- ? $c"""
    )


MOMENT = "2026-12-01 10:00:00.001234"


def test_a_registered_frame_reads_back_as_it_was_on_both_engines(fresh_db: Database) -> None:
    """Missing values stay missing and empty text stays empty; quotes, commas, newlines,
    booleans, nullable integers, floats and timestamps survive the trip."""
    frame = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "maybe": pd.array([7, None, -9], dtype="Int64"),
            "text": ["plain", "", None],
            "odd": ['say "hi", then\nleave', "\\N", "NULL"],
            "flag": [True, False, True],
            "ratio": [1.5, float("nan"), -0.25],
            "at": pd.to_datetime(
                ["2026-12-01 10:00:00.001234", None, "1999-01-01 00:00:00.000000"]
            ),
        }
    )

    def round_trip(cur) -> list[tuple]:
        cur.register("registered", frame)
        try:
            return cur.execute("SELECT * FROM registered ORDER BY n").fetchall()
        finally:
            cur.unregister("registered")

    rows = fresh_db.write(round_trip)
    assert rows == [
        (
            1,
            7,
            "plain",
            'say "hi", then\nleave',
            True,
            1.5,
            datetime(2026, 12, 1, 10, 0, 0, 1234),
        ),
        (2, None, "", "\\N", False, None, None),
        (3, -9, None, "NULL", True, -0.25, datetime(1999, 1, 1)),
    ]
    empty = fresh_db.write(
        lambda cur: (
            cur.register("nothing", frame.head(0)),
            cur.execute("SELECT COUNT(*) FROM nothing").fetchone(),
        )[1]
    )
    assert empty == (0,)
