from vlm.services.bulk import parse_bulk_allocations


def test_csv_with_header_maps_columns_and_numbers_rows_by_line():
    parsed = parse_bulk_allocations(
        "host_id,host_type,count,description,colour\n"
        "0050569A0001,ETHERNET,2,Lab PC\n"
        "jsmith,USER,,remote\n"
    )
    assert [c.row for c in parsed.changes] == [2, 3]
    first, second = parsed.changes
    assert (first.host_id, first.host_type, first.count, first.description) == (
        "0050569A0001",
        "ETHERNET",
        "2",
        "Lab PC",
    )
    assert (second.host_type, second.count) == ("USER", 1)
    assert parsed.problems == ["ignored unknown column(s): colour"]


def test_one_id_per_line_uses_the_defaults():
    parsed = parse_bulk_allocations("\n0050569A0001\n 0050569A0002 \n", default_count=3)
    assert [(c.row, c.host_id.strip(), c.host_type, c.count) for c in parsed.changes] == [
        (1, "0050569A0001", "ETHERNET", 3),
        (2, "0050569A0002", "ETHERNET", 3),
    ]
    assert parse_bulk_allocations("  \n").problems == ["nothing to import: the text is empty"]
