"""The pure grid diff and drafts: editor state → service changes, refused rows kept as typed."""

from __future__ import annotations

import pandas as pd
import pytest

from vlm.services.allocations import AllocationChange, RowResult
from vlm.ui.grid.diff import diff_grid, has_edits
from vlm.ui.grid.drafts import NOT_SAVED, Drafts, build_source, drafts_after_apply


def allocations_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [11, 12, 13],
            "host_type": ["ETHERNET", "ETHERNET", "USER"],
            "host_id": ["0050569A0001", "0050569A0002", "jsmith"],
            "count": [1, 2, 1],
            "description": ["ws 1", "ws 2", "remote"],
            "state": ["applied", "pending", "failed"],
            "last_error": [None, None, "not enough licenses"],
            "created_at": pd.to_datetime(["2026-01-01"] * 3),
            "pool_id": [1, 1, 1],
        }
    )


@pytest.fixture
def source() -> pd.DataFrame:
    return build_source(allocations_frame())


def test_no_edits_no_changes(source):
    assert diff_grid(source, None).empty
    assert diff_grid(source, {"edited_rows": {}, "added_rows": [], "deleted_rows": []}).empty
    assert not has_edits(None)


def test_added_row_becomes_an_add_numbered_after_the_source_rows(source):
    state = {"added_rows": [{"host_id": " 0050569a0009 ", "description": "new"}]}
    diff = diff_grid(source, state)
    assert diff.changes == [
        AllocationChange(
            "add", row=4, host_type="ETHERNET", host_id="0050569a0009", count=1, description="new"
        )
    ]
    assert has_edits(state)


def test_blank_added_row_is_ignored(source):
    diff = diff_grid(source, {"added_rows": [{"host_type": "USER", "count": 1}]})
    assert diff.empty


def test_edited_description_becomes_an_edit_with_the_current_count(source):
    diff = diff_grid(source, {"edited_rows": {1: {"description": "  renamed "}}})
    assert diff.changes == [
        AllocationChange("edit", row=2, allocation_id=12, count=2, description="renamed")
    ]


def test_browser_state_with_string_row_keys(source):
    diff = diff_grid(source, {"edited_rows": {"0": {"count": 3.0}}})
    assert diff.changes[0].allocation_id == 11
    assert diff.changes[0].count == 3.0


def test_unchanged_value_is_no_edit(source):
    assert diff_grid(source, {"edited_rows": {0: {"description": "ws 1"}}}).empty


def test_changing_the_host_of_an_existing_row_is_refused_up_front(source):
    diff = diff_grid(source, {"edited_rows": {0: {"host_id": "0050569A0077"}}})
    assert diff.changes == []
    (problem,) = diff.problems
    assert problem.row == 1 and problem.allocation_id == 11
    assert "0050569A0077" in problem.message and "cannot change" in problem.message


def test_deleted_rows_become_deletes(source):
    diff = diff_grid(source, {"deleted_rows": [0, 2]})
    assert [(c.op, c.allocation_id, c.row) for c in diff.changes] == [
        ("delete", 11, 1),
        ("delete", 13, 3),
    ]


def test_mixed_state_in_one_apply(source):
    diff = diff_grid(
        source,
        {
            "edited_rows": {0: {"description": "edited"}},
            "added_rows": [{"host_type": "ETHERNET", "host_id": "nothex", "count": 1}],
            "deleted_rows": [1],
        },
    )
    assert diff.counts() == {"add": 1, "edit": 1, "delete": 1}


def test_refused_add_is_kept_as_typed_and_diffed_again():
    change = AllocationChange("add", 4, None, None, None, "ETHERNET", "nothex", 2, "lab")
    results = [RowResult(change, False, "ETHERNET host id 'nothex' must be 12 hex digits")]
    drafts = drafts_after_apply(diff_grid(build_source(allocations_frame()), None), results)
    source = build_source(allocations_frame(), drafts)
    draft = source.iloc[3]
    assert pd.isna(draft["id"])
    assert (draft["host_id"], draft["count"], draft["description"]) == ("nothex", 2, "lab")
    assert draft["state"] == NOT_SAVED and "12 hex digits" in draft["problem"]
    # untouched, the draft is offered again; corrected, it carries the correction
    assert diff_grid(source, None).changes[0].host_id == "nothex"
    fixed = diff_grid(source, {"edited_rows": {3: {"host_id": "0050569A0010"}}})
    assert fixed.changes[0].op == "add" and fixed.changes[0].host_id == "0050569A0010"
    # deleting the draft discards it
    assert diff_grid(source, {"deleted_rows": [3]}).empty


def test_refused_edit_is_kept_with_the_typed_values():
    change = AllocationChange("edit", 1, 11, count=99, description="too many")
    drafts = drafts_after_apply(
        diff_grid(build_source(allocations_frame()), None),
        [RowResult(change, False, "only 14 more can be given")],
    )
    source = build_source(allocations_frame(), drafts)
    row = source.iloc[0]
    assert (row["count"], row["description"], bool(row["pending_edit"])) == (99, "too many", True)
    assert row["problem"] == "only 14 more can be given"
    again = diff_grid(source, None).changes
    assert again == [
        AllocationChange("edit", row=1, allocation_id=11, count=99, description="too many")
    ]


def test_host_change_problem_is_shown_without_keeping_the_host():
    source = build_source(allocations_frame())
    diff = diff_grid(source, {"edited_rows": {0: {"host_id": "other"}}})
    drafts = drafts_after_apply(diff, [])
    rebuilt = build_source(allocations_frame(), drafts)
    assert rebuilt.iloc[0]["host_id"] == "0050569A0001"
    assert "cannot change" in rebuilt.iloc[0]["problem"]
    assert diff_grid(rebuilt, None).empty


def test_source_has_a_range_index_and_the_grid_columns():
    source = build_source(allocations_frame(), Drafts(adds=[{"host_id": "x", "problem": "p"}]))
    assert list(source.index) == [0, 1, 2, 3]
    assert str(source["id"].dtype) == "Int64"
    assert "pool_id" not in source.columns


def test_changes_come_in_row_order_and_edits_past_the_last_row_are_ignored(source):
    state = {
        "edited_rows": {"2": {"description": "moved"}, 0: {"count": 3}, 9: {"count": 5}},
        "deleted_rows": [1, 7],
    }
    assert diff_grid(source, state).changes == [
        AllocationChange("edit", row=1, allocation_id=11, count=3, description="ws 1"),
        AllocationChange("delete", row=2, allocation_id=12),
        AllocationChange("edit", row=3, allocation_id=13, count=1, description="moved"),
    ]
