"""Issue #8 item 7: the allocation grid shows which license server carries each row, offers every
host id type FNE reserves for, and refuses a malformed host id with an example of the format."""

from __future__ import annotations

import pandas as pd
from streamlit.testing.v1 import AppTest

from tests.app.conftest import open_page, service_context
from vlm.domain import HOST_ID_FORMATS, Actor, HostType, Role
from vlm.services import allocations, pools
from vlm.services.allocations import AllocationChange, RowResult
from vlm.ui.grid.diff import GridDiff
from vlm.ui.grid.drafts import build_source, drafts_after_apply
from vlm.ui.grid.view import DISPLAY_COLUMNS, READ_ONLY, column_config

MIA = Actor("mia", Role.MANAGER)


def grid(at: AppTest):
    (editor,) = at.data_editor
    return editor


def tag_of(at: AppTest) -> str:
    return grid(at).key.removeprefix("alloc_grid_").rsplit("_", 1)[0]


def shown_pool_and_feature(at: AppTest) -> tuple[int, tuple[str, str]]:
    """The pool and feature whose grid the page shows (from the Pool and Feature boxes)."""
    (feature_box,) = [b for b in at.selectbox if b.label == "Feature"]
    pool_id = int(pools.list_pools(service_context(), MIA)["id"].iloc[0])
    return pool_id, tuple(feature_box.value)


def apply_added(at: AppTest, rows: list[dict]) -> None:
    at.session_state[grid(at).key] = {"added_rows": rows}
    at.run()
    tag = tag_of(at)
    at.button(key=f"alloc_review_{tag}").click()
    at.run()
    at.button(key=f"alloc_apply_{tag}").click()
    at.run()
    assert not at.exception, at.exception


def test_the_server_column_is_read_only_and_sits_after_the_inputs():
    config = column_config()
    assert "server_name" in DISPLAY_COLUMNS and "server_name" in READ_ONLY
    assert DISPLAY_COLUMNS[:4] == ["host_type", "host_id", "count", "description"]
    assert config["server_name"]["label"] == "Server"


def test_every_fne_host_type_is_offered_with_its_format_and_example():
    config = column_config()
    assert config["host_type"]["type_config"]["options"] == ["ETHERNET", "USER", "STRING"]
    for host_type, form in HOST_ID_FORMATS.items():
        assert f"{host_type.value}: {form.rule}, like {form.example}" in config["host_id"]["help"]


def test_saved_rows_carry_their_server_and_unsaved_rows_none():
    saved = pd.DataFrame(
        {
            "id": [1, 2],
            "host_type": ["USER", "ETHERNET"],
            "host_id": ["jdoe", "0050569A1B2C"],
            "count": [1, 2],
            "description": ["", ""],
            "state": ["applied", "pending"],
            "last_error": [None, None],
            "server_name": ["lls-east", "lls-west"],
            "created_at": pd.to_datetime(["2026-01-01"] * 2),
        }
    )
    refused = AllocationChange("add", row=3, host_type="USER", host_id="new one", count=1)
    drafts = drafts_after_apply(
        GridDiff([refused], []), [RowResult(refused, False, "USER host id 'new one' ...")]
    )
    source = build_source(saved, drafts)
    assert list(source["server_name"]) == ["lls-east", "lls-west", ""]
    assert list(source["host_id"]) == ["jdoe", "0050569A1B2C", "new one"]


def test_the_grid_shows_where_each_row_landed_and_a_new_row_gets_its_server_on_apply(app):
    at = open_page(app("mia"), "allocations")
    pool_id, feature = shown_pool_and_feature(at)
    stored = allocations.list_allocations(service_context(), MIA, pool_id, feature)
    shown = grid(at).value.set_index("id")
    assert len(stored) and not (stored["server_name"].fillna("") == "").any()
    for row in stored.itertuples():
        assert shown.loc[row.id, "server_name"] == row.server_name

    apply_added(
        at,
        [
            {"host_type": "STRING", "host_id": "LAB-RIG-07", "count": 1},
            {"host_type": "ETHERNET", "host_id": "not-a-mac", "count": 1},
        ],
    )

    stored = allocations.list_allocations(service_context(), MIA, pool_id, feature)
    [placed] = stored[stored["host_id"] == "LAB-RIG-07"].itertuples()
    assert placed.host_type == "STRING" and placed.server_name
    fresh = grid(at).value
    by_host = fresh.set_index("host_id")
    assert by_host.loc["LAB-RIG-07", "server_name"] == placed.server_name
    assert by_host.loc["not-a-mac", "server_name"] == ""  # refused, kept unsaved
    example = HOST_ID_FORMATS[HostType.ETHERNET].example
    assert f"must be 12 hex digits (e.g. {example})" in by_host.loc["not-a-mac", "problem"]
    assert "not-a-mac" not in set(stored["host_id"])
