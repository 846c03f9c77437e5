"""The allocation reads the grid and the exports use: filters, ids, empty answers, bad input."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.conftest import ADMIN, ANALYST, MANAGER, OTHER_MANAGER
from tests.unit.services.estate import add_people, add_server, feature_ids
from vlm.domain import ValidationError
from vlm.services import allocations, exports, pools, vlms
from vlm.store import reports as store_reports

CAD, SIM = ("cad", "1.0"), ("sim", "2.0")


@pytest.fixture
def pool(ctx) -> int:
    add_people(ctx)
    add_server(ctx, "east", {CAD: 10, SIM: 10})
    vlm_id = vlms.create_vlm(ctx, ADMIN, "eng", feature_ids(ctx))
    pool_id = pools.create_pool(ctx, ADMIN, vlm_id, "p", MANAGER.username, {CAD: 5, SIM: 5})
    allocations.allocate(ctx, MANAGER, pool_id, CAD, "USER", "ann", 2)
    allocations.allocate(ctx, MANAGER, pool_id, SIM, "USER", "ann", 1)
    allocations.allocate(ctx, MANAGER, pool_id, SIM, "USER", "ben", 3)
    return pool_id


def test_a_feature_filter_lists_only_that_features_rows_oldest_first(ctx, pool) -> None:
    sim = allocations.list_allocations(ctx, MANAGER, pool, SIM)
    assert sim["host_id"].tolist() == ["ann", "ben"]
    assert set(zip(sim["feature_name"], sim["feature_version"], strict=True)) == {SIM}
    assert sim["id"].is_monotonic_increasing
    every = allocations.list_allocations(ctx, MANAGER, pool)
    assert sorted(every["count"].tolist()) == [1, 2, 3]


def test_removed_rows_are_listed_only_when_asked(ctx, pool) -> None:
    [cad_id] = allocations.list_allocations(ctx, MANAGER, pool, CAD)["id"].tolist()
    allocations.remove_allocation(ctx, MANAGER, pool, cad_id)
    assert allocations.list_allocations(ctx, MANAGER, pool, CAD).empty
    removing = allocations.list_allocations(ctx, MANAGER, pool, CAD, include_removing=True)
    assert removing["state"].tolist() == ["removing"]


@pytest.mark.parametrize("bad", [0, -3, "x"])
def test_a_bad_pool_id_is_refused_naming_the_pool(ctx, pool, bad) -> None:
    with pytest.raises(ValidationError) as refused:
        allocations.list_allocations(ctx, MANAGER, bad)
    assert refused.value.field == "pool"
    assert "pool id" in refused.value.message


def test_a_malformed_feature_filter_is_refused(ctx, pool) -> None:
    with pytest.raises(ValidationError):
        allocations.list_allocations(ctx, MANAGER, pool, ("cad",))  # type: ignore[arg-type]


def test_states_of_no_ids_is_an_empty_frame_with_the_grids_columns(ctx, pool) -> None:
    states = allocations.allocation_states(ctx, MANAGER, [])
    assert states.empty and list(states.columns) == ["id", "state", "last_error"]


def test_states_are_those_of_the_asked_ids_the_actor_may_see(ctx, pool) -> None:
    ids = allocations.list_allocations(ctx, MANAGER, pool)["id"].tolist()
    mine = allocations.allocation_states(ctx, MANAGER, ids[:2])
    assert sorted(mine["id"].tolist()) == sorted(ids[:2])
    assert set(mine["state"]) == {"pending"}
    assert allocations.allocation_states(ctx, OTHER_MANAGER, ids).empty
    assert len(allocations.allocation_states(ctx, ANALYST, ids)) == 3


def test_a_bad_allocation_id_is_refused_naming_the_allocation(ctx, pool) -> None:
    with pytest.raises(ValidationError) as refused:
        allocations.allocation_states(ctx, MANAGER, [1, "two"])
    assert refused.value.field == "allocation"
    assert "allocation id" in refused.value.message


def test_numbers_and_missing_cells_are_not_taken_for_formulas() -> None:
    frame = pd.DataFrame(
        {
            "delta": [-5, 3],
            "ratio": [-0.5, 1.5],
            "note": [None, "=SUM(A1)"],
            "plain": [pd.NA, "fine"],
        }
    )
    text = exports.to_csv_bytes(frame).decode()
    assert text == "delta,ratio,note,plain\n-5,-0.5,,\n3,1.5,'=SUM(A1),fine\n"
    assert frame["note"][1] == "=SUM(A1)", "the caller's frame is left as it was"


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("SELECT a FROM t ORDER BY a", "SELECT a FROM t"),
        ("SELECT a FROM t order by a desc", "SELECT a FROM t"),
        ("SELECT a FROM t ORDER BY a LIMIT 5", "SELECT a FROM t ORDER BY a LIMIT 5"),
        ("SELECT a FROM t ORDER BY a limit 5", "SELECT a FROM t ORDER BY a limit 5"),
        ("SELECT a FROM t ORDER BY a offset 2", "SELECT a FROM t ORDER BY a offset 2"),
        (
            "SELECT a FROM (SELECT a FROM t ORDER BY a) s",
            "SELECT a FROM (SELECT a FROM t ORDER BY a) s",
        ),
    ],
)
def test_only_a_final_order_by_without_limit_is_dropped_for_counting(sql, expected) -> None:
    assert store_reports.without_final_order_by(sql) == expected


def test_counting_an_empty_query_gives_zero_and_a_full_one_its_rows(ctx, pool) -> None:
    assert exports.query_count(ctx, "SELECT id FROM allocations WHERE count > ?", [99]) == 0
    assert exports.query_count(ctx, "SELECT id FROM allocations ORDER BY id", []) == 3


def test_utilization_export_covers_the_days_asked_for(ctx, pool) -> None:
    ctx.db.write(
        lambda cur: cur.execute(
            "INSERT INTO utilization_snapshots (server_feature_id, taken_at, total, used, "
            "reserved) SELECT id, now()::TIMESTAMP - INTERVAL '20 days', 10, 4, 0 "
            "FROM server_features"
        )
    )
    recent = exports.utilization_export(ctx, ANALYST, 7)
    longer = exports.utilization_export(ctx, ANALYST, 30)
    assert recent.empty and len(longer) == 2


def test_utilization_exports_cover_ninety_days_unless_told(ctx, pool) -> None:
    """Without a window the exports cover 90 days: a snapshot just inside is in, one outside out."""
    for age in ("89 DAY 23 HOUR", "90 DAY 1 HOUR"):
        ctx.db.write(
            lambda cur, age=age: cur.execute(
                "INSERT INTO utilization_snapshots (server_feature_id, taken_at, total, used, "
                f"reserved) SELECT id, now()::TIMESTAMP - INTERVAL '{age}', 10, 4, 0 "
                "FROM server_features"
            )
        )
    assert len(exports.utilization_export(ctx, ANALYST)) == 2
    assert exports.utilization_csv(ctx, ANALYST).decode().count("\n") == 1 + 2


def test_an_allocation_without_a_count_holds_one_license(ctx, pool) -> None:
    alloc = allocations.allocate(ctx, MANAGER, pool, CAD, "STRING", "ws-7")
    frame = allocations.list_allocations(ctx, MANAGER, pool, CAD)
    assert frame.loc[frame["id"] == alloc, "count"].tolist() == [1]
