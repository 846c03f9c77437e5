"""Groups to mirror rows and back: what the reconciler plans from is what the pull stored."""

from __future__ import annotations

from tests.unit.sync.builders import ANN, BEN, CAD, VIZ, entry, group, host_group, reservation
from vlm.store.reservations import MIRROR_COLUMNS, MIRROR_TYPES
from vlm.sync.mirror import groups_from_mirror, groups_mirror_table, mirror_rows, mirror_table

PREFIX = "vlm-"


def test_owned_and_foreign_groups_make_rows_in_mirror_column_order() -> None:
    groups = [
        host_group("vlm-USER-ann", ANN, entry(CAD, 2, 11, "ACTIVE"), entry(VIZ, 1, 12)),
        host_group("team-x", BEN, entry(CAD, 4, 21), group_id=8),
    ]
    rows = mirror_rows(3, groups, PREFIX)
    assert rows == [
        (3, 7, "vlm-USER-ann", True, 1, "USER", "ann", 11, "cad", "1.0", 2, "ACTIVE"),
        (3, 7, "vlm-USER-ann", True, 1, "USER", "ann", 12, "viz", "1.0", 1, None),
        (3, 8, "team-x", False, 1, "USER", "ben", 21, "cad", "1.0", 4, None),
    ]
    assert all(len(row) == len(MIRROR_COLUMNS) for row in rows)


def test_empty_groups_and_reservations_are_remembered_as_placeholder_rows() -> None:
    groups = [group("vlm-empty", group_id=5), group("vlm-USER-ann", reservation(ANN))]
    assert mirror_rows(3, groups, PREFIX) == [
        (3, 5, "vlm-empty", True, None, "", "", None, "", "", 0, None),
        (3, 7, "vlm-USER-ann", True, 1, "USER", "ann", None, "", "", 0, None),
    ]


def test_groups_come_back_from_their_rows_unchanged() -> None:
    groups = [
        host_group("vlm-USER-ann", ANN, entry(CAD, 2, 11, "ACTIVE"), entry(VIZ, 1, 12)),
        group("vlm-two", reservation(ANN, entry(CAD, 1, 31)), reservation(BEN, reservation_id=2)),
        group("vlm-empty", group_id=None),
    ]
    rebuilt = groups_from_mirror(mirror_rows(3, groups, PREFIX))
    assert rebuilt == {g.name: g for g in groups}


def test_the_mirror_table_carries_the_stored_column_types_also_when_empty() -> None:
    groups = [host_group("vlm-USER-ann", ANN, entry(CAD, 2, 11))]
    table = groups_mirror_table(3, groups, PREFIX)
    assert table.schema.names == MIRROR_COLUMNS
    assert [f.type for f in table.schema] == list(MIRROR_TYPES.values())
    assert table.to_pylist()[0]["count"] == 2
    empty = mirror_table([])
    assert empty.num_rows == 0 and empty.schema == table.schema
