"""The bulk CSV reader: header aliases, delimiters, line numbers, defaults and per-row problems."""

from datetime import date

import pytest

from vlm.domain import DESCRIPTION_MAX_LENGTH, HOST_ID_MAX_LENGTH
from vlm.services.bulk import parse_bulk_allocations


def good(parsed) -> list[tuple]:
    return [
        (r.line, r.change.host_type, r.change.host_id, r.change.count, r.change.description)
        for r in parsed.rows
        if r.ok
    ]


def bad(parsed) -> list[tuple]:
    return [(r.line, r.problems) for r in parsed.rows if not r.ok]


def test_csv_with_header_maps_columns_and_numbers_rows_by_line():
    parsed = parse_bulk_allocations(
        "host_id,host_type,count,description,colour\n"
        "0050569A0001,ETHERNET,2,Lab PC\n"
        "jsmith,USER,,remote\n"
    )
    assert parsed.columns == ("host_id", "host_type", "count", "description")
    assert good(parsed) == [
        (2, "ETHERNET", "0050569A0001", 2, "Lab PC"),
        (3, "USER", "jsmith", 1, "remote"),
    ]
    assert parsed.problems == ('ignored unknown column(s): "colour"',)
    assert [c.row for c in parsed.changes] == [2, 3]


@pytest.mark.parametrize(
    "header",
    [
        "Host ID,Host Type,Count,Description",
        "hostid,hosttype,qty,desc",
        "HOST_ID,type,quantity,comment",
        " host-id , host_type , COUNT , Description ",
        "device id,Type,Qty,Comment",
        "user id,host type,count,description",
        "host,TYPE,count,desc",
    ],
)
def test_header_aliases_ignore_case_spaces_underscores_and_dashes(header):
    parsed = parse_bulk_allocations(f"{header}\njdoe,USER,4,home office\n")
    assert parsed.columns == ("host_id", "host_type", "count", "description")
    assert good(parsed) == [(2, "USER", "jdoe", 4, "home office")]
    assert parsed.problems == ()


def test_feature_columns_are_kept_per_row():
    parsed = parse_bulk_allocations(
        "host_id,feature,version,count\njdoe,cad,1.0,2\nmax,,,1\n", default_host_type="USER"
    )
    first, second = parsed.changes
    assert (first.feature_name, first.feature_version, first.count) == ("cad", "1.0", 2)
    assert (second.feature_name, second.feature_version) == (None, None)
    only_version = parse_bulk_allocations("host_id,version\njdoe,1.0\n", default_host_type="USER")
    assert bad(only_version) == [(2, ("a feature version needs a feature name",))]


def test_defaults_fill_empty_cells_and_short_rows():
    parsed = parse_bulk_allocations(
        "host_id,host_type,count\n0050569A0001\n0050569A0002,,\njdoe,USER\n",
        default_count=3,
    )
    assert good(parsed) == [
        (2, "ETHERNET", "0050569A0001", 3, ""),
        (3, "ETHERNET", "0050569A0002", 3, ""),
        (4, "USER", "jdoe", 3, ""),
    ]


def test_one_column_file_needs_its_header_and_keeps_every_line():
    parsed = parse_bulk_allocations("host_id\n\n0050569A0001\n 0050569A0002 \n", default_count=3)
    assert parsed.delimiter == ","
    assert good(parsed) == [
        (3, "ETHERNET", "0050569A0001", 3, ""),
        (4, "ETHERNET", "0050569A0002", 3, ""),
    ]
    headerless = parse_bulk_allocations("0050569A0001\n0050569A0002\n")
    assert headerless.refused and headerless.rows == ()


def test_a_host_listed_twice_is_refused_on_its_second_line():
    parsed = parse_bulk_allocations(
        "host_id,count\n00:50:56:9a:00:01,1\n0050569A0001,2\n", default_host_type="ETHERNET"
    )
    assert good(parsed) == [(2, "ETHERNET", "0050569A0001", 1, "")]
    assert bad(parsed) == [(3, ("line 2 lists ETHERNET 0050569A0001 already",))]


def test_a_row_reports_every_problem_it_has():
    parsed = parse_bulk_allocations("host_id,host_type,count\nnot-a-mac,ETHERNET,zero\n")
    assert bad(parsed) == [
        (
            2,
            (
                "ETHERNET host id 'not-a-mac' must be 12 hex digits (e.g. 0050569A1B2C)",
                "count must be a whole number ≥ 1, got 'zero'",
            ),
        )
    ]
    assert parsed.good_rows == 0 and parsed.bad_rows == 1


def test_header_naming_a_column_twice_is_refused():
    parsed = parse_bulk_allocations("host_id,host,count\njdoe,jdoe,1\n")
    assert parsed.refused
    assert parsed.problems == ('the header names the column host_id twice ("host_id" and "host")',)


def test_bad_defaults_refuse_the_file():
    assert parse_bulk_allocations("host_id\njdoe\n", default_count=0).refused
    assert parse_bulk_allocations("host_id\njdoe\n", default_host_type="MAC").refused


def test_text_too_long_is_a_problem_of_its_row():
    long_id = "u" * (HOST_ID_MAX_LENGTH + 1)
    long_text = "d" * (DESCRIPTION_MAX_LENGTH + 1)
    parsed = parse_bulk_allocations(
        f"host_id,description\n{long_id},\nshort,{long_text}\nfine,ok\n", default_host_type="USER"
    )
    assert good(parsed) == [(4, "USER", "fine", 1, "ok")]
    (line_2, problems_2), (line_3, problems_3) = bad(parsed)
    assert (line_2, line_3) == (2, 3)
    assert len(problems_2) == 1 and "host id is longer than" in problems_2[0]
    assert len(problems_3) == 1 and problems_3[0].startswith("description is longer than")


def test_start_and_end_columns_are_read_by_their_aliases_and_a_bad_day_names_its_line():
    parsed = parse_bulk_allocations(
        "host id;start;until\njdoe;2027-01-04;2027-03-31\nann;;2027-02-30\nbob;;\n",
        default_host_type="USER",
    )
    assert [row.ok for row in parsed.rows] == [True, False, True]
    first, _, third = (row.change for row in parsed.rows)
    assert (first.starts_on, first.ends_on) == (date(2027, 1, 4), date(2027, 3, 31))
    assert (third.starts_on, third.ends_on) == (None, None)
    assert parsed.rows[1].problems == ("ends on must be a date as YYYY-MM-DD, got 2027-02-30",)
