"""A pull keeps a server's stored conflicts only while nothing they were computed from changed:
an allocation saved, a pool portion or a mirror entry written between two pulls whose answers
are unchanged still brings the conflicts up to date at the next pull."""

from __future__ import annotations

import pytest

from tests.sync.conftest import (
    add_pool,
    add_synced_server,
    allocate,
    feature,
    feature_id,
    fixture_group,
    set_feature_count,
)
from vlm.context import ServiceContext
from vlm.flexnet.emulator.server import start_emulator
from vlm.sync import drift, pull_inventory

FOREIGN_HOST = "AAAAAAAAAAAA"
FIXTURE = {
    "features": [feature("cad", 10), feature("viz", 4)],
    "reservationGroups": [fixture_group("ops-team", FOREIGN_HOST, {"viz": 1})],
}


@pytest.fixture
def emu():
    with start_emulator(FIXTURE) as running:
        yield running


def conflicts(ctx: ServiceContext) -> list[tuple[str, str | None, str | None]]:
    rows = ctx.db.query("SELECT kind, host_id, feature_name FROM sync_conflicts")
    return sorted(rows, key=repr)


def unchanged_pull(ctx: ServiceContext, server_id: int) -> int:
    result = pull_inventory(ctx, server_id)
    assert result.ok and result.observation is None and result.snapshots_added == 0
    return result.conflicts


def test_an_allocation_saved_between_unchanged_pulls_is_reported_missing(ctx, emu) -> None:
    server_id = add_synced_server(ctx, emu.url)
    cad = feature_id(ctx, server_id, "cad")
    pool_id = add_pool(ctx, {cad: 5})
    assert unchanged_pull(ctx, server_id) == 0

    allocate(ctx, pool_id, cad, "BBBBBBBBBBBB", 2)

    assert unchanged_pull(ctx, server_id) == 1
    assert conflicts(ctx) == [("missing", "BBBBBBBBBBBB", "cad")]
    assert unchanged_pull(ctx, server_id) == 1, "kept while nothing changed"
    assert conflicts(ctx) == [("missing", "BBBBBBBBBBBB", "cad")]


def test_a_portion_written_between_unchanged_pulls_is_reported_over_committed(ctx, emu) -> None:
    server_id = add_synced_server(ctx, emu.url)
    cad = feature_id(ctx, server_id, "cad")
    add_pool(ctx, {cad: 5})
    assert unchanged_pull(ctx, server_id) == 0

    ctx.db.write(lambda cur: cur.execute("UPDATE pool_portions SET quantity = 12"))

    assert unchanged_pull(ctx, server_id) == 1
    assert conflicts(ctx) == [("over_committed", None, "cad")]


def test_a_mirror_entry_written_between_unchanged_pulls_clears_its_conflict(ctx, emu) -> None:
    server_id = add_synced_server(ctx, emu.url)
    viz = feature_id(ctx, server_id, "viz")
    pool_id = add_pool(ctx, {viz: 2})
    allocate(ctx, pool_id, viz, FOREIGN_HOST, 1)
    assert unchanged_pull(ctx, server_id) == 2
    assert ("host_held_elsewhere", FOREIGN_HOST, None) in conflicts(ctx)

    ctx.db.write(
        lambda cur: cur.execute("DELETE FROM reservation_mirror WHERE group_name = 'ops-team'")
    )

    assert unchanged_pull(ctx, server_id) == 1
    assert conflicts(ctx) == [("missing", FOREIGN_HOST, "viz")]


def test_an_allocation_saved_while_a_pull_reads_is_still_reported(ctx, emu, monkeypatch) -> None:
    """The pull reads the drift inputs ahead, beside its requests; a write committed after that
    read moves the database generation, so the pull computes them again in its own write."""
    server_id = add_synced_server(ctx, emu.url)
    cad = feature_id(ctx, server_id, "cad")
    pool_id = add_pool(ctx, {cad: 5})
    assert unchanged_pull(ctx, server_id) == 0
    real_read_ahead = drift.read_inputs_ahead

    def saved_right_after(context, server):
        ahead = real_read_ahead(context, server)
        allocate(ctx, pool_id, cad, "BBBBBBBBBBBB", 2)
        return ahead

    monkeypatch.setattr(drift, "read_inputs_ahead", saved_right_after)

    assert unchanged_pull(ctx, server_id) == 1
    assert conflicts(ctx) == [("missing", "BBBBBBBBBBBB", "cad")]


def test_an_unchanged_pull_takes_the_inputs_read_ahead(ctx, emu, monkeypatch, backend) -> None:
    """On DuckDB nothing is hashed inside the pull's write; PostgreSQL reads nothing ahead."""
    server_id = add_synced_server(ctx, emu.url)
    cad = feature_id(ctx, server_id, "cad")
    allocate(ctx, add_pool(ctx, {cad: 5}), cad, "BBBBBBBBBBBB", 2)
    assert unchanged_pull(ctx, server_id) == 1
    hashed_in_write: list[int] = []
    real_inputs = drift.drift_inputs
    monkeypatch.setattr(
        drift, "drift_inputs", lambda cur, sid: hashed_in_write.append(sid) or real_inputs(cur, sid)
    )

    assert unchanged_pull(ctx, server_id) == 1

    assert hashed_in_write == ([] if backend == "duckdb" else [server_id])
    assert conflicts(ctx) == [("missing", "BBBBBBBBBBBB", "cad")]


def test_a_pull_that_moves_a_features_total_computes_the_inputs_in_its_write(
    ctx, emu, monkeypatch
) -> None:
    server_id = add_synced_server(ctx, emu.url)
    cad = feature_id(ctx, server_id, "cad")
    add_pool(ctx, {cad: 8})
    assert unchanged_pull(ctx, server_id) == 0
    set_feature_count(emu, "cad", 6)
    hashed_in_write: list[int] = []
    real_inputs = drift.drift_inputs
    monkeypatch.setattr(
        drift, "drift_inputs", lambda cur, sid: hashed_in_write.append(sid) or real_inputs(cur, sid)
    )

    result = pull_inventory(ctx, server_id)

    assert result.ok and result.conflicts == 1 and hashed_in_write == [server_id]
    assert conflicts(ctx) == [("over_committed", None, "cad")]
