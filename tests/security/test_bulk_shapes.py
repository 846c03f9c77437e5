"""Bulk CSV files in every bad shape of issue #7 item 12: each is read exactly, never misread.

For every shape the parsed rows and problems are asserted exactly, and importing the parsed file
into a real pool writes exactly its good rows, or nothing at all when the file was refused.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from tests.conftest import ADMIN, MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import ValidationError
from vlm.services import pools, vlms
from vlm.services.bulk import import_bulk, parse_bulk_allocations

CAD = ("cad", "1.0")
NO_HEADER = (
    "no header row found: the first line must name the columns, for example "
    '"host_id,host_type,count,description" (host_id is required; host_type, count, '
    "description, feature, feature_version, starts_on and ends_on are optional). The first line "
    "reads "
)
EMPTY = "nothing to import: the text is empty"
HEADER_ONLY = "nothing to import: the file has a header but no data rows"
MAC_PROBLEM = "ETHERNET host id '{}' must be 12 hex digits (e.g. 0050569A1B2C)"


def count_problem(value: str) -> str:
    return f"count must be a whole number ≥ 1, got '{value}'"


@dataclass(frozen=True)
class Shape:
    """A file, the defaults it is read with, and exactly what must come of it."""

    text: str
    good: list[tuple] = field(default_factory=list)  # (line, host type, host id, count, desc)
    bad: list[tuple] = field(default_factory=list)  # (line, problems)
    refused: str | None = None  # the file-level refusal
    default_host_type: str = "ETHERNET"
    default_count: int = 1
    delimiter: str | None = ","


SHAPES = {
    "no host_id header: data on the first line": Shape(
        "0050569A0001,ETHERNET,2\n0050569A0002,ETHERNET,3\n",
        refused=NO_HEADER + '"0050569A0001,ETHERNET,2".',
        delimiter=None,
    ),
    "no host_id header: unknown column names": Shape(
        "name,amount\njdoe,2\n",
        refused=NO_HEADER + '"name,amount".',
        default_host_type="USER",
        delimiter=None,
    ),
    "Host ID,Type header with rows (the header is never a host id)": Shape(
        "Host ID,Type\njdoe,USER\n0050569A0001,ETHERNET\n",
        good=[(2, "USER", "jdoe", 1, ""), (3, "ETHERNET", "0050569A0001", 1, "")],
        default_host_type="USER",
    ),
    "semicolon file": Shape(
        "host_id;host_type;count;description\nbob;USER;2;desk, left\ncarol;USER;1;\n",
        good=[(2, "USER", "bob", 2, "desk, left"), (3, "USER", "carol", 1, "")],
        delimiter=";",
    ),
    "tab file": Shape(
        "Host ID\tCount\tComment\n0050569A0001\t2\tlab; bench 3\n0050569A0002\t1\t\n",
        good=[
            (2, "ETHERNET", "0050569A0001", 2, "lab; bench 3"),
            (3, "ETHERNET", "0050569A0002", 1, ""),
        ],
        delimiter="\t",
    ),
    "byte-order mark": Shape(
        "\ufeffhost_id,count\n0050569A0001,2\n",
        good=[(2, "ETHERNET", "0050569A0001", 2, "")],
    ),
    "ETHERNET default with counts 2 and 3": Shape(
        "host_id,count\n0050569A0001,2\n0050569A0002,3\n",
        good=[(2, "ETHERNET", "0050569A0001", 2, ""), (3, "ETHERNET", "0050569A0002", 3, "")],
    ),
    "U+2028 and U+2029 in a description do not split the row": Shape(
        "host_id,host_type,count,description\n"
        "jdoe,USER,1,first\u2028second\n"
        'max,USER,1,"para\u2029graph"\n'
        "zed,USER,2,after\n",
        good=[(4, "USER", "zed", 2, "after")],
        bad=[
            (2, ("description contains a control or line-separator character (U+2028)",)),
            (3, ("description contains a control or line-separator character (U+2029)",)),
        ],
    ),
    "control characters in any field": Shape(
        "host_id,host_type,description\njd\x00oe,USER,\nmax,USER,bell\x07\n",
        bad=[
            (2, ("host id contains a control or line-separator character (U+0000)",)),
            (3, ("description contains a control or line-separator character (U+0007)",)),
        ],
    ),
    "NaN, inf, 1e400, 0, negative and fractional counts": Shape(
        "host_id,count\n"
        "0050569A0001,NaN\n"
        "0050569A0002,inf\n"
        "0050569A0003,1e400\n"
        "0050569A0004,0\n"
        "0050569A0005,-2\n"
        "0050569A0006,2.5\n"
        "0050569A0007,2.0\n"
        "0050569A0008,\n",
        good=[(8, "ETHERNET", "0050569A0007", 2, ""), (9, "ETHERNET", "0050569A0008", 1, "")],
        bad=[
            (2, (count_problem("NaN"),)),
            (3, (count_problem("inf"),)),
            (4, (count_problem("1e400"),)),
            (5, (count_problem("0"),)),
            (6, (count_problem("-2"),)),
            (7, (count_problem("2.5"),)),
        ],
    ),
    "empty file": Shape("", refused=EMPTY, delimiter=None),
    "blank lines only": Shape("  \n\n\t\n", refused=EMPTY, delimiter=None),
    "header only": Shape("host_id,host_type,count\n\n", refused=HEADER_ONLY, delimiter=None),
    "ragged rows": Shape(
        "host_id,host_type,count\njdoe,USER,1,surplus\nmax,USER\nzed,USER,2,,\n",
        good=[(3, "USER", "max", 1, ""), (4, "USER", "zed", 2, "")],
        bad=[
            (
                2,
                (
                    "the row has 4 fields but the header names 3; "
                    "quote a field that holds the delimiter",
                ),
            )
        ],
    ),
    "semicolons under a one-column header": Shape(
        "host_id\nbob;2\ncarol\n",
        good=[(3, "USER", "carol", 1, "")],
        bad=[
            (
                2,
                (
                    "the field holds a semicolon but the header names one column; "
                    "name every column in the header",
                ),
            )
        ],
        default_host_type="USER",
    ),
    "quoted fields with commas and newlines": Shape(
        "host_id,host_type,count,description\n"
        '"0050569A0001",ETHERNET,2,"Lab, room 2\nsecond line"\n'
        '"jdoe",USER,1,"a ""quoted"" word"\n'
        "not-a-mac,ETHERNET,1,x\n",
        good=[
            (2, "ETHERNET", "0050569A0001", 2, "Lab, room 2\nsecond line"),
            (4, "USER", "jdoe", 1, 'a "quoted" word'),
        ],
        bad=[(5, (MAC_PROBLEM.format("not-a-mac"),))],
    ),
    "Windows line endings and a quoted CRLF": Shape(
        'host_id,count,description\r\n0050569A0001,2,"two\r\nlines"\r\n0050569A0002,1,\r\n',
        good=[
            (2, "ETHERNET", "0050569A0001", 2, "two\nlines"),
            (4, "ETHERNET", "0050569A0002", 1, ""),
        ],
    ),
}


def parse(shape: Shape):
    return parse_bulk_allocations(
        shape.text,
        default_host_type=shape.default_host_type,
        default_count=shape.default_count,
    )


def good_rows(parsed) -> list[tuple]:
    return [
        (r.line, r.change.host_type, r.change.host_id, r.change.count, r.change.description)
        for r in parsed.rows
        if r.ok
    ]


def bad_rows(parsed) -> list[tuple]:
    return [(r.line, r.problems) for r in parsed.rows if not r.ok]


@pytest.mark.parametrize("name", SHAPES)
def test_each_shape_is_read_exactly(name):
    shape = SHAPES[name]
    parsed = parse(shape)
    if shape.refused is not None:
        assert parsed.refused
        assert parsed.problems == (shape.refused,)
        assert parsed.rows == () and parsed.changes == []
        return
    assert not parsed.refused
    assert parsed.problems == ()
    assert parsed.delimiter == shape.delimiter
    assert good_rows(parsed) == shape.good
    assert bad_rows(parsed) == shape.bad
    assert (parsed.good_rows, parsed.bad_rows) == (len(shape.good), len(shape.bad))


def test_no_header_line_ever_becomes_a_host_id():
    for shape in SHAPES.values():
        hosts = {str(c.host_id).lower() for c in parse(shape).changes}
        assert not hosts & {"host id", "host_id", "hostid", "\ufeffhost_id", "host"}
        assert not any(";" in h or "\ufeff" in h for h in hosts)


@pytest.fixture
def pool(ctx):
    """A pool of 50 cad licenses managed by bob (the MANAGER actor)."""
    add_people(ctx)
    add_server(ctx, "east", {CAD: 100})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "p", MANAGER.username, {CAD: 50})
    return ctx, pool_id


def stored(ctx, pool_id: int) -> list[tuple]:
    return ctx.db.query(
        "SELECT host_type, host_id, count, description FROM allocations WHERE pool_id = ? "
        "ORDER BY id",
        [pool_id],
    )


@pytest.mark.parametrize("name", SHAPES)
def test_importing_writes_exactly_the_good_rows(pool, name):
    ctx, pool_id = pool
    shape = SHAPES[name]
    parsed = parse(shape)
    audit_before = ctx.db.scalar("SELECT COUNT(*) FROM audit_log")
    if not shape.good:
        with pytest.raises(ValidationError):
            import_bulk(ctx, MANAGER, pool_id, parsed, feature=CAD)
        assert stored(ctx, pool_id) == []
        assert ctx.db.scalar("SELECT COUNT(*) FROM audit_log") == audit_before
        return
    results = import_bulk(ctx, MANAGER, pool_id, parsed, feature=CAD)
    assert [(r.row, r.ok) for r in results] == [(g[0], True) for g in shape.good]
    assert stored(ctx, pool_id) == [g[1:] for g in shape.good]
    assert ctx.db.scalar("SELECT COUNT(*) FROM audit_log") == audit_before + len(shape.good)
